// Helpers every test suite shares: where the real data lives, temporary folders, running the
// medlens binary and the Python oracles.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

namespace medlens::test {

/// Folder of pydicom's test DICOM files (python3-pydicom).
std::string pydicom_files();
/// Folder of nibabel's test data (python3-nibabel).
std::string nibabel_data();
/// mricron's templates folder (mricron-data): ch2.nii.gz, ch2bet.nii.gz, ...
std::string mricron_templates();
/// ITK example images (insighttoolkit5-examples).
std::string itk_examples();
/// skimage's sample data (python3-skimage).
std::string skimage_data();
/// Folder of small samples vendored in the repository (data/samples).
std::string vendored_samples();
/// The built medlens executable.
std::string medlens_bin();

/// A fresh folder removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

struct CommandResult {
  int status = -1;     ///< exit status
  std::string output;  ///< stdout
  std::string error;   ///< stderr
};

/// Runs argv (no shell) and captures both streams.
CommandResult run(const std::vector<std::string>& argv);
/// Runs medlens with the given arguments.
CommandResult run_medlens(const std::vector<std::string>& args);
/// Runs /usr/bin/python3 on a script file from tests/oracles with arguments; fails the test
/// (ADD_FAILURE) and returns the result when the script exits non-zero.
CommandResult run_oracle(const std::string& script, const std::vector<std::string>& args);

/// Reads a raw little-endian float32 file written by an oracle.
std::vector<float> read_f32(const std::string& path);
std::string read_text(const std::string& path);

}  // namespace medlens::test
