#include "mfrec/config.hpp"

#include <cstdint>
#include <fstream>
#include <iostream>
#include <sstream>

#include "mfrec/version.hpp"

namespace mfrec {

Cli::Cli(std::string program, std::string summary)
    : program_(std::move(program)), summary_(std::move(summary)), options_("Options", 100, 50) {
  options_.add_options()
      ("help,h", "print this help and exit")
      ("version", "print the version and exit")
      ("config", po::value<std::string>(), "read options from this INI file (key = value; the command line wins)");
}

bool Cli::parse(int argc, char** argv, bool print) {
  try {
    po::store(po::command_line_parser(argc, argv).options(options_).run(), vm_);
    if (vm_.count("help")) {
      if (print) std::cout << "Usage: " << program_ << " [options]\n" << summary_ << "\n\n" << options_ << std::flush;
      return false;
    }
    if (vm_.count("version")) {
      if (print) std::cout << program_ << " " << kVersion << "\n";
      return false;
    }
    if (vm_.count("config")) {
      const std::string path = vm_["config"].as<std::string>();
      std::ifstream in(path);
      if (!in) throw ConfigError("option --config: cannot read " + path);
      po::store(po::parse_config_file(in, options_, false), vm_);
    }
    po::notify(vm_);
  } catch (const po::error& e) {
    throw ConfigError(e.what());
  }
  return true;
}

template <class T>
std::vector<T> parse_list(const std::string& option, const std::string& text) {
  std::vector<T> out;
  std::stringstream ss(text);
  std::string item;
  if (text.empty()) throw ConfigError("option --" + option + ": empty list");
  while (std::getline(ss, item, ',')) {
    std::size_t a = item.find_first_not_of(" \t"), b = item.find_last_not_of(" \t");
    if (a == std::string::npos) throw ConfigError("option --" + option + ": empty item in list '" + text + "'");
    item = item.substr(a, b - a + 1);
    std::istringstream is(item);
    T v{};
    if (!(is >> v) || !is.eof()) throw ConfigError("option --" + option + ": bad value '" + item + "' in list '" + text + "'");
    out.push_back(v);
  }
  if (!text.empty() && text.back() == ',') throw ConfigError("option --" + option + ": empty item in list '" + text + "'");
  return out;
}

template std::vector<int> parse_list<int>(const std::string&, const std::string&);
template std::vector<double> parse_list<double>(const std::string&, const std::string&);
template std::vector<float> parse_list<float>(const std::string&, const std::string&);
template std::vector<std::string> parse_list<std::string>(const std::string&, const std::string&);
template std::vector<std::int64_t> parse_list<std::int64_t>(const std::string&, const std::string&);

void require_option(bool ok, const std::string& name, const std::string& message) {
  if (!ok) throw ConfigError("option --" + name + ": " + message);
}

}  // namespace mfrec
