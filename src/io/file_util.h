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

/// A whole file, read-only: mapped when possible (no copy, and only the pages used are read),
/// else read into memory (folders refused, pipes and mmap failures read). InputError naming the
/// file when it cannot be opened. populate=true faults the whole file in at once: for readers
/// that will touch every byte (NIfTI); false for those that pick one member (.npz archives).
class MappedFile {
 public:
  explicit MappedFile(const std::string& path, bool populate = true);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return map_ ? static_cast<const uint8_t*>(map_) : copy_.data(); }
  size_t size() const { return map_ ? size_ : copy_.size(); }

 private:
  void* map_ = nullptr;
  size_t size_ = 0;
  std::vector<uint8_t> copy_;
};

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
