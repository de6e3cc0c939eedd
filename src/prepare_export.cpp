// mfrec_prep --export-csv: the train and test pairs as CSV under their original ids, written by
// the ranks in turn into one file each (rank order is user order), through AtomicFile's partial
// names, and renamed only after the HDF5 file is committed.
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "mfrec/comm.hpp"
#include "mfrec/csv.hpp"
#include "mfrec/prepare_steps.hpp"

namespace mfrec::prepare {
namespace {

namespace fs = std::filesystem;

constexpr const char* kNames[] = {"train.csv", "test.csv"};
constexpr std::size_t kFlushBytes = 1 << 20;

// This rank's rows of `m` as CSV lines appended to `out`; "" or the error.
std::string write_rows(std::ostream& out, const std::string& file, const CsrBlock& m,
                       const std::vector<std::string>& user_ids, const std::vector<std::string>& item_ids) {
  std::string buf;
  for (Index i = 0; i < m.n_rows() && out; ++i) {
    for (std::int64_t k = m.indptr[i]; k < m.indptr[i + 1]; ++k) {
      csv::append_field(buf, user_ids[static_cast<std::size_t>(i)]);
      buf += ',';
      csv::append_field(buf, item_ids[static_cast<std::size_t>(m.indices[k])]);
      buf += ',';
      buf += format_float(m.data[k]);
      buf += '\n';
    }
    if (buf.size() >= kFlushBytes) {
      out << buf;
      buf.clear();
    }
  }
  out << buf;
  out.flush();
  return out ? std::string() : file + ": cannot write: " + std::strerror(errno);
}

}  // namespace

CsvExport::CsvExport(const std::string& dir, const CsrBlock& train, const CsrBlock& test,
                     const std::vector<std::string>& user_ids, const std::vector<std::string>& item_ids,
                     const Comm& comm)
    : comm_(comm), dir_(dir) {
  try {
    agree_on(comm, [&] {
      if (!comm.is_root()) return;
      std::error_code ec;
      if (!fs::is_directory(dir, ec)) {
        fs::create_directories(dir, ec);
        if (ec) throw IoError(dir + ": cannot create directory: " + ec.message());
        created_dir_ = true;
      }
      for (const char* name : kNames) files_.push_back(std::make_unique<AtomicFile>((fs::path(dir) / name).string()));
    });
    const CsrBlock* blocks[] = {&train, &test};
    for (std::size_t f = 0; f < 2; ++f) {
      const std::string part = partial_path((fs::path(dir) / kNames[f]).string());
      std::string err;
      for (int r = 0; r < comm.size(); ++r) {
        if (r == comm.rank()) {
          if (comm.is_root()) {
            std::ostream& out = files_[f]->stream();
            csv::write_row(out, {"user_id", "item_id", "confidence"});
            err = write_rows(out, part, *blocks[f], user_ids, item_ids);
          } else {
            std::ofstream out(part, std::ios::binary | std::ios::app);
            err = out ? write_rows(out, part, *blocks[f], user_ids, item_ids)
                      : part + ": cannot write: " + std::strerror(errno);
          }
        }
        comm.barrier();  // the next rank appends after this one's rows
      }
      check_agreed(comm, err);
    }
  } catch (const AgreedError&) {
    discard();
    throw;
  }
}

CsvExport::~CsvExport() {
  if (!committed_) discard();
}

void CsvExport::discard() {
  files_.clear();  // AtomicFile removes what was not committed
  if (created_dir_) {
    std::error_code ec;
    fs::remove(dir_, ec);  // only when empty
  }
}

void CsvExport::commit() {
  agree_on(comm_, [&] {
    if (!comm_.is_root()) return;
    std::size_t done = 0;
    try {
      for (; done < files_.size(); ++done) files_[done]->commit();
    } catch (const Error&) {
      for (std::size_t k = 0; k < done; ++k) std::remove(files_[k]->path().c_str());  // all or nothing
      throw;
    }
  });
  committed_ = true;
}

}  // namespace mfrec::prepare
