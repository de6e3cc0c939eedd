// Options, declared once per program, read from the command line and from an INI file
// (--config FILE; the command line wins). --help lists every option with its default;
// --list-options prints them as JSON (name, type, default, path role), which the generated
// option tests read. Any bad option becomes a ConfigError naming it. Boost.ProgramOptions does
// the parsing, behind this interface.
//
//   Cli cli("mfrec_x", "what it does");
//   cli.option("factors,f", &o.factors, "latent factors")          // default: o.factors as it is
//      .flag("resume", &o.resume, "continue from the checkpoints")
//      .path("output,o", &o.output, PathRole::OutputFile, "the model file");
//   if (!cli.parse(argc, argv, comm.is_root())) return 0;          // --help, --version, --list-options
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "mfrec/error.hpp"
#include "mfrec/paths.hpp"

namespace mfrec {

struct OptionInfo {
  std::string name;          // long name, e.g. "output"
  std::string short_name;    // e.g. "o", or empty
  std::string type;          // int, int64, uint64, double, float, string, bool, flag
  bool has_default = false;  // false: optional(), given() tells whether it was set
  std::string default_text;  // as --help shows it
  std::string role;          // for path(): input-file, input-dir, output-file, output-dir; else empty
  std::string doc;
};

class Cli {
 public:
  Cli(std::string program, std::string summary);
  ~Cli();
  Cli(const Cli&) = delete;
  Cli& operator=(const Cli&) = delete;

  // A value option whose default is *var as it is now. T: int, long, long long, unsigned long,
  // double, float, bool (true/false/yes/no/1/0), std::string. Numbers are parsed strictly (the
  // whole text; no sign for unsigned types).
  template <class T> Cli& option(const std::string& names, T* var, const std::string& doc);
  // A value option without a default: *var is left alone unless given; given() tells.
  template <class T> Cli& optional(const std::string& names, T* var, const std::string& doc);
  // A switch without a value: *var becomes true when given.
  Cli& flag(const std::string& names, bool* var, const std::string& doc);
  // A string option that names a file or directory (default: *var; empty = not given).
  // check_paths(cli.paths()) checks them all together.
  Cli& path(const std::string& names, std::string* var, PathRole role, const std::string& doc);

  // Parses argv and the --config file. Returns false when --help, --version or --list-options
  // was printed (on `print` ranks only): the caller then exits 0.
  bool parse(int argc, char** argv, bool print);
  bool given(const std::string& name) const;
  // The path options with their values after parse(), in declaration order.
  std::vector<PathArg> paths() const;
  const std::vector<OptionInfo>& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A comma-separated list: "1,10,100" -> {1, 10, 100}. Empty items or bad numbers: ConfigError
// naming the option.
template <class T>
std::vector<T> parse_list(const std::string& option, const std::string& text);

// Check a condition on an option value; throws ConfigError("option --name: message").
void require_option(bool ok, const std::string& name, const std::string& message);

}  // namespace mfrec
