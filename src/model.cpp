#include "mfrec/model.hpp"

#include <cmath>
#include <ctime>

#include "mfrec/error.hpp"
#include "mfrec/evaluation.hpp"
#include "mfrec/h5.hpp"
#include "mfrec/metrics.hpp"
#include "mfrec/partition.hpp"
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
  for (const char* k : kMetricKeys)
    if (f.has_attr(group, k)) m[k] = f.attr_double(group, k);
  if (f.has_attr(group, "users")) m["users"] = f.attr_double(group, "users");
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
  f.set_attr("/", "select_metric", meta.select_metric);
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
  if (f.has_attr("/", "select_metric")) {  // older files have none: they were selected by MAP@K
    m.select_metric = f.attr_string("/", "select_metric");
    if (!is_metric_name(m.select_metric))
      throw InputError(f.path() + ": root attribute select_metric = '" + m.select_metric + "' is not a metric (" +
                       kMetricKeyList + ")");
  }
  m.metrics = read_metrics(f, "/metrics");
  m.system_metrics = read_metrics(f, "/metrics/system");
  m.baseline_metrics = read_metrics(f, "/metrics/baseline");
  return m;
}

}  // namespace

void write_model(const std::string& path, const Comm& comm, const ModelParts& p, const ModelMeta& meta) {
  const FactorMatrix& X = *p.user_factors;
  const FactorMatrix& Y = *p.item_factors;
  const Index f = X.cols(), n_users = p.seen_local->n_rows_global, n_items = static_cast<Index>(p.popularity->size());
  const Index ub = p.seen_local->row_begin, nu = p.seen_local->n_rows();
  if (X.rows() != nu) throw Error("write_model: user factors and seen rows differ");
  h5::File file = h5::File::create_atomic(path, &comm);
  // Each rank writes its own rows of both sides (hyperslabs of one collective write).
  file.create_dataset<float>("/user_factors", {n_users, f}, {65536, 0});
  file.write_rows("/user_factors", ub, nu, X.data());
  file.create_dataset<float>("/item_factors", {n_items, f}, {65536, 0});
  file.write_rows("/item_factors", p.item_begin, Y.rows(), Y.data());
  // User ids: fixed-width strings, the width agreed over ranks.
  std::int64_t width = 1;
  for (const auto& s : p.user_ids_local) width = std::max<std::int64_t>(width, static_cast<std::int64_t>(s.size()));
  width = comm.max(width);
  file.create_string_dataset("/users/id", n_users, static_cast<std::size_t>(width), {65536, 0});
  file.write_string_rows("/users/id", static_cast<Index>(ub), p.user_ids_local);
  dataset::write_items(file, *p.items);
  dataset::write_csr(file, "/seen", *p.seen_local, comm);
  file.write_vector("/popularity/count", *p.popularity);
  file.write_vector("/popularity/ranking", popularity_ranking(*p.popularity));
  if (p.knn && !p.knn->empty()) {  // every rank holds every list: written like /popularity
    file.write_vector("/knn/indptr", p.knn->indptr);
    file.write_vector("/knn/indices", p.knn->indices);
    file.write_vector("/knn/data", p.knn->data);
    file.set_attr("/knn", "k", p.knn->k);
  }
  write_meta(file, meta);
  if (p.knn && !p.knn->empty() && !p.knn_metrics.empty()) write_metrics(file, "/metrics/knn", p.knn_metrics);
  file.commit();
}

namespace {

std::string count_text(Index n) { return std::to_string(n); }

// The checks on the file's metadata (attributes and dataset shapes): the same answer on every
// rank, so a parallel reader throws on all of them or none.
struct ModelShape {
  Index n_users = 0, n_items = 0, factors = 0;
};
ModelShape check_model_shape(const h5::File& f, const ModelMeta& meta) {
  const std::string& path = f.path();
  if (meta.als.factors < 1)
    throw InputError(path + ": root attribute factors = " + std::to_string(meta.als.factors) + " is not a positive width");
  ModelShape s;
  s.factors = static_cast<Index>(meta.als.factors);
  // Factor widths agree with the attribute (require names the dataset otherwise).
  s.n_users = f.require<float>("/user_factors", 2, s.factors)[0];
  s.n_items = f.require<float>("/item_factors", 2, s.factors)[0];
  auto rows_of = [&](const std::string& name) {
    if (!f.exists(name)) throw InputError(path + ": dataset " + name + " is missing");
    return f.shape(name).at(0);
  };
  auto expect = [&](const std::string& name, Index want, const char* against) {
    const Index got = rows_of(name);
    if (got != want)
      throw InputError(path + ": dataset " + name + " has " + count_text(got) + " rows, but " + against + " has " +
                       count_text(want));
  };
  expect("/users/id", s.n_users, "/user_factors");
  expect("/items/id", s.n_items, "/item_factors");
  expect("/seen/indptr", s.n_users + 1, "/user_factors (+1)");
  expect("/popularity/count", s.n_items, "/item_factors");
  expect("/popularity/ranking", s.n_items, "/item_factors");
  return s;
}

// Every value finite: NaN or infinite factors would be served as scores of null.
void check_finite(const FactorMatrix& m, const std::string& path, const char* name, Index row_begin) {
  for (Index r = 0; r < m.rows(); ++r)
    for (Index c = 0; c < m.cols(); ++c)
      if (!std::isfinite(m(r, c)))
        throw InputError(path + ": dataset " + name + " holds a non-finite value (" + std::to_string(m(r, c)) +
                         ") at row " + std::to_string(row_begin + r) + ", column " + std::to_string(c));
}

// The ranking is a permutation of the items (it is served as the fallback list as it is).
void check_ranking(const std::vector<std::int32_t>& ranking, Index n_items, const std::string& path) {
  std::vector<char> listed(static_cast<std::size_t>(n_items), 0);
  for (std::size_t k = 0; k < ranking.size(); ++k) {
    const std::int32_t i = ranking[k];
    if (i < 0 || i >= n_items)
      throw InputError(path + ": dataset /popularity/ranking[" + std::to_string(k) + "] = " + std::to_string(i) +
                       " is outside [0, " + std::to_string(n_items) + ")");
    if (listed[static_cast<std::size_t>(i)]++)
      throw InputError(path + ": dataset /popularity/ranking lists item " + std::to_string(i) + " twice");
  }
}

void check_counts(const std::vector<Index>& counts, const std::string& path) {
  for (std::size_t k = 0; k < counts.size(); ++k)
    if (counts[k] < 0)
      throw InputError(path + ": dataset /popularity/count[" + std::to_string(k) + "] = " + std::to_string(counts[k]) +
                       " is negative");
}

}  // namespace

void check_model(const Model& m) {
  const std::string& path = m.path;
  const Index rows = m.user_factors.rows(), ni = m.item_factors.rows(), f = m.meta.als.factors;
  auto mismatch = [&](const std::string& what, std::size_t got, Index want, const char* against) {
    if (static_cast<Index>(got) != want)
      throw InputError(path + ": " + what + " has " + std::to_string(got) + " rows, but " + against + " has " +
                       std::to_string(want));
  };
  if (m.user_factors.cols() != f || m.item_factors.cols() != f)
    throw InputError(path + ": the factor matrices are " + std::to_string(m.user_factors.cols()) + " and " +
                     std::to_string(m.item_factors.cols()) + " wide, but the factors attribute is " + std::to_string(f));
  mismatch("/users/id", m.user_ids.size(), rows, "/user_factors");
  mismatch("/items", m.items.size(), ni, "/item_factors");
  mismatch("/seen", static_cast<std::size_t>(m.seen.n_rows()), rows, "/user_factors");
  mismatch("/popularity/count", m.popularity.size(), ni, "/item_factors");
  mismatch("/popularity/ranking", m.popular.size(), ni, "/item_factors");
  if (m.seen.n_cols != ni)
    throw InputError(path + ": /seen has " + std::to_string(m.seen.n_cols) + " columns, but /item_factors has " +
                     std::to_string(ni) + " rows");
  for (std::size_t k = 0; k < m.seen.indices.size(); ++k)
    if (m.seen.indices[k] < 0 || m.seen.indices[k] >= ni)
      throw InputError(path + ": dataset /seen/indices holds " + std::to_string(m.seen.indices[k]) +
                       ", outside [0, " + std::to_string(ni) + ")");
  check_finite(m.user_factors, path, "/user_factors", m.row_begin);
  check_finite(m.item_factors, path, "/item_factors", 0);
  check_ranking(m.popular, ni, path);
  check_counts(m.popularity, path);
  if (!m.knn.empty()) {
    if (m.knn.n_items != ni)
      throw InputError(path + ": /knn is of " + std::to_string(m.knn.n_items) + " items, but /item_factors has " +
                       std::to_string(ni) + " rows");
    check_item_neighbours(m.knn, path);
  }
}

namespace {

// Users [bounds[part], bounds[part + 1]) of partition_even(n_users, parts), and every item.
Model read_model_part(const std::string& path, const Comm* comm, int part, int parts) {
  h5::File f = h5::File::open(path, comm);
  Model m;
  m.path = path;
  ModelShape s;
  try {
    m.meta = read_meta(f);
    s = check_model_shape(f, m.meta);
  } catch (const Error&) {
    f.close();  // the same answer on every rank: close together, not leak a parallel handle
    throw;
  }
  const auto nu = static_cast<Index>(s.n_users);
  const Bounds bounds = partition_even(nu, parts);
  const Index row_begin = bounds[static_cast<std::size_t>(part)], row_end = bounds[static_cast<std::size_t>(part) + 1];
  const auto rb = static_cast<Index>(row_begin), rn = static_cast<Index>(row_end - row_begin);
  m.row_begin = row_begin;
  m.n_users_total = nu;
  m.user_factors.resize(row_end - row_begin, m.meta.als.factors);
  m.item_factors.resize(static_cast<Index>(s.n_items), m.meta.als.factors);
  f.read_rows("/user_factors", rb, rn, m.user_factors.data());
  f.read_rows("/item_factors", 0, s.n_items, m.item_factors.data());
  m.user_ids = f.read_string_rows("/users/id", rb, rn);
  m.items = dataset::read_items(f);
  m.popularity = f.read_all<std::int64_t>("/popularity/count");
  m.popular = f.read_all<std::int32_t>("/popularity/ranking");
  std::string knn_error;  // the same on every rank; reported after the collective close
  try {
    if (f.exists("/knn")) {
      m.knn.n_items = static_cast<Index>(s.n_items);
      m.knn.k = f.has_attr("/knn", "k") ? static_cast<int>(f.attr_int("/knn", "k")) : 0;
      m.knn.indptr = f.read_all<std::int64_t>("/knn/indptr");
      m.knn.indices = f.read_all<std::int32_t>("/knn/indices");
      m.knn.data = f.read_all<float>("/knn/data");
    }
  } catch (const Error& e) {
    knn_error = e.what();
  }
  // Last of the collective reads: its content checks may fail on some ranks only, which must
  // still close the file together with the others.
  std::string seen_error;
  try {
    m.seen = dataset::read_csr_rows(f, "/seen", row_begin, row_end);
  } catch (const InputError& e) {
    seen_error = e.what();
  }
  f.close();  // collective: before any check that may fail on some ranks only
  if (!seen_error.empty()) throw InputError(seen_error);
  if (!knn_error.empty()) throw InputError(knn_error);
  if (m.seen.n_rows_global != nu)
    throw InputError(path + ": /seen has " + std::to_string(m.seen.n_rows_global) + " rows, but /user_factors has " +
                     std::to_string(nu));
  check_model(m);
  return m;
}

}  // namespace

Model read_model(const std::string& path) { return read_model_part(path, nullptr, 0, 1); }

Model read_model_share(const std::string& path, const Comm& comm) {
  return read_model_part(path, &comm, comm.rank(), comm.size());
}

ModelMeta read_model_meta(const std::string& path) { return read_meta(h5::File::open(path)); }

}  // namespace mfrec
