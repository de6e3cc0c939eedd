// mfrec_serve's request validation: n, ids and the fold-in body, each bad value a 400 (or 404
// for unknown items) with a message that says what is wrong.
#include <cmath>

#include "mfrec/serve.hpp"

namespace mfrec::serve {

json error_body(int status, const std::string& message, const json& extra) {
  json j = {{"error", message}, {"status", status}};
  for (auto it = extra.begin(); it != extra.end(); ++it) j[it.key()] = it.value();
  return j;
}

int parse_n(const std::vector<std::string>& values, int default_n) {
  if (values.empty()) return default_n;
  if (values.size() > 1) throw HttpError(400, "parameter n given more than once");
  const std::string& text = values.front();
  const std::string msg = "parameter n must be an integer from 1 to " + std::to_string(kMaxN);
  if (text.empty() || text.size() > 5) throw HttpError(400, msg);
  int v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') throw HttpError(400, msg);
    v = v * 10 + (c - '0');
  }
  if (v < 1 || v > kMaxN) throw HttpError(400, msg);
  return v;
}

void check_id(const std::string& id, const char* what) {
  if (id.empty()) throw HttpError(400, std::string(what) + " must not be empty");
  if (id.size() > 256) throw HttpError(400, std::string(what) + " is too long (over 256 bytes)");
}

FoldInRequest parse_fold_in(const std::string& body, int n, int max_history, const Recommender& r) {
  const json in = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (in.is_discarded()) throw HttpError(400, "body is not valid JSON");
  if (!in.is_object()) throw HttpError(400, "body must be a JSON object like {\"items\": [\"ID\", ...], \"n\": 20}");
  FoldInRequest req;
  req.n = n;
  if (in.contains("n")) {
    const json& jn = in["n"];
    if (!jn.is_number_integer() || jn.get<long long>() < 1 || jn.get<long long>() > kMaxN)
      throw HttpError(400, "field n must be an integer from 1 to " + std::to_string(kMaxN));
    req.n = jn.get<int>();
  }
  if (!in.contains("items") || !in["items"].is_array())
    throw HttpError(400, "field items must be an array of item ids or {\"id\": ID, \"weight\": W} objects");
  const json& items = in["items"];
  if (items.empty()) throw HttpError(400, "field items is empty");
  if (items.size() > static_cast<std::size_t>(max_history))
    throw HttpError(400, "field items has more than " + std::to_string(max_history) + " entries");
  json unknown = json::array();
  for (const json& e : items) {
    std::string id;
    double w = 1;
    if (e.is_string()) {
      id = e.get<std::string>();
    } else if (e.is_object() && e.contains("id") && e["id"].is_string()) {
      id = e["id"].get<std::string>();
      if (e.contains("weight")) {
        if (!e["weight"].is_number()) throw HttpError(400, "weight of item " + id + " must be a number");
        w = e["weight"].get<double>();
        if (!std::isfinite(w) || w <= 0 || w > 1e6)
          throw HttpError(400, "weight of item " + id + " must be positive (at most 1e6)");
      }
    } else {
      throw HttpError(400, "each entry of items must be an id string or an object with a string id");
    }
    check_id(id, "item id");
    const Index i = r.item_row(id);
    if (i < 0) {
      if (unknown.size() < 20) unknown.push_back(id);
      continue;
    }
    req.rows.push_back(static_cast<std::int32_t>(i));
    req.weights.push_back(static_cast<Real>(w));
    req.ids.push_back(std::move(id));
  }
  if (!unknown.empty()) throw HttpError(404, "unknown item(s) in the history", {{"unknown_items", unknown}});
  return req;
}

}  // namespace mfrec::serve
