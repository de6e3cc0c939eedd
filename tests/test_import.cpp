// Import of real data files (no MPI): delimiter detection, headerless layouts (--columns),
// comments, --min-value, timestamps, item and user catalogs, and the time split's pure pieces.
#include <gtest/gtest.h>

#include <sstream>

#include "mfrec/csv.hpp"
#include "mfrec/prepare.hpp"
#include "mfrec/prepare_catalog.hpp"

using namespace mfrec;
using namespace mfrec::prepare;

namespace {

using Fields = std::vector<std::string>;

CsvData parse(const std::string& text, const CsvImport& how = {}) {
  std::istringstream in(text);
  return parse_csv(in, "in.csv", how);
}

template <class E = InputError>
std::string error_of(const std::string& text, const CsvImport& how = {}) {
  try {
    parse(text, how);
  } catch (const E& e) {
    return e.what();
  }
  return "";
}

Catalog catalog(const std::string& text, CatalogKind kind, const Fields& ids, const CsvLayout& layout = {}) {
  std::istringstream in(text);
  return parse_catalog(in, "cat.csv", layout, kind, ids);
}

std::string catalog_error(const std::string& text, CatalogKind kind, const CsvLayout& layout = {}) {
  try {
    catalog(text, kind, {"1", "2"}, layout);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(ImportDelimiter, DetectedFromTheFirstLines) {
  using csv::detect_delimiter;
  EXPECT_EQ(detect_delimiter(Fields{"a,b,c", "d,e,f"}), ',');
  EXPECT_EQ(detect_delimiter(Fields{"1\t2\t5\t881250949"}), '\t');
  EXPECT_EQ(detect_delimiter(Fields{"a;b;c"}), ';');
  // A title with a comma on one line does not make a pipe-separated file comma-separated.
  EXPECT_EQ(detect_delimiter(Fields{"1|Toy Story (1995)|x", "11|American President, The (1995)|y"}), '|');
  EXPECT_EQ(detect_delimiter(Fields{"196  242   3 881250949", "186 302 3 891717742"}), csv::kBlanks);
  EXPECT_EQ(detect_delimiter(Fields{"abc"}), ',');
  // MovieLens-1M: ratings.dat, and movies.dat whose genres have pipes.
  EXPECT_EQ(detect_delimiter(Fields{"1::1193::5::978300760"}), csv::kDoubleColon);
  EXPECT_EQ(detect_delimiter(Fields{"1::Toy Story (1995)::Animation|Comedy", "5::Heat (1995)::Action"}), csv::kDoubleColon);
  // Ids with semicolons in a comma-separated file stay comma-separated (as the first-line rule said).
  EXPECT_EQ(detect_delimiter(Fields{"u1,a;b;c,3", "u2,d,4"}), ',');
}

TEST(ImportDelimiter, NamesAndBlanks) {
  char d = 0;
  EXPECT_TRUE(csv::delimiter_from_name("tab", d));
  EXPECT_EQ(d, '\t');
  EXPECT_TRUE(csv::delimiter_from_name("|", d));
  EXPECT_EQ(d, '|');
  EXPECT_TRUE(csv::delimiter_from_name("whitespace", d));
  EXPECT_EQ(d, csv::kBlanks);
  EXPECT_TRUE(csv::delimiter_from_name("::", d));
  EXPECT_EQ(d, csv::kDoubleColon);
  EXPECT_FALSE(csv::delimiter_from_name(":::", d));
  EXPECT_EQ(csv::split_line("1::Toy Story (1995)::Animation|Comedy", csv::kDoubleColon, "f", 1),
            (Fields{"1", "Toy Story (1995)", "Animation|Comedy"}));
  EXPECT_EQ(csv::split_line("a:b::c", csv::kDoubleColon, "f", 1), (Fields{"a:b", "c"}));
  EXPECT_FALSE(csv::delimiter_from_name("\"", d));
  EXPECT_EQ(csv::split_line("  196  242\t3 881250949  ", csv::kBlanks, "f", 1), (Fields{"196", "242", "3", "881250949"}));
  EXPECT_EQ(csv::split_line("\"a b\" c", csv::kBlanks, "f", 1), (Fields{"a b", "c"}));
  EXPECT_THROW(csv::split_line("\"a\"b c", csv::kBlanks, "f", 1), InputError);
}

TEST(ImportCsv, MovieLensUDataAsItIs) {
  // u.data: tab separated user item rating timestamp, no header.
  const CsvData d = parse("196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t377\t1\t878887116\n");
  EXPECT_EQ(d.format, InputFormat::kCsvTriplets);
  EXPECT_EQ(d.delimiter, '\t');
  EXPECT_FALSE(d.header);
  EXPECT_EQ(d.user_ids, (Fields{"196", "186"}));
  EXPECT_EQ(d.value, (std::vector<float>{3, 3, 1}));
  EXPECT_TRUE(d.time.empty());  // read only for --split time
  CsvImport how;
  how.need_time = true;
  EXPECT_EQ(parse("196 242 3 881250949\n186 302 3 891717742\n", how).time,
            (std::vector<std::int64_t>{881250949, 891717742}));
  // ml-latest's ratings.csv header names the columns.
  const CsvData h = parse("userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n", how);
  EXPECT_TRUE(h.header);
  EXPECT_EQ(h.item_ids, (Fields{"31"}));
  EXPECT_EQ(h.time, (std::vector<std::int64_t>{1260759144}));
}

TEST(ImportCsv, MovieLens1mDatFiles) {
  CsvImport how;
  how.need_time = true;
  const CsvData d = parse("1::1193::5::978300760\n1::661::3::978302109\n", how);
  EXPECT_EQ(d.delimiter, csv::kDoubleColon);
  EXPECT_EQ(d.item_ids, (Fields{"1193", "661"}));
  EXPECT_EQ(d.time, (std::vector<std::int64_t>{978300760, 978302109}));
  CsvLayout layout;
  layout.columns = {"id", "name", "category"};
  const Catalog c = catalog("1::Toy Story (1995)::Animation|Comedy\n2::Heat (1995)::Action\n", CatalogKind::kItems, {"2"}, layout);
  EXPECT_EQ(item_table({"2"}, c).category, (Fields{"Action"}));
}

TEST(ImportCsv, CommentLines) {
  const CsvData d = parse("# exported 2024-01-01\nu1,i1,View\n  # another\nu2,i1,View\n");
  EXPECT_EQ(d.size(), 2u);
  EXPECT_EQ(d.comments, 2);
  EXPECT_EQ(d.lines, 4);
  CsvImport how;
  how.layout.comment = "%";
  EXPECT_EQ(parse("% note\nu1,i1,View\n", how).size(), 1u);
  how.layout.comment = "";
  EXPECT_EQ(error_of("u1,i1,View\n#x,i1,Click\n", how), "in.csv:2: unknown event type 'Click' (expected View, AddToCart, ViewCart, StartCheckout or Purchase)");
}

TEST(ImportCsv, ColumnsNameAHeaderlessFile) {
  CsvImport how;
  how.layout.columns = {"item", "-", "user", "rating"};
  const CsvData d = parse("i1,x,u1,4\ni2,y,u1,5\n", how);
  EXPECT_FALSE(d.header);
  EXPECT_EQ(d.format, InputFormat::kCsvTriplets);
  EXPECT_EQ(d.user_ids, (Fields{"u1"}));
  EXPECT_EQ(d.item_ids, (Fields{"i1", "i2"}));
  EXPECT_EQ(d.value, (std::vector<float>{4, 5}));
  // The first line is data, even when it looks like a header.
  EXPECT_EQ(error_of("user,x,item,rating\n", how), "in.csv:1: confidence 'rating' is not a number");
  EXPECT_EQ(error_of("i1,x,u1\n", how), "in.csv:1: found 3 fields, --columns names 4");
  how.layout.columns = {"user", "item", "event_type", "timestamp"};
  EXPECT_EQ(parse("u,i,Purchase,7\n", how).format, InputFormat::kCsvEvents);
  for (const Fields& bad : {Fields{"user", "item"}, Fields{"user", "rating", "x"}, Fields{"user", "user", "item", "rating"},
                            Fields{"user", "item", "rating", "event_type"}}) {
    EXPECT_THROW(map_columns(bad), ConfigError) << bad.size();
  }
  try {
    map_columns({"user", "item", "stars"});
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("option --columns: unknown column 'stars'"), std::string::npos);
  }
}

TEST(ImportCsv, MinValueDropsRowsBeforeSumming) {
  CsvImport how;
  how.min_value = 4;
  // weak (u2 only rated 2) leaves u2 out altogether; (u1, i1) sums only its strong rating.
  const CsvData d = parse("u1,i1,5\nu2,i2,2\nu1,i1,3\nu1,i3,4\n", how);
  EXPECT_EQ(d.user_ids, (Fields{"u1"}));
  EXPECT_EQ(d.item_ids, (Fields{"i1", "i3"}));
  EXPECT_EQ(d.value, (std::vector<float>{5, 4}));
  EXPECT_EQ(d.rows, 4);
  EXPECT_EQ(d.dropped, 2);
  EXPECT_EQ(error_of("u1,i1,1\nu2,i1,2\n", how), "in.csv: no events left: all 2 rows are below --min-value 4");
  // For events, the value is the event's weight.
  how.min_value = 3;
  EXPECT_EQ(parse("u,i,View\nu,i,Purchase\n", how).value, (std::vector<float>{5}));
}

TEST(ImportCsv, TimestampsForTheTimeSplit) {
  std::int64_t t = 0;
  EXPECT_TRUE(parse_timestamp("881250949", t));
  EXPECT_EQ(t, 881250949);
  EXPECT_TRUE(parse_timestamp("1970-01-02", t));
  EXPECT_EQ(t, 86400);
  EXPECT_TRUE(parse_timestamp("2000-03-01T01:02:03Z", t));
  EXPECT_EQ(t, 951872523);
  EXPECT_TRUE(parse_timestamp("2000-03-01 01:02", t));
  EXPECT_EQ(t, 951872520);
  for (const char* bad : {"", "12.5", "yesterday", "2000-13-01", "2000-01-01 25:00", "2000-01-01x"})
    EXPECT_FALSE(parse_timestamp(bad, t)) << bad;
  CsvImport how;
  how.need_time = true;
  EXPECT_EQ(error_of("u,i,View,5\nu,i,View\n", how),
            "in.csv:2: no timestamp (a fourth field), which --split time needs on every line");
  EXPECT_EQ(error_of("u,i,4,soon\n", how),
            "in.csv:1: timestamp 'soon' is neither an integer nor a date (YYYY-MM-DD[ HH:MM:SS])");
  EXPECT_EQ(error_of("user_id,item_id,rating\nu,i,4\n", how),
            "in.csv:1: the header names no timestamp column, which --split time needs");
  how.layout.columns = {"user", "item", "rating"};
  EXPECT_NE(error_of<ConfigError>("u,i,4\n", how).find("option --columns: names no timestamp column"), std::string::npos);
}

TEST(ImportCatalog, ItemsWithAHeader) {
  // ml-latest's movies.csv: movieId,title,genres, quoted titles.
  const Catalog c = catalog("movieId,title,genres,year\n1,Toy Story (1995),Animation|Children,1995\n"
                            "9,\"American President, The (1995)\",Comedy,1995\n2,Jumanji (1995),Adventure,1995\n",
                            CatalogKind::kItems, {"2", "1", "5"});
  EXPECT_TRUE(c.header);
  EXPECT_EQ(c.columns, (Fields{"name", "category"}));
  EXPECT_EQ(c.ignored, (Fields{"year"}));
  EXPECT_EQ(c.rows, 3);
  EXPECT_EQ(c.matched, 2);  // movie 9 has no events; movie 5 has no row
  const dataset::ItemTable t = item_table({"2", "1", "5"}, c);
  EXPECT_EQ(t.id, (Fields{"2", "1", "5"}));
  EXPECT_EQ(t.name, (Fields{"Jumanji (1995)", "Toy Story (1995)", ""}));
  EXPECT_EQ(t.category, (Fields{"Adventure", "Animation|Children", ""}));
  EXPECT_EQ(t.style, (Fields{"", "", ""}));
  EXPECT_EQ(t.price, (std::vector<float>{0, 0, 0}));
  const Catalog p = catalog("sku;price;name\nA;9.5;Lamp\n", CatalogKind::kItems, {"A"});
  EXPECT_EQ(item_table({"A"}, p).price, (std::vector<float>{9.5f}));
}

TEST(ImportCatalog, MovieLensUItemWithColumnsAndLatin1) {
  // u.item: pipe separated, no header, latin-1, 24 fields of which the first two are used.
  CsvLayout layout;
  layout.columns = {"id", "name"};
  layout.encoding = Encoding::kLatin1;
  const Catalog c = catalog("1|Toy Story (1995)|01-Jan-1995||http://x|0|0\n2|Caf\xe9 (1995)|01-Jan-1995||http://y|0|1\n",
                            CatalogKind::kItems, {"1", "2"}, layout);
  EXPECT_EQ(c.delimiter, '|');
  EXPECT_EQ(item_table({"1", "2"}, c).name, (Fields{"Toy Story (1995)", "Caf\xc3\xa9 (1995)"}));
  layout.encoding = Encoding::kUtf8;
  EXPECT_NE(catalog_error("1|Caf\xe9|x\n", CatalogKind::kItems, layout).find("cat.csv:1: field 2 is not valid UTF-8"),
            std::string::npos);
}

TEST(ImportCatalog, ErrorsNameTheLine) {
  EXPECT_EQ(catalog_error("1|Toy Story|x\n", CatalogKind::kItems).substr(0, 45),
            "cat.csv:1: the first line names no id column ");
  EXPECT_EQ(catalog_error("item_id,name\n1,a\n2,b\n1,c\n", CatalogKind::kItems),
            "cat.csv:4: item id '1' appears again (first on line 2)");
  EXPECT_EQ(catalog_error("item_id,name\n1,a,b\n", CatalogKind::kItems), "cat.csv:2: found 3 fields, the header has 2");
  EXPECT_EQ(catalog_error("item_id,price\n1,cheap\n", CatalogKind::kItems),
            "cat.csv:2: price 'cheap' is not a finite number >= 0");
  EXPECT_EQ(catalog_error("item_id,name\n,a\n", CatalogKind::kItems), "cat.csv:2: empty item id");
  EXPECT_EQ(catalog_error("item_id,name\n", CatalogKind::kItems), "cat.csv: no items (no data lines)");
  CsvLayout layout;
  layout.columns = {"id", "name", "category"};
  EXPECT_EQ(catalog_error("1|a\n", CatalogKind::kItems, layout), "cat.csv:1: found 2 fields, --items-columns names 3");
  EXPECT_THROW(check_catalog_columns(CatalogKind::kItems, {"id", "colour"}), ConfigError);
  EXPECT_THROW(check_catalog_columns(CatalogKind::kItems, {"name", "title"}), ConfigError);
  EXPECT_NO_THROW(check_catalog_columns(CatalogKind::kUsers, {"id", "age", "-", "zip code"}));
}

TEST(ImportCatalog, UsersKeepTheirColumns) {
  CsvLayout layout;
  layout.columns = {"id", "age", "gender", "occupation", "zip code"};
  const Catalog c = catalog("1|24|M|technician|85711\n3|23|M|writer|32067\n", CatalogKind::kUsers, {"3", "1", "2"}, layout);
  EXPECT_EQ(c.columns, (Fields{"age", "gender", "occupation", "zip_code"}));
  EXPECT_EQ(c.values[2], (Fields{"writer", "technician", ""}));
}

TEST(TimeSplit, HoldoutCount) {
  EXPECT_EQ(holdout_count(1, 2, 0), 0);  // a user keeps a training pair
  EXPECT_EQ(holdout_count(2, 2, 0), 1);
  EXPECT_EQ(holdout_count(5, 2, 0), 2);
  EXPECT_EQ(holdout_count(5, 0, 0.2), 1);
  EXPECT_EQ(holdout_count(4, 0, 0.2), 1);  // 0.8 rounds to 1
  EXPECT_EQ(holdout_count(2, 0, 0.2), 0);  // 0.4 rounds to 0
  EXPECT_EQ(holdout_count(10, 0, 0.25), 3);  // 2.5 rounds up
}

TEST(TimeSplit, LatestPairsByFirstEventGoToTest) {
  // User 0: item 3 first seen at 10 (again at 50), item 1 at 20, item 2 at 30 (and a zero-weight
  // event at 5 that does not count), item 0 at 30 too (tie: the higher item index is later).
  Triplets t;
  auto add = [&](std::int64_t r, std::int32_t c, float v, std::int64_t time) {
    t.row.push_back(r);
    t.col.push_back(c);
    t.value.push_back(v);
    t.time.push_back(time);
  };
  add(0, 3, 1, 50);
  add(0, 1, 1, 20);
  add(0, 2, 0, 5);
  add(0, 2, 2, 30);
  add(0, 3, 1, 10);
  add(0, 0, 1, 30);
  add(1, 0, 4, 100);  // user 1: a single pair stays in train
  const PairTimes times = first_times(t);
  EXPECT_EQ(times.col, (std::vector<std::int32_t>{0, 1, 2, 3, 0}));
  EXPECT_EQ(times.time, (std::vector<std::int64_t>{30, 20, 30, 10, 100}));
  CsrBlock all = to_csr(std::move(t), 0, 2, 2, 4), train, test;
  split_by_time(all, times, 2, 0, train, test);
  EXPECT_EQ(test.indptr, (std::vector<std::int64_t>{0, 2, 2}));
  EXPECT_EQ(test.indices, (std::vector<std::int32_t>{0, 2}));
  EXPECT_EQ(test.data, (std::vector<float>{1, 2}));
  EXPECT_EQ(train.indptr, (std::vector<std::int64_t>{0, 2, 3}));
  EXPECT_EQ(train.indices, (std::vector<std::int32_t>{1, 3, 0}));
  EXPECT_EQ(train.data, (std::vector<float>{1, 2, 4}));
  split_by_time(all, times, 0, 0.5, train, test);  // round(0.5 * 4) = 2: the same
  EXPECT_EQ(test.indices, (std::vector<std::int32_t>{0, 2}));
}
