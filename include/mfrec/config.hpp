// Options, declared once per program with Boost.ProgramOptions, read from the command line and
// from an INI file (--config FILE; the command line wins). --help lists every option with its
// default. Any bad option becomes a ConfigError naming it.
#pragma once
#include <boost/program_options.hpp>

#include <string>
#include <vector>

#include "mfrec/error.hpp"

namespace mfrec {

namespace po = boost::program_options;

class Cli {
 public:
  Cli(std::string program, std::string summary);
  // Declare options: cli.add()("users", po::value(&cfg.users)->default_value(100000), "doc")...
  po::options_description_easy_init add() { return options_.add_options(); }
  // Parse argv and the --config file. Returns false when --help or --version was printed
  // (on `print` ranks only): the caller then exits 0.
  bool parse(int argc, char** argv, bool print);
  bool given(const std::string& name) const { return vm_.count(name) > 0 && !vm_[name].defaulted(); }
  const po::variables_map& vm() const { return vm_; }

 private:
  std::string program_, summary_;
  po::options_description options_;
  po::variables_map vm_;
};

// A comma-separated list: "1,10,100" -> {1, 10, 100}. Empty items or bad numbers: ConfigError
// naming the option.
template <class T>
std::vector<T> parse_list(const std::string& option, const std::string& text);

// Check a condition on an option value; throws ConfigError("option --name: message").
void require_option(bool ok, const std::string& name, const std::string& message);

}  // namespace mfrec
