#include <gtest/gtest.h>

#include "core/error.h"
#include "io/dicom.h"
#include "io/read.h"
#include "tools/test_util.h"

namespace medlens {
namespace {

std::string pyd(const std::string& name) { return test::pydicom_files() + "/" + name; }

TEST(DicomRead, EveryEncodingOfMrSmallDecodesToTheSameValues) {
  const VoxelBuffer ref = read_dicom_file(pyd("MR_small.dcm"));
  ASSERT_EQ(ref.shape, (Shape{1, 1, 64, 64}));
  for (const char* name : {"MR_small_implicit.dcm", "MR_small_bigendian.dcm", "MR_small_expb.dcm",
                           "MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm",
                           "MR_small_jp2klossless.dcm", "MR_small_padded.dcm"}) {
    SCOPED_TRACE(name);
    const VoxelBuffer b = read_dicom_file(pyd(name));
    ASSERT_EQ(b.shape, ref.shape);
    EXPECT_EQ(b.data, ref.data);
    EXPECT_EQ(b.geometry, ref.geometry);
  }
}

}  // namespace
}  // namespace medlens
