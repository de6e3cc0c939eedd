// CSV import units (no MPI): splitting, quoting, header and format detection, line-numbered errors,
// and the pure pieces of the preparation (split hash, aggregation into CSR).
#include <gtest/gtest.h>

#include <sstream>

#include "mfrec/csv.hpp"
#include "mfrec/prepare.hpp"

using namespace mfrec;
using namespace mfrec::prepare;

namespace {

const Weights kW = dataset::kDefaultWeights;

CsvData parse(const std::string& text, InputFormat f = InputFormat::kAuto, const Weights& w = kW) {
  std::istringstream in(text);
  return parse_csv(in, "in.csv", f, w);
}

// The message of the InputError that parsing `text` raises ("" when none).
std::string error_of(const std::string& text, InputFormat f = InputFormat::kAuto) {
  try {
    parse(text, f);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

using Fields = std::vector<std::string>;

}  // namespace

TEST(CsvSplit, PlainFieldsAreTrimmed) {
  EXPECT_EQ(csv::split_line("a,b,c", ',', "f", 1), (Fields{"a", "b", "c"}));
  EXPECT_EQ(csv::split_line("  a , b\t,c  ", ',', "f", 1), (Fields{"a", "b", "c"}));
  EXPECT_EQ(csv::split_line("a,,c,", ',', "f", 1), (Fields{"a", "", "c", ""}));
  EXPECT_EQ(csv::split_line("", ',', "f", 1), (Fields{""}));
}

TEST(CsvSplit, QuotedFields) {
  EXPECT_EQ(csv::split_line(R"("a,1","say ""hi""", c)", ',', "f", 1), (Fields{"a,1", "say \"hi\"", "c"}));
  EXPECT_EQ(csv::split_line(R"( " padded " ,x)", ',', "f", 1), (Fields{" padded ", "x"}));
  EXPECT_EQ(csv::split_line(R"("",x)", ',', "f", 1), (Fields{"", "x"}));
}

TEST(CsvSplit, BadQuotesNameFileAndLine) {
  try {
    csv::split_line(R"(a,"open,b)", ',', "data.csv", 17);
    FAIL() << "unterminated quote accepted";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()), "data.csv:17: unterminated quoted field 2");
  }
  try {
    csv::split_line(R"("a"b,c)", ',', "data.csv", 3);
    FAIL() << "text after a closing quote accepted";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()), "data.csv:3: text after the closing quote of field 1");
  }
}

TEST(CsvSplit, TabsAndSemicolons) {
  EXPECT_EQ(csv::detect_delimiter(std::vector<std::string>{"a,b\tc"}), ',');
  EXPECT_EQ(csv::detect_delimiter(std::vector<std::string>{"a\tb\tc"}), '\t');
  EXPECT_EQ(csv::detect_delimiter(std::vector<std::string>{"a;b;c"}), ';');
  EXPECT_EQ(csv::detect_delimiter(std::vector<std::string>{"abc"}), ',');
  // With a tab delimiter, an empty field between two tabs stays a field.
  EXPECT_EQ(csv::split_line("a\t\t c ", '\t', "f", 1), (Fields{"a", "", "c"}));
}

TEST(CsvQuote, RoundTripsThroughSplit) {
  for (std::string s : {"plain", "with,comma", "with \"quote\"", " lead", "trail ", ""}) {
    const std::string line = csv::quote(s) + "," + csv::quote("x");
    EXPECT_EQ(csv::split_line(line, ',', "f", 1), (Fields{s, "x"})) << line;
  }
  EXPECT_EQ(csv::quote("plain"), "plain");
  EXPECT_EQ(csv::quote("a,b"), "\"a,b\"");
}

TEST(CsvWrite, RowsUseTheOneQuotingRule) {
  std::ostringstream out;
  csv::write_row(out, {"plain", "a,b", "say \"hi\"", " pad", "line\nbreak", ""});
  EXPECT_EQ(out.str(), "plain,\"a,b\",\"say \"\"hi\"\"\",\" pad\",\"line\nbreak\",\n");
  std::string line = "x,";
  csv::append_field(line, "a,b");
  EXPECT_EQ(line, "x,\"a,b\"");
  EXPECT_EQ(csv::split_line("plain,\"a,b\",\" pad\"", ',', "f", 1), (std::vector<std::string>{"plain", "a,b", " pad"}));
}

TEST(CsvParse, EventsWithoutHeader) {
  CsvData d = parse("u1,i1,View\nu2,i1,purchase,1600000000\nu1,i2,AddToCart\n");
  EXPECT_EQ(d.format, InputFormat::kCsvEvents);
  EXPECT_FALSE(d.header);
  EXPECT_EQ(d.user_ids, (Fields{"u1", "u2"}));  // order of first appearance
  EXPECT_EQ(d.item_ids, (Fields{"i1", "i2"}));
  EXPECT_EQ(d.user, (std::vector<std::int64_t>{0, 1, 0}));
  EXPECT_EQ(d.item, (std::vector<std::int32_t>{0, 0, 1}));
  EXPECT_EQ(d.value, (std::vector<float>{1, 5, 2}));
  EXPECT_EQ(d.lines, 3);
}

TEST(CsvParse, WeightsApply) {
  Weights w = {0.5f, 0, 0, 0, 10};
  CsvData d = parse("a,x,View\na,x,Purchase\n", InputFormat::kCsvEvents, w);
  EXPECT_EQ(d.value, (std::vector<float>{0.5f, 10}));
}

TEST(CsvParse, HeaderDetection) {
  // Named columns, in any order, with extra columns.
  CsvData d = parse("timestamp,item_id,event_type,user_id\n5,i9,ViewCart,u7\n");
  EXPECT_TRUE(d.header);
  EXPECT_EQ(d.format, InputFormat::kCsvEvents);
  EXPECT_EQ(d.user_ids, (Fields{"u7"}));
  EXPECT_EQ(d.item_ids, (Fields{"i9"}));
  EXPECT_EQ(d.value, (std::vector<float>{3}));
  // A confidence column makes it triplets.
  d = parse("user,item,rating\nu,i,2.5\n");
  EXPECT_TRUE(d.header);
  EXPECT_EQ(d.format, InputFormat::kCsvTriplets);
  EXPECT_EQ(d.value, (std::vector<float>{2.5f}));
  // Unknown names: a header when its third field is neither a number nor an event type.
  d = parse("who,what,how much\nu,i,4\n");
  EXPECT_TRUE(d.header);
  EXPECT_EQ(d.format, InputFormat::kCsvTriplets);
  // No header.
  d = parse("u,i,4\n");
  EXPECT_FALSE(d.header);
  EXPECT_EQ(d.format, InputFormat::kCsvTriplets);
}

TEST(CsvParse, CrlfBomBlankLinesAndWhitespace) {
  CsvData d = parse("\xEF\xBB\xBFuser_id,item_id,confidence\r\n\r\n  u1 , i1 , 1.5 \r\n\n\"u 2\",i1,2\r\n");
  EXPECT_TRUE(d.header);
  EXPECT_EQ(d.user_ids, (Fields{"u1", "u 2"}));
  EXPECT_EQ(d.value, (std::vector<float>{1.5f, 2}));
  EXPECT_EQ(d.lines, 5);
}

TEST(CsvParse, TabSeparated) {
  CsvData d = parse("u1\ti1\tView\nu1\ti2\tPurchase\n");
  EXPECT_EQ(d.delimiter, '\t');
  EXPECT_EQ(d.value, (std::vector<float>{1, 5}));
}

TEST(CsvParse, ErrorsNameTheLine) {
  EXPECT_EQ(error_of("u1,i1,View\nu2,i2\n"),
            "in.csv:2: expected 3 fields (user_id,item_id,event_type[,timestamp]), found 2");
  EXPECT_EQ(error_of("u1,i1,View\nu2,i2,Click\n"),
            "in.csv:2: unknown event type 'Click' (expected View, AddToCart, ViewCart, StartCheckout or Purchase)");
  EXPECT_EQ(error_of("u,i,1\nu,i,-2\n"), "in.csv:2: confidence -2 is negative");
  EXPECT_EQ(error_of("user_id,item_id,confidence\n\nu,i,nan\n"), "in.csv:3: confidence 'nan' is NaN");
  EXPECT_EQ(error_of("u,i,1\nu,i,abc\n", InputFormat::kCsvTriplets), "in.csv:2: confidence 'abc' is not a number");
  EXPECT_EQ(error_of("u,i,1\nu,i,1e999\n"), "in.csv:2: confidence '1e999' is not a finite float");
  // A fourth field is the timestamp (MovieLens's user item rating timestamp); a fifth is too many.
  EXPECT_EQ(error_of("u,i,1\nu,i,1,7\n"), "");
  EXPECT_EQ(error_of("u,i,1\nu,i,1,7,8\n"),
            "in.csv:2: expected at most 4 fields (user_id,item_id,confidence[,timestamp]), found 5");
  EXPECT_EQ(error_of("u,i,View,1,2\n"),
            "in.csv:1: expected at most 4 fields (user_id,item_id,event_type[,timestamp]), found 5");
  EXPECT_EQ(error_of("user_id,item_id,event_type\nu,i,View,9\n"), "in.csv:2: found 4 fields, the header has 3");
  EXPECT_EQ(error_of("u,,View\n"), "in.csv:1: empty item id");
  EXPECT_EQ(error_of(",i,View\n"), "in.csv:1: empty user id");
  EXPECT_EQ(error_of("u,i,View\nu,\"i,View\n"), "in.csv:2: unterminated quoted field 2");
  EXPECT_EQ(error_of("user_id,item_id\nu,i\n"), "in.csv:1: the header names no event_type or confidence column");
  EXPECT_EQ(error_of("user_id,item_id,event_type\nu,i,2\n", InputFormat::kCsvTriplets),
            "in.csv:1: the header names no confidence column");
  // Auto-detection needs an event type or a number.
  EXPECT_EQ(error_of("u,i,View\n").size(), 0u);
  EXPECT_NE(error_of("user_id,item_id,event_type\nu,i,Click\n").find("in.csv:2: unknown event type 'Click'"),
            std::string::npos);
  EXPECT_NE(error_of("a,b,c\nu,i,Click\n").find("in.csv:2: 'Click' is neither an event type"), std::string::npos);
}

// Ids are stored as UTF-8: another encoding is refused with the file, the line and the byte
// (the error text itself stays valid UTF-8), or converted when the file is declared Latin-1.
TEST(CsvParse, IdsMustBeUtf8OrDeclaredLatin1) {
  const std::string latin1 = "user_id,item_id,event_type\nu1,i1,View\nu2,caf\xe9,View\n";
  const std::string err = error_of(latin1);
  EXPECT_EQ(err.substr(0, 60), std::string("in.csv:3: item id is not valid UTF-8 (byte 0xE9 at byte 4); ").substr(0, 60));
  EXPECT_NE(err.find("--encoding latin1"), std::string::npos);
  EXPECT_EQ(err.find('\xe9'), std::string::npos);
  EXPECT_NE(error_of("j\xf6rg,i,1\n").find("in.csv:1: user id is not valid UTF-8 (byte 0xF6 at byte 2)"),
            std::string::npos);
  std::istringstream in(latin1);
  const CsvData d = parse_csv(in, "in.csv", InputFormat::kAuto, kW, Encoding::kLatin1);
  EXPECT_EQ(d.item_ids, (std::vector<std::string>{"i1", "caf\xc3\xa9"}));
  // UTF-8 passes as it is.
  EXPECT_EQ(parse("u,caf\xc3\xa9,View\n").item_ids, (std::vector<std::string>{"caf\xc3\xa9"}));
}

TEST(CsvParse, EmptyInput) {
  EXPECT_EQ(error_of(""), "in.csv: no events (the file is empty)");
  EXPECT_EQ(error_of("\n  \n"), "in.csv: no events (no data lines)");
  EXPECT_EQ(error_of("user_id,item_id,event_type\n"), "in.csv: no events (no data lines)");
}

TEST(CsvParse, ExplicitFormatWins) {
  // "4" is a confidence for triplets but an unknown event type for events.
  EXPECT_EQ(parse("u,i,4\n", InputFormat::kCsvTriplets).value, (std::vector<float>{4}));
  EXPECT_NE(error_of("u,i,4\n", InputFormat::kCsvEvents).find("in.csv:1: unknown event type '4'"), std::string::npos);
}

TEST(CsvParse, MissingFileIsAnInputError) {
  try {
    read_csv("/nonexistent/dir/x.csv", InputFormat::kAuto, kW);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/x.csv: cannot open"), std::string::npos);
  }
}

TEST(Prepare, OptionsAndNames) {
  EXPECT_EQ(default_output("data/retail.h5"), "data/retail_prepared.h5");
  EXPECT_EQ(default_output("events.csv"), "events_prepared.h5");
  EXPECT_EQ(parse_format("csv-triplets"), InputFormat::kCsvTriplets);
  EXPECT_THROW(parse_format("xml"), ConfigError);
  EXPECT_EQ(weights_string({1, 2, 3, 4, 5}), "1,2,3,4,5");
  EXPECT_EQ(weights_string({0.1f, 2.5f, 3, 4, 5}), "0.1,2.5,3,4,5");
  Options o;
  o.input = "x.h5";
  EXPECT_NO_THROW(validate(o));
  for (double f : {0.0, 1.0, -0.1, 1.5}) {
    Options b = o;
    b.test_fraction = f;
    EXPECT_THROW(validate(b), ConfigError) << f;
  }
  Options neg = o;
  neg.weights[2] = -1;
  EXPECT_THROW(validate(neg), ConfigError);
  Options zero = o;
  zero.weights = {0, 0, 0, 0, 0};
  EXPECT_THROW(validate(zero), ConfigError);
  Options same = o;
  same.output = "x.h5";
  EXPECT_THROW(validate(same), ConfigError);
}

TEST(Prepare, SplitHashIsUniformAndSeeded) {
  int below = 0, differ = 0;
  const int n = 200000;
  for (int k = 0; k < n; ++k) {
    const double h = split_hash(42, k / 100, k % 100);
    ASSERT_GE(h, 0.0);
    ASSERT_LT(h, 1.0);
    below += h < 0.2;
    differ += is_test(42, k / 100, k % 100, 0.2) != is_test(43, k / 100, k % 100, 0.2);
  }
  EXPECT_NEAR(double(below) / n, 0.2, 0.005);
  EXPECT_GT(differ, n / 5);  // another seed, another split
}

TEST(Prepare, ToCsrSumsDuplicatesAndDropsZeros) {
  Triplets t;
  auto add = [&](std::int64_t r, std::int32_t c, float v) {
    t.row.push_back(r);
    t.col.push_back(c);
    t.value.push_back(v);
  };
  add(11, 3, 1);
  add(10, 2, 5);
  add(11, 3, 2);
  add(11, 0, 0);  // a zero-sum pair is no non-zero
  add(10, 1, 0.25f);
  add(11, 3, 0.5f);
  CsrBlock m = to_csr(std::move(t), 10, 13, 20, 4);
  EXPECT_EQ(m.row_begin, 10);
  EXPECT_EQ(m.n_rows(), 3);
  EXPECT_EQ(m.indptr, (std::vector<std::int64_t>{0, 2, 3, 3}));
  EXPECT_EQ(m.indices, (std::vector<std::int32_t>{1, 2, 3}));
  EXPECT_EQ(m.data, (std::vector<float>{0.25f, 5, 3.5f}));
}

TEST(Prepare, SplitKeepsEveryPairOnce) {
  Triplets t;
  for (int r = 0; r < 50; ++r)
    for (int c = 0; c < 40; c += 1 + r % 3) {
      t.row.push_back(r);
      t.col.push_back(c);
      t.value.push_back(float(r + c + 1));
    }
  const std::size_t n = t.size();
  CsrBlock all = to_csr(std::move(t), 0, 50, 50, 40), train, test;
  split(all, 7, 0.3, train, test);
  EXPECT_EQ(std::size_t(train.nnz() + test.nnz()), n);
  for (Index r = 0; r < 50; ++r)
    for (const CsrBlock* m : {&train, &test})
      for (std::int64_t k = m->indptr[r]; k < m->indptr[r + 1]; ++k) {
        EXPECT_EQ(is_test(7, r, m->indices[k], 0.3), m == &test);
        EXPECT_EQ(m->data[k], float(r + m->indices[k] + 1));
      }
}
