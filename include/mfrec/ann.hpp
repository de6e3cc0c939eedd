// Approximate nearest-neighbour search over a model's item factors (hnswlib HNSW graphs), for
// serving a large catalogue: the top N by inner product x . y_i (users, fold-in) and the most
// similar items by cosine. Built once after training (mfrec_registry build-index / publish --ann)
// and stored beside the model as one file:
//
//   "MFRECANN" | uint32 format version (1) | uint32 header length | header JSON | sections
//
// The header names the item count, factors, the item factors' fingerprint (the model it belongs
// to), the graph parameters and each section (an hnswlib index as hnswlib saves it) with its
// bytes and crc32. Two sections: "top" (maximum inner product, by the MIPS-to-L2 reduction:
// y_i gets an extra coordinate sqrt(M^2 - |y_i|^2), M the largest norm, the query x gets 0, so
// |x - y|^2 = |x|^2 + M^2 - 2 x . y ranks as x . y does) and "similar" (inner product of unit
// vectors: cosine). See docs/serving.md.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mfrec/types.hpp"

namespace mfrec {

class Cli;

inline constexpr const char* kAnnFormat = "mfrec-ann";
inline constexpr int kAnnFormatVersion = 1;

struct AnnParams {
  int m = 16;                 // graph degree (hnswlib M)
  int ef_construction = 200;  // candidate list while building
  int threads = 0;            // build threads (0: OpenMP's default); 1 builds the same graph every time
  std::uint64_t seed = 100;   // hnswlib's level generator
  std::string metric = "ip";  // the top graph: "ip" (hnswlib's inner product) or "l2-mips" (the reduction)
};

// When the servers search with the index: off, on (the index must be there), or auto (on when the
// catalogue has more than `threshold` items and the index is there; without an index, exact
// search, with a warning).
enum class AnnMode { kOff, kOn, kAuto };
inline constexpr Index kAnnDefaultThreshold = 100000;
inline constexpr int kAnnDefaultEf = 128;

struct AnnConfig {
  AnnMode mode = AnnMode::kAuto;
  Index threshold = kAnnDefaultThreshold;
  int ef = kAnnDefaultEf;  // search candidate list (at least the number of results asked for)
  std::string index;       // the index file ("" : the model path's, ann_index_path)
};
// ConfigError naming --ann unless `text` is off, on or auto.
AnnMode parse_ann_mode(const std::string& text);
const char* ann_mode_name(AnnMode m);
// ConfigError naming the option for a threshold below 1 or an ef outside 1..100000.
void check_ann_config(const AnnConfig& c);

// The servers' options: --ann, --ann-threshold, --ann-ef, --ann-index (mfrec_serve and
// mfrec_recommend declare them alike).
struct AnnOptions {
  std::string mode = "auto", index;
  Index threshold = kAnnDefaultThreshold;
  int ef = kAnnDefaultEf;
};
void declare_ann_options(Cli& cli, AnnOptions& o);
// The checked configuration (ConfigError naming the option).
AnnConfig ann_config(const AnnOptions& o);

// Where a model's index lives: the model path with ".h5" replaced by ".ann" (".ann" appended
// when it does not end in ".h5"). The registry keeps NAME/vN.ann beside NAME/vN.h5.
std::string ann_index_path(const std::string& model_path);

// "crc32:xxxxxxxx" of the item factors' bytes (row-major float32): which model an index belongs to.
std::string item_fingerprint(const FactorMatrix& items);

class AnnIndex {
 public:
  ~AnnIndex();
  AnnIndex(AnnIndex&&) noexcept;
  AnnIndex& operator=(AnnIndex&&) noexcept;

  // Builds both graphs over the item factors (at least one item).
  static AnnIndex build(const FactorMatrix& items, const AnnParams& p = {});
  // Writes the index file atomically (AtomicFile). IoError when it cannot.
  void save(const std::string& path) const;
  // Reads and checks an index file against the model's item factors: InputError naming the file
  // when it is not an index, its sections' checksums do not match (corrupt), or it was built for
  // other item factors (count, factors or fingerprint differ: a mismatched index).
  static AnnIndex load(const std::string& path, const FactorMatrix& items);

  // Searches with a candidate list of max(ef, k) (set before sharing: searches are thread-safe).
  void set_ef(int ef);
  int ef() const;
  Index n_items() const;
  int factors() const;
  const AnnParams& params() const;
  const std::string& fingerprint() const;  // item_fingerprint of the factors it was built from

  // The approximate k items of largest x . y_i / cos(unit, y_i), as item rows, unordered.
  std::vector<std::int32_t> top_inner_product(const Real* x, int k) const;
  std::vector<std::int32_t> top_cosine(const Real* unit, int k) const;

 private:
  struct Impl;
  explicit AnnIndex(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The top n of `candidates` by their exact score x . items.row(i) (recomputed), leaving out
// `exclude_sorted` (ascending), ties to the smaller row: exact search's order.
void rank_candidates(const std::vector<std::int32_t>& candidates, const FactorMatrix& items, const Real* x,
                     const std::vector<std::int32_t>& exclude_sorted, int n, std::vector<std::int32_t>& items_out,
                     std::vector<Real>& scores_out);

}  // namespace mfrec
