// Helpers shared by the recommender's source files (recommend.cpp, recommend_json.cpp,
// recommend_batch.cpp). Not installed.
#pragma once
#include <nlohmann/json.hpp>

#include <string>

#include "mfrec/error.hpp"
#include "mfrec/types.hpp"

namespace mfrec::recommend_detail {

inline void check_n(int n) {
  if (n < 1) throw ConfigError("n must be at least 1 (got " + std::to_string(n) + ")");
}

// JSON text of j; invalid UTF-8 becomes U+FFFD instead of an exception.
std::string dump_json(const nlohmann::ordered_json& j);

}  // namespace mfrec::recommend_detail

#include <memory>

#include "mfrec/comm.hpp"
#include "mfrec/durable.hpp"
#include "mfrec/model.hpp"

namespace mfrec {
struct TopNBlock;
}

namespace mfrec::recommend_detail {

// Collective: the batch's CSV (user_id,rank,item_id,item_name,category,score,source), each rank
// writing its users to a part file beside `csv` and rank 0 joining them in rank order into an
// AtomicFile, returned uncommitted (null on the other ranks). Failures are agreed; the part
// files are removed either way.
std::unique_ptr<AtomicFile> write_batch_csv(const Comm& comm, const std::string& csv, const Model& m,
                                            const TopNBlock& top, int n);

}  // namespace mfrec::recommend_detail
