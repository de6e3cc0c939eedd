// Cli (config.hpp) and check_paths (paths.hpp): defaults, strict numbers, the INI file and the
// command line, unknown options and stray arguments, given(), flags, --list-options, and the
// path checks every program runs before any work.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "mfrec/config.hpp"
#include "mfrec/error.hpp"
#include "mfrec/paths.hpp"

using namespace mfrec;
namespace fs = std::filesystem;

namespace {

// argv for Cli::parse: the program name first.
struct Args {
  std::vector<std::string> words;
  std::vector<char*> ptrs;
  Args(std::initializer_list<std::string> w) : Args(std::vector<std::string>(w)) {}
  explicit Args(const std::vector<std::string>& w) : words{"prog"} { words.insert(words.end(), w.begin(), w.end()); }
  int argc() const { return static_cast<int>(words.size()); }
  char** argv() {
    ptrs.clear();
    for (auto& s : words) ptrs.push_back(s.data());
    ptrs.push_back(nullptr);
    return ptrs.data();
  }
};

struct Opts {
  int factors = 64;
  long seed = 42;
  unsigned long batch = 1000;
  double alpha = 40.0;
  float ratio = 0.2f;
  bool deflate = true;
  std::string name = "als";
  bool resume = false;
  std::string history;  // optional()
  std::string input = "in.h5", output;
};

// A Cli over `o` with one option of every kind.
void declare(Cli& cli, Opts& o) {
  cli.option("factors,f", &o.factors, "latent factors")
      .option("seed", &o.seed, "seed")
      .option("batch", &o.batch, "events per batch")
      .option("alpha", &o.alpha, "confidence scale")
      .option("ratio", &o.ratio, "test fraction")
      .option("deflate", &o.deflate, "compress")
      .option("name", &o.name, "model name")
      .flag("resume", &o.resume, "continue")
      .optional("history", &o.history, "item ids")
      .path("input,i", &o.input, PathRole::InputFile, "data set")
      .path("output,o", &o.output, PathRole::OutputFile, "model file");
}

// Parses `a` into a fresh Opts; returns parse()'s result.
bool parse(Opts& o, Args a, std::string* printed = nullptr) {
  Cli cli("prog", "a test program");
  declare(cli, o);
  std::ostringstream out;
  auto* old = std::cout.rdbuf(out.rdbuf());
  bool r = false;
  try {
    r = cli.parse(a.argc(), a.argv(), true);
  } catch (...) {
    std::cout.rdbuf(old);
    throw;
  }
  std::cout.rdbuf(old);
  if (printed) *printed = out.str();
  return r;
}

// The message of the ConfigError that parsing `a` throws ("" if none).
std::string parse_error(Args a) {
  Opts o;
  try {
    parse(o, std::move(a));
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// A scratch directory, removed at the end of the test.
struct TempDir {
  fs::path dir;
  TempDir() {
    std::string templ = (fs::temp_directory_path() / "mfrec_test_config.XXXXXX").string();
    dir = ::mkdtemp(templ.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  std::string file(const std::string& name, const std::string& text = "x") const {
    std::ofstream(dir / name) << text;
    return (dir / name).string();
  }
  std::string path(const std::string& name) const { return (dir / name).string(); }
};

std::string check_error(const std::vector<PathArg>& args) {
  try {
    check_paths(args);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Config, DefaultsStayWithoutArguments) {
  Opts o;
  EXPECT_TRUE(parse(o, {}));
  EXPECT_EQ(o.factors, 64);
  EXPECT_EQ(o.seed, 42);
  EXPECT_EQ(o.batch, 1000u);
  EXPECT_EQ(o.alpha, 40.0);
  EXPECT_FLOAT_EQ(o.ratio, 0.2f);
  EXPECT_TRUE(o.deflate);
  EXPECT_EQ(o.name, "als");
  EXPECT_FALSE(o.resume);
  EXPECT_EQ(o.input, "in.h5");
  EXPECT_EQ(o.output, "");
}

TEST(Config, ValuesOfEveryType) {
  Opts o;
  EXPECT_TRUE(parse(o, {"-f", "8", "--seed=-3", "--batch", "18446744073709551615", "--alpha", "1e-3", "--ratio",
                        "0.5", "--deflate", "no", "--name", "x y", "--resume", "-i", "a.h5", "--output=b.h5"}));
  EXPECT_EQ(o.factors, 8);
  EXPECT_EQ(o.seed, -3);
  EXPECT_EQ(o.batch, 18446744073709551615ul);
  EXPECT_EQ(o.alpha, 1e-3);
  EXPECT_FLOAT_EQ(o.ratio, 0.5f);
  EXPECT_FALSE(o.deflate);
  EXPECT_EQ(o.name, "x y");
  EXPECT_TRUE(o.resume);
  EXPECT_EQ(o.input, "a.h5");
  EXPECT_EQ(o.output, "b.h5");
  for (const char* t : {"true", "yes", "on", "1"}) {
    Opts b;
    b.deflate = false;
    parse(b, {"--deflate", t});
    EXPECT_TRUE(b.deflate) << t;
  }
}

TEST(Config, NumbersAreStrict) {
  struct Case {
    std::vector<std::string> args;
    std::string option;
  };
  const std::vector<Case> cases = {
      {{"--batch=-1"}, "--batch"},                 // no sign for an unsigned option
      {{"--batch", "+1"}, "--batch"},
      {{"--factors", "1x"}, "--factors"},          // trailing text
      {{"--factors", "1.5"}, "--factors"},
      {{"--factors", " 1"}, "--factors"},
      {{"--factors", ""}, "--factors"},
      {{"--factors", "abc"}, "--factors"},
      {{"--factors=-"}, "--factors"},
      {{"--factors", "2147483648"}, "--factors"},  // int overflow
      {{"--factors=-2147483649"}, "--factors"},
      {{"--seed", "9223372036854775808"}, "--seed"},
      {{"--batch", "18446744073709551616"}, "--batch"},
      {{"--alpha", "1e999"}, "--alpha"},           // out of double's range
      {{"--alpha", "nan"}, "--alpha"},
      {{"--alpha", "inf"}, "--alpha"},
      {{"--alpha", "1.0e"}, "--alpha"},
      {{"--alpha", "0x"}, "--alpha"},
      {{"--ratio", "1e39"}, "--ratio"},            // beyond float's range
      {{"--deflate", "maybe"}, "--deflate"},
  };
  for (const Case& c : cases) {
    const std::string msg = parse_error(Args(c.args));
    EXPECT_TRUE(contains(msg, "option " + c.option)) << c.args.back() << " -> '" << msg << "'";
  }
  // The edges themselves are fine.
  Opts o;
  parse(o, {"--factors=-2147483648", "--seed=-9223372036854775808", "--batch", "0"});
  EXPECT_EQ(o.factors, -2147483647 - 1);
  EXPECT_EQ(o.seed, -9223372036854775807L - 1);
  EXPECT_EQ(o.batch, 0u);
}

TEST(Config, IniFileAndCommandLinePrecedence) {
  TempDir t;
  const std::string ini = t.file("run.ini", "# a comment\nfactors = 16\nalpha = 2.5\nresume = true\nname = from-ini\n");
  Opts o;
  parse(o, {"--config", ini, "--factors", "4"});
  EXPECT_EQ(o.factors, 4);  // the command line wins
  EXPECT_EQ(o.alpha, 2.5);  // the file beats the default
  EXPECT_EQ(o.name, "from-ini");
  EXPECT_TRUE(o.resume);
  EXPECT_EQ(o.seed, 42);  // neither: the default

  // Bad values in the file are checked as strictly, naming the option.
  const std::string bad = t.file("bad.ini", "factors = 1x\n");
  EXPECT_TRUE(contains(parse_error({"--config", bad}), "option --factors")) << parse_error({"--config", bad});
  const std::string unknown = t.file("unknown.ini", "bogus = 1\n");
  EXPECT_TRUE(contains(parse_error({"--config", unknown}), "bogus")) << parse_error({"--config", unknown});
  fs::create_directory(t.path("ini.d"));
  const std::string dir_error = parse_error({"--config", t.path("ini.d")});
  EXPECT_TRUE(contains(dir_error, "option --config") && contains(dir_error, "is a directory")) << dir_error;
  const std::string missing = t.path("missing.ini");
  EXPECT_TRUE(contains(parse_error({"--config", missing}), "option --config")) << parse_error({"--config", missing});
}

TEST(Config, UnknownOptionAndStrayArgument) {
  EXPECT_TRUE(contains(parse_error({"--bogus", "3"}), "--bogus")) << parse_error({"--bogus", "3"});
  EXPECT_TRUE(contains(parse_error({"stray"}), "stray")) << parse_error({"stray"});
  EXPECT_NE(parse_error({"--factors", "4", "5"}), "");  // one value too many
  EXPECT_TRUE(contains(parse_error({"--factors"}), "factors")) << parse_error({"--factors"});  // no value
  EXPECT_NE(parse_error({"--resume=yes"}), "");  // a flag takes no value
  EXPECT_NE(parse_error({"--factors", "4", "--factors", "8"}), "");  // given twice
}

TEST(Config, GivenTellsSetFromDefault) {
  Opts o;
  Cli cli("prog", "p");
  declare(cli, o);
  Args a{"--factors", "64", "--history", "a,b"};
  ASSERT_TRUE(cli.parse(a.argc(), a.argv(), true));
  EXPECT_TRUE(cli.given("factors"));  // given, even with the default's value
  EXPECT_FALSE(cli.given("seed"));
  EXPECT_TRUE(cli.given("history"));
  EXPECT_EQ(o.history, "a,b");
  EXPECT_FALSE(cli.given("resume"));
  EXPECT_FALSE(cli.given("no-such-option"));

  Opts p;
  p.history = "untouched";
  Cli cli2("prog", "p");
  declare(cli2, p);
  Args b{"--resume"};
  ASSERT_TRUE(cli2.parse(b.argc(), b.argv(), true));
  EXPECT_FALSE(cli2.given("history"));
  EXPECT_EQ(p.history, "untouched");  // optional(): left alone when not given
  EXPECT_TRUE(cli2.given("resume"));
  EXPECT_TRUE(p.resume);
}

TEST(Config, HelpVersionAndListOptionsReturnFalse) {
  Opts o;
  std::string out;
  EXPECT_FALSE(parse(o, {"--help"}, &out));
  EXPECT_TRUE(contains(out, "--factors")) << out;
  EXPECT_TRUE(contains(out, "a test program")) << out;
  EXPECT_FALSE(parse(o, {"--version"}, &out));
  EXPECT_TRUE(contains(out, "prog ")) << out;

  EXPECT_FALSE(parse(o, {"--list-options"}, &out));
  const auto j = nlohmann::json::parse(out);
  ASSERT_TRUE(j.is_array());
  std::map<std::string, nlohmann::json> by_name;
  for (const auto& e : j) {
    for (const char* key : {"name", "short", "type", "has_default", "default", "role", "doc"})
      EXPECT_TRUE(e.contains(key)) << key << " missing in " << e.dump();
    by_name[e["name"].get<std::string>()] = e;
  }
  EXPECT_EQ(by_name.size(), 11u);
  EXPECT_EQ(by_name["factors"]["type"], "int");
  EXPECT_EQ(by_name["factors"]["short"], "f");
  EXPECT_EQ(by_name["factors"]["default"], "64");
  EXPECT_EQ(by_name["factors"]["doc"], "latent factors");
  EXPECT_EQ(by_name["seed"]["type"], "int64");
  EXPECT_EQ(by_name["batch"]["type"], "uint64");
  EXPECT_EQ(by_name["alpha"]["type"], "double");
  EXPECT_EQ(by_name["alpha"]["default"], "40");
  EXPECT_EQ(by_name["ratio"]["type"], "float");
  EXPECT_EQ(by_name["ratio"]["default"], "0.2");
  EXPECT_EQ(by_name["deflate"]["type"], "bool");
  EXPECT_EQ(by_name["deflate"]["default"], "true");
  EXPECT_EQ(by_name["name"]["type"], "string");
  EXPECT_EQ(by_name["resume"]["type"], "flag");
  EXPECT_EQ(by_name["resume"]["default"], "false");
  EXPECT_EQ(by_name["history"]["has_default"], false);
  EXPECT_EQ(by_name["factors"]["has_default"], true);
  EXPECT_EQ(by_name["input"]["role"], "input-file");
  EXPECT_EQ(by_name["input"]["default"], "in.h5");
  EXPECT_EQ(by_name["output"]["role"], "output-file");
  EXPECT_EQ(by_name["factors"]["role"], "");

  // Not printed on the other ranks, but still "stop".
  Cli cli("prog", "p");
  declare(cli, o);
  Args a{"--list-options"};
  std::ostringstream quiet;
  auto* old = std::cout.rdbuf(quiet.rdbuf());
  const bool r = cli.parse(a.argc(), a.argv(), false);
  std::cout.rdbuf(old);
  EXPECT_FALSE(r);
  EXPECT_EQ(quiet.str(), "");
}

TEST(Config, PathsAfterParse) {
  Opts o;
  Cli cli("prog", "p");
  declare(cli, o);
  Args a{"-o", "model.h5"};
  ASSERT_TRUE(cli.parse(a.argc(), a.argv(), true));
  const auto p = cli.paths();
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0].option, "input");
  EXPECT_EQ(p[0].path, "in.h5");
  EXPECT_EQ(p[0].role, PathRole::InputFile);
  EXPECT_EQ(p[1].option, "output");
  EXPECT_EQ(p[1].path, "model.h5");
  EXPECT_EQ(p[1].role, PathRole::OutputFile);
  EXPECT_TRUE(is_output(PathRole::OutputDir));
  EXPECT_FALSE(is_output(PathRole::InputDir));
}

TEST(Config, ParseList) {
  EXPECT_EQ(parse_list<int>("factors", "8,16, 32"), (std::vector<int>{8, 16, 32}));
  EXPECT_EQ(parse_list<double>("alpha", "1.5"), (std::vector<double>{1.5}));
  for (const char* bad : {"", "8,,16", "8,", ",8", "8,x", "1.5", "8 16"}) {
    try {
      parse_list<int>("factors", bad);
      ADD_FAILURE() << "'" << bad << "' accepted";
    } catch (const ConfigError& e) {
      EXPECT_TRUE(contains(e.what(), "option --factors")) << e.what();
    }
  }
  try {
    require_option(false, "k", "must be at least 1");
    ADD_FAILURE();
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "option --k: must be at least 1");
  }
  EXPECT_NO_THROW(require_option(true, "k", "unused"));
}

TEST(Paths, SameFileByInodeAndByNormalisedPath) {
  TempDir t;
  const std::string a = t.file("a.h5");
  EXPECT_TRUE(same_path(a, a));
  EXPECT_TRUE(same_path(a, t.path("sub/../a.h5")));  // normalised (sub does not exist)
  EXPECT_TRUE(same_path(a, (t.dir / "." / "a.h5").string()));
  fs::create_hard_link(a, t.path("hard.h5"));
  EXPECT_TRUE(same_path(a, t.path("hard.h5")));  // another name, the same inode
  fs::create_symlink(a, t.path("link.h5"));
  EXPECT_TRUE(same_path(a, t.path("link.h5")));
  EXPECT_FALSE(same_path(a, t.file("b.h5")));
  EXPECT_TRUE(same_path(t.path("new.h5"), t.path("./x/../new.h5")));  // neither exists
  EXPECT_FALSE(same_path(t.path("new.h5"), t.path("new2.h5")));
  // A relative path and its absolute form.
  const fs::path cwd = fs::current_path();
  fs::current_path(t.dir);
  EXPECT_TRUE(same_path("a.h5", a));
  EXPECT_TRUE(same_path("later.h5", t.path("later.h5")));
  fs::current_path(cwd);
}

TEST(Paths, InputsMustExistWithTheirKind) {
  TempDir t;
  const std::string file = t.file("data.h5");
  fs::create_directory(t.path("dir"));
  EXPECT_EQ(check_error({{"data", file, PathRole::InputFile}, {"registry", t.path("dir"), PathRole::InputDir}}), "");
  EXPECT_EQ(check_error({{"data", "", PathRole::InputFile}}), "");  // empty: not given
  const std::string missing = check_error({{"data", t.path("missing.h5"), PathRole::InputFile}});
  EXPECT_TRUE(contains(missing, "option --data: ") && contains(missing, "missing.h5") && contains(missing, "no such file"))
      << missing;
  EXPECT_TRUE(contains(check_error({{"data", t.path("dir"), PathRole::InputFile}}), "is a directory"));
  EXPECT_TRUE(contains(check_error({{"registry", file, PathRole::InputDir}}), "option --registry"));
  EXPECT_TRUE(contains(check_error({{"registry", t.path("nodir"), PathRole::InputDir}}), "no such directory"));
}

TEST(Paths, OutputsAreNotInputsNorEachOther) {
  TempDir t;
  const std::string in = t.file("in.h5");
  std::string e = check_error({{"data", in, PathRole::InputFile}, {"output", in, PathRole::OutputFile}});
  EXPECT_TRUE(contains(e, "option --output: ") && contains(e, "same file as --data")) << e;
  // The same file through another spelling, and an output listed before the input.
  fs::create_directory(t.path("sub"));
  e = check_error({{"output", t.path("sub/../in.h5"), PathRole::OutputFile}, {"data", in, PathRole::InputFile}});
  EXPECT_TRUE(contains(e, "option --output") && contains(e, "--data")) << e;
  // Two outputs naming one file that does not exist yet: the later one is reported.
  e = check_error({{"output", t.path("m.h5"), PathRole::OutputFile}, {"report", t.path("./m.h5"), PathRole::OutputFile}});
  EXPECT_TRUE(contains(e, "option --report") && contains(e, "--output (another output)")) << e;
  EXPECT_EQ(check_error({{"data", in, PathRole::InputFile}, {"output", t.path("out.h5"), PathRole::OutputFile},
                         {"report", t.path("r.json"), PathRole::OutputFile}}),
            "");
  // An output directory that is an input file.
  e = check_error({{"data", in, PathRole::InputFile}, {"csv", in, PathRole::OutputDir}});
  EXPECT_TRUE(contains(e, "option --csv")) << e;
}

TEST(Paths, OutputFileDirectoryMustExist) {
  TempDir t;
  fs::create_directory(t.path("d"));
  const std::string afile = t.file("afile");
  EXPECT_EQ(check_error({{"output", t.path("d/out.h5"), PathRole::OutputFile}}), "");
  std::string e = check_error({{"output", t.path("no/such/dir/out.h5"), PathRole::OutputFile}});
  EXPECT_TRUE(contains(e, "option --output") && contains(e, "does not exist")) << e;
  e = check_error({{"output", afile + "/out.h5", PathRole::OutputFile}});
  EXPECT_TRUE(contains(e, "option --output")) << e;  // its "directory" is a file
  e = check_error({{"output", t.path("d"), PathRole::OutputFile}});
  EXPECT_TRUE(contains(e, "is a directory")) << e;
}

TEST(Paths, OutputDirectoryIsCreatableAndNotAFile) {
  TempDir t;
  const std::string afile = t.file("afile");
  EXPECT_EQ(check_error({{"csv", t.path("new/nested"), PathRole::OutputDir}}), "");  // created later, with parents
  EXPECT_FALSE(fs::exists(t.path("new")));  // the check creates nothing
  std::string e = check_error({{"csv", afile, PathRole::OutputDir}});
  EXPECT_TRUE(contains(e, "option --csv") && contains(e, "is a file")) << e;
  e = check_error({{"csv", afile + "/sub", PathRole::OutputDir}});
  EXPECT_TRUE(contains(e, "option --csv")) << e;  // under a file: cannot be created
}

TEST(Paths, UnwritableDirectory) {
  // Root's access() ignores permission bits, so a read-only directory is writable for root: the
  // cases above (a missing directory, a file in the way) cover root; this one needs a user.
  if (::geteuid() == 0) GTEST_SKIP() << "running as root: access(W_OK) ignores the mode bits";
  TempDir t;
  fs::create_directory(t.path("ro"));
  fs::permissions(t.path("ro"), fs::perms::owner_read | fs::perms::owner_exec);
  const std::string e = check_error({{"output", t.path("ro/out.h5"), PathRole::OutputFile}});
  EXPECT_TRUE(contains(e, "not writable")) << e;
  const std::string d = check_error({{"csv", t.path("ro/sub"), PathRole::OutputDir}});
  EXPECT_TRUE(contains(d, "not writable")) << d;
  fs::permissions(t.path("ro"), fs::perms::owner_all);
}
