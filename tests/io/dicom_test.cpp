// DICOM reading against pydicom as the oracle, on the real files pydicom ships.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include "core/error.h"
#include "io/dicom.h"
#include "io/read.h"
#include "tools/test_util.h"

namespace fs = std::filesystem;

namespace medlens {
namespace {

std::string pyd(const std::string& name) { return test::pydicom_files() + "/" + name; }

// The oracle runs once for the whole suite: it decodes ~75 files.
class PydicomOracle : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    test::run_oracle("pydicom_dump.py", {dir_->path().string()});
    std::ifstream in(dir_->file("index.json"));
    index_ = new nlohmann::json(nlohmann::json::parse(in));
  }
  static void TearDownTestSuite() {
    delete index_;
    delete dir_;
  }
  static test::TempDir* dir_;
  static nlohmann::json* index_;
};
test::TempDir* PydicomOracle::dir_ = nullptr;
nlohmann::json* PydicomOracle::index_ = nullptr;

TEST_F(PydicomOracle, EveryFilePydicomDecodesWithNumpyReadsIdenticallyAfterRescale) {
  int decoded = 0;
  for (auto& [name, entry] : (*index_)["files"].items()) {
    if (entry["status"] != "decoded") continue;
    SCOPED_TRACE(name);
    ++decoded;
    const std::vector<float> want = test::read_f32(dir_->file(name + ".f32"));
    const auto shape = entry["shape"].get<std::vector<int64_t>>();
    VoxelBuffer got;
    ASSERT_NO_THROW(got = read_dicom_file(pyd(name)));
    EXPECT_EQ(got.shape, (Shape{shape[0], shape[1], shape[2], shape[3]}));
    ASSERT_EQ(got.data.size(), want.size());
    int64_t mismatches = 0;
    size_t first = 0;
    for (size_t i = 0; i < want.size(); ++i)
      if (got.data[i] != want[i] && !(std::isnan(got.data[i]) && std::isnan(want[i])))
        if (mismatches++ == 0) first = i;
    EXPECT_EQ(mismatches, 0) << "first at " << first << ": medlens " << got.data[first]
                             << " pydicom " << want[first];
  }
  // pydicom 2.3 decodes 26 of its own files with numpy alone; all must be covered.
  EXPECT_GE(decoded, 26);
  std::printf("[pydicom oracle] %d files decoded by pydicom+numpy, all identical in medlens\n", decoded);
}

TEST_F(PydicomOracle, EveryOtherFileIsDecodedOrRejectedNamingItsTransferSyntax) {
  std::map<std::string, int> counts;
  for (auto& [name, entry] : (*index_)["files"].items()) {
    if (entry["status"] == "decoded") continue;
    SCOPED_TRACE(name);
    const std::string path = pyd(name);
    try {
      VoxelBuffer b = read_dicom_file(path);
      EXPECT_GT(b.shape.elements(), 0);
      ++counts["decoded by medlens only"];
      if (entry.contains("pillow_shape")) {
        // An independent decoder (Pillow / OpenJPEG) agrees on lossy and lossless streams.
        const std::vector<float> ref = test::read_f32(dir_->file(name + ".pillow.f32"));
        const auto s = entry["pillow_shape"].get<std::vector<int64_t>>();
        ASSERT_EQ(b.shape, (Shape{s[0], s[1], s[2], s[3]}));
        double sum = 0;
        for (size_t i = 0; i < ref.size(); ++i) sum += std::abs(b.data[i] - ref[i]);
        EXPECT_LT(sum / static_cast<double>(ref.size()), 1.0)
            << "mean absolute difference to Pillow's decode";
        ++counts["  of which cross-checked against Pillow"];
      }
    } catch (const InputError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(path), std::string::npos) << msg;
      const std::string ts = entry.value("transfer_syntax", "");
      if (entry["status"] == "not-decodable" || entry["status"] == "no-pixels") {
        if (!ts.empty()) {
          EXPECT_NE(msg.find(ts), std::string::npos) << "error must name the transfer syntax: " << msg;
        } else {  // not DICOM at all (text, JSON) or no transfer syntax to name
          EXPECT_TRUE(msg.find("DICOM") != std::string::npos ||
                      msg.find("transfer syntax") != std::string::npos) << msg;
        }
      }
      ++counts[entry["status"] == "no-pixels" ? "rejected: no pixel data / not DICOM"
                                              : "rejected: pixel data undecodable"];
    }
  }
  for (auto& [k, v] : counts) std::printf("[pydicom files] %-40s %d\n", k.c_str(), v);
  EXPECT_GE(counts["decoded by medlens only"], 20) << "JPEG, JPEG-LS and JPEG 2000 files";
}

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

TEST(DicomRead, CtIsInHounsfieldUnitsWithGeometryFromTheHeader) {
  const VoxelBuffer b = read_dicom_file(pyd("CT_small.dcm"));
  EXPECT_EQ(b.metadata.modality, "CT");
  EXPECT_EQ(b.metadata.units, "HU");
  EXPECT_DOUBLE_EQ(b.metadata.rescale_intercept, -1024.0);
  // Stored 128..2191 with intercept -1024.
  const auto [lo, hi] = std::minmax_element(b.data.begin(), b.data.end());
  EXPECT_FLOAT_EQ(*lo, 128 - 1024.f);
  EXPECT_FLOAT_EQ(*hi, 2191 - 1024.f);
  // PixelSpacing 0.661468 (row\col), IPP -158.135803\-179.035797\-75.699997, axial.
  EXPECT_NEAR(b.geometry.spacing[0], 0.661468, 1e-6);
  EXPECT_NEAR(b.geometry.origin[0], -158.135803, 1e-6);
  EXPECT_NEAR(b.geometry.origin[2], -75.699997, 1e-6);
  EXPECT_EQ(b.geometry.orientation_code(), "LPS");
}

TEST(DicomRead, MultiFrameDoseGridUsesFrameOffsets) {
  const VoxelBuffer b = read_dicom_file(pyd("rtdose.dcm"));
  EXPECT_EQ(b.shape, (Shape{1, 15, 10, 10}));
  EXPECT_EQ(b.metadata.units, "Gy");
  EXPECT_GT(b.geometry.spacing[2], 0.0);
  const VoxelBuffer be = read_dicom_file(pyd("rtdose_expb.dcm"));
  EXPECT_EQ(be.data, b.data) << "big-endian 32-bit dose must decode like little-endian";
  const VoxelBuffer rle = read_dicom_file(pyd("rtdose_rle.dcm"));
  EXPECT_EQ(rle.data, b.data);
}

TEST(DicomRead, ColourIsRgbInPlanarChannels) {
  const VoxelBuffer b = read_dicom_file(pyd("SC_rgb_rle_2frame.dcm"));
  EXPECT_EQ(b.shape, (Shape{3, 2, 100, 100}));
  EXPECT_EQ(b.metadata.photometric, "RGB");
  // The first frame's top row is pure red in this test image.
  EXPECT_FLOAT_EQ(b.data[0], 255.f);
  EXPECT_FLOAT_EQ(b.data[2 * 100 * 100], 0.f);
  // JPEG baseline with YBR_FULL_422 comes out as RGB too.
  const VoxelBuffer j = read_dicom_file(pyd("SC_rgb_jpeg_dcmtk.dcm"));
  EXPECT_EQ(j.metadata.photometric, "RGB");
  EXPECT_NEAR(j.data[0], 255.f, 3.f);
}

TEST(DicomRead, Monochrome1IsInvertedOnTheStoredRange) {
  // Build a MONOCHROME1 file from MR_small by editing the header with DCMTK's dcmodify.
  test::TempDir tmp;
  const std::string f = tmp.file("mono1.dcm");
  fs::copy_file(pyd("MR_small.dcm"), f);
  auto r = test::run({"dcmodify", "-nb", "-m", "(0028,0004)=MONOCHROME1", "-i",
                      "(0028,1050)=600", "-i", "(0028,1051)=1200", f});
  ASSERT_EQ(r.status, 0) << r.error;
  const VoxelBuffer m2 = read_dicom_file(pyd("MR_small.dcm"));
  const VoxelBuffer m1 = read_dicom_file(f);
  EXPECT_EQ(m1.metadata.photometric, "MONOCHROME2");
  EXPECT_EQ(m1.metadata.tags.at("PhotometricInterpretationOriginal"), "MONOCHROME1");
  // MR_small is signed 16-bit: stored range -32768..32767, inverted v' = -1 - v.
  for (size_t i = 0; i < m2.data.size(); i += 97) EXPECT_FLOAT_EQ(m1.data[i], -1.f - m2.data[i]);
  ASSERT_TRUE(m1.metadata.window.has_value());
  EXPECT_DOUBLE_EQ(m1.metadata.window->center, -1.0 - 600.0);
  EXPECT_DOUBLE_EQ(m1.metadata.window->width, 1200.0);
}

TEST(DicomRead, BitsStoredMasksHighBits) {
  // MR_small stores 16 bits; claim 12 bits stored (HighBit 11) and check values are masked
  // to 12 bits and sign-extended from bit 11.
  test::TempDir tmp;
  const std::string f = tmp.file("bits12.dcm");
  fs::copy_file(pyd("MR_small.dcm"), f);
  auto r = test::run({"dcmodify", "-nb", "-m", "(0028,0101)=12", "-m", "(0028,0102)=11", f});
  ASSERT_EQ(r.status, 0) << r.error;
  const VoxelBuffer full = read_dicom_file(pyd("MR_small.dcm"));
  const VoxelBuffer masked = read_dicom_file(f);
  for (size_t i = 0; i < full.data.size(); ++i) {
    int v = static_cast<int>(full.data[i]) & 0xFFF;
    if (v & 0x800) v -= 0x1000;
    ASSERT_FLOAT_EQ(masked.data[i], static_cast<float>(v)) << i;
  }
}

TEST(DicomRead, NonImageAndBrokenFilesAreRefusedWithTheReason) {
  struct Case {
    const char* file;
    const char* reason;
  };
  for (const Case& c : {Case{"rtplan.dcm", "no pixel data"}, Case{"test-SR.dcm", "no pixel data"},
                        Case{"MR_truncated.dcm", "truncated"}, Case{"README.txt", "DICOM"}}) {
    SCOPED_TRACE(c.file);
    try {
      read_dicom_file(pyd(c.file));
      ADD_FAILURE() << "expected InputError";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(c.reason), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(c.file), std::string::npos) << e.what();
    }
  }
}

// A copy of a pydicom file with explicit-VR elements of group 0028 given new values of the
// same length.
struct Patch {
  uint16_t element;
  const char* vr;
  std::string value;
};
std::string patched_copy(const test::TempDir& dir, const std::string& name,
                         const std::vector<Patch>& patches) {
  std::string bytes = test::read_text(pyd(name));
  for (const Patch& p : patches) {
    const std::string key = std::string("\x28\x00", 2) + static_cast<char>(p.element & 0xFF) +
                            static_cast<char>(p.element >> 8) + p.vr;
    const size_t at = bytes.find(key);
    EXPECT_NE(at, std::string::npos) << name;
    if (at == std::string::npos) continue;
    EXPECT_EQ(static_cast<size_t>(static_cast<uint8_t>(bytes[at + 6])), p.value.size()) << name;
    bytes.replace(at + 8, p.value.size(), p.value);
  }
  const std::string out = dir.file("patched-" + name);
  std::ofstream(out, std::ios::binary) << bytes;
  return out;
}

// CT_small (uncompressed, 128x128) claiming to be 100 million frames of one pixel: refused by
// its byte count before any per-frame work (that took minutes and gigabytes).
std::string many_frames_copy(const test::TempDir& dir) {
  const std::string one{1, 0};
  const std::string path = patched_copy(dir, "CT_small.dcm", {{0x0010, "US", one}, {0x0011, "US", one}});
  std::string bytes = test::read_text(path);
  // Explicit VR little endian (0028,0008) IS "100000000 ", placed before Rows to keep tag order.
  const std::string frames = std::string("\x28\x00\x08\x00IS\x0a\x00", 8) + "100000000 ";
  const size_t rows = bytes.find(std::string("\x28\x00\x10\x00US", 6));
  EXPECT_NE(rows, std::string::npos);
  bytes.insert(rows, frames);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  return path;
}

// A patched copy whose JPEG frame header (SOF `marker`) also states 12000x12000: header and
// stream agree, but a few kilobytes cannot hold that many pixels.
std::string consistent_jpeg_copy(const test::TempDir& dir, const std::string& name, char marker,
                                 const std::vector<Patch>& patches) {
  const std::string path = patched_copy(dir, name, patches);
  std::string bytes = test::read_text(path);
  const size_t soi = bytes.find(std::string("\xFF\xD8\xFF", 3));
  const size_t sof = bytes.find(std::string{'\xFF', marker}, soi);
  EXPECT_NE(soi, std::string::npos) << name;
  EXPECT_NE(sof, std::string::npos) << name;
  if (sof == std::string::npos) return path;
  const std::string size = {static_cast<char>(12000 >> 8), static_cast<char>(12000 & 0xFF)};
  bytes.replace(sof + 5, 2, size);  // Y
  bytes.replace(sof + 7, 2, size);  // X
  const std::string out = dir.file("consistent-" + name);
  std::ofstream(out, std::ios::binary) << bytes;
  return out;
}

TEST(DicomRead, JpegWithATemMarkerBeforeItsFrameHeaderIsRefusedNotDecodedForever) {
  // The fuzzer's find: DCMTK's scan for the JPEG frame header never steps past a TEM marker.
  // Here the APP0 marker right after SOI becomes FF01.
  test::TempDir dir;
  std::string bytes = test::read_text(pyd("SC_rgb_jpeg_dcmtk.dcm"));
  const size_t soi = bytes.find(std::string("\xFF\xD8\xFF\xE0", 4));
  ASSERT_NE(soi, std::string::npos);
  bytes[soi + 3] = '\x01';
  const std::string path = dir.file("tem.dcm");
  std::ofstream(path, std::ios::binary) << bytes;
  try {
    read_dicom_file(path);
    ADD_FAILURE() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("TEM marker (FF01) before any frame header"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST(DicomRead, FilesClaimingMorePixelsThanTheyHoldAreRefusedBeforeDecoding) {
  // Kilobytes of JPEG or JPEG 2000 whose header claims 12000x12000 pixels used to decode into a
  // gigabyte of mostly empty image (seconds of work, and a wrong image).
  test::TempDir dir;
  const std::string big{static_cast<char>(12000 & 0xFF), static_cast<char>(12000 >> 8)};
  const std::vector<Patch> huge = {{0x0010, "US", big}, {0x0011, "US", big}};
  struct Case {
    std::string file;
    const char* reason;
  };
  const std::vector<Case> cases = {
      {patched_copy(dir, "SC_rgb_jpeg_dcmtk.dcm", huge), "compressed as 100x100 with 3"},
      {patched_copy(dir, "JPEG-lossy.dcm", huge), "compressed as 256x1024 with 1"},
      {patched_copy(dir, "MR_small_jpeg_ls_lossless.dcm", huge), "compressed as 64x64 with 1"},
      {patched_copy(dir, "JPEG2000.dcm", huge), "compressed as 256x1024 with 1"},
      {patched_copy(dir, "MR_small_RLE.dcm", huge), "RLE cannot expand"},
      {consistent_jpeg_copy(dir, "SC_rgb_jpeg_dcmtk.dcm", '\xC0', huge),
       "holds 1724 bytes, fewer than the 562500 its 1 frame(s) of 12000x12000 need"},
      {consistent_jpeg_copy(dir, "SC_rgb_jpeg_gdcm.dcm", '\xC3', huge),
       "fewer than the 18000000 its 1 frame(s) of 12000x12000 need"},
      {patched_copy(dir, "rtdose_rle.dcm", {{0x0008, "IS", "99"}}),
       "claims 99 frames but the compressed pixel data holds 15 fragments"},
      {many_frames_copy(dir), "pixel data is truncated: 32768 bytes, 200000000 expected"}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.file);
    try {
      read_dicom_file(c.file);
      ADD_FAILURE() << "expected InputError";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(c.reason), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(c.file), std::string::npos) << e.what();
    }
  }
}

TEST(DicomRead, HeaderScanDoesNotNeedPixels) {
  const DicomFileHeader h = read_dicom_header(pyd("CT_small.dcm"));
  EXPECT_EQ(h.modality, "CT");
  EXPECT_EQ(h.rows, 128);
  EXPECT_EQ(h.columns, 128);
  EXPECT_TRUE(h.has_pixels);
  ASSERT_TRUE(h.position.has_value());
  ASSERT_TRUE(h.orientation.has_value());
  EXPECT_EQ(transfer_syntax_name("1.2.840.10008.1.2.4.90"), "JPEG 2000 (Lossless only)");
  const DicomFileHeader sr = read_dicom_header(pyd("test-SR.dcm"));
  EXPECT_FALSE(sr.has_pixels);
}

}  // namespace
}  // namespace medlens
