// NRRD / MetaImage reading and writing through ITK, and the zero-copy Image <-> ITK bridge.
// Reference data: ITK's own example images (insighttoolkit5-examples), the raw bytes they point
// at, their PNG twins read by OpenCV, and header text parsed here independently of ITK.

#include <ATen/ATen.h>
#include <itkDiscreteGaussianImageFilter.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>

#include "core/error.h"
#include "core/image.h"
#include "io/itk_bridge.h"
#include "io/read.h"
#include "io/write.h"
#include "tools/test_util.h"

namespace fs = std::filesystem;

namespace medlens {
namespace {

std::string data(const std::string& name) { return test::itk_examples() + "/" + name; }

std::vector<float> raw_bytes_as_float(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<float> out;
  for (int ch; (ch = in.get()) != EOF;) out.push_back(static_cast<float>(ch));
  return out;
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

std::vector<std::string> listing(const fs::path& folder) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(folder))
    names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

void expect_geometry_near(const Geometry& a, const Geometry& b, double tol) {
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(a.spacing[i], b.spacing[i], tol) << "spacing " << i;
    EXPECT_NEAR(a.origin[i], b.origin[i], tol) << "origin " << i;
  }
  for (int i = 0; i < 9; ++i) EXPECT_NEAR(a.direction[i], b.direction[i], tol) << "direction " << i;
}

// An oblique, anisotropic geometry: rotations about two axes, odd spacings and origin.
Geometry oblique_geometry() {
  const double a = 0.3, b = -0.7;
  const double ca = std::cos(a), sa = std::sin(a), cb = std::cos(b), sb = std::sin(b);
  // Rz(a) * Rx(b), row-major.
  Geometry g;
  g.direction = {ca, -sa * cb, sa * sb, sa, ca * cb, -ca * sb, 0, sb, cb};
  g.spacing = {0.7, 1.3, 2.9};
  g.origin = {-120.25, 33.125, 7.0625};
  return g;
}

Image random_image(Shape s, Geometry g, uint32_t seed, const std::string& photometric = "") {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1000.f, 3000.f);
  at::Tensor t = at::empty({s.c, s.z, s.y, s.x}, at::kFloat);
  float* p = t.data_ptr<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = dist(rng);
  Metadata md;
  md.photometric = photometric;
  return Image(t, g, md);
}

// ------------------------------------------------------------------------------------------
// Reading real files

TEST(ItkIo, ReadsMetaImage3SlicesAsRawBytes) {
  const VoxelBuffer b = read_itk(data("BrainProtonDensity3Slices.mha"));
  EXPECT_EQ(b.shape, (Shape{1, 3, 217, 181}));
  EXPECT_EQ(b.data, raw_bytes_as_float(data("BrainProtonDensity3Slices.raw")));
  EXPECT_EQ(b.metadata.source_format, "metaimage");
  EXPECT_EQ(b.metadata.tags.at("ComponentType"), "unsigned_char");
  EXPECT_EQ(b.geometry, Geometry{});
}

TEST(ItkIo, MhdAndNhdrOfTheSameRawDataAgree) {
  const VoxelBuffer mhd = read_itk(data("BrainProtonDensitySliceBorder20.mhd"));
  const VoxelBuffer nhdr = read_itk(data("BrainProtonDensitySliceBorder20.nhdr"));
  EXPECT_EQ(mhd.shape, (Shape{1, 1, 257, 221}));
  EXPECT_EQ(nhdr.shape, mhd.shape);
  EXPECT_EQ(mhd.data, nhdr.data);
  EXPECT_EQ(mhd.data, raw_bytes_as_float(data("BrainProtonDensitySliceBorder20.raw")));
  EXPECT_EQ(mhd.metadata.source_format, "metaimage");
  EXPECT_EQ(nhdr.metadata.source_format, "nrrd");
  EXPECT_EQ(mhd.geometry, nhdr.geometry);
  // read_voxels dispatches here by content/extension and its shared checks pass.
  EXPECT_EQ(read_voxels(data("BrainProtonDensitySliceBorder20.nhdr")).data, nhdr.data);
}

TEST(ItkIo, MetaImageEqualsItsPngTwin) {
  int compared = 0;
  for (const auto& e : fs::directory_iterator(test::itk_examples())) {
    if (e.path().extension() != ".mhd") continue;
    fs::path png = e.path();
    png.replace_extension(".png");
    if (!fs::exists(png)) continue;
    SCOPED_TRACE(e.path().string());
    const VoxelBuffer b = read_itk(e.path().string());
    cv::Mat ref = cv::imread(png.string(), cv::IMREAD_UNCHANGED);
    ASSERT_FALSE(ref.empty());
    if (ref.channels() == 3) {  // a grey image stored as RGB: all three planes must agree
      std::vector<cv::Mat> planes;
      cv::split(ref, planes);
      ASSERT_EQ(cv::countNonZero(planes[0] != planes[1]), 0);
      ASSERT_EQ(cv::countNonZero(planes[0] != planes[2]), 0);
      ref = planes[0];
    }
    ASSERT_EQ(ref.channels(), 1);
    ASSERT_EQ(b.shape, (Shape{1, 1, ref.rows, ref.cols}));
    cv::Mat ref_f;
    ref.convertTo(ref_f, CV_32F);
    int64_t mismatches = 0;
    for (int y = 0; y < ref.rows; ++y)
      for (int x = 0; x < ref.cols; ++x)
        mismatches += b.data[static_cast<size_t>(y * ref.cols + x)] != ref_f.at<float>(y, x);
    EXPECT_EQ(mismatches, 0);
    ++compared;
  }
  EXPECT_GE(compared, 2);  // Border20 and Shifted13x17y
}

// Direction columns as written in the header text: MetaImage TransformMatrix lists one axis
// after another; NRRD "space directions" lists one vector per axis (scaled by the spacing).
std::array<double, 4> header_direction(const std::string& path) {
  const std::string text = test::read_text(path);
  std::smatch m;
  std::vector<double> v;
  bool scaled = false;  // NRRD vectors carry the spacing as their length
  if (std::regex_search(text, m, std::regex("TransformMatrix = ([^\n]*)"))) {
    std::istringstream in(m[1].str());
    for (double d; in >> d;) v.push_back(d);
  } else if (std::regex_search(text, m, std::regex("space directions: ([^\n]*)"))) {
    scaled = true;
    const std::string s = std::regex_replace(m[1].str(), std::regex("[(),]"), " ");
    std::istringstream in(s);
    for (double d; in >> d;) v.push_back(d);
  }
  EXPECT_EQ(v.size(), 4u) << path;
  v.resize(4);
  for (int axis = 0; axis < 2 && scaled; ++axis) {
    const double n = std::hypot(v[axis * 2], v[axis * 2 + 1]);
    v[axis * 2] /= n;
    v[axis * 2 + 1] /= n;
  }
  return {v[0], v[1], v[2], v[3]};  // axis 0 (x, y), then axis 1 (x, y)
}

TEST(ItkIo, DirectionCosinesMatchTheHeaderText) {
  const char* files[] = {"BrainProtonDensitySliceBorder20DirectionPlus30.mhd",
                         "BrainProtonDensitySliceBorder20DirectionMinus30.mhd",
                         "BrainProtonDensitySliceBorder20DirectionPlus30.nhdr",
                         "BrainProtonDensitySliceShifted13x17yDirectionPlus30.nhdr",
                         "BrainT1SliceBorder20DirectionMinus30.mhd"};
  const VoxelBuffer plain = read_itk(data("BrainProtonDensitySliceBorder20.mhd"));
  for (const char* f : files) {
    SCOPED_TRACE(f);
    const VoxelBuffer b = read_itk(data(f));
    const auto d = header_direction(data(f));
    const Geometry& g = b.geometry;
    // Column n of the 3x3 is axis n; the 2-D plane is embedded with z as its normal.
    EXPECT_NEAR(g.direction[0], d[0], 1e-9);
    EXPECT_NEAR(g.direction[3], d[1], 1e-9);
    EXPECT_NEAR(g.direction[1], d[2], 1e-9);
    EXPECT_NEAR(g.direction[4], d[3], 1e-9);
    EXPECT_EQ(g.direction[2], 0.0);
    EXPECT_EQ(g.direction[5], 0.0);
    EXPECT_EQ(g.direction[8], 1.0);
    EXPECT_NEAR(std::abs(g.direction[1]), 0.5, 1e-6);  // really rotated by 30 degrees
    // ITK and medlens agree on where voxels are: index (10, 20) lies at R * (10, 20).
    const Vec3 p = g.index_to_lps({10, 20, 0});
    EXPECT_NEAR(p[0], d[0] * 10 * g.spacing[0] + d[2] * 20 * g.spacing[1], 1e-6);
    EXPECT_NEAR(p[1], d[1] * 10 * g.spacing[0] + d[3] * 20 * g.spacing[1], 1e-6);
  }
  // The Plus30 file stores the same raw bytes as the unrotated one.
  EXPECT_EQ(read_itk(data("BrainProtonDensitySliceBorder20DirectionPlus30.mhd")).data, plain.data);
}

// ------------------------------------------------------------------------------------------
// Writing

struct RoundTripCase {
  const char* ext;
  Shape shape;
  bool oblique;
  const char* photometric;
};

void PrintTo(const RoundTripCase& c, std::ostream* os) {
  *os << c.ext << " " << c.shape.c << "x" << c.shape.z << "x" << c.shape.y << "x" << c.shape.x
      << (c.oblique ? " oblique" : "") << " " << c.photometric;
}

class ItkRoundTrip : public ::testing::TestWithParam<RoundTripCase> {};

TEST_P(ItkRoundTrip, ValuesAndGeometrySurvive) {
  const RoundTripCase& c = GetParam();
  test::TempDir dir;
  Geometry g;
  if (c.oblique) {
    g = oblique_geometry();
  } else {
    g.spacing = {0.25, 0.5, 1.0};
    g.origin = {-3.5, 12.75, 0.0};
  }
  const Image image = random_image(c.shape, g, 7, c.photometric);
  const std::string path = dir.file(std::string("out") + c.ext);
  write_itk(image, path);
  const VoxelBuffer b = read_itk(path);
  EXPECT_EQ(b.shape, c.shape);
  ASSERT_EQ(b.data.size(), static_cast<size_t>(c.shape.elements()));
  EXPECT_EQ(0, std::memcmp(b.data.data(), image.data(), b.data.size() * sizeof(float)));
  // MetaImage is written with 17 digits; NRRD stores spacing x direction, so the split back
  // into spacing and unit direction may differ in the last bit.
  const std::string ext = c.ext;
  expect_geometry_near(b.geometry, g, ext == ".mha" || ext == ".mhd" ? 0.0 : 1e-12);
  EXPECT_EQ(b.metadata.source_format, ext == ".mha" || ext == ".mhd" ? "metaimage" : "nrrd");
  if (c.shape.c == 3) {  // MetaImage has no notion of colour; NRRD keeps its RGB kind
    const bool rgb = std::string(c.photometric) == "RGB" && (ext == ".nrrd" || ext == ".nhdr");
    EXPECT_EQ(b.metadata.photometric, rgb ? "RGB" : "");
  }
  // Nothing but the output itself (and the data file of a detached header) is left behind.
  std::vector<std::string> expected = {std::string("out") + c.ext};
  if (ext == ".mhd" || ext == ".nhdr") expected.push_back("out.raw");
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(listing(dir.path()), expected);
  if (ext == ".mhd") {
    EXPECT_NE(test::read_text(path).find("ElementDataFile = out.raw"), std::string::npos);
  }
  if (ext == ".nhdr") {
    EXPECT_NE(test::read_text(path).find("data file: out.raw"), std::string::npos);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Itk, ItkRoundTrip,
    ::testing::Values(RoundTripCase{".mha", {1, 5, 7, 9}, true, ""},
                      RoundTripCase{".nrrd", {1, 5, 7, 9}, true, ""},
                      RoundTripCase{".mhd", {1, 5, 7, 9}, true, ""},
                      RoundTripCase{".nhdr", {1, 5, 7, 9}, true, ""},
                      RoundTripCase{".mha", {3, 1, 6, 11}, false, "RGB"},
                      RoundTripCase{".nrrd", {3, 1, 6, 11}, false, "RGB"},
                      RoundTripCase{".mhd", {3, 4, 6, 5}, true, ""},
                      RoundTripCase{".nhdr", {3, 4, 6, 5}, true, ""},
                      // One slice of an oblique volume: must stay 3-D to keep its geometry.
                      RoundTripCase{".mha", {1, 1, 8, 8}, true, ""},
                      RoundTripCase{".nrrd", {1, 1, 8, 8}, true, ""}),
    [](const ::testing::TestParamInfo<RoundTripCase>& info) {
      return std::string(info.param.ext + 1) + "_" + std::to_string(info.param.shape.c) + "c" +
             std::to_string(info.param.shape.z) + "z" + (info.param.oblique ? "_oblique" : "");
    });

TEST(ItkIo, CompressesMhaAndNrrd) {
  test::TempDir dir;
  // Smooth data compresses well; uncompressed it would take 4 bytes per voxel.
  at::Tensor t = at::arange(64 * 64 * 16, at::kFloat).reshape({16, 64, 64}).remainder(50.0);
  const Image image(t, Geometry{}, Metadata{});
  for (const char* name : {"c.mha", "c.nrrd"}) {
    write_itk(image, dir.file(name));
    EXPECT_LT(fs::file_size(dir.file(name)), 64u * 64 * 16) << name;
    EXPECT_TRUE(at::equal(read_image(dir.file(name)).voxels()[0], t)) << name;
  }
  EXPECT_NE(test::read_text(dir.file("c.nrrd")).find("encoding: gzip"), std::string::npos);
}

TEST(ItkIo, FailedWriteLeavesNothing) {
  test::TempDir dir;
  const Image image = random_image({1, 2, 3, 4}, Geometry{}, 1);
  // A folder already holds each destination name, so moving the output into place fails.
  for (const char* name : {"busy.mha", "busy.nrrd", "busy.mhd", "busy.nhdr"}) {
    SCOPED_TRACE(name);
    test::TempDir sub;
    fs::create_directory(sub.path() / name);
    fs::create_directory(sub.path() / name / "keep");
    EXPECT_THROW(write_itk(image, sub.file(name)), InputError);
    EXPECT_EQ(listing(sub.path()), std::vector<std::string>{name});  // no .raw, no temporaries
    EXPECT_TRUE(fs::is_directory(sub.path() / name / "keep"));
  }
  // Missing output folder, and an extension ITK is not used for.
  EXPECT_THROW(write_itk(image, dir.file("no/such/folder/x.mha")), InputError);
  EXPECT_THROW(write_itk(image, dir.file("x.png")), UsageError);
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

// ------------------------------------------------------------------------------------------
// Bad input: InputError naming the file, one line

void expect_input_error(const std::string& path, const std::string& reason_part) {
  try {
    read_itk(path);
    ADD_FAILURE() << path << ": no error";
  } catch (const InputError& e) {
    EXPECT_EQ(e.path(), path);
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos);
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    if (!reason_part.empty()) {
      EXPECT_NE(e.reason().find(reason_part), std::string::npos) << e.reason();
    }
  }
}

TEST(ItkIo, TruncatedMetaImageIsRefused) {
  test::TempDir dir;
  const std::string raw = test::read_text(data("BrainProtonDensity3Slices.raw"));
  const std::string header =
      "ObjectType = Image\nNDims = 3\nDimSize = 181 217 3\nElementType = MET_UCHAR\n"
      "ElementSpacing = 1 1 1\nElementDataFile = LOCAL\n";
  write_text(dir.file("full.mha"), header + raw);
  EXPECT_EQ(read_itk(dir.file("full.mha")).data,
            raw_bytes_as_float(data("BrainProtonDensity3Slices.raw")));
  write_text(dir.file("cut.mha"), header + raw.substr(0, raw.size() / 2));
  expect_input_error(dir.file("cut.mha"), "");
  write_text(dir.file("cut.nrrd"),
             "NRRD0004\ntype: float\ndimension: 3\nsizes: 20 20 20\n"
             "encoding: raw\nendian: little\n\n" +
                 std::string(100, '\0'));
  expect_input_error(dir.file("cut.nrrd"), "");
  // A detached header whose raw file is too short.
  write_text(dir.file("short.raw"), raw.substr(0, 1000));
  write_text(dir.file("short.mhd"),
             "ObjectType = Image\nNDims = 3\nDimSize = 181 217 3\n"
             "ElementType = MET_UCHAR\nElementDataFile = short.raw\n");
  expect_input_error(dir.file("short.mhd"), "truncated");
}

TEST(ItkIo, DamagedCompressedDataIsRefused) {
  // MetaIO only prints a message for a short zlib stream; the reader must refuse it.
  test::TempDir dir;
  const Image image(at::arange(64 * 64 * 8, at::kFloat).reshape({8, 64, 64}).sin(), Geometry{},
                    Metadata{});
  for (const char* name : {"z.mha", "z.nrrd"}) write_itk(image, dir.file(name));
  const std::string mha = test::read_text(dir.file("z.mha"));
  const std::string nrrd = test::read_text(dir.file("z.nrrd"));
  ASSERT_NE(mha.find("CompressedData = True"), std::string::npos);
  // Cut short, with and without a declared compressed size.
  write_text(dir.file("cut.mha"), mha.substr(0, mha.size() / 2));
  expect_input_error(dir.file("cut.mha"), "truncated");
  const std::string undeclared =
      std::regex_replace(mha, std::regex("CompressedDataSize = [0-9]+\n"), "");
  ASSERT_NE(undeclared.size(), mha.size());
  write_text(dir.file("undeclared.mha"), undeclared);  // MetaIO cannot find the stream's end
  expect_input_error(dir.file("undeclared.mha"), "CompressedDataSize");
  // A detached header whose .zraw holds the stream: fine whole, refused when cut.
  const std::string local = "ElementDataFile = LOCAL\n";
  const size_t start = undeclared.find(local) + local.size();
  std::string header = undeclared.substr(0, start);
  header.replace(header.find(local), local.size(), "ElementDataFile = z.zraw\n");
  write_text(dir.file("z.mhd"), header);
  write_text(dir.file("z.zraw"), undeclared.substr(start));
  EXPECT_TRUE(at::equal(read_image(dir.file("z.mhd")).voxels()[0], image.voxels()[0]));
  write_text(dir.file("z.zraw"), undeclared.substr(start, (undeclared.size() - start) / 2));
  expect_input_error(dir.file("z.mhd"), "truncated or corrupt");
  // Same length, scrambled in the middle.
  std::string scrambled = mha;
  for (size_t i = scrambled.size() / 2; i < scrambled.size() / 2 + 64; ++i) scrambled[i] ^= 0x5a;
  write_text(dir.file("bad.mha"), scrambled);
  expect_input_error(dir.file("bad.mha"), "corrupt");
  write_text(dir.file("cut.nrrd"), nrrd.substr(0, nrrd.size() / 2));
  expect_input_error(dir.file("cut.nrrd"), "NRRD");
}

TEST(ItkIo, ComponentsAndAFourthAxisBecomeChannels) {
  test::TempDir dir;
  std::string bytes;
  for (int i = 0; i < 12; ++i) bytes += static_cast<char>(i);
  // NRRD: a leading 3-vector axis (interleaved) over a 2x2 image.
  write_text(dir.file("v.nrrd"),
             "NRRD0004\ntype: uchar\ndimension: 3\nsizes: 3 2 2\n"
             "kinds: 3-vector domain domain\nencoding: raw\n\n" +
                 bytes);
  const VoxelBuffer v = read_itk(dir.file("v.nrrd"));
  EXPECT_EQ(v.shape, (Shape{3, 1, 2, 2}));
  EXPECT_EQ(v.data, (std::vector<float>{0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11}));
  // MetaImage: 4-D, the last axis (planar) read as channels, with a warning.
  write_text(dir.file("t.mha"),
             "ObjectType = Image\nNDims = 4\nDimSize = 2 2 1 3\n"
             "ElementType = MET_UCHAR\nElementDataFile = LOCAL\n" +
                 bytes);
  const VoxelBuffer t = read_itk(dir.file("t.mha"));
  EXPECT_EQ(t.shape, (Shape{3, 1, 2, 2}));
  EXPECT_EQ(t.data, (std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}));
  ASSERT_EQ(t.metadata.warnings.size(), 1u);
  EXPECT_NE(t.metadata.warnings[0].find("4th axis"), std::string::npos);
  // MetaImage channels (interleaved).
  write_text(dir.file("c.mha"),
             "ObjectType = Image\nNDims = 2\nDimSize = 3 2\n"
             "ElementNumberOfChannels = 2\nElementType = MET_UCHAR\n"
             "ElementDataFile = LOCAL\n" +
                 bytes);
  const VoxelBuffer c = read_itk(dir.file("c.mha"));
  EXPECT_EQ(c.shape, (Shape{2, 1, 2, 3}));
  EXPECT_EQ(c.data, (std::vector<float>{0, 2, 4, 6, 8, 10, 1, 3, 5, 7, 9, 11}));
}

TEST(ItkIo, HeaderFieldsBecomeMetadata) {
  test::TempDir dir;
  write_text(dir.file("m.mha"),
             "ObjectType = Image\nNDims = 2\nDimSize = 2 2\nModality = MET_MOD_CT\n"
             "ElementType = MET_SHORT\nElementDataFile = LOCAL\n" +
                 std::string(8, '\1'));
  const VoxelBuffer m = read_itk(dir.file("m.mha"));
  EXPECT_EQ(m.metadata.modality, "CT");
  EXPECT_EQ(m.metadata.tags.at("ComponentType"), "short");
  EXPECT_EQ(m.data, std::vector<float>(4, 257.f));
  // A RAS NRRD comes back in LPS (ITK converts), with its key/value pairs.
  write_text(dir.file("n.nrrd"),
             "NRRD0004\ntype: short\ndimension: 3\n"
             "space: right-anterior-superior\nsizes: 2 2 1\n"
             "space directions: (1,0,0) (0,1,0) (0,0,2)\n"
             "space origin: (10,20,30)\nencoding: raw\nendian: little\n"
             "patient:=abc\n\n" +
                 std::string(8, '\1'));
  const VoxelBuffer n = read_itk(dir.file("n.nrrd"));
  EXPECT_EQ(n.geometry.origin, (Vec3{-10, -20, 30}));
  EXPECT_EQ(n.geometry.direction, (Mat3{-1, 0, 0, 0, -1, 0, 0, 0, 1}));
  EXPECT_EQ(n.geometry.spacing, (Vec3{1, 1, 2}));
  EXPECT_EQ(n.metadata.tags.at("NRRD_space"), "left-posterior-superior");
  EXPECT_EQ(n.metadata.tags.at("patient"), "abc");
  EXPECT_EQ(n.metadata.tags.count("ITK_InputFilterName"), 0u);
}

TEST(ItkIo, HugeHeaderIsRefusedBeforeAllocating) {
  test::TempDir dir;
  write_text(dir.file("huge.mha"),
             "ObjectType = Image\nNDims = 3\nDimSize = 1000 1000 1000\n"
             "ElementType = MET_UCHAR\nElementDataFile = LOCAL\n\x01\x02");
  expect_input_error(dir.file("huge.mha"), "too large");
  write_text(dir.file("huge.nrrd"),
             "NRRD0004\ntype: uchar\ndimension: 3\nsizes: 1000 1000 1000\n"
             "encoding: raw\n\n\x01\x02");
  expect_input_error(dir.file("huge.nrrd"), "too large");
}

TEST(ItkIo, ZeroOrNegativeSpacingIsRefused) {
  test::TempDir dir;
  const std::string body = std::string(4, '\x05');
  for (const char* spacing : {"0 1", "1 -2"}) {
    SCOPED_TRACE(spacing);
    write_text(dir.file("s.mha"), std::string("ObjectType = Image\nNDims = 2\nDimSize = 2 2\n"
                                              "ElementType = MET_UCHAR\nElementSpacing = ") +
                                      spacing + "\nElementDataFile = LOCAL\n" + body);
    expect_input_error(dir.file("s.mha"), "zero or negative spacing");
  }
  write_text(dir.file("s.nrrd"),
             "NRRD0004\ntype: uchar\ndimension: 2\nsizes: 2 2\n"
             "spacings: 0 1\nencoding: raw\n\n" +
                 body);
  expect_input_error(dir.file("s.nrrd"), "");
}

TEST(ItkIo, RandomBytesAreRefused) {
  test::TempDir dir;
  std::mt19937 rng(3);
  std::string noise(4096, '\0');
  for (char& ch : noise) ch = static_cast<char>(rng());
  for (const char* name : {"noise.nrrd", "noise.mha", "noise.nhdr"}) {
    write_text(dir.file(name), noise);
    expect_input_error(dir.file(name), "");
  }
  expect_input_error(dir.file("missing.nrrd"), "no such file");
  // A well-formed header whose data file is missing.
  write_text(dir.file("orphan.nhdr"),
             "NRRD0004\ntype: uchar\ndimension: 2\nsizes: 2 2\n"
             "encoding: raw\ndata file: gone.raw\n");
  expect_input_error(dir.file("orphan.nhdr"), "");
}

// ------------------------------------------------------------------------------------------
// Image <-> ITK bridge

TEST(ItkBridge, ToItkSharesMemoryBothWays) {
  Image image = random_image({2, 3, 4, 5}, oblique_geometry(), 11);
  const ItkImage3::Pointer ch1 = to_itk3(image, 1);
  EXPECT_EQ(ch1->GetBufferPointer(), image.data() + image.shape().voxels());
  ItkImage3::IndexType idx{{4, 2, 1}};  // x, y, z
  const int64_t offset = image.shape().voxels() + (1 * 4 + 2) * 5 + 4;
  EXPECT_EQ(ch1->GetPixel(idx), image.data()[offset]);
  ch1->SetPixel(idx, 12345.f);  // write through ITK...
  EXPECT_EQ(image.data()[offset], 12345.f);
  image.mutable_data()[offset] = -7.f;  // ...and through the Image
  EXPECT_EQ(ch1->GetPixel(idx), -7.f);
  EXPECT_THROW(to_itk3(image, 2), UsageError);

  const ItkImage2::Pointer slice = to_itk2(image, 2, 1);
  EXPECT_EQ(slice->GetBufferPointer(), image.data() + image.shape().voxels() + 2 * 4 * 5);
  const Vec3 o = image.geometry().index_to_lps({0, 0, 2});
  EXPECT_DOUBLE_EQ(slice->GetOrigin()[0], o[0]);
  EXPECT_DOUBLE_EQ(slice->GetOrigin()[1], o[1]);
  EXPECT_THROW(to_itk2(image, 3, 0), UsageError);
}

TEST(ItkBridge, RoundTripKeepsGeometryWithoutCopying) {
  const Image image = random_image({1, 4, 6, 8}, oblique_geometry(), 5);
  const ItkImage3::Pointer itk_image = to_itk3(image);
  // ITK and medlens put a voxel at the same LPS point.
  ItkImage3::PointType p;
  itk_image->TransformIndexToPhysicalPoint(ItkImage3::IndexType{{7, 5, 3}}, p);
  const Vec3 q = image.geometry().index_to_lps({7, 5, 3});
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(p[i], q[i], 1e-9);

  const Image back = from_itk(itk_image);
  EXPECT_EQ(back.data(), image.data());  // the very same memory
  EXPECT_EQ(back.shape(), image.shape());
  EXPECT_EQ(back.geometry(), image.geometry());

  // A 2-D image: 2x2 direction embedded with z as normal.
  Geometry g2;
  g2.direction = {0, -1, 0, 1, 0, 0, 0, 0, 1};
  g2.spacing = {0.5, 0.25, 1.0};
  g2.origin = {10, -20, 0};
  const Image flat = random_image({1, 1, 3, 4}, g2, 9);
  const Image flat_back = from_itk(to_itk2(flat));
  EXPECT_EQ(flat_back.data(), flat.data());
  EXPECT_EQ(flat_back.geometry(), g2);
}

TEST(ItkBridge, FromItkKeepsTheItkImageAlive) {
  auto itk_image = ItkImage3::New();
  ItkImage3::RegionType region;
  region.SetIndex({{2, 3, 4}});  // a non-zero start index moves the origin
  region.SetSize({{4, 3, 2}});
  itk_image->SetRegions(region);
  itk_image->Allocate();
  for (size_t i = 0; i < 24; ++i) itk_image->GetBufferPointer()[i] = static_cast<float>(i);
  ItkImage3::SpacingType sp;
  sp[0] = 2;
  sp[1] = 3;
  sp[2] = 4;
  itk_image->SetSpacing(sp);
  const ItkImage3* raw = itk_image.GetPointer();
  EXPECT_EQ(raw->GetReferenceCount(), 1);
  {
    Image image = from_itk(itk_image);
    EXPECT_EQ(raw->GetReferenceCount(), 2);
    itk_image = nullptr;  // the Image alone now holds the ITK image
    EXPECT_EQ(raw->GetReferenceCount(), 1);
    EXPECT_EQ(image.shape(), (Shape{1, 2, 3, 4}));
    EXPECT_EQ(image.data()[23], 23.f);
    EXPECT_EQ(image.geometry().origin, (Vec3{4, 9, 16}));
    EXPECT_EQ(image.geometry().spacing, (Vec3{2, 3, 4}));
  }
}

TEST(ItkBridge, GaussianFilterRunsEndToEnd) {
  // An impulse blurred by ITK comes back as a normalised, symmetric kernel that knows the
  // voxel spacing: the neighbour along x (1 mm) keeps more than the one along z (2 mm).
  Geometry g;
  g.spacing = {1.0, 1.0, 2.0};
  g.origin = {5, 6, 7};
  at::Tensor t = at::zeros({1, 15, 21, 21}, at::kFloat);
  t[0][7][10][10] = 1000.f;
  const Image image(t, g, Metadata{});
  using Filter = itk::DiscreteGaussianImageFilter<ItkImage3, ItkImage3>;
  auto filter = Filter::New();
  filter->SetInput(to_itk3(image));
  filter->SetVariance(1.5);  // mm^2
  filter->SetUseImageSpacing(true);
  filter->Update();
  const Image out = from_itk(ItkImage3::Pointer(filter->GetOutput()));
  EXPECT_EQ(out.shape(), image.shape());
  EXPECT_EQ(out.geometry(), g);
  const at::Tensor v = out.voxels()[0];  // (Z, Y, X)
  EXPECT_NEAR(v.sum().item<float>(), 1000.f, 1.f);
  EXPECT_EQ(v.argmax().item<int64_t>(), (7 * 21 + 10) * 21 + 10);
  const float c = v[7][10][10].item<float>();
  EXPECT_LT(c, 1000.f * 0.5f);
  EXPECT_NEAR(v[7][10][9].item<float>(), v[7][10][11].item<float>(), 1e-4);
  EXPECT_NEAR(v[6][10][10].item<float>(), v[8][10][10].item<float>(), 1e-4);
  EXPECT_GT(v[7][10][11].item<float>(), v[8][10][10].item<float>() * 1.5f);
  // The source image is untouched (the filter wrote its own output).
  EXPECT_EQ(image.data()[(7 * 21 + 10) * 21 + 10], 1000.f);
}

}  // namespace
}  // namespace medlens
