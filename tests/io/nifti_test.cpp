// NIfTI reading and writing, checked against nibabel (tests/oracles/nibabel_*.py) on its own
// test data, mricron's templates and a generated matrix of every datatype, byte order, version
// and container; plus round trips and malformed input.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/resource.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "core/error.h"
#include "core/image.h"
#include "io/nifti.h"
#include "io/read.h"
#include "io/write.h"
#include "tools/test_util.h"

namespace medlens {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::vector<uint8_t> file_bytes(const std::string& path) {
  const std::string s = test::read_text(path);
  return {s.begin(), s.end()};
}

void put_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

std::vector<uint8_t> gzip_bytes(const std::vector<uint8_t>& in) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::vector<uint8_t> out(deflateBound(&zs, in.size()) + 64);
  zs.next_in = const_cast<Bytef*>(in.data());
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

template <class T>
void poke(std::vector<uint8_t>& b, size_t offset, T v) {
  std::memcpy(b.data() + offset, &v, sizeof v);  // the files we patch are little-endian
}

// Runs nibabel_dump.py on `files`; returns one JSON per file (voxels in dir/<i>.f32).
std::vector<json> nibabel_dump(const std::vector<std::string>& files, const std::string& dir) {
  std::vector<std::string> args{dir};
  args.insert(args.end(), files.begin(), files.end());
  test::run_oracle("nibabel_dump.py", args);
  std::vector<json> out;
  for (size_t i = 0; i < files.size(); ++i) {
    const std::string text = test::read_text(dir + "/" + std::to_string(i) + ".json");
    out.push_back(text.empty() ? json{{"ok", false}, {"error", "no oracle output"}, {"missing", true}}
                               : json::parse(text));
  }
  return out;
}

std::array<double, 16> affine_of(const json& j) {
  std::array<double, 16> a{};
  for (int i = 0; i < 16; ++i) a[i] = j[i].get<double>();
  return a;
}

bool same_bits(float a, float b) {
  if (std::isnan(a) && std::isnan(b)) return true;
  uint32_t x, y;
  std::memcpy(&x, &a, 4);
  std::memcpy(&y, &b, 4);
  return x == y;
}

// medlens must read `file` as nibabel does (shape, every float32 value bit for bit, affine and
// spacing), or refuse it with an InputError naming it when nibabel cannot load it / it is
// complex. `check_zooms` also compares spacing with nibabel's header zooms.
// Returns true when the file was read (not refused).
bool expect_same_as_nibabel(const std::string& file, const json& ref, const std::string& f32,
                            bool check_zooms) {
  SCOPED_TRACE(file);
  if (!ref.at("ok").get<bool>()) {
    EXPECT_FALSE(ref.contains("missing")) << "the oracle wrote nothing for this file";
    try {
      read_nifti(file);
      ADD_FAILURE() << "medlens read a file nibabel refuses (" << ref.at("error") << ")";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(fs::path(file).stem().string()), std::string::npos)
          << e.what();
      if (ref.value("complex", false)) {
        EXPECT_NE(std::string(e.what()).find("complex"), std::string::npos) << e.what();
      }
    }
    return false;
  }
  const VoxelBuffer b = read_nifti(file);
  const json& s = ref.at("shape");
  const Shape want_shape{s[0].get<int64_t>(), s[1].get<int64_t>(), s[2].get<int64_t>(),
                         s[3].get<int64_t>()};
  EXPECT_EQ(b.shape, want_shape);
  const std::vector<float> want = test::read_f32(f32);
  EXPECT_EQ(want.size(), b.data.size());
  int64_t bad = 0, first = -1;
  for (size_t i = 0; i < std::min(want.size(), b.data.size()); ++i)
    if (!same_bits(b.data[i], want[i])) {
      if (first < 0) first = static_cast<int64_t>(i);
      ++bad;
    }
  EXPECT_EQ(bad, 0) << "first difference at " << first << ": medlens "
                    << (first >= 0 ? b.data[first] : 0) << ", nibabel "
                    << (first >= 0 ? want[first] : 0);

  // medlens reports millimetres; nibabel leaves meters/microns as stored.
  const int units = ref.at("xyzt_units").get<int>() & 7;
  const double f = units == 1 ? 1000.0 : units == 3 ? 0.001 : 1.0;
  const auto nib = affine_of(ref.at("affine"));
  const auto ours = to_ras_affine(b.geometry);
  for (int i = 0; i < 12; ++i)
    EXPECT_NEAR(ours[i], nib[i] * f, 1e-4 * std::max(1.0, std::abs(nib[i] * f)))
        << "affine[" << i << "]";
  for (int c = 0; c < 3; ++c) {
    const double norm_c = ref.at("column_norms")[c].get<double>() * f;
    EXPECT_NEAR(b.geometry.spacing[c], norm_c, 1e-4 * std::max(1.0, norm_c)) << "spacing " << c;
    if (check_zooms) {
      EXPECT_NEAR(b.geometry.spacing[c], ref.at("zooms")[c].get<double>(), 1e-4) << "zoom " << c;
    }
  }
  EXPECT_EQ(b.metadata.source_format, "nifti");
  return true;
}

std::vector<std::string> files_in(const std::string& dir, const std::vector<std::string>& exts) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    for (const auto& x : exts)
      if (name.size() > x.size() && name.compare(name.size() - x.size(), x.size(), x) == 0)
        out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool has_file(const std::vector<std::string>& files, const std::string& name) {
  return std::any_of(files.begin(), files.end(),
                     [&](const std::string& f) { return fs::path(f).filename() == name; });
}

// ---------------------------------------------------------------------------------------------
// Against nibabel

TEST(NiftiOracle, NibabelTestDataMatchesNibabel) {
  const auto files = files_in(test::nibabel_data(), {".nii", ".nii.gz", ".hdr"});
  for (const char* name : {"anatomical.nii", "functional.nii", "example4d.nii.gz",
                           "example_nifti2.nii.gz", "standard.nii.gz", "nifti1.hdr"})
    ASSERT_TRUE(has_file(files, name)) << name << " missing from " << test::nibabel_data();
  test::TempDir tmp;
  const auto refs = nibabel_dump(files, tmp.path().string());
  std::vector<std::string> read;
  for (size_t i = 0; i < files.size(); ++i)
    if (expect_same_as_nibabel(files[i], refs[i], tmp.file(std::to_string(i) + ".f32"), true))
      read.push_back(fs::path(files[i]).filename().string());
  for (const char* name : {"anatomical.nii", "functional.nii", "example4d.nii.gz",
                           "example_nifti2.nii.gz", "standard.nii.gz", "row_major.dconn.nii"})
    EXPECT_TRUE(has_file(read, name)) << name << " should be readable by both";
  EXPECT_FALSE(has_file(read, "nifti1.hdr")) << "its .img is not shipped";
}

TEST(NiftiOracle, MricronTemplatesMatchNibabel) {
  const auto files = files_in(test::mricron_templates(), {".nii.gz"});
  ASSERT_TRUE(has_file(files, "ch2.nii.gz"));
  ASSERT_TRUE(has_file(files, "ch2bet.nii.gz"));
  test::TempDir tmp;
  const auto refs = nibabel_dump(files, tmp.path().string());
  for (size_t i = 0; i < files.size(); ++i)
    EXPECT_TRUE(expect_same_as_nibabel(files[i], refs[i], tmp.file(std::to_string(i) + ".f32"), true));
}

// A matrix of files written with nibabel's header classes (nibabel_make.py), read by nibabel.
class NiftiMatrix : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir;
    fs::create_directories(dir_->path() / "files");
    fs::create_directories(dir_->path() / "dump");
    const auto made = test::run_oracle("nibabel_make.py", {dir_->file("files")});
    std::istringstream lines(made.output);
    files_ = new std::vector<std::string>;
    for (std::string line; std::getline(lines, line);)
      if (!line.empty()) files_->push_back(dir_->file("files/" + line));
    refs_ = new std::vector<json>(nibabel_dump(*files_, dir_->file("dump")));
  }
  static void TearDownTestSuite() {
    delete refs_;
    delete files_;
    delete dir_;
  }
  static std::string file(const std::string& name) { return dir_->file("files/" + name); }
  static inline test::TempDir* dir_ = nullptr;
  static inline std::vector<std::string>* files_ = nullptr;
  static inline std::vector<json>* refs_ = nullptr;
};

TEST_F(NiftiMatrix, EveryDatatypeByteOrderVersionAndContainerMatchesNibabel) {
  ASSERT_GE(files_->size(), 100u);
  int read = 0, refused = 0;
  for (size_t i = 0; i < files_->size(); ++i) {
    const bool ok = expect_same_as_nibabel((*files_)[i], (*refs_)[i],
                                           dir_->file("dump/" + std::to_string(i) + ".f32"), false);
    ok ? ++read : ++refused;
  }
  EXPECT_EQ(refused, 3) << "complex64, bad_quaternion and bad_inter are refused by nibabel";
  EXPECT_EQ(read + refused, static_cast<int>(files_->size()));
}

TEST_F(NiftiMatrix, RefusalsExplainThemselves) {
  auto reason = [](const std::string& f) -> std::string {
    try {
      read_nifti(f);
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(f), std::string::npos) << e.what();
      return e.reason();
    }
    return "(read without error)";
  };
  EXPECT_NE(reason(file("complex64.nii")).find("complex"), std::string::npos);
  EXPECT_NE(reason(file("bad_quaternion.nii")).find("quaternion"), std::string::npos);
  EXPECT_NE(reason(file("bad_inter.nii")).find("scl_inter"), std::string::npos);
}

TEST_F(NiftiMatrix, MetersAndMicronsBecomeMillimetres) {
  const VoxelBuffer m = read_nifti(file("units_meters.nii"));
  EXPECT_NEAR(m.geometry.spacing[0], 0.9, 1e-4);
  EXPECT_NEAR(m.geometry.spacing[2], 2.5, 1e-4);
  ASSERT_FALSE(m.metadata.warnings.empty());
  EXPECT_TRUE(std::any_of(m.metadata.warnings.begin(), m.metadata.warnings.end(),
                          [](const std::string& w) { return w.find("meters") != std::string::npos; }));
  const VoxelBuffer u = read_nifti(file("units_microns.nii"));
  EXPECT_NEAR(u.geometry.spacing[1], 1.1, 1e-4);
}

TEST_F(NiftiMatrix, ColourBecomesChannels) {
  const VoxelBuffer rgb = read_nifti(file("rgb24_3d.nii"));
  EXPECT_EQ(rgb.shape, (Shape{3, 2, 3, 4}));
  EXPECT_EQ(rgb.metadata.photometric, "RGB");
  const VoxelBuffer rgba = read_nifti(file("rgba32_4d.nii"));
  EXPECT_EQ(rgba.shape, (Shape{8, 2, 3, 4}));
  EXPECT_EQ(rgba.metadata.tags.at("datatype"), "RGBA32");
}

TEST_F(NiftiMatrix, GzippedImgBesidePlainHdrIsRead) {
  // nibabel pairs .hdr with .img only; medlens also finds x.img.gz beside x.hdr, and the header
  // from the .img path.
  test::TempDir tmp;
  fs::copy_file(file("pair_int16.hdr"), tmp.file("p.hdr"));
  put_bytes(tmp.file("p.img.gz"), gzip_bytes(file_bytes(file("pair_int16.img"))));
  const VoxelBuffer want = read_nifti(file("pair_int16.hdr"));
  for (const std::string& path : {tmp.file("p.hdr"), tmp.file("p.img.gz")}) {
    const VoxelBuffer got = read_nifti(path);
    EXPECT_EQ(got.shape, want.shape);
    EXPECT_EQ(got.data, want.data);
    EXPECT_EQ(got.geometry, want.geometry);
  }
}

TEST_F(NiftiMatrix, DecodeMemoryIsReadNifti) {
  for (const char* name : {"int16_be_v2_qform.nii.gz", "float64_be_v2_fallback.nii", "rgb24_4d.nii"}) {
    SCOPED_TRACE(name);
    const auto bytes = file_bytes(file(name));
    ASSERT_FALSE(bytes.empty());
    const VoxelBuffer a = decode_nifti_memory(bytes.data(), bytes.size(), name);
    const VoxelBuffer b = read_nifti(file(name));
    EXPECT_EQ(a.shape, b.shape);
    ASSERT_EQ(a.data.size(), b.data.size());
    for (size_t i = 0; i < a.data.size(); ++i) ASSERT_TRUE(same_bits(a.data[i], b.data[i])) << i;
    EXPECT_EQ(a.geometry, b.geometry);
  }
}

// ---------------------------------------------------------------------------------------------
// Writing

Geometry oblique_geometry() {
  // A rotation about an oblique axis, anisotropic spacing, an off-centre origin.
  const double ax = 0.35, ay = -0.2, az = 0.6;
  const double cx = std::cos(ax), sx = std::sin(ax), cy = std::cos(ay), sy = std::sin(ay),
               cz = std::cos(az), sz = std::sin(az);
  // R = Rz * Ry * Rx
  Geometry g;
  g.direction = {cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx,
                 sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx,
                 -sy,     cy * sx,                cy * cx};
  g.spacing = {0.7, 1.3, 2.9};
  g.origin = {-12.3, 45.6, 78.9};
  return g;
}

VoxelBuffer pattern(const Shape& shape, const Geometry& g) {
  VoxelBuffer b;
  b.shape = shape;
  b.geometry = g;
  b.data.resize(static_cast<size_t>(shape.elements()));
  std::mt19937 rng(7);
  std::normal_distribution<float> n(0.f, 300.f);
  for (auto& v : b.data) v = n(rng);
  b.data[0] = -0.0f;
  b.data[1] = 1e-42f;  // denormal
  b.data[2] = 3.4e38f;
  return b;
}

void expect_geometry_near(const Geometry& got, const Geometry& want) {
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(got.spacing[i], want.spacing[i], 2e-6 * want.spacing[i]) << "spacing " << i;
    EXPECT_NEAR(got.origin[i], want.origin[i], 2e-6 * std::max(1.0, std::abs(want.origin[i])))
        << "origin " << i;
  }
  for (int i = 0; i < 9; ++i)
    EXPECT_NEAR(got.direction[i], want.direction[i], 2e-6) << "direction " << i;
}

TEST(NiftiWrite, RoundTripKeepsValuesAndGeometry) {
  test::TempDir tmp;
  const Geometry g = oblique_geometry();
  for (const Shape& shape : {Shape{1, 6, 5, 7}, Shape{2, 4, 3, 5}}) {
    for (const char* ext : {".nii", ".nii.gz"}) {
      SCOPED_TRACE(std::to_string(shape.c) + " channel(s) " + ext);
      VoxelBuffer src = pattern(shape, g);
      const std::vector<float> values = src.data;
      const Image image = Image::from_buffer(std::move(src));
      const std::string path = tmp.file("rt" + std::to_string(shape.c) + ext);
      write_nifti(image, path);
      const VoxelBuffer back = read_nifti(path);
      EXPECT_EQ(back.shape, shape);
      ASSERT_EQ(back.data.size(), values.size());
      for (size_t i = 0; i < values.size(); ++i) ASSERT_TRUE(same_bits(back.data[i], values[i])) << i;
      expect_geometry_near(back.geometry, g);
      EXPECT_EQ(back.metadata.tags.at("descrip"), "medlens");
      EXPECT_EQ(back.metadata.tags.at("sform_code"), "1");
      EXPECT_EQ(back.metadata.tags.at("qform_code"), "1");
      EXPECT_EQ(back.metadata.tags.at("xyzt_units"), "2");
    }
  }
}

TEST(NiftiWrite, NibabelReadsWhatMedlensWrites) {
  test::TempDir tmp;
  Geometry sheared = oblique_geometry();
  {  // tilt the z axis towards y by 12 degrees: unit columns, not orthogonal
    const double t = 12.0 * M_PI / 180.0;
    const Vec3 y = sheared.axis(1), z = sheared.axis(2);
    for (int r = 0; r < 3; ++r) sheared.direction[r * 3 + 2] = std::cos(t) * z[r] + std::sin(t) * y[r];
  }
  Geometry flipped = oblique_geometry();
  for (int r = 0; r < 3; ++r) flipped.direction[r * 3 + 0] *= -1;  // left-handed
  struct Case {
    std::string name;
    Shape shape;
    Geometry g;
    bool qform;
  };
  const std::vector<Case> cases{{"oblique.nii", {1, 6, 5, 7}, oblique_geometry(), true},
                                {"two_channels.nii.gz", {2, 4, 3, 5}, oblique_geometry(), true},
                                {"flipped.nii.gz", {1, 3, 4, 5}, flipped, true},
                                {"sheared.nii", {1, 3, 4, 5}, sheared, false},
                                {"wide_nifti2.nii.gz", {1, 1, 2, 40000}, oblique_geometry(), true},
                                {"multi_block.nii.gz", {1, 40, 128, 128}, oblique_geometry(), true}};
  std::vector<std::string> files;
  std::vector<std::vector<float>> values;
  for (const Case& c : cases) {
    VoxelBuffer b = pattern(c.shape, c.g);
    values.push_back(b.data);
    files.push_back(tmp.file(c.name));
    write_nifti(Image::from_buffer(std::move(b)), files.back());
  }
  fs::create_directories(tmp.path() / "dump");
  const auto refs = nibabel_dump(files, tmp.file("dump"));
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    SCOPED_TRACE(c.name);
    const json& r = refs[i];
    ASSERT_TRUE(r.at("ok").get<bool>()) << r.dump();
    EXPECT_EQ(r.at("shape"), json({c.shape.c, c.shape.z, c.shape.y, c.shape.x}));
    EXPECT_EQ(test::read_f32(tmp.file("dump/" + std::to_string(i) + ".f32")), values[i]);
    const auto want = to_ras_affine(c.g), nib = affine_of(r.at("affine"));
    for (int k = 0; k < 16; ++k) EXPECT_NEAR(nib[k], want[k], 1e-4) << "affine[" << k << "]";
    EXPECT_EQ(r.at("sform_code").get<int>(), 1);
    EXPECT_EQ(r.at("qform_code").get<int>(), c.qform ? 1 : 0);
    if (c.qform) {
      const auto q = affine_of(r.at("qform"));
      for (int k = 0; k < 16; ++k) EXPECT_NEAR(q[k], want[k], 1e-4) << "qform[" << k << "]";
    }
    EXPECT_EQ(r.at("descrip"), "medlens");
    EXPECT_EQ(r.at("xyzt_units").get<int>(), 2);
    EXPECT_EQ(read_nifti(files[i]).data, values[i]) << "medlens reads its own output";
  }
}

TEST(NiftiWrite, EveryGzipLevelReadsBack) {
  // 5 MiB of voxels: independently deflated blocks joined into one gzip member; big enough
  // for the reader to convert while it inflates.
  test::TempDir tmp;
  const Shape shape{1, 20, 256, 256};
  const VoxelBuffer src = pattern(shape, oblique_geometry());
  for (int level : {0, 1, 6}) {
    SCOPED_TRACE(level);
    WriteOptions o;
    o.gzip_level = level;
    const std::string path = tmp.file("level" + std::to_string(level) + ".nii.gz");
    write_nifti_voxels(src.data.data(), shape, src.geometry, {}, path, o);
    const VoxelBuffer back = read_nifti(path);
    EXPECT_EQ(back.shape, shape);
    EXPECT_EQ(back.data, src.data);
  }
  EXPECT_LT(fs::file_size(tmp.file("level6.nii.gz")), fs::file_size(tmp.file("level0.nii.gz")));
}

TEST(NiftiWrite, MetadataWindowRoundTrips) {
  test::TempDir tmp;
  VoxelBuffer b = pattern({1, 2, 3, 4}, Geometry{});
  b.metadata.window = Window{40.0, 400.0};
  write_nifti(Image::from_buffer(std::move(b)), tmp.file("w.nii"));
  const VoxelBuffer back = read_nifti(tmp.file("w.nii"));
  ASSERT_TRUE(back.metadata.window.has_value());
  EXPECT_EQ(*back.metadata.window, (Window{40.0, 400.0}));
  EXPECT_EQ(back.metadata.source_format, "nifti");
  EXPECT_EQ(back.metadata.modality, "");
  EXPECT_EQ(back.metadata.tags.at("datatype"), "float32");
  EXPECT_EQ(back.metadata.source_path, tmp.file("w.nii"));
}

TEST(NiftiWrite, FailedWriteLeavesNothing) {
  test::TempDir tmp;
  const Image image = Image::from_buffer(pattern({1, 2, 3, 4}, Geometry{}));
  // The destination is a folder: everything is written, then the final rename fails.
  fs::create_directory(tmp.path() / "taken.nii.gz");
  EXPECT_THROW(write_nifti(image, tmp.file("taken.nii.gz")), InputError);
  int entries = 0;
  for (const auto& e : fs::directory_iterator(tmp.path())) {
    ++entries;
    EXPECT_EQ(e.path().filename(), "taken.nii.gz") << "left behind: " << e.path();
  }
  EXPECT_EQ(entries, 1);
  EXPECT_TRUE(fs::is_empty(tmp.path() / "taken.nii.gz"));
  // A bad option is refused before anything is created.
  WriteOptions bad;
  bad.gzip_level = 12;
  EXPECT_THROW(write_nifti(image, tmp.file("level.nii.gz"), bad), UsageError);
  EXPECT_FALSE(fs::exists(tmp.file("level.nii.gz")));
  EXPECT_THROW(write_nifti(image, tmp.file("missing/out.nii")), InputError);
  EXPECT_FALSE(fs::exists(tmp.file("missing")));
}

// ---------------------------------------------------------------------------------------------
// Bad input

// A valid little-endian NIfTI-1 file (sform and qform) of shape 1x2x3x4 as bytes.
std::vector<uint8_t> valid_nii(const test::TempDir& tmp) {
  write_nifti_voxels(pattern({1, 2, 3, 4}, Geometry{}).data.data(), {1, 2, 3, 4}, Geometry{}, {},
                     tmp.file("valid.nii"));
  return file_bytes(tmp.file("valid.nii"));
}

// read_nifti(path) must throw an InputError naming path whose reason contains `needle`.
void expect_refused(const std::string& path, const std::string& needle) {
  SCOPED_TRACE(path);
  try {
    read_nifti(path);
    ADD_FAILURE() << "read without error";
  } catch (const InputError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(path), std::string::npos) << what;
    EXPECT_NE(what.find(needle), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << "one line: " << what;
  }
}

TEST(NiftiBadInput, TruncatedNiiAndNiiGz) {
  test::TempDir tmp;
  auto bytes = valid_nii(tmp);
  ASSERT_EQ(bytes.size(), 352u + 24 * 4);
  bytes.resize(352 + 10);
  put_bytes(tmp.file("cut.nii"), bytes);
  expect_refused(tmp.file("cut.nii"), "truncated: 10 bytes of voxel data, expected 96");
  bytes.resize(200);
  put_bytes(tmp.file("cut_header.nii"), bytes);
  expect_refused(tmp.file("cut_header.nii"), "truncated header");

  const Shape big{1, 20, 256, 256};  // > 4 MiB: the reader converts while it inflates
  WriteOptions fast;
  fast.gzip_level = 1;
  write_nifti_voxels(pattern(big, Geometry{}).data.data(), big, Geometry{}, {},
                     tmp.file("big.nii.gz"), fast);
  auto gz = file_bytes(tmp.file("big.nii.gz"));
  ASSERT_GT(gz.size(), 4000000u);
  gz.resize(gz.size() / 2);
  put_bytes(tmp.file("cut.nii.gz"), gz);
  expect_refused(tmp.file("cut.nii.gz"), "truncated");
  gz.resize(20);  // inside the header
  put_bytes(tmp.file("cut_header.nii.gz"), gz);
  expect_refused(tmp.file("cut_header.nii.gz"), "truncated header");
}

TEST(NiftiBadInput, RandomBytesAndEmptyFile) {
  test::TempDir tmp;
  std::mt19937 rng(11);
  std::vector<uint8_t> noise(4096);
  for (auto& b : noise) b = static_cast<uint8_t>(rng());
  put_bytes(tmp.file("noise.nii"), noise);
  expect_refused(tmp.file("noise.nii"), "not a NIfTI file");
  put_bytes(tmp.file("noise.nii.gz"), gzip_bytes(noise));
  expect_refused(tmp.file("noise.nii.gz"), "not a NIfTI file");
  noise[0] = 0x1f;
  noise[1] = 0x8b;  // gzip magic, garbage after
  put_bytes(tmp.file("fake.nii.gz"), noise);
  expect_refused(tmp.file("fake.nii.gz"), "gzip");
  put_bytes(tmp.file("empty.nii"), {});
  expect_refused(tmp.file("empty.nii"), "empty");
  expect_refused(tmp.file("absent.nii"), "no such file");
}

TEST(NiftiBadInput, HugeVoxelClaimsAreRefusedBeforeAllocating) {
  test::TempDir tmp;
  auto bytes = valid_nii(tmp);
  poke<int16_t>(bytes, 70, 2);  // uint8
  poke<int16_t>(bytes, 72, 8);
  for (int i = 1; i <= 3; ++i) poke<int16_t>(bytes, 40 + 2 * i, 1000);  // 10^9 voxels
  put_bytes(tmp.file("huge.nii"), bytes);
  expect_refused(tmp.file("huge.nii"), "more than the limit");
  put_bytes(tmp.file("huge.nii.gz"), gzip_bytes(bytes));
  expect_refused(tmp.file("huge.nii.gz"), "more than the limit");

  // Under the limit (5.12e8 values) but backed by a 0.5 KB .nii.gz: must fail at the real end
  // of the data. With the address space capped, allocating what the header claims would fail.
  for (int i = 1; i <= 3; ++i) poke<int16_t>(bytes, 40 + 2 * i, 800);
  ASSERT_LT(int64_t{800} * 800 * 800, max_voxels());
  put_bytes(tmp.file("claims.nii.gz"), gzip_bytes(bytes));
  ASSERT_LT(file_bytes(tmp.file("claims.nii.gz")).size(), 1000u);
  long pages = 0;
  std::ifstream("/proc/self/statm") >> pages;
  ASSERT_GT(pages, 0);
  rlimit old{};
  ASSERT_EQ(getrlimit(RLIMIT_AS, &old), 0);
  rlimit capped = old;
  capped.rlim_cur = static_cast<rlim_t>(pages) * static_cast<rlim_t>(sysconf(_SC_PAGESIZE)) +
                    (rlim_t{256} << 20);
  ASSERT_EQ(setrlimit(RLIMIT_AS, &capped), 0);
  std::string what;
  try {
    read_nifti(tmp.file("claims.nii.gz"));
  } catch (const InputError& e) {
    what = e.what();
  } catch (const std::exception& e) {
    what = std::string("wrong exception: ") + e.what();
  }
  setrlimit(RLIMIT_AS, &old);
  EXPECT_NE(what.find(tmp.file("claims.nii.gz")), std::string::npos) << what;
  EXPECT_NE(what.find("truncated: 96 bytes of voxel data, expected 512000000"), std::string::npos)
      << what;
}

TEST(NiftiBadInput, ZeroOrNegativePixdimIsRefused) {
  test::TempDir tmp;
  const auto valid = valid_nii(tmp);
  struct Case {
    const char* name;
    int pixdim_index;
    float value;
    int16_t qform_code;
  };
  for (const Case& c : {Case{"zero_qform.nii", 2, 0.0f, 1}, Case{"negative_qform.nii", 1, -1.5f, 1},
                        Case{"zero_fallback.nii", 3, 0.0f, 0}, Case{"nan_qform.nii", 1, NAN, 1}}) {
    auto bytes = valid;
    poke<int16_t>(bytes, 254, 0);  // no sform: the pixdims matter
    poke<int16_t>(bytes, 252, c.qform_code);
    poke<float>(bytes, 76 + 4 * c.pixdim_index, c.value);
    put_bytes(tmp.file(c.name), bytes);
    expect_refused(tmp.file(c.name), "zero or negative spacing");
  }
  // A zero column in the sform is refused too.
  auto bytes = valid;
  for (int r = 0; r < 3; ++r) poke<float>(bytes, 280 + 16 * r + 4, 0.0f);
  put_bytes(tmp.file("zero_sform.nii"), bytes);
  expect_refused(tmp.file("zero_sform.nii"), "zero or negative spacing");
}

TEST(NiftiBadInput, NanVoxelsAreRefusedByReadVoxels) {
  test::TempDir tmp;
  VoxelBuffer b = pattern({1, 2, 3, 4}, Geometry{});
  b.data[5] = NAN;
  b.data[6] = INFINITY;
  write_nifti_voxels(b.data.data(), b.shape, b.geometry, {}, tmp.file("nan.nii.gz"));
  const VoxelBuffer raw = read_nifti(tmp.file("nan.nii.gz"));
  EXPECT_TRUE(std::isnan(raw.data[5]));
  EXPECT_TRUE(std::isinf(raw.data[6]));
  try {
    read_voxels(tmp.file("nan.nii.gz"));
    ADD_FAILURE() << "read_voxels accepted NaN voxels";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(tmp.file("nan.nii.gz")), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("2 voxel(s) are NaN or infinite"), std::string::npos)
        << e.what();
  }
  ReadOptions allow;
  allow.allow_non_finite = true;
  EXPECT_EQ(read_voxels(tmp.file("nan.nii.gz"), allow).shape, (Shape{1, 2, 3, 4}));
}

TEST(NiftiBadInput, HeaderFieldsOutOfRange) {
  test::TempDir tmp;
  const auto valid = valid_nii(tmp);
  auto patched = [&](const char* name, auto&& edit) {
    auto bytes = valid;
    edit(bytes);
    put_bytes(tmp.file(name), bytes);
    return tmp.file(name);
  };
  expect_refused(patched("complex.nii",
                         [](auto& b) {
                           poke<int16_t>(b, 70, 32);
                           poke<int16_t>(b, 72, 64);
                         }),
                 "complex");
  expect_refused(patched("unknown_type.nii", [](auto& b) { poke<int16_t>(b, 70, 3); }),
                 "unknown NIfTI datatype code 3");
  expect_refused(patched("beyond.nii", [](auto& b) { poke<float>(b, 108, 1.0e6f); }),
                 "beyond the end of the file");
  expect_refused(patched("inside.nii", [](auto& b) { poke<float>(b, 108, 100.0f); }),
                 "inside the header");
  expect_refused(patched("zero_dim.nii", [](auto& b) { poke<int16_t>(b, 44, 0); }), "dim[2] is 0");
  expect_refused(patched("dim0.nii", [](auto& b) { poke<int16_t>(b, 40, 9); }), "dim[0] is 9");
  expect_refused(patched("analyze.nii", [](auto& b) { std::memcpy(b.data() + 344, "\0\0\0\0", 4); }),
                 "magic");
  expect_refused(patched("pair_magic.nii", [](auto& b) { std::memcpy(b.data() + 344, "ni1\0", 4); }),
                 ".img");
  // nibabel ships this header without its .img.
  const std::string nib_hdr = test::nibabel_data() + "/nifti1.hdr";
  expect_refused(nib_hdr, "no .img file");
}

}  // namespace
}  // namespace medlens
