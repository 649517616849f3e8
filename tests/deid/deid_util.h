// Helpers the de-identification tests share: file bytes, site keys, searching output for
// planted values, and the /usr/bin/python3 (Debian pydicom) runner.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "tools/test_util.h"

namespace medlens::deid::test_util {

inline std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f << bytes;
}

/// Writes a 32-byte site key derived from `seed` (deterministic, so runs compare).
inline std::string write_key(const std::string& path, char seed) {
  std::string key(32, seed);
  for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<char>(seed * 31 + static_cast<int>(i) * 7);
  write_bytes(path, key);
  return key;
}

inline bool contains(const std::string& haystack, const std::string& needle) {
  return !needle.empty() && haystack.find(needle) != std::string::npos;
}

/// Runs an inline Python program with Debian's /usr/bin/python3 (its pydicom); argv[1..].
inline medlens::test::CommandResult python(const std::string& program, std::vector<std::string> args = {}) {
  std::vector<std::string> argv = {"/usr/bin/python3", "-c", program};
  argv.insert(argv.end(), args.begin(), args.end());
  return medlens::test::run(argv);
}

/// Runs a Python script file with /usr/bin/python3 and arguments.
inline medlens::test::CommandResult python_script(const std::string& script, std::vector<std::string> args = {}) {
  std::vector<std::string> argv = {"/usr/bin/python3", script};
  argv.insert(argv.end(), args.begin(), args.end());
  return medlens::test::run(argv);
}

}  // namespace medlens::deid::test_util
