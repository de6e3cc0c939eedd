#include "mfrec/recommend.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>

#include "mfrec/comm.hpp"
#include "mfrec/error.hpp"
#include "mfrec/h5.hpp"
#include "mfrec/metrics.hpp"
#include "mfrec/partition.hpp"
#include "mfrec/registry.hpp"

namespace mfrec {

namespace fs = std::filesystem;

// ---- model sources ---------------------------------------------------------------------------

std::string ModelSource::describe() const {
  if (name.empty()) return path;
  return name + ":" + std::to_string(version) + " (" + path + ")";
}

ModelSource resolve_model(const std::string& model, const std::string& registry_dir, const std::string& spec) {
  ModelSource s;
  if (registry_dir.empty()) {
    if (model.empty()) throw ConfigError("option --model: no model file given (or use --registry and --spec)");
    s.path = model;
    return s;
  }
  if (spec.empty()) throw ConfigError("option --spec: empty registry spec (e.g. retail-als@production)");
  Registry reg(registry_dir, /*create=*/false);
  RegistryEntry e = reg.find(spec);
  // Verify the concrete version found, so a label moving meanwhile cannot mix two versions.
  s.path = reg.verified_path(e.spec());
  s.spec = spec;
  s.name = e.name;
  s.version = e.version;
  s.checksum = e.checksum;
  return s;
}

ModelSource peek_registry(const std::string& registry_dir, const std::string& spec) {
  Registry reg(registry_dir, /*create=*/false);
  RegistryEntry e = reg.find(spec);
  ModelSource s;
  s.path = (fs::path(reg.dir()) / e.file).string();
  s.spec = spec;
  s.name = e.name;
  s.version = e.version;
  s.checksum = e.checksum;
  return s;
}

// ---- the recommender -------------------------------------------------------------------------

namespace {

void check_n(int n) {
  if (n < 1) throw ConfigError("n must be at least 1 (got " + std::to_string(n) + ")");
}

double rounded(double v, double scale) { return std::round(v * scale) / scale; }

nlohmann::ordered_json score_json(Real s) {
  if (!std::isfinite(s)) return nullptr;
  return rounded(static_cast<double>(s), 1e6);
}

std::string dump_json(const nlohmann::ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace

Recommender::Recommender(Model model, ModelSource source) : model_(std::move(model)), source_(std::move(source)) {
  if (source_.path.empty()) source_.path = model_.path;
  const Index nu = n_users(), ni = n_items(), f = model_.item_factors.cols();
  if (static_cast<Index>(model_.user_ids.size()) != nu || static_cast<Index>(model_.items.size()) != ni)
    throw InputError(source_.path + ": id lists do not match the factor matrices");
  if (model_.seen.n_rows() != nu || model_.seen.n_cols != ni)
    throw InputError(source_.path + ": /seen does not match the factor matrices");
  if (model_.user_factors.cols() != f) throw InputError(source_.path + ": user and item factors differ in width");
  user_index_.reserve(static_cast<std::size_t>(nu));
  for (Index u = 0; u < nu; ++u) user_index_.emplace(model_.user_ids[static_cast<std::size_t>(u)], u);
  item_index_.reserve(static_cast<std::size_t>(ni));
  for (Index i = 0; i < ni; ++i) item_index_.emplace(model_.items.id[static_cast<std::size_t>(i)], i);
  for (std::int32_t i : model_.popular)
    if (i < 0 || i >= ni) throw InputError(source_.path + ": /popularity/ranking holds a bad item index");

  item_unit_ = model_.item_factors;
  for (Index i = 0; i < ni; ++i) {
    const Real norm = item_unit_.row(i).norm();
    if (norm > 0) item_unit_.row(i) /= norm;
  }
  Eigen::MatrixXd g = Eigen::MatrixXd::Zero(f, f);
  gram_accumulate(model_.item_factors, 0, ni, g, 1);
  yty_ = g.cast<Real>();
  popular_scores_ = popularity_scores(model_.popularity);
  model_label_ = source_.name.empty() ? source_.path : source_.name + ":" + std::to_string(source_.version);
  item_fragment_.resize(static_cast<std::size_t>(ni));
  for (Index i = 0; i < ni; ++i) {
    const std::string d = dump_json(item_json(i));
    item_fragment_[static_cast<std::size_t>(i)] = d.substr(1, d.size() - 2);
  }
}

std::shared_ptr<const Recommender> Recommender::load(const ModelSource& source) {
  return std::make_shared<const Recommender>(read_model(source.path), source);
}

Index Recommender::user_row(const std::string& id) const {
  auto it = user_index_.find(id);
  return it == user_index_.end() ? -1 : it->second;
}

Index Recommender::item_row(const std::string& id) const {
  auto it = item_index_.find(id);
  return it == item_index_.end() ? -1 : it->second;
}

bool Recommender::has_history(Index row) const {
  return row >= 0 && row < n_users() && model_.seen.indptr[row + 1] > model_.seen.indptr[row];
}

ItemList Recommender::top_n(const Vector& scores, const std::vector<std::int32_t>& exclude, int n,
                            const char* source) const {
  ItemList out;
  out.source = source;
  top_k_excluding(scores.data(), n_items(), exclude.data(), static_cast<Index>(exclude.size()), n, out.items);
  out.scores.reserve(out.items.size());
  for (std::int32_t i : out.items) out.scores.push_back(scores[i]);
  return out;
}

ItemList Recommender::for_user_row(Index row, int n) const {
  check_n(n);
  if (row < 0 || row >= n_users()) throw InputError("user row " + std::to_string(row) + " out of range");
  if (!has_history(row)) return popular(n);
  const auto b = model_.seen.indptr[row], e = model_.seen.indptr[row + 1];
  Vector scores = model_.item_factors * model_.user_factors.row(row).transpose();
  std::vector<std::int32_t> exclude(model_.seen.indices.begin() + b, model_.seen.indices.begin() + e);
  return top_n(scores, exclude, n, "model");
}

ItemList Recommender::for_user(const std::string& id, int n) const {
  check_n(n);
  const Index row = user_row(id);
  return row < 0 ? popular(n) : for_user_row(row, n);
}

ItemList Recommender::popular(int n, const std::vector<std::int32_t>& exclude) const {
  check_n(n);
  std::vector<std::int32_t> ex(exclude);
  std::sort(ex.begin(), ex.end());
  ItemList out;
  out.source = "popular";
  for (std::int32_t i : model_.popular) {
    if (static_cast<int>(out.items.size()) >= n) break;
    if (std::binary_search(ex.begin(), ex.end(), i)) continue;
    out.items.push_back(i);
    out.scores.push_back(popular_scores_[static_cast<std::size_t>(i)]);
  }
  return out;
}

ItemList Recommender::similar(Index item, int n) const {
  check_n(n);
  if (item < 0 || item >= n_items()) throw InputError("item row " + std::to_string(item) + " out of range");
  Vector scores = item_unit_ * item_unit_.row(item).transpose();
  return top_n(scores, {static_cast<std::int32_t>(item)}, n, "similar");
}

Vector Recommender::fold_in_factors(const std::vector<std::int32_t>& items, const std::vector<Real>& weights) const {
  if (items.empty()) throw InputError("fold-in needs at least one item");
  if (!weights.empty() && weights.size() != items.size())
    throw InputError("fold-in: " + std::to_string(weights.size()) + " weights for " + std::to_string(items.size()) +
                     " items");
  std::vector<std::pair<std::int32_t, Real>> obs;
  obs.reserve(items.size());
  for (std::size_t k = 0; k < items.size(); ++k) {
    const std::int32_t i = items[k];
    if (i < 0 || i >= n_items()) throw InputError("fold-in: item index " + std::to_string(i) + " out of range");
    const Real w = weights.empty() ? Real(1) : weights[k];
    if (!std::isfinite(w) || w <= 0) throw InputError("fold-in: weights must be finite and positive");
    obs.emplace_back(i, w);
  }
  std::sort(obs.begin(), obs.end());
  CsrBlock r;
  r.n_rows_global = 1;
  r.n_cols = n_items();
  for (const auto& [i, w] : obs) {
    if (!r.indices.empty() && r.indices.back() == i) {
      r.data.back() += w;  // a repeated item: its observations add up, like events
    } else {
      r.indices.push_back(i);
      r.data.push_back(w);
    }
  }
  r.indptr = {0, static_cast<std::int64_t>(r.indices.size())};
  AlsParams p = model_.meta.als;
  p.solver = Solver::kCholesky;  // one row: solve exactly, no warm start to lean on
  FactorMatrix x = FactorMatrix::Zero(1, model_.item_factors.cols());
  solve_rows(r, model_.item_factors, yty_, p, x, 1);
  return x.row(0).transpose();
}

ItemList Recommender::fold_in(const std::vector<std::int32_t>& items, const std::vector<Real>& weights, int n) const {
  check_n(n);
  Vector x = fold_in_factors(items, weights);
  Vector scores = model_.item_factors * x;
  return top_n(scores, items, n, "fold-in");
}

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
  return j;
}

// ---- batch -----------------------------------------------------------------------------------

TopNBlock top_n_rows(const FactorMatrix& X, const FactorMatrix& Y, const CsrBlock& seen, int n,
                     const std::vector<std::int32_t>& fallback, const std::vector<Real>& fallback_scores,
                     int threads) {
  check_n(n);
  const Index rows = X.rows(), ni = Y.rows();
  if (seen.n_rows() != rows || seen.n_cols != ni || X.cols() != Y.cols())
    throw InputError("top_n_rows: shapes of X, Y and seen do not match");
  if (fallback_scores.size() != static_cast<std::size_t>(ni))
    throw InputError("top_n_rows: fallback scores must have one value per item");
  TopNBlock out;
  const auto nn = static_cast<std::size_t>(n);
  out.items.assign(static_cast<std::size_t>(rows) * nn, -1);
  out.scores.assign(static_cast<std::size_t>(rows) * nn, std::numeric_limits<Real>::quiet_NaN());
  out.fallback.assign(static_cast<std::size_t>(rows), 0);
  constexpr Index kBlock = 64;
  const Index n_blocks = (rows + kBlock - 1) / kBlock;
  std::string error;
#pragma omp parallel for schedule(dynamic, 1) num_threads(std::max(1, threads))
  for (Index blk = 0; blk < n_blocks; ++blk) {
    try {
      const Index b = blk * kBlock, e = std::min(rows, b + kBlock);
      FactorMatrix S = X.middleRows(b, e - b) * Y.transpose();
      std::vector<std::int32_t> top;
      for (Index u = b; u < e; ++u) {
        const auto sb = seen.indptr[u], se = seen.indptr[u + 1];
        const std::size_t off = static_cast<std::size_t>(u) * nn;
        if (se == sb) {
          out.fallback[static_cast<std::size_t>(u)] = 1;
          for (std::size_t k = 0; k < nn && k < fallback.size(); ++k) {
            out.items[off + k] = fallback[k];
            out.scores[off + k] = fallback_scores[static_cast<std::size_t>(fallback[k])];
          }
          continue;
        }
        top_k_excluding(S.row(u - b).data(), ni, seen.indices.data() + sb, se - sb, n, top);
        for (std::size_t k = 0; k < top.size(); ++k) {
          out.items[off + k] = top[k];
          out.scores[off + k] = S(u - b, top[k]);
        }
      }
    } catch (const std::exception& ex) {
#pragma omp critical(mfrec_top_n_rows_error)
      if (error.empty()) error = ex.what();
    }
  }
  if (!error.empty()) throw InputError(error);
  return out;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) {
    if (c == '"') q += '"';
    q += c;
  }
  q += '"';
  return q;
}

BatchResult recommend_all(const Comm& comm, const std::string& model_path, const std::string& output,
                          const std::string& csv, int n, int threads) {
  check_n(n);
  const double t0 = Comm::wtime();
  // Read this rank's users, all item factors, the popularity ranking and the item table.
  h5::File in = h5::File::open(model_path, &comm);
  const std::string format = in.has_attr("/", "format") ? in.attr_string("/", "format") : std::string();
  if (format != kModelFormat) {
    in.close();  // same answer on every rank: close collectively before throwing
    throw InputError(model_path + ": not an mfrec model (root attribute format != " + kModelFormat + ")");
  }
  const auto f = static_cast<hsize_t>(in.attr_int("/", "factors"));
  const h5::Dims ud = in.require<float>("/user_factors", 2, f);
  const h5::Dims id = in.require<float>("/item_factors", 2, f);
  const auto n_users = static_cast<Index>(ud[0]), n_items = static_cast<Index>(id[0]);
  const Bounds bounds = partition_even(n_users, comm.size());
  const Index b = bounds[comm.rank()], e = bounds[comm.rank() + 1];
  FactorMatrix Y(n_items, static_cast<Index>(f)), X(e - b, static_cast<Index>(f));
  in.read_rows("/item_factors", 0, id[0], Y.data());
  in.read_rows("/user_factors", static_cast<hsize_t>(b), static_cast<hsize_t>(e - b), X.data());
  std::vector<std::string> user_ids = in.read_string_rows("/users/id", static_cast<hsize_t>(b), static_cast<hsize_t>(e - b));
  CsrBlock seen = dataset::read_csr_rows(in, "/seen", b, e);
  const auto counts = in.read_all<std::int64_t>("/popularity/count");
  const auto ranking = in.read_all<std::int32_t>("/popularity/ranking");
  const dataset::ItemTable items = dataset::read_items(in);
  in.close();
  if (static_cast<Index>(counts.size()) != n_items || static_cast<Index>(ranking.size()) != n_items ||
      static_cast<Index>(items.size()) != n_items)
    throw InputError(model_path + ": /popularity or /items does not match /item_factors");

  TopNBlock top = top_n_rows(X, Y, seen, n, ranking, popularity_scores(counts), threads);

  // One HDF5 file, every rank writing its rows.
  h5::File out = h5::File::create_atomic(output, &comm);
  const auto nu = static_cast<hsize_t>(n_users), nn = static_cast<hsize_t>(n);
  const auto rb = static_cast<hsize_t>(b), rn = static_cast<hsize_t>(e - b);
  out.create_dataset<std::int32_t>("/recommendations/items", {nu, nn});
  out.write_rows("/recommendations/items", rb, rn, top.items.data());
  out.create_dataset<float>("/recommendations/scores", {nu, nn});
  out.write_rows("/recommendations/scores", rb, rn, top.scores.data());
  out.create_dataset<std::uint8_t>("/recommendations/fallback", {nu}, {65536, 0});
  out.write_rows("/recommendations/fallback", rb, rn, top.fallback.data());
  std::int64_t width = 1;
  for (const auto& s : user_ids) width = std::max<std::int64_t>(width, static_cast<std::int64_t>(s.size()));
  width = comm.max(width);
  out.create_string_dataset("/users/id", nu, static_cast<std::size_t>(width), {65536, 0});
  out.write_string_rows("/users/id", rb, user_ids);
  out.write_strings("/items/id", items.id);
  out.set_attr("/", "format", "mfrec-recommendations");
  out.set_attr("/", "format_version", std::int64_t{1});
  out.set_attr("/", "n", n);
  out.set_attr("/", "model", comm.bcast(model_path));
  out.set_attr("/", "created", comm.bcast(utc_now_iso()));
  out.commit();

  std::int64_t fallback_local = 0;
  for (auto v : top.fallback) fallback_local += v;

  if (!csv.empty()) {
    const std::string part = csv + ".part" + std::to_string(comm.rank());
    {
      std::ofstream os(part, std::ios::binary | std::ios::trunc);
      if (!os) throw IoError("cannot write " + part);
      char score[32];
      for (Index u = 0; u < e - b; ++u) {
        const std::string uid = csv_field(user_ids[static_cast<std::size_t>(u)]);
        const char* source = top.fallback[static_cast<std::size_t>(u)] ? "popular" : "model";
        for (int k = 0; k < n; ++k) {
          const std::size_t off = static_cast<std::size_t>(u) * nn + static_cast<std::size_t>(k);
          const std::int32_t it = top.items[off];
          if (it < 0) break;
          std::snprintf(score, sizeof score, "%.6g", static_cast<double>(top.scores[off]));
          const auto ii = static_cast<std::size_t>(it);
          os << uid << ',' << (k + 1) << ',' << csv_field(items.id[ii]) << ',' << csv_field(items.name[ii]) << ','
             << csv_field(items.category[ii]) << ',' << score << ',' << source << '\n';
        }
      }
      if (!os.flush()) throw IoError("cannot write " + part);
    }
    comm.barrier();
    if (comm.is_root()) {
      const std::string partial = csv + ".partial";
      {
        std::ofstream os(partial, std::ios::binary | std::ios::trunc);
        if (!os) throw IoError("cannot write " + partial);
        os << "user_id,rank,item_id,item_name,category,score,source\n";
        for (int r = 0; r < comm.size(); ++r) {
          const std::string p = csv + ".part" + std::to_string(r);
          std::ifstream is(p, std::ios::binary);
          if (!is) throw IoError("cannot read " + p);
          if (is.peek() != std::ifstream::traits_type::eof()) os << is.rdbuf();  // an empty part: nothing
          is.close();
          fs::remove(p);
        }
        if (!os.flush()) throw IoError("cannot write " + partial);
      }
      fs::rename(partial, csv);
    }
    comm.barrier();
  }

  BatchResult res;
  res.users = n_users;
  res.fallback_users = comm.sum(fallback_local);
  res.seconds = comm.max(Comm::wtime() - t0);
  return res;
}

}  // namespace mfrec
