// The batch job's CSV: one line per (user, rank), written through csv.hpp's quoting rule.
#include <cstdio>
#include <fstream>

#include "mfrec/csv.hpp"
#include "mfrec/error.hpp"
#include "mfrec/recommend.hpp"
#include "recommend_internal.hpp"

namespace mfrec::recommend_detail {

namespace {

// A rank's part file, removed when it goes out of scope (joined or not).
struct PartFile {
  std::string path;
  ~PartFile() { std::remove(path.c_str()); }
};

std::string part_name(const std::string& csv, int rank) { return partial_path(csv) + "." + std::to_string(rank); }

void write_rows(std::ostream& os, const Model& m, const TopNBlock& top, int n) {
  const auto nn = static_cast<std::size_t>(n);
  char score[32];
  for (std::size_t u = 0; u < m.user_ids.size(); ++u) {
    const char* source = top.fallback[u] ? "popular" : "model";
    for (std::size_t k = 0; k < nn; ++k) {
      const std::int32_t it = top.items[u * nn + k];
      if (it < 0) break;
      std::snprintf(score, sizeof score, "%.6g", static_cast<double>(top.scores[u * nn + k]));
      const auto i = static_cast<std::size_t>(it);
      csv::write_row(os, {m.user_ids[u], std::to_string(k + 1), m.items.id[i], m.items.name[i], m.items.category[i],
                          score, source});
    }
  }
}

}  // namespace

std::unique_ptr<AtomicFile> write_batch_csv(const Comm& comm, const std::string& csv, const Model& m,
                                            const TopNBlock& top, int n) {
  PartFile part{part_name(csv, comm.rank())};
  agree_on(comm, [&] {
    std::ofstream os(part.path, std::ios::binary | std::ios::trunc);
    if (!os) throw IoError("cannot create " + part.path);
    write_rows(os, m, top, n);
    if (!os.flush()) throw IoError("cannot write " + part.path);
  });
  std::unique_ptr<AtomicFile> out;
  agree_on(comm, [&] {
    if (!comm.is_root()) return;
    out = std::make_unique<AtomicFile>(csv);
    csv::write_row(out->stream(), {"user_id", "rank", "item_id", "item_name", "category", "score", "source"});
    for (int r = 0; r < comm.size(); ++r) {
      const std::string p = part_name(csv, r);
      std::ifstream is(p, std::ios::binary);
      if (!is) throw IoError("cannot read " + p);
      if (is.peek() != std::ifstream::traits_type::eof()) out->stream() << is.rdbuf();  // an empty part: nothing
    }
    if (!out->stream().flush()) throw IoError("cannot write " + partial_path(csv));
  });
  return out;  // agree_on synchronised: rank 0 has joined every part before any is removed
}

}  // namespace mfrec::recommend_detail
