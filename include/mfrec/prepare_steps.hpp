// The steps of prepare::run, each in its own file: loading the input (prepare_load.cpp),
// writing the prepared HDF5 file (prepare_write.cpp) and the CSV export (prepare_export.cpp).
// Every function here is collective over the Comm and reports bad input or a failed write as
// the same AgreedError on every rank.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "mfrec/dataset.hpp"
#include "mfrec/durable.hpp"
#include "mfrec/h5.hpp"
#include "mfrec/prepare.hpp"

namespace mfrec::prepare {

// What a rank holds after loading: the records of its users, its slice of the user ids, and
// the whole item table.
struct Loaded {
  InputFormat format = InputFormat::kAuto;
  Index n_users = 0, n_items = 0, n_events = 0;
  Bounds users;                       // partition_even(n_users, ranks)
  std::vector<std::string> user_ids;  // this rank's users
  dataset::ItemTable items;           // every rank; only ids for imported data
  bool items_full = false;            // the table came from a data set or a catalog (all columns)
  std::vector<std::string> user_columns;              // from --users: /users/<column>
  std::vector<std::vector<std::string>> user_values;  // [column][this rank's users]
  Index n_dropped = 0;                // records below --min-value
  Triplets records;                   // this rank's (user, item, weight[, time]) records
};

// The input's format: opt.format, or what rank 0 sniffs from the file.
InputFormat input_format(const Options& opt, const Comm& comm);
// An mfrec data set read in slices by every rank, validated and routed batch by batch.
Loaded load_hdf5(const Options& opt, const Comm& comm, PhaseTimer& timer);
// A CSV parsed on rank 0, its ids scattered and its records routed.
Loaded load_csv(const Options& opt, InputFormat format, const Comm& comm, PhaseTimer& timer);
// --item-order category: renumbers the items by (category, style, input order), the table and
// the records' item indices alike. ConfigError when the items have no categories.
void order_items_by_category(Loaded& L, const std::string& input);
// --user-order category: renumbers the users by (their main category's first item in category
// order, input order), moving their records, ids and catalog columns to the ranks that own the
// new numbers; the same order for any number of ranks. ConfigError when the items have no
// categories. Collective.
void order_users_by_category(Loaded& L, const std::string& input, const Comm& comm);

// The prepared file, written but not yet committed (the caller commits it, or drops it).
struct Matrices {
  const CsrBlock& train;
  const CsrBlock& by_item;
  const CsrBlock& test;
  Index nnz_train, nnz_test;
};
void write_prepared(h5::File& out, const Options& opt, const Loaded& L, const Matrices& m, const Comm& comm);

// DIR/train.csv and DIR/test.csv (user_id,item_id,confidence with the original ids), written by
// the ranks in turn (rank order = user order) under their .partial names; commit() renames
// them. Destroyed uncommitted, the partial files are removed (and DIR, when this created it and
// it is empty).
class CsvExport {
 public:
  // Collective: creates DIR when missing and writes both partial files.
  CsvExport(const std::string& dir, const CsrBlock& train, const CsrBlock& test,
            const std::vector<std::string>& user_ids, const std::vector<std::string>& item_ids, const Comm& comm);
  CsvExport(const CsvExport&) = delete;
  CsvExport& operator=(const CsvExport&) = delete;
  ~CsvExport();
  void commit();  // collective; all or nothing

 private:
  void discard();  // rank 0's partial files, and DIR when created here and empty

  const Comm& comm_;
  std::string dir_;
  bool created_dir_ = false, committed_ = false;
  std::vector<std::unique_ptr<AtomicFile>> files_;  // rank 0's
};

}  // namespace mfrec::prepare
