// .npz reading against numpy: tests/oracles/npz_make.py writes archives with np.savez and
// np.savez_compressed (and hand-made zips) and dumps what numpy holds; medlens must read the
// same values, list the same arrays, and refuse every corrupted variant with InputError.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <memory>

#include <zlib.h>

#include "core/error.h"
#include "io/file_util.h"
#include "io/npz.h"
#include "io/read.h"
#include "tools/test_util.h"

namespace medlens {
namespace {

using nlohmann::json;

// One oracle run shared by every test of the suite (it writes ~60 small files).
class NpzOracle : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::make_unique<test::TempDir>();
    test::run_oracle("npz_make.py", {dir_->path().string()});
    manifest_ = json::parse(test::read_text(dir_->file("manifest.json")));
  }
  static void TearDownTestSuite() { dir_.reset(); }
  static std::string file(const std::string& name) {
    return name.starts_with("/") ? name : dir_->file(name);
  }
  static inline std::unique_ptr<test::TempDir> dir_;
  static inline json manifest_;
};

std::vector<uint8_t> bytes_of(const std::string& path) { return read_file_bytes(path); }

void write_bytes(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(b.data()),
                                              static_cast<std::streamsize>(b.size()));
}

ReadOptions opts(const std::string& key, int64_t index = 0) {
  ReadOptions o;
  o.npz_key = key;
  o.npz_index = index;
  return o;
}

// The InputError message for reading `path`, or "" when it reads fine.
std::string read_error(const std::string& path, const ReadOptions& o = {}) {
  try {
    read_npz(path, o);
  } catch (const InputError& e) {
    EXPECT_EQ(e.path(), path);
    return e.what();
  }
  return "";
}

TEST_F(NpzOracle, EveryCaseDecodesToNumpysValues) {
  ASSERT_GE(manifest_["cases"].size(), 40u);
  for (const auto& c : manifest_["cases"]) {
    const std::string path = file(c["file"]);
    SCOPED_TRACE(path + " key=" + c["key"].get<std::string>() + " index=" +
                 std::to_string(c["index"].get<int64_t>()));
    ReadOptions o;
    o.npz_key = c["key"];
    o.npz_index = c["index"];
    const VoxelBuffer b = read_npz(path, o);
    const auto s = c["shape"].get<std::vector<int64_t>>();
    ASSERT_EQ(b.shape, (Shape{s[0], s[1], s[2], s[3]}));
    const std::vector<float> expected = test::read_f32(dir_->file(c["raw"]));
    ASSERT_EQ(b.data.size(), expected.size());
    EXPECT_EQ(b.data, expected);
    EXPECT_EQ(b.metadata.photometric, s[0] == 3 ? "RGB" : "MONOCHROME2");
    EXPECT_EQ(b.metadata.source_format, "npz");
    if (!o.npz_key.empty()) {
      EXPECT_EQ(b.metadata.tags.at("NpzKey"), o.npz_key);
    }
    EXPECT_EQ(b.metadata.tags.at("NpzIndex"), std::to_string(o.npz_index));
    if (c["label"].is_string()) {
      ASSERT_TRUE(b.metadata.tags.count("NpzLabel"));
      EXPECT_EQ(b.metadata.tags.at("NpzLabel"), c["label"].get<std::string>());
    }
    EXPECT_EQ(b.geometry, Geometry{});
  }
}

TEST_F(NpzOracle, DefaultKeyIsTheFirstImagesArray) {
  const VoxelBuffer b = read_npz(file("medmnist_compressed.npz"));
  EXPECT_EQ(b.metadata.tags.at("NpzKey"), "train_images");
  EXPECT_EQ(b.shape, (Shape{1, 1, 28, 28}));
  // Without any "*_images" array: the first array with two or more dimensions.
  EXPECT_EQ(read_npz(file("dtypes_plain.npz")).metadata.tags.at("NpzKey"), "f32");
}

TEST_F(NpzOracle, ListMatchesNumpysNamesShapesAndDtypes) {
  ASSERT_GE(manifest_["archives"].size(), 9u);
  for (const auto& [name, arrays] : manifest_["archives"].items()) {
    SCOPED_TRACE(name);
    const std::vector<NpyArrayInfo> got = list_npz(file(name));
    ASSERT_EQ(got.size(), arrays.size());
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].name, arrays[i]["name"].get<std::string>());
      EXPECT_EQ(got[i].shape, arrays[i]["shape"].get<std::vector<int64_t>>());
      EXPECT_EQ(got[i].dtype, arrays[i]["dtype"].get<std::string>());
    }
  }
}

TEST_F(NpzOracle, ArraysTagListsEveryArray) {
  const VoxelBuffer b = read_npz(file("medmnist_plain.npz"));
  EXPECT_EQ(b.metadata.tags.at("NpzArrays"),
            "train_images (6, 28, 28) uint8; train_labels (6, 1) uint8; "
            "val_images (3, 28, 28) uint8; val_labels (3, 1) uint8; "
            "test_images (2, 28, 28) uint8; test_labels (2, 1) uint8");
  const VoxelBuffer d = read_npz(file("dtypes_plain.npz"), opts("be_i2"));
  EXPECT_NE(d.metadata.tags.at("NpzArrays").find("be_i2 (10, 12) >i2; "), std::string::npos);
  EXPECT_NE(d.metadata.tags.at("NpzArrays").find("labels_only (5,) int64"), std::string::npos);
}

TEST_F(NpzOracle, MemoryDecodeIsTheFileDecode) {
  const std::string path = file("rgb_compressed.npz");
  const std::vector<uint8_t> raw = bytes_of(path);
  const VoxelBuffer a = decode_npz_memory(raw.data(), raw.size(), path, "train_images", 2);
  const VoxelBuffer b = read_npz(path, opts("train_images", 2));
  EXPECT_EQ(a.shape, (Shape{3, 1, 28, 28}));
  EXPECT_EQ(a.data, b.data);
  EXPECT_EQ(a.metadata.tags, b.metadata.tags);
}

TEST_F(NpzOracle, OutOfRangeIndexIsRefused) {
  const std::string path = file("medmnist_plain.npz");
  EXPECT_NE(read_error(path, opts("train_images", 6)).find("out of range"),
            std::string::npos);
  EXPECT_NE(read_error(path, opts("train_images", -1)).find("out of range"),
            std::string::npos);
  EXPECT_EQ(read_error(path, opts("train_images", 5)), "");
  // A single (H,W,3) image has only index 0.
  EXPECT_NE(read_error(file("dtypes_plain.npz"), opts("rgb_single", 1))
                .find("single image"),
            std::string::npos);
}

TEST_F(NpzOracle, UnknownKeyAndNonImageArrayAreRefused) {
  const std::string path = file("dtypes_compressed.npz");
  const std::string unknown = read_error(path, opts("nope"));
  EXPECT_NE(unknown.find("no array named 'nope'"), std::string::npos) << unknown;
  EXPECT_NE(unknown.find("f32, i16"), std::string::npos) << unknown;
  EXPECT_NE(read_error(path, opts("labels_only")).find("not an image"),
            std::string::npos);
}

TEST_F(NpzOracle, BadNpyContentIsRefusedWithTheReason) {
  const std::map<std::string, std::string> expected = {
      {"garbage_header", "bad .npy header"}, {"missing_key", "are required"},
      {"complex_dtype", "'<c8' is not supported"}, {"structured", "structured dtypes"},
      {"negative_dim", "negative dimension"},     {"overflow_shape", "too large"},
      {"short_data", "array data is truncated"}, {"bad_magic", "bad magic"},
      {"bad_version", "format version 7.0"},     {"huge_header_len", "bytes long"},
      {"not_an_image", "not an image"}};
  ASSERT_EQ(manifest_["bad"].size(), expected.size());
  for (const auto& b : manifest_["bad"]) {
    const std::string path = file(b["file"]);
    SCOPED_TRACE(path);
    const std::string msg = read_error(path);
    EXPECT_NE(msg.find(expected.at(b["why"])), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

TEST_F(NpzOracle, TruncatedArchivesAreRefused) {
  for (const char* name : {"medmnist_plain.npz", "medmnist_compressed.npz", "zip64.npz"}) {
    const std::vector<uint8_t> whole = bytes_of(file(name));
    for (size_t keep : {size_t{0}, size_t{10}, size_t{100}, whole.size() / 2, whole.size() - 1}) {
      SCOPED_TRACE(std::string(name) + " cut to " + std::to_string(keep));
      const std::string path = dir_->file("cut.npz");
      write_bytes(path, std::vector<uint8_t>(whole.begin(), whole.begin() + keep));
      EXPECT_NE(read_error(path), "");
      EXPECT_THROW(list_npz(path), InputError);
    }
  }
}

// Offset of the first member's data (the local header's name and extra field skipped).
size_t first_member_data(const std::vector<uint8_t>& z) {
  const size_t n = z[26] | z[27] << 8, e = z[28] | z[29] << 8;
  return 30 + n + e;
}

TEST_F(NpzOracle, FlippedStoredByteFailsTheCrc) {
  std::vector<uint8_t> z = bytes_of(file("medmnist_plain.npz"));
  // Inside the last image of train_images: index 0 decodes, then the CRC check catches it.
  z[first_member_data(z) + 128 + 5 * 784 + 300] ^= 0x5a;
  const std::string path = dir_->file("flipped.npz");
  write_bytes(path, z);
  const std::string msg = read_error(path, opts("train_images", 0));
  EXPECT_NE(msg.find("CRC-32 mismatch"), std::string::npos) << msg;
  EXPECT_NE(msg.find("train_images.npy"), std::string::npos) << msg;
  // Other members are intact and still readable.
  EXPECT_EQ(read_error(path, opts("val_images")), "");
}

TEST_F(NpzOracle, FlippedCompressedBytesAreRefused) {
  const std::vector<uint8_t> whole = bytes_of(file("medmnist_compressed.npz"));
  const size_t start = first_member_data(whole);
  for (size_t at : {start + 2, start + 40, start + 400, start + 2000}) {
    std::vector<uint8_t> z = whole;
    z[at] ^= 0xff;
    const std::string path = dir_->file("flipped.npz");
    write_bytes(path, z);
    SCOPED_TRACE(at);
    EXPECT_NE(read_error(path, opts("train_images")), "");
  }
}

TEST(NpzBadInput, RandomBytesEmptyFilesAndFoldersAreRefused) {
  test::TempDir tmp;
  const std::string empty = tmp.file("empty.npz"), noise = tmp.file("noise.npz");
  write_bytes(empty, {});
  std::vector<uint8_t> r(5000);
  uint32_t x = 12345;
  for (auto& v : r) v = static_cast<uint8_t>((x = x * 1664525u + 1013904223u) >> 24);
  write_bytes(noise, r);
  EXPECT_NE(read_error(empty).find("file is empty"), std::string::npos);
  EXPECT_NE(read_error(noise).find("not a zip archive"), std::string::npos);
  EXPECT_THROW(read_npz(tmp.file("missing.npz")), InputError);
  EXPECT_THROW(read_npz(tmp.path().string()), InputError);
}

// A one-member zip: `payload` stored as-is under deflate, with a claimed uncompressed size.
std::vector<uint8_t> deflated_zip(const std::string& name, const std::string& plain,
                                  uint32_t claimed_size) {
  std::vector<uint8_t> payload(compressBound(plain.size()) + 64);
  z_stream zs{};
  deflateInit2(&zs, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY);  // raw deflate
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(plain.data()));
  zs.avail_in = static_cast<uInt>(plain.size());
  zs.next_out = payload.data();
  zs.avail_out = static_cast<uInt>(payload.size());
  deflate(&zs, Z_FINISH);
  payload.resize(zs.total_out);
  deflateEnd(&zs);
  std::vector<uint8_t> z;
  auto u16 = [&](uint32_t v) { z.push_back(v & 0xff); z.push_back(v >> 8 & 0xff); };
  auto u32 = [&](uint32_t v) { u16(v & 0xffff); u16(v >> 16); };
  const auto csize = static_cast<uint32_t>(payload.size());
  const auto nlen = static_cast<uint32_t>(name.size());
  u32(0x04034b50); u16(20); u16(0); u16(8); u16(0); u16(0); u32(0);
  u32(csize); u32(claimed_size); u16(nlen); u16(0);
  z.insert(z.end(), name.begin(), name.end());
  z.insert(z.end(), payload.begin(), payload.end());
  const auto cd = static_cast<uint32_t>(z.size());
  u32(0x02014b50); u16(20); u16(20); u16(0); u16(8); u16(0); u16(0); u32(0);
  u32(csize); u32(claimed_size); u16(nlen); u16(0); u16(0); u16(0); u16(0); u32(0); u32(0);
  z.insert(z.end(), name.begin(), name.end());
  const auto cd_size = static_cast<uint32_t>(z.size()) - cd;
  u32(0x06054b50); u16(0); u16(0); u16(1); u16(1); u32(cd_size); u32(cd); u16(0);
  return z;
}

std::string npy_v1(const std::string& dict) {
  std::string header = dict + std::string(63 - (10 + dict.size()) % 64, ' ') + "\n";
  return std::string("\x93NUMPY\x01\x00", 8) + static_cast<char>(header.size() & 0xff) +
         static_cast<char>(header.size() >> 8) + header;
}

TEST(NpzBadInput, ImageLargerThanTheVoxelLimitIsRefusedBeforeAllocating) {
  // The directory claims 3.6 GB of float32 (1, 30000, 30000) but the member holds only the
  // header: refused on the header's word, before inflating or allocating anything.
  const std::string npy =
      npy_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 30000, 30000), }");
  const uint32_t claimed = static_cast<uint32_t>(npy.size()) + 30000u * 30000u * 4u;
  const std::vector<uint8_t> z = deflated_zip("images.npy", npy, claimed);
  try {
    decode_npz_memory(z.data(), z.size(), "big.npz", "", 0);
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("exceeds the limit"), std::string::npos) << e.what();
  }
  // Listing reads headers only, so it reports the claimed shape.
  const auto arrays = list_npz_memory(z.data(), z.size(), "big.npz");
  ASSERT_EQ(arrays.size(), 1u);
  EXPECT_EQ(arrays[0].shape, (std::vector<int64_t>{1, 30000, 30000}));
  EXPECT_EQ(arrays[0].dtype, "float32");
}

TEST(NpzBadInput, DeflateStreamShorterThanItsClaimIsRefused) {
  // (1, 64, 64) uint8 whose data was never written: inflate runs dry before the image ends.
  const std::string npy =
      npy_v1("{'descr': '|u1', 'fortran_order': False, 'shape': (1, 64, 64), }");
  const std::vector<uint8_t> z =
      deflated_zip("images.npy", npy + std::string(100, '\7'),
                   static_cast<uint32_t>(npy.size() + 64 * 64));
  try {
    decode_npz_memory(z.data(), z.size(), "short.npz", "", 0);
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("ends early"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace medlens
