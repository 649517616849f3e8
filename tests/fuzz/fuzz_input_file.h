// For fuzz targets whose reader takes a path: the input goes through a file, the path users
// take (DCMTK, for one, loads large values lazily from the file).
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

namespace medlens::fuzz {

/// Writes the fuzzer's bytes to a per-process file in /dev/shm named with `extension`, and
/// returns its path, or "" when it cannot be written.
inline std::string input_file(const uint8_t* data, size_t size, const std::string& extension) {
  const std::string path = "/dev/shm/medlens-fuzz-" + std::to_string(::getpid()) + extension;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return "";
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  return path;
}

}  // namespace medlens::fuzz
