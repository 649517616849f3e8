// Small file-system helpers shared by readers and writers.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace medlens {

/// Lower-case extension including a double one we care about: ".nii.gz", ".png", "".
std::string extension_of(const std::string& path);

/// Whole file as bytes; InputError naming the file when it cannot be read.
std::vector<uint8_t> read_file_bytes(const std::string& path);

/// Up to n first bytes of a file (fewer if the file is shorter).
std::vector<uint8_t> read_file_head(const std::string& path, size_t n);

/// A destination written through a temporary sibling and renamed into place by commit().
/// If commit() is never called (an exception unwinds), the temporary is removed.
/// For folders (is_folder=true) the temporary is a folder renamed as a whole.
class AtomicOutput {
 public:
  AtomicOutput(const std::string& destination, bool is_folder = false);
  ~AtomicOutput();
  AtomicOutput(const AtomicOutput&) = delete;
  AtomicOutput& operator=(const AtomicOutput&) = delete;
  /// Where to write now. Keeps the destination's extension so format-by-name writers work.
  const std::string& temp_path() const { return temp_; }
  /// Moves the temporary onto the destination (replacing an existing file or folder).
  void commit();

 private:
  std::string destination_, temp_;
  bool is_folder_, committed_ = false;
};

}  // namespace medlens
