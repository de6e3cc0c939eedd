// The files and directories a program is told to read and write, checked before any work starts:
// no output may be the same file as an input or as another output (the check that keeps a typo
// from overwriting the data), every input must exist with the right kind, and every output must
// be creatable. The library's readers and writers still report their own failures; this only
// moves the common mistakes to the start, with the option named.
#pragma once
#include <string>
#include <vector>

namespace mfrec {

enum class PathRole {
  InputFile,   // must exist and be a file
  InputDir,    // must exist and be a directory
  OutputFile,  // written (atomically): its directory must exist and be writable; not a directory
  OutputDir,   // created if missing (with its parents): must not be a file; writable if it exists
};

struct PathArg {
  std::string option;  // without dashes, e.g. "output"
  std::string path;    // empty: not given, not checked
  PathRole role;
};

bool is_output(PathRole role);

// True when a and b name the same file: the same device and inode when both exist, else the same
// absolute, normalised path (symbolic links resolved as far as the path exists).
bool same_path(const std::string& a, const std::string& b);

// ConfigError "option --NAME: ..." for the first problem found, in argument order:
// an input that is missing or of the wrong kind; an output that is the same path as an input or
// as an earlier output, an output file that is a directory or whose directory is missing or not
// writable, an output directory that is a file or cannot be created in a writable parent.
void check_paths(const std::vector<PathArg>& args);

}  // namespace mfrec
