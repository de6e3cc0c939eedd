// The ANN index (ann.hpp): two hnswlib graphs over the item factors, their file, and the exact
// re-ranking of what they find. hnswlib (Debian's libhnswlib-dev) is header-only and saves to and
// loads from a path only, so each graph passes through an anonymous memory file (memfd) on its
// way into or out of the one index file.
#include "mfrec/ann.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <queue>
#include <sstream>

#include <boost/crc.hpp>
#include <hnswlib/hnswlib.h>
#include <nlohmann/json.hpp>
#include <omp.h>

#include "mfrec/durable.hpp"
#include "mfrec/error.hpp"

namespace mfrec {

namespace {

using Graph = hnswlib::HierarchicalNSW<float>;
constexpr char kMagic[8] = {'M', 'F', 'R', 'E', 'C', 'A', 'N', 'N'};

std::string crc_of(const char* data, std::size_t n) {
  boost::crc_32_type crc;
  crc.process_bytes(data, n);
  char buf[32];
  std::snprintf(buf, sizeof buf, "crc32:%08x", crc.checksum());
  return buf;
}

// An anonymous in-memory file and a path to it that hnswlib's streams can open.
class MemFile {
 public:
  MemFile() : fd_(::memfd_create("mfrec-ann", MFD_CLOEXEC)) {
    if (fd_ < 0) throw IoError(std::string("memfd_create: ") + std::strerror(errno));
  }
  ~MemFile() { ::close(fd_); }
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;
  std::string path() const { return "/proc/self/fd/" + std::to_string(fd_); }

 private:
  int fd_;
};

std::string slurp(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("cannot read " + what + " " + path + ": " + std::strerror(errno));
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) throw IoError("cannot read " + what + " " + path);
  return s.str();
}

std::string graph_bytes(Graph& g) {
  MemFile f;
  g.saveIndex(f.path());
  return slurp(f.path(), "index section");
}

std::unique_ptr<Graph> graph_from(hnswlib::SpaceInterface<float>* space, const char* bytes, std::size_t n) {
  MemFile f;
  {
    std::ofstream out(f.path(), std::ios::binary);
    out.write(bytes, static_cast<std::streamsize>(n));
    if (!out.flush()) throw IoError("cannot write an index section to memory");
  }
  return std::make_unique<Graph>(space, f.path());
}

std::unique_ptr<hnswlib::SpaceInterface<float>> top_space(bool mips_l2, int f) {
  if (mips_l2) return std::make_unique<hnswlib::L2Space>(static_cast<std::size_t>(f) + 1);
  return std::make_unique<hnswlib::InnerProductSpace>(static_cast<std::size_t>(f));
}

}  // namespace

struct AnnIndex::Impl {
  Index n = 0;
  int f = 0;
  AnnParams params;
  float max_norm = 0;
  std::string fingerprint;
  int ef = kAnnDefaultEf;
  bool mips_l2 = false;  // the top graph: the L2 reduction (dimension f + 1) or inner product (f)
  std::unique_ptr<hnswlib::SpaceInterface<float>> top_space;
  std::unique_ptr<hnswlib::InnerProductSpace> similar_space;  // dimension f: unit vectors
  std::unique_ptr<Graph> top, similar;
};

AnnIndex::AnnIndex(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AnnIndex::~AnnIndex() = default;
AnnIndex::AnnIndex(AnnIndex&&) noexcept = default;
AnnIndex& AnnIndex::operator=(AnnIndex&&) noexcept = default;

AnnMode parse_ann_mode(const std::string& text) {
  if (text == "off") return AnnMode::kOff;
  if (text == "on") return AnnMode::kOn;
  if (text == "auto") return AnnMode::kAuto;
  throw ConfigError("option --ann: must be off, on or auto (got '" + text + "')");
}

const char* ann_mode_name(AnnMode m) { return m == AnnMode::kOff ? "off" : m == AnnMode::kOn ? "on" : "auto"; }

void check_ann_config(const AnnConfig& c) {
  if (c.threshold < 1) throw ConfigError("option --ann-threshold: must be at least 1 (--ann on: always)");
  if (c.ef < 1 || c.ef > 100000) throw ConfigError("option --ann-ef: must be from 1 to 100000");
}

std::string ann_index_path(const std::string& model_path) {
  const std::string ext = ".h5";
  if (model_path.size() > ext.size() && model_path.compare(model_path.size() - ext.size(), ext.size(), ext) == 0)
    return model_path.substr(0, model_path.size() - ext.size()) + ".ann";
  return model_path + ".ann";
}

std::string item_fingerprint(const FactorMatrix& items) {
  return crc_of(reinterpret_cast<const char*>(items.data()), static_cast<std::size_t>(items.size()) * sizeof(Real));
}

AnnIndex AnnIndex::build(const FactorMatrix& items, const AnnParams& p) {
  const Index n = items.rows();
  const int f = static_cast<int>(items.cols());
  if (n < 1 || f < 1) throw InputError("an ANN index needs at least one item and one factor");
  if (p.m < 2 || p.ef_construction < 1) throw ConfigError("ANN index: M must be at least 2 and ef_construction at least 1");
  auto impl = std::make_unique<Impl>();
  impl->n = n;
  impl->f = f;
  impl->params = p;
  impl->fingerprint = item_fingerprint(items);
  std::vector<float> norms(static_cast<std::size_t>(n));
  for (Index i = 0; i < n; ++i) {
    norms[static_cast<std::size_t>(i)] = items.row(i).norm();
    impl->max_norm = std::max(impl->max_norm, norms[static_cast<std::size_t>(i)]);
  }
  impl->mips_l2 = p.metric == "l2-mips";
  if (!impl->mips_l2 && p.metric != "ip") throw ConfigError("ANN index: the metric must be ip or l2-mips");
  impl->top_space = top_space(impl->mips_l2, f);
  impl->similar_space = std::make_unique<hnswlib::InnerProductSpace>(static_cast<std::size_t>(f));
  const auto cap = static_cast<std::size_t>(n), m = static_cast<std::size_t>(p.m);
  const auto efc = static_cast<std::size_t>(p.ef_construction);
  impl->top = std::make_unique<Graph>(impl->top_space.get(), cap, m, efc, static_cast<std::size_t>(p.seed));
  impl->similar = std::make_unique<Graph>(impl->similar_space.get(), cap, m, efc, static_cast<std::size_t>(p.seed) + 1);

  const double m2 = static_cast<double>(impl->max_norm) * impl->max_norm;
  auto add = [&](Index i, std::vector<float>& buf) {
    const double r = m2 - static_cast<double>(norms[static_cast<std::size_t>(i)]) * norms[static_cast<std::size_t>(i)];
    for (int k = 0; k < f; ++k) buf[static_cast<std::size_t>(k)] = items(i, k);
    buf[static_cast<std::size_t>(f)] = static_cast<float>(std::sqrt(std::max(0.0, r)));  // unused by "ip"
    impl->top->addPoint(buf.data(), static_cast<hnswlib::labeltype>(i));
    const float norm = norms[static_cast<std::size_t>(i)], s = norm > 0 ? 1.0f / norm : 0.0f;
    for (int k = 0; k < f; ++k) buf[static_cast<std::size_t>(k)] *= s;
    impl->similar->addPoint(buf.data(), static_cast<hnswlib::labeltype>(i));
  };
  std::vector<float> first(static_cast<std::size_t>(f) + 1);
  add(0, first);  // the entry point first, alone: hnswlib's parallel inserts start from it
  std::atomic<bool> failed{false};
  std::string error;
  const int threads = p.threads > 0 ? p.threads : omp_get_max_threads();
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> buf(static_cast<std::size_t>(f) + 1);
#pragma omp for schedule(dynamic, 64)
    for (Index i = 1; i < n; ++i) {
      if (failed.load()) continue;
      try {
        add(i, buf);
      } catch (const std::exception& e) {
#pragma omp critical(mfrec_ann_error)
        error = e.what();
        failed = true;
      }
    }
  }
  if (failed) throw IoError("building the ANN index: " + error);
  return AnnIndex(std::move(impl));
}

void AnnIndex::save(const std::string& path) const {
  const std::string top = graph_bytes(*impl_->top), similar = graph_bytes(*impl_->similar);
  nlohmann::ordered_json h;
  h["format"] = kAnnFormat;
  h["version"] = kAnnFormatVersion;
  h["items"] = impl_->n;
  h["factors"] = impl_->f;
  h["item_fingerprint"] = impl_->fingerprint;
  h["max_norm"] = impl_->max_norm;
  h["m"] = impl_->params.m;
  h["ef_construction"] = impl_->params.ef_construction;
  h["sections"] = {{{"name", "top"},
                    {"metric", impl_->mips_l2 ? "l2-mips" : "ip"},
                    {"bytes", top.size()},
                    {"checksum", crc_of(top.data(), top.size())}},
                   {{"name", "similar"},
                    {"metric", "cosine"},
                    {"bytes", similar.size()},
                    {"checksum", crc_of(similar.data(), similar.size())}}};
  const std::string header = h.dump();
  AtomicFile out(path);
  const std::uint32_t version = kAnnFormatVersion, length = static_cast<std::uint32_t>(header.size());
  out.stream().write(kMagic, sizeof kMagic);
  out.stream().write(reinterpret_cast<const char*>(&version), sizeof version);
  out.stream().write(reinterpret_cast<const char*>(&length), sizeof length);
  out.stream() << header << top << similar;
  out.commit();
}

AnnIndex AnnIndex::load(const std::string& path, const FactorMatrix& items) {
  const std::string bytes = slurp(path, "ANN index");
  auto bad = [&](const std::string& why) { return InputError(path + ": " + why); };
  constexpr std::size_t kFixed = sizeof kMagic + 2 * sizeof(std::uint32_t);
  if (bytes.size() < kFixed || std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0)
    throw bad("not an mfrec ANN index (build one with mfrec_registry build-index)");
  std::uint32_t version = 0, length = 0;
  std::memcpy(&version, bytes.data() + sizeof kMagic, sizeof version);
  std::memcpy(&length, bytes.data() + sizeof kMagic + sizeof version, sizeof length);
  if (version != static_cast<std::uint32_t>(kAnnFormatVersion))
    throw bad("ANN index format version " + std::to_string(version) + " is not supported (this program reads " +
              std::to_string(kAnnFormatVersion) + ")");
  if (length > bytes.size() - kFixed) throw bad("truncated ANN index (header)");
  auto impl = std::make_unique<Impl>();
  std::size_t at = kFixed + length;
  std::size_t offset[2] = {0, 0}, size[2] = {0, 0};  // of the sections in `bytes`
  try {
    const auto h = nlohmann::json::parse(bytes.substr(kFixed, length));
    if (h.at("format").get<std::string>() != kAnnFormat) throw bad("not an mfrec ANN index");
    impl->n = h.at("items").get<Index>();
    impl->f = h.at("factors").get<int>();
    impl->fingerprint = h.at("item_fingerprint").get<std::string>();
    impl->max_norm = h.at("max_norm").get<float>();
    impl->params.m = h.at("m").get<int>();
    impl->params.ef_construction = h.at("ef_construction").get<int>();
    const auto& sections = h.at("sections");
    if (!sections.is_array() || sections.size() != 2) throw bad("an ANN index has two sections");
    impl->params.metric = sections[0].at("metric").get<std::string>();
    impl->mips_l2 = impl->params.metric == "l2-mips";
    if (!impl->mips_l2 && impl->params.metric != "ip") throw bad("unknown metric '" + impl->params.metric + "'");
    for (std::size_t s = 0; s < 2; ++s) {
      const auto n = sections[s].at("bytes").get<std::size_t>();
      if (n > bytes.size() - at) throw bad("truncated ANN index (section " + std::to_string(s) + ")");
      offset[s] = at;
      size[s] = n;
      at += n;
      const std::string sum = crc_of(bytes.data() + offset[s], n), want = sections[s].at("checksum").get<std::string>();
      if (sum != want)
        throw bad("checksum mismatch in ANN index section '" + sections[s].at("name").get<std::string>() + "' (" + sum +
                  ", header " + want + "): the file is corrupt; rebuild it");
    }
  } catch (const nlohmann::json::exception& e) {
    throw bad(std::string("malformed ANN index header: ") + e.what());
  }
  if (at != bytes.size()) throw bad("trailing bytes after the ANN index sections: the file is corrupt");
  if (impl->n != items.rows() || impl->f != items.cols() || impl->fingerprint != item_fingerprint(items))
    throw bad("the ANN index was built for other item factors (" + std::to_string(impl->n) + " items x " +
              std::to_string(impl->f) + ", " + impl->fingerprint + "; the model has " + std::to_string(items.rows()) +
              " x " + std::to_string(items.cols()) + ", " + item_fingerprint(items) + "): rebuild it for this model");
  impl->top_space = top_space(impl->mips_l2, impl->f);
  impl->similar_space = std::make_unique<hnswlib::InnerProductSpace>(static_cast<std::size_t>(impl->f));
  try {
    impl->top = graph_from(impl->top_space.get(), bytes.data() + offset[0], size[0]);
    impl->similar = graph_from(impl->similar_space.get(), bytes.data() + offset[1], size[1]);
  } catch (const std::runtime_error& e) {
    throw bad(std::string("cannot load the ANN graphs: ") + e.what());
  }
  for (const Graph* g : {impl->top.get(), impl->similar.get()})
    if (static_cast<Index>(g->cur_element_count) != impl->n) throw bad("an ANN graph does not hold every item");
  AnnIndex out(std::move(impl));
  out.set_ef(kAnnDefaultEf);
  return out;
}

void AnnIndex::set_ef(int ef) {
  impl_->ef = std::max(1, ef);
  impl_->top->setEf(static_cast<std::size_t>(impl_->ef));
  impl_->similar->setEf(static_cast<std::size_t>(impl_->ef));
}

int AnnIndex::ef() const { return impl_->ef; }
Index AnnIndex::n_items() const { return impl_->n; }
int AnnIndex::factors() const { return impl_->f; }
const AnnParams& AnnIndex::params() const { return impl_->params; }
const std::string& AnnIndex::fingerprint() const { return impl_->fingerprint; }

namespace {

std::vector<std::int32_t> labels(std::priority_queue<std::pair<float, hnswlib::labeltype>> q) {
  std::vector<std::int32_t> out;
  out.reserve(q.size());
  for (; !q.empty(); q.pop()) out.push_back(static_cast<std::int32_t>(q.top().second));
  return out;
}

}  // namespace

std::vector<std::int32_t> AnnIndex::top_inner_product(const Real* x, int k) const {
  std::vector<float> q(x, x + impl_->f);
  q.push_back(0.0f);  // l2-mips: the query's extra coordinate; |x - y|^2 then ranks as -x . y
  return labels(impl_->top->searchKnn(q.data(), static_cast<std::size_t>(std::min<Index>(std::max(k, 1), impl_->n))));
}

std::vector<std::int32_t> AnnIndex::top_cosine(const Real* unit, int k) const {
  return labels(impl_->similar->searchKnn(unit, static_cast<std::size_t>(std::min<Index>(std::max(k, 1), impl_->n))));
}

void rank_candidates(const std::vector<std::int32_t>& candidates, const FactorMatrix& items, const Real* x,
                     const std::vector<std::int32_t>& exclude_sorted, int n, std::vector<std::int32_t>& items_out,
                     std::vector<Real>& scores_out) {
  const Eigen::Map<const Eigen::Matrix<Real, Eigen::Dynamic, 1>> q(x, items.cols());
  std::vector<std::pair<Real, std::int32_t>> scored;
  scored.reserve(candidates.size());
  for (std::int32_t i : candidates) {
    if (std::binary_search(exclude_sorted.begin(), exclude_sorted.end(), i)) continue;
    Real s = items.row(i).dot(q.transpose());
    if (std::isnan(s)) s = -std::numeric_limits<Real>::infinity();
    scored.emplace_back(s, i);
  }
  auto better = [](const auto& a, const auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; };
  const std::size_t keep = std::min(scored.size(), static_cast<std::size_t>(std::max(n, 0)));
  std::partial_sort(scored.begin(), scored.begin() + static_cast<std::ptrdiff_t>(keep), scored.end(), better);
  items_out.clear();
  scores_out.clear();
  for (std::size_t k = 0; k < keep; ++k) {
    items_out.push_back(scored[k].second);
    scores_out.push_back(scored[k].first);
  }
}

}  // namespace mfrec
