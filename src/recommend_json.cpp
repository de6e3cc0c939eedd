// The Recommender's JSON: item details, ranked lists and response bodies (mfrec_serve's and
// mfrec_recommend --format json's), and the prerendered fast path.
#include <cmath>

#include "mfrec/recommend.hpp"
#include "recommend_internal.hpp"

namespace mfrec {

namespace recommend_detail {

std::string dump_json(const nlohmann::ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace recommend_detail

namespace {

using recommend_detail::dump_json;

double rounded(double v, double scale) { return std::round(v * scale) / scale; }

nlohmann::ordered_json score_json(Real s) {
  if (!std::isfinite(s)) return nullptr;
  return rounded(static_cast<double>(s), 1e6);
}

}  // namespace

nlohmann::ordered_json Recommender::item_json(Index item) const {
  const auto i = static_cast<std::size_t>(item);
  const auto& t = model_.items;
  nlohmann::ordered_json j;
  j["id"] = t.id[i];
  j["name"] = t.name[i];
  j["category"] = t.category[i];
  j["style"] = t.style[i];
  j["price"] = rounded(static_cast<double>(t.price[i]), 100);
  j["description"] = t.description[i];
  return j;
}

nlohmann::ordered_json Recommender::items_json(const ItemList& list) const {
  nlohmann::ordered_json a = nlohmann::ordered_json::array();
  for (std::size_t k = 0; k < list.items.size(); ++k) {
    nlohmann::ordered_json j;
    j["rank"] = k + 1;
    nlohmann::ordered_json item = item_json(list.items[k]);
    for (auto& [key, value] : item.items()) j[key] = std::move(value);
    j["score"] = score_json(list.scores[k]);
    a.push_back(std::move(j));
  }
  return a;
}

nlohmann::ordered_json Recommender::response(const ItemList& list, nlohmann::ordered_json head) const {
  nlohmann::ordered_json j = head.is_object() ? std::move(head) : nlohmann::ordered_json::object();
  j["source"] = list.source;
  j["model"] = model_label_;
  j["count"] = list.items.size();
  j["items"] = items_json(list);
  return j;
}

std::string Recommender::response_text(const ItemList& list, const nlohmann::ordered_json& head) const {
  std::string out;
  out.reserve(256 + list.items.size() * 256);
  out += '{';
  if (head.is_object() && !head.empty()) {
    const std::string h = dump_json(head);
    out.append(h, 1, h.size() - 2);
    out += ',';
  }
  out += "\"source\":";
  out += dump_json(list.source);
  out += ",\"model\":";
  out += dump_json(model_label_);
  out += ",\"count\":";
  out += std::to_string(list.items.size());
  out += ",\"items\":[";
  for (std::size_t k = 0; k < list.items.size(); ++k) {
    if (k) out += ',';
    out += "{\"rank\":";
    out += std::to_string(k + 1);
    out += ',';
    out += item_fragment_[static_cast<std::size_t>(list.items[k])];
    out += ",\"score\":";
    out += dump_json(score_json(list.scores[k]));
    out += '}';
  }
  out += "]}";
  return out;
}

nlohmann::ordered_json Recommender::model_json() const {
  nlohmann::ordered_json j;
  j["path"] = source_.path;
  if (!source_.name.empty()) {
    j["name"] = source_.name;
    j["version"] = source_.version;
    j["spec"] = source_.spec;
  }
  j["created"] = model_.meta.created;
  j["users"] = n_users();
  j["items"] = n_items();
  j["factors"] = model_.meta.als.factors;
  j["search"] = ann_ ? "ann" : "exact";  // top N, fold-in and similar items
  if (ann_) j["ann_ef"] = ann_->ef();
  return j;
}

}  // namespace mfrec
