#include "mfrec/config.hpp"

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <limits>
#include <sstream>
#include <type_traits>

#include "mfrec/version.hpp"

namespace mfrec {

namespace po = boost::program_options;

namespace {

template <class T> const char* type_name() {
  if constexpr (std::is_same_v<T, bool>) return "bool";
  else if constexpr (std::is_same_v<T, std::string>) return "string";
  else if constexpr (std::is_same_v<T, float>) return "float";
  else if constexpr (std::is_same_v<T, double>) return "double";
  else if constexpr (std::is_same_v<T, int>) return "int";
  else if constexpr (std::is_unsigned_v<T>) return "uint64";
  else return "int64";
}

template <class T> std::string format_value(const T& v) {
  if constexpr (std::is_same_v<T, bool>) return v ? "true" : "false";
  else if constexpr (std::is_same_v<T, std::string>) return v;
  else {
    std::ostringstream os;
    os << v;  // default precision: 0.2 shows as 0.2
    return os.str();
  }
}

// Strict parsing of an option's text: the whole text must be one value of T.
template <class T> T parse_value(const std::string& name, const std::string& text) {
  auto bad = [&](const std::string& what) -> ConfigError {
    return ConfigError("option --" + name + ": bad value '" + text + "' (" + what + ")");
  };
  if constexpr (std::is_same_v<T, std::string>) {
    return text;
  } else if constexpr (std::is_same_v<T, bool>) {
    if (text == "true" || text == "yes" || text == "on" || text == "1") return true;
    if (text == "false" || text == "no" || text == "off" || text == "0") return false;
    throw bad("expected true or false");
  } else if constexpr (std::is_floating_point_v<T>) {
    char* end = nullptr;
    errno = 0;
    const double v = std::strtod(text.c_str(), &end);
    if (text.empty() || end != text.c_str() + text.size() || std::isspace(static_cast<unsigned char>(text[0])))
      throw bad("expected a number");
    if (!std::isfinite(v) || errno == ERANGE || std::fabs(v) > std::numeric_limits<T>::max())
      throw bad("not a finite number in range");
    return static_cast<T>(v);
  } else {
    const bool digits_only = !text.empty() && text.find_first_not_of("0123456789", text[0] == '-' ? 1 : 0) == std::string::npos &&
                             text != "-";
    if (!digits_only) throw bad(std::is_unsigned_v<T> ? "expected a non-negative integer" : "expected an integer");
    if (std::is_unsigned_v<T> && text[0] == '-') throw bad("must not be negative");
    errno = 0;
    char* end = nullptr;
    if constexpr (std::is_unsigned_v<T>) {
      const unsigned long long v = std::strtoull(text.c_str(), &end, 10);
      if (errno == ERANGE || v > std::numeric_limits<T>::max()) throw bad("out of range");
      return static_cast<T>(v);
    } else {
      const long long v = std::strtoll(text.c_str(), &end, 10);
      if (errno == ERANGE || v > std::numeric_limits<T>::max() || v < std::numeric_limits<T>::min())
        throw bad("out of range");
      return static_cast<T>(v);
    }
  }
}

const char* role_name(PathRole r) {
  switch (r) {
    case PathRole::InputFile: return "input-file";
    case PathRole::InputDir: return "input-dir";
    case PathRole::OutputFile: return "output-file";
    case PathRole::OutputDir: return "output-dir";
  }
  return "";
}

}  // namespace

struct Cli::Impl {
  std::string program, summary;
  po::options_description options{"Options", 100, 50};
  po::variables_map vm;
  std::vector<OptionInfo> infos;
  std::vector<std::function<void()>> assigners;  // after parsing: text -> typed variable
  struct PathOption {
    std::string name;
    std::string* var;
    PathRole role;
  };
  std::vector<PathOption> path_options;

  OptionInfo& declare(const std::string& names, const char* type, const std::string& doc) {
    OptionInfo info;
    const auto comma = names.find(',');
    info.name = names.substr(0, comma);
    if (comma != std::string::npos) info.short_name = names.substr(comma + 1);
    info.type = type;
    info.doc = doc;
    infos.push_back(info);
    return infos.back();
  }

  template <class T> void value(const std::string& names, T* var, const std::string& doc, bool with_default) {
    OptionInfo& info = declare(names, type_name<T>(), doc);
    auto* text = po::value<std::string>();
    if (with_default) {
      info.has_default = true;
      info.default_text = format_value(*var);
      text->default_value(info.default_text);
    }
    text->value_name(type_name<T>());
    options.add_options()(names.c_str(), text, doc.c_str());
    const std::string name = info.name;
    assigners.push_back([this, name, var] {
      if (vm.count(name) && !vm[name].defaulted()) *var = parse_value<T>(name, vm[name].as<std::string>());
    });
  }
};

Cli::Cli(std::string program, std::string summary) : impl_(std::make_unique<Impl>()) {
  impl_->program = std::move(program);
  impl_->summary = std::move(summary);
  impl_->options.add_options()
      ("help,h", "print this help and exit")
      ("version", "print the version and exit")
      ("list-options", "print every option as JSON (name, type, default, path role) and exit")
      ("config", po::value<std::string>()->value_name("file"),
       "read options from this INI file (key = value; the command line wins)");
}

Cli::~Cli() = default;

template <class T>
Cli& Cli::option(const std::string& names, T* var, const std::string& doc) {
  impl_->value(names, var, doc, true);
  return *this;
}

template <class T>
Cli& Cli::optional(const std::string& names, T* var, const std::string& doc) {
  impl_->value(names, var, doc, false);
  return *this;
}

Cli& Cli::flag(const std::string& names, bool* var, const std::string& doc) {
  OptionInfo& info = impl_->declare(names, "flag", doc);
  info.has_default = true;
  info.default_text = "false";
  impl_->options.add_options()(names.c_str(), po::bool_switch(var), doc.c_str());
  return *this;
}

Cli& Cli::path(const std::string& names, std::string* var, PathRole role, const std::string& doc) {
  impl_->value(names, var, doc, true);
  impl_->infos.back().type = "path";
  impl_->infos.back().role = role_name(role);
  impl_->path_options.push_back({impl_->infos.back().name, var, role});
  return *this;
}

bool Cli::parse(int argc, char** argv, bool print) {
  Impl& m = *impl_;
  try {
    const po::parsed_options parsed = po::command_line_parser(argc, argv).options(m.options).run();
    // Boost parses words that are no option as positional arguments and store() drops them
    // silently: no program takes any, so one is a mistake (e.g. a value after a flag).
    for (const po::option& o : parsed.options)
      if (o.position_key >= 0 || o.string_key.empty())
        throw ConfigError("unexpected argument '" + (o.original_tokens.empty() ? std::string() : o.original_tokens.front()) +
                          "' (options start with --)");
    po::store(parsed, m.vm);
    if (m.vm.count("help")) {
      if (print) std::cout << "Usage: " << m.program << " [options]\n" << m.summary << "\n\n" << m.options << std::flush;
      return false;
    }
    if (m.vm.count("version")) {
      if (print) std::cout << m.program << " " << kVersion << "\n";
      return false;
    }
    if (m.vm.count("list-options")) {
      if (print) {
        nlohmann::ordered_json j = nlohmann::ordered_json::array();
        for (const OptionInfo& o : m.infos)
          j.push_back({{"name", o.name}, {"short", o.short_name}, {"type", o.type}, {"has_default", o.has_default},
                       {"default", o.default_text}, {"role", o.role}, {"doc", o.doc}});
        std::cout << j.dump(1) << "\n" << std::flush;
      }
      return false;
    }
    if (m.vm.count("config")) {
      const std::string path = m.vm["config"].as<std::string>();
      std::ifstream in(path);
      if (!in) throw ConfigError("option --config: cannot read " + path);
      // A directory opens as a stream that reads nothing: that would be an empty INI file.
      if (std::filesystem::is_directory(path)) throw ConfigError("option --config: " + path + " is a directory");
      po::store(po::parse_config_file(in, m.options, false), m.vm);
    }
    po::notify(m.vm);
  } catch (const po::error& e) {
    throw ConfigError(e.what());
  }
  for (auto& assign : m.assigners) assign();
  return true;
}

bool Cli::given(const std::string& name) const {
  return impl_->vm.count(name) > 0 && !impl_->vm[name].defaulted();
}

std::vector<PathArg> Cli::paths() const {
  std::vector<PathArg> out;
  for (const auto& p : impl_->path_options) out.push_back({p.name, *p.var, p.role});
  return out;
}

const std::vector<OptionInfo>& Cli::options() const { return impl_->infos; }

#define MFREC_CLI_TYPE(T)                                                              \
  template Cli& Cli::option<T>(const std::string&, T*, const std::string&);           \
  template Cli& Cli::optional<T>(const std::string&, T*, const std::string&);
MFREC_CLI_TYPE(int)
MFREC_CLI_TYPE(long)
MFREC_CLI_TYPE(long long)
MFREC_CLI_TYPE(unsigned long)
MFREC_CLI_TYPE(double)
MFREC_CLI_TYPE(float)
MFREC_CLI_TYPE(bool)
MFREC_CLI_TYPE(std::string)
#undef MFREC_CLI_TYPE

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
    try {
      out.push_back(parse_value<T>(option, item));  // as strict as a single value
    } catch (const ConfigError& e) {
      throw ConfigError(std::string(e.what()) + " in list '" + text + "'");
    }
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
