#include "mfrec/model.hpp"

#include <ctime>

#include "mfrec/error.hpp"
#include "mfrec/h5.hpp"
#include "mfrec/metrics.hpp"
#include "mfrec/version.hpp"

namespace mfrec {

std::string solver_name(Solver s) { return s == Solver::kCholesky ? "cholesky" : "cg"; }
Solver parse_solver(const std::string& name) {
  if (name == "cg") return Solver::kConjugateGradient;
  if (name == "cholesky") return Solver::kCholesky;
  throw ConfigError("option --solver: unknown solver '" + name + "' (cg or cholesky)");
}
std::string confidence_name(ConfidenceRule c) { return c == ConfidenceRule::kImplicit ? "implicit" : "hu"; }
ConfidenceRule parse_confidence(const std::string& name) {
  if (name == "hu") return ConfidenceRule::kHu;
  if (name == "implicit") return ConfidenceRule::kImplicit;
  throw ConfigError("option --confidence: unknown rule '" + name + "' (hu: c = 1 + alpha r; implicit: c = alpha r)");
}

std::string utc_now_iso() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

namespace {

void write_metrics(h5::File& f, const std::string& group, const std::map<std::string, double>& m) {
  f.create_group(group);
  for (const auto& [k, v] : m) f.set_attr(group, k, v);
}

std::map<std::string, double> read_metrics(const h5::File& f, const std::string& group) {
  std::map<std::string, double> m;
  if (!f.exists(group)) return m;
  for (const char* k : {"map_at_k", "map_at_k_seed", "precision_at_k", "recall_at_k", "ndcg_at_k", "auc", "users"})
    if (f.has_attr(group, k)) m[k] = f.attr_double(group, k);
  return m;
}

void write_meta(h5::File& f, const ModelMeta& meta) {
  f.set_attr("/", "format", kModelFormat);
  f.set_attr("/", "format_version", dataset::kFormatVersion);
  f.set_attr("/", "program_version", meta.program_version.empty() ? std::string(kVersion) : meta.program_version);
  f.set_attr("/", "created", meta.created.empty() ? utc_now_iso() : meta.created);
  f.set_attr("/", "factors", meta.als.factors);
  f.set_attr("/", "regularization", static_cast<double>(meta.als.regularization));
  f.set_attr("/", "alpha", static_cast<double>(meta.als.alpha));
  f.set_attr("/", "confidence", confidence_name(meta.als.confidence));
  f.set_attr("/", "scale_regularization", meta.als.scale_regularization ? 1 : 0);
  f.set_attr("/", "solver", solver_name(meta.als.solver));
  f.set_attr("/", "cg_steps", meta.als.cg_steps);
  f.set_attr("/", "iterations", meta.iterations);
  f.set_attr("/", "seed", static_cast<std::int64_t>(meta.seed));
  f.set_attr("/", "k", meta.k);
  f.set_attr("/", "dataset", meta.dataset);
  f.set_attr("/", "dataset_fingerprint", meta.dataset_fingerprint);
  write_metrics(f, "/metrics", meta.metrics);
  write_metrics(f, "/metrics/system", meta.system_metrics);
  write_metrics(f, "/metrics/baseline", meta.baseline_metrics);
}

ModelMeta read_meta(const h5::File& f) {
  if (!f.has_attr("/", "format") || f.attr_string("/", "format") != kModelFormat)
    throw InputError(f.path() + ": not an mfrec model (root attribute format != " + kModelFormat + ")");
  ModelMeta m;
  m.program_version = f.attr_string("/", "program_version");
  m.created = f.attr_string("/", "created");
  m.als.factors = static_cast<int>(f.attr_int("/", "factors"));
  m.als.regularization = static_cast<Real>(f.attr_double("/", "regularization"));
  m.als.alpha = static_cast<Real>(f.attr_double("/", "alpha"));
  m.als.confidence = parse_confidence(f.attr_string("/", "confidence"));
  m.als.scale_regularization = f.attr_int("/", "scale_regularization") != 0;
  m.als.solver = parse_solver(f.attr_string("/", "solver"));
  m.als.cg_steps = static_cast<int>(f.attr_int("/", "cg_steps"));
  m.iterations = static_cast<int>(f.attr_int("/", "iterations"));
  m.seed = static_cast<std::uint64_t>(f.attr_int("/", "seed"));
  m.k = static_cast<int>(f.attr_int("/", "k"));
  m.dataset = f.attr_string("/", "dataset");
  m.dataset_fingerprint = f.attr_string("/", "dataset_fingerprint");
  m.metrics = read_metrics(f, "/metrics");
  m.system_metrics = read_metrics(f, "/metrics/system");
  m.baseline_metrics = read_metrics(f, "/metrics/baseline");
  return m;
}

}  // namespace

void write_model(const std::string& path, const Comm& comm, const ModelParts& p, const ModelMeta& meta) {
  const FactorMatrix& X = *p.user_factors;
  const FactorMatrix& Y = *p.item_factors;
  const auto f = static_cast<hsize_t>(X.cols());
  h5::File file = h5::File::create_atomic(path, &comm);
  const Index ub = p.seen_local->row_begin, nu = p.seen_local->n_rows();
  file.create_dataset<float>("/user_factors", {static_cast<hsize_t>(X.rows()), f}, {65536, 0});
  file.write_rows("/user_factors", static_cast<hsize_t>(ub), static_cast<hsize_t>(nu), X.row(ub).data());
  file.create_dataset<float>("/item_factors", {static_cast<hsize_t>(Y.rows()), f}, {65536, 0});
  file.write_rows("/item_factors", 0, comm.is_root() ? static_cast<hsize_t>(Y.rows()) : 0, Y.data());
  // User ids: fixed-width strings, the width agreed over ranks.
  std::int64_t width = 1;
  for (const auto& s : p.user_ids_local) width = std::max<std::int64_t>(width, static_cast<std::int64_t>(s.size()));
  width = comm.max(width);
  file.create_string_dataset("/users/id", static_cast<hsize_t>(X.rows()), static_cast<std::size_t>(width), {65536, 0});
  file.write_string_rows("/users/id", static_cast<hsize_t>(ub), p.user_ids_local);
  dataset::write_items(file, *p.items);
  dataset::write_csr(file, "/seen", *p.seen_local, comm);
  file.write_vector("/popularity/count", *p.popularity);
  file.write_vector("/popularity/ranking", popularity_ranking(*p.popularity));
  write_meta(file, meta);
  file.commit();
}

Model read_model(const std::string& path) {
  h5::File f = h5::File::open(path);
  Model m;
  m.path = path;
  m.meta = read_meta(f);
  const auto fdim = static_cast<hsize_t>(m.meta.als.factors);
  auto ud = f.require<float>("/user_factors", 2, fdim);
  auto id = f.require<float>("/item_factors", 2, fdim);
  m.user_factors.resize(static_cast<Index>(ud[0]), m.meta.als.factors);
  m.item_factors.resize(static_cast<Index>(id[0]), m.meta.als.factors);
  f.read_rows("/user_factors", 0, ud[0], m.user_factors.data());
  f.read_rows("/item_factors", 0, id[0], m.item_factors.data());
  m.user_ids = f.read_strings("/users/id");
  m.items = dataset::read_items(f);
  if (m.user_ids.size() != ud[0] || m.items.size() != id[0])
    throw InputError(path + ": /users/id or /items/id does not match the factor matrices' rows");
  m.seen = dataset::read_csr_rows(f, "/seen", 0, static_cast<Index>(ud[0]));
  m.popularity = f.read_all<std::int64_t>("/popularity/count");
  m.popular = f.read_all<std::int32_t>("/popularity/ranking");
  if (m.popularity.size() != id[0] || m.popular.size() != id[0])
    throw InputError(path + ": /popularity does not match the number of items");
  return m;
}

ModelMeta read_model_meta(const std::string& path) { return read_meta(h5::File::open(path)); }

}  // namespace mfrec
