// Shared defences of the io layer: format detection, the checks every reader's output passes,
// and atomic outputs that leave nothing behind on failure.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "io/file_util.h"
#include "io/read.h"
#include "tools/test_util.h"

namespace fs = std::filesystem;

namespace medlens {
namespace {

TEST(DetectFormat, ByMagicBeforeExtension) {
  EXPECT_EQ(detect_format(test::pydicom_files() + "/CT_small.dcm"), Format::kDicom);
  EXPECT_EQ(detect_format(test::mricron_templates() + "/ch2.nii.gz"), Format::kNifti);
  EXPECT_EQ(detect_format(test::nibabel_data() + "/example_nifti2.nii.gz"), Format::kNifti);
  EXPECT_EQ(detect_format(test::skimage_data() + "/phantom.png"), Format::kRaster);
  EXPECT_EQ(detect_format(test::itk_examples() + "/BrainProtonDensity3Slices.mha"), Format::kMetaImage);
  EXPECT_EQ(detect_format(test::pydicom_files()), Format::kDicomFolder);
  test::TempDir tmp;
  // A PNG under a .dcm name is still a PNG.
  fs::copy_file(test::skimage_data() + "/phantom.png", tmp.file("lying.dcm"));
  EXPECT_EQ(detect_format(tmp.file("lying.dcm")), Format::kRaster);
  EXPECT_THROW(detect_format(tmp.file("missing.nii")), InputError);
}

TEST(CheckVoxels, RefusesNonFiniteBadGeometryAndWrongSizes) {
  VoxelBuffer b;
  b.shape = {1, 1, 2, 2};
  b.data = {0, 1, 2, NAN};
  try {
    check_voxels(b, "x.nii", false);
    ADD_FAILURE();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("x.nii: 1 voxel(s) are NaN"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(check_voxels(b, "x.nii", true));
  b.data[3] = 3;
  b.geometry.spacing[1] = -1;
  EXPECT_THROW(check_voxels(b, "x.nii", false), InputError);
  b.geometry.spacing[1] = 1;
  b.data.pop_back();
  EXPECT_THROW(check_voxels(b, "x.nii", false), InputError);
}

TEST(AtomicOutput, CommitsOrLeavesNothing) {
  test::TempDir tmp;
  {
    AtomicOutput out(tmp.file("a.nii.gz"));
    EXPECT_EQ(extension_of(out.temp_path()), ".nii.gz") << "writers choose format by extension";
    std::ofstream(out.temp_path()) << "partial";
    // no commit: an exception would unwind here
  }
  EXPECT_TRUE(fs::is_empty(tmp.path()));
  {
    AtomicOutput out(tmp.file("b.txt"));
    std::ofstream(out.temp_path()) << "done";
    out.commit();
  }
  EXPECT_EQ(test::read_text(tmp.file("b.txt")), "done");
  // Folder outputs replace an existing folder as a whole.
  fs::create_directories(tmp.file("series"));
  std::ofstream(tmp.file("series/old.dcm")) << "old";
  {
    AtomicOutput out(tmp.file("series") + "/", true);
    std::ofstream(out.temp_path() + "/new.dcm") << "new";
    out.commit();
  }
  EXPECT_FALSE(fs::exists(tmp.file("series/old.dcm")));
  EXPECT_TRUE(fs::exists(tmp.file("series/new.dcm")));
  EXPECT_THROW(AtomicOutput(tmp.file("no/such/dir/x.png")), InputError);
}

// The NIfTI and .npz readers see files through MappedFile: a regular file mapped (with or
// without faulting it in), an empty one read, and a missing file or a folder refused by name.
TEST(MappedFile, MapsReadsOrRefusesNamingTheFile) {
  test::TempDir tmp;
  const std::string bytes = std::string("\x93NUMPY") + std::string(5000, '\x01') + "end";
  std::ofstream(tmp.file("a.bin"), std::ios::binary) << bytes;
  for (bool populate : {true, false}) {
    const MappedFile m(tmp.file("a.bin"), populate);
    ASSERT_EQ(m.size(), bytes.size());
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(m.data()), m.size()), bytes);
  }
  std::ofstream(tmp.file("empty.bin")).close();
  EXPECT_EQ(MappedFile(tmp.file("empty.bin")).size(), 0u);
  const auto message = [](const std::string& path) {
    try {
      MappedFile m(path);
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string missing = message(tmp.file("missing.nii")), folder = message(tmp.path().string());
  EXPECT_NE(missing.find("missing.nii"), std::string::npos) << missing;
  EXPECT_NE(missing.find("no such file"), std::string::npos) << missing;
  EXPECT_NE(folder.find("is a folder"), std::string::npos) << folder;
}

TEST(Extension, DoubleExtensionsAndCase) {
  EXPECT_EQ(extension_of("/a/b/Brain.NII.GZ"), ".nii.gz");
  EXPECT_EQ(extension_of("x.mha"), ".mha");
  EXPECT_EQ(extension_of("noext"), "");
  EXPECT_EQ(extension_of(".hidden"), "");
}

}  // namespace
}  // namespace medlens
