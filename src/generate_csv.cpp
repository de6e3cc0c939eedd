// mfrec_gen --csv: the committed data set as users.csv, items.csv and events.csv, written by
// rank 0 through AtomicFile (csv.hpp's quoting) and renamed only when all three are complete.
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "mfrec/comm.hpp"
#include "mfrec/csv.hpp"
#include "mfrec/durable.hpp"
#include "mfrec/error.hpp"
#include "mfrec/generate.hpp"
#include "mfrec/h5.hpp"

namespace mfrec::gen {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t kFlushBytes = 1 << 20;

// Lines are built in a buffer and handed to the file 1 MiB at a time (millions of rows).
void drain(std::string& buf, AtomicFile& out, bool all = false) {
  if (!all && buf.size() < kFlushBytes) return;
  out.stream() << buf;
  buf.clear();
  if (!out.stream()) throw IoError("cannot write " + partial_path(out.path()));
}

void append_int(std::string& line, std::int64_t v) {
  char tmp[24];
  const auto r = std::to_chars(tmp, tmp + sizeof tmp, v);
  line.append(tmp, r.ptr);
}

void append_price(std::string& line, float v) {
  char tmp[32];
  const int n = std::snprintf(tmp, sizeof tmp, "%.2f", static_cast<double>(v));
  line.append(tmp, static_cast<std::size_t>(n));
}

void write_items(const dataset::ItemTable& items, AtomicFile& out) {
  csv::write_row(out.stream(), {"id", "name", "category", "style", "description", "price", "gender_affinity"});
  std::string buf;
  for (std::size_t i = 0; i < items.size(); ++i) {
    for (const std::string* s : {&items.id[i], &items.name[i], &items.category[i], &items.style[i], &items.description[i]}) {
      csv::append_field(buf, *s);
      buf += ',';
    }
    append_price(buf, items.price[i]);
    buf += ',';
    csv::append_field(buf, items.gender_affinity[i]);
    buf += '\n';
    drain(buf, out);
  }
  drain(buf, out, true);
}

void write_users(const h5::File& f, AtomicFile& out) {
  csv::write_row(out.stream(), {"id", "gender", "age", "persona", "discount_persona", "channel"});
  const Index n = f.shape("/users/id")[0], step = Index{1} << 16;
  std::vector<std::int16_t> age;
  std::string buf;
  for (Index lo = 0; lo < n; lo += step) {
    const Index m = std::min(step, n - lo);
    const auto id = f.read_string_rows("/users/id", lo, m), gender = f.read_string_rows("/users/gender", lo, m),
               persona = f.read_string_rows("/users/persona", lo, m),
               discount = f.read_string_rows("/users/discount_persona", lo, m),
               channel = f.read_string_rows("/users/channel", lo, m);
    age.resize(m);
    f.read_rows("/users/age", lo, m, age.data());
    for (Index i = 0; i < m; ++i) {
      csv::append_field(buf, id[i]);
      buf += ',';
      csv::append_field(buf, gender[i]);
      buf += ',';
      append_int(buf, age[i]);
      for (const std::string* s : {&persona[i], &discount[i], &channel[i]}) {
        buf += ',';
        csv::append_field(buf, *s);
      }
      buf += '\n';
      drain(buf, out);
    }
  }
  drain(buf, out, true);
}

void write_events(const h5::File& f, const std::string& h5_path, const dataset::ItemTable& items, AtomicFile& out) {
  csv::write_row(out.stream(), {"user_id", "item_id", "event_type", "timestamp", "discount"});
  const Index n = f.shape("/events/user")[0], step = Index{1} << 20;
  std::vector<std::int64_t> user, ts;
  std::vector<std::int32_t> item;
  std::vector<std::uint8_t> type, disc;
  std::string buf;
  for (Index lo = 0; lo < n; lo += step) {
    const Index m = std::min(step, n - lo);
    user.resize(m);
    ts.resize(m);
    item.resize(m);
    type.resize(m);
    disc.resize(m);
    f.read_rows("/events/user", lo, m, user.data());
    f.read_rows("/events/item", lo, m, item.data());
    f.read_rows("/events/type", lo, m, type.data());
    f.read_rows("/events/timestamp", lo, m, ts.data());
    f.read_rows("/events/discount", lo, m, disc.data());
    for (Index i = 0; i < m; ++i) {
      if (item[i] < 0 || static_cast<std::size_t>(item[i]) >= items.size() || type[i] >= dataset::kNumEventTypes)
        throw InputError(h5_path + ": /events row " + std::to_string(lo + i) + " has a bad item or type");
      append_int(buf, user[i]);
      buf += ',';
      csv::append_field(buf, items.id[static_cast<std::size_t>(item[i])]);
      buf += ',';
      csv::append_field(buf, dataset::kEventTypes[type[i]]);
      buf += ',';
      append_int(buf, ts[i]);
      buf += ',';
      append_int(buf, disc[i]);
      buf += '\n';
      drain(buf, out);
    }
  }
  drain(buf, out, true);
}

// Rank 0's part: all three files complete, then all three renamed; on failure none is left
// (nor `dir`, when created here).
void write_csv_files(const std::string& h5_path, const std::string& dir) {
  std::error_code ec;
  bool created = false;
  if (!fs::is_directory(dir, ec)) {
    fs::create_directories(dir, ec);
    if (ec) throw IoError(dir + ": cannot create directory: " + ec.message());
    created = true;
  }
  std::vector<std::unique_ptr<AtomicFile>> files;
  std::size_t committed = 0;
  try {
    for (const char* name : kCsvFiles) files.push_back(std::make_unique<AtomicFile>((fs::path(dir) / name).string()));
    const h5::File f = h5::File::open(h5_path);
    const dataset::ItemTable items = dataset::read_items(f);
    write_items(items, *files[0]);
    write_users(f, *files[1]);
    write_events(f, h5_path, items, *files[2]);
    for (; committed < files.size(); ++committed) files[committed]->commit();
  } catch (const Error&) {
    for (std::size_t k = 0; k < committed; ++k) std::remove(files[k]->path().c_str());
    files.clear();  // removes the partial files
    if (created) fs::remove(dir, ec);  // only when empty
    throw;
  }
}

}  // namespace

std::vector<PathArg> csv_paths(const std::string& dir) {
  std::vector<PathArg> out;
  std::error_code ec;
  if (dir.empty() || !fs::is_directory(dir, ec)) return out;
  for (const char* name : kCsvFiles) out.push_back({"csv", (fs::path(dir) / name).string(), PathRole::OutputFile});
  return out;
}

void write_csv(const std::string& h5_path, const std::string& dir, const Comm& comm) {
  agree_on(comm, [&] {
    if (comm.is_root()) write_csv_files(h5_path, dir);
  });
}

}  // namespace mfrec::gen
