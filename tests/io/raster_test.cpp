// Raster reading and writing (OpenCV codecs) against skimage.io.imread
// (tests/oracles/skimage_read.py), and the Image <-> cv::Mat bridge.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/image.h"
#include "io/file_util.h"
#include "io/opencv_bridge.h"
#include "io/read.h"
#include "io/write.h"
#include "tools/test_util.h"

namespace fs = std::filesystem;

namespace medlens {
namespace {

using nlohmann::json;

struct Oracle {
  std::vector<int64_t> shape;  // skimage's (H,W) or (H,W,C)
  std::string dtype;
  std::vector<float> planar;   // (C,H,W)
  int64_t channels() const { return shape.size() == 3 ? shape[2] : 1; }
};

// skimage's decoding of each path (one Python start for all of them).
std::vector<Oracle> skimage_read(const std::vector<std::string>& paths) {
  test::TempDir dir;
  std::vector<std::string> args{dir.path().string()};
  args.insert(args.end(), paths.begin(), paths.end());
  test::run_oracle("skimage_read.py", args);
  std::vector<Oracle> out;
  for (size_t i = 0; i < paths.size(); ++i) {
    const json j = json::parse(test::read_text(dir.file(std::to_string(i) + ".json")));
    out.push_back({j["shape"].get<std::vector<int64_t>>(), j["dtype"],
                   test::read_f32(dir.file(std::to_string(i) + ".f32"))});
  }
  return out;
}

// Expects medlens's decoding to equal skimage's exactly: RGB order, alpha dropped, and a
// colour image with equal channels collapsed to one.
void expect_same_as_skimage(const VoxelBuffer& b, const Oracle& o) {
  ASSERT_GE(o.shape.size(), 2u);
  const int64_t h = o.shape[0], w = o.shape[1], plane = h * w;
  ASSERT_EQ(b.shape.z, 1);
  ASSERT_EQ(b.shape.y, h);
  ASSERT_EQ(b.shape.x, w);
  ASSERT_EQ(static_cast<int64_t>(o.planar.size()), plane * o.channels());
  const int64_t colour = std::min<int64_t>(o.channels(), 3);  // alpha is dropped
  if (b.shape.c == 1 && colour == 3) {
    EXPECT_EQ(b.metadata.tags.at("ChannelsCollapsed"), "RGB->grey");
  } else {
    ASSERT_EQ(b.shape.c, colour);
  }
  int64_t mismatches = 0;
  for (int64_t c = 0; c < colour; ++c)
    for (int64_t i = 0; i < plane; ++i)
      mismatches += b.data[(b.shape.c == 1 ? 0 : c) * plane + i] != o.planar[c * plane + i];
  EXPECT_EQ(mismatches, 0) << "values differing from skimage";
  EXPECT_EQ(b.metadata.photometric, b.shape.c == 3 ? "RGB" : "MONOCHROME2");
  EXPECT_EQ(b.geometry, Geometry{});
  EXPECT_EQ(b.metadata.modality, "");
}

std::string sk(const std::string& name) { return test::skimage_data() + "/" + name; }

Image make_image(Shape shape, const std::vector<float>& values, Metadata md = {}) {
  VoxelBuffer b;
  b.shape = shape;
  b.data = values;
  b.metadata = std::move(md);
  return Image::from_buffer(std::move(b));
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(b.data()),
                                              static_cast<std::streamsize>(b.size()));
}

// The InputError message for read_raster(path), checking it names the file and is one line.
std::string read_error(const std::string& path) {
  try {
    read_raster(path);
  } catch (const InputError& e) {
    EXPECT_EQ(e.path(), path);
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    return e.what();
  }
  return "";
}

// ---------------------------------------------------------------------------------------------
// Reading

TEST(RasterRead, SampleImagesDecodeExactlyAsSkimage) {
  struct Sample {
    std::string path, format, bit_depth;
    Shape shape;
  };
  // retina.jpg decodes identically: OpenCV and Pillow both use the system libjpeg-turbo with
  // its default (islow DCT, fancy upsampling), measured to give 0 differing values.
  const std::vector<Sample> samples = {
      {sk("retina.jpg"), "jpeg", "8", {3, 1, 1411, 1411}},
      {sk("phantom.png"), "png", "8", {1, 1, 400, 400}},  // RGB with equal channels
      {sk("microaneurysms.png"), "png", "8", {1, 1, 102, 102}},
      {sk("ihc.png"), "png", "8", {3, 1, 512, 512}},
      {test::itk_examples() + "/BrainProtonDensitySlice.png", "png", "8", {1, 1, 217, 181}},
      {sk("chessboard_GRAY_U16.tif"), "tiff", "16", {1, 1, 200, 200}},
      {sk("chessboard_GRAY_U16B.tif"), "tiff", "16", {1, 1, 200, 200}},  // big-endian
  };
  std::vector<std::string> paths;
  for (const auto& s : samples) paths.push_back(s.path);
  const std::vector<Oracle> oracle = skimage_read(paths);
  ASSERT_EQ(oracle.size(), samples.size());
  for (size_t i = 0; i < samples.size(); ++i) {
    SCOPED_TRACE(samples[i].path);
    const VoxelBuffer b = read_raster(samples[i].path);
    EXPECT_EQ(b.shape, samples[i].shape);
    EXPECT_EQ(b.metadata.source_format, samples[i].format);
    EXPECT_EQ(b.metadata.tags.at("BitDepth"), samples[i].bit_depth);
    EXPECT_EQ(b.metadata.source_path, samples[i].path);
    expect_same_as_skimage(b, oracle[i]);
  }
}

TEST(RasterRead, ColourChannelsAreInRgbOrder) {
  // ihc.png: brown DAB stain on blue haematoxylin, so R, G and B really differ; skimage is RGB.
  const VoxelBuffer b = read_raster(sk("ihc.png"));
  const Oracle o = skimage_read({sk("ihc.png")})[0];
  ASSERT_EQ(b.shape.c, 3);
  const int64_t plane = b.shape.voxels();
  double mean[3] = {0, 0, 0};
  for (int c = 0; c < 3; ++c) {
    for (int64_t i = 0; i < plane; ++i) mean[c] += b.data[c * plane + i];
    EXPECT_EQ(std::vector<float>(b.data.begin() + c * plane, b.data.begin() + (c + 1) * plane),
              std::vector<float>(o.planar.begin() + c * plane, o.planar.begin() + (c + 1) * plane))
        << "channel " << c;
  }
  EXPECT_GT(mean[0], mean[2]);  // red-brown stain dominates blue in this sample
  EXPECT_FALSE(b.metadata.tags.count("ChannelsCollapsed"));
}

TEST(RasterRead, AlphaIsDroppedWithAWarning) {
  test::TempDir tmp;
  cv::Mat bgra(5, 7, CV_8UC4);
  for (int y = 0; y < 5; ++y)
    for (int x = 0; x < 7; ++x) bgra.at<cv::Vec4b>(y, x) = cv::Vec4b(10 * x, 20 * y, 200, 128);
  ASSERT_TRUE(cv::imwrite(tmp.file("rgba.png"), bgra));
  // skimage's palette samples have no transparency, but skimage returns them as RGBA with an
  // opaque alpha: same colours, and nothing dropped, so no warning.
  struct Case {
    std::string path;
    bool has_alpha;
  };
  const std::vector<Case> cases = {{tmp.file("rgba.png"), true},
                                   {sk("palette_color.png"), false},
                                   {sk("green_palette.png"), false}};
  std::vector<std::string> paths;
  for (const auto& c : cases) paths.push_back(c.path);
  const std::vector<Oracle> oracle = skimage_read(paths);
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].path);
    ASSERT_EQ(oracle[i].channels(), 4);
    const int64_t plane = oracle[i].shape[0] * oracle[i].shape[1];
    const auto alpha = oracle[i].planar.begin() + 3 * plane;
    EXPECT_EQ(std::all_of(alpha, alpha + plane, [](float a) { return a == 255.f; }),
              !cases[i].has_alpha);
    const VoxelBuffer b = read_raster(cases[i].path);
    expect_same_as_skimage(b, oracle[i]);
    EXPECT_EQ(b.metadata.warnings,
              cases[i].has_alpha ? std::vector<std::string>{"alpha channel dropped"}
                                 : std::vector<std::string>{});
  }
  const VoxelBuffer b = read_raster(tmp.file("rgba.png"));
  ASSERT_EQ(b.shape, (Shape{3, 1, 5, 7}));
  EXPECT_EQ(b.data[0 * 35 + 2 * 7 + 3], 200.f);  // R was OpenCV's third channel
  EXPECT_EQ(b.data[1 * 35 + 2 * 7 + 3], 40.f);
  EXPECT_EQ(b.data[2 * 35 + 2 * 7 + 3], 30.f);
}

TEST(RasterRead, FloatTiffKeepsItsValues) {
  test::TempDir tmp;
  cv::Mat f(3, 4, CV_32FC1);
  for (int i = 0; i < 12; ++i) f.at<float>(i / 4, i % 4) = -1.5f + 0.37f * i;
  ASSERT_TRUE(cv::imwrite(tmp.file("f.tif"), f));
  const VoxelBuffer b = read_raster(tmp.file("f.tif"));
  ASSERT_EQ(b.shape, (Shape{1, 1, 3, 4}));
  for (int i = 0; i < 12; ++i) EXPECT_EQ(b.data[i], -1.5f + 0.37f * i);
  EXPECT_EQ(b.metadata.tags.at("BitDepth"), "32");
  EXPECT_EQ(b.metadata.source_format, "tiff");
}

TEST(RasterRead, TruncatedFilesAreRefusedNamingTheFile) {
  test::TempDir tmp;
  // A BMP and a TIFF of our own to cut as well.
  ASSERT_TRUE(cv::imwrite(tmp.file("ok.bmp"), cv::Mat(40, 30, CV_8UC3, cv::Scalar(1, 2, 3))));
  ASSERT_TRUE(cv::imwrite(tmp.file("ok.tif"), cv::Mat(40, 30, CV_16UC1, cv::Scalar(999))));
  struct Source {
    std::string path, ext, label;
  };
  const std::vector<Source> sources = {{sk("phantom.png"), ".png", "PNG"},
                                       {sk("retina.jpg"), ".jpg", "JPEG"},
                                       {tmp.file("ok.bmp"), ".bmp", "BMP"},
                                       {tmp.file("ok.tif"), ".tif", "TIFF"}};
  for (const auto& s : sources) {
    ASSERT_NO_THROW(read_raster(s.path)) << s.path;
    const std::vector<uint8_t> whole = read_file_bytes(s.path);
    for (size_t keep : {size_t{12}, size_t{40}, whole.size() / 2, whole.size() - 2}) {
      const std::string cut = tmp.file("cut" + s.ext);
      write_bytes(cut, std::vector<uint8_t>(whole.begin(), whole.begin() + keep));
      SCOPED_TRACE(s.path + " cut to " + std::to_string(keep));
      const std::string msg = read_error(cut);
      EXPECT_NE(msg.find("cannot decode " + s.label), std::string::npos) << msg;
    }
  }
}

TEST(RasterRead, CorruptPngDataIsRefusedByTheDecoder) {
  // Whole chunk structure, damaged IDAT: libpng's CRC check rejects it, OpenCV returns an
  // empty Mat, and medlens reports the file.
  test::TempDir tmp;
  std::vector<uint8_t> png = read_file_bytes(sk("microaneurysms.png"));
  size_t idat = 0;
  for (size_t i = 8; i + 8 < png.size(); ++i)
    if (std::memcmp(&png[i], "IDAT", 4) == 0) idat = i;
  ASSERT_GT(idat, 0u);
  for (size_t k = 0; k < 16; ++k) png[idat + 40 + k] ^= 0xa5;
  write_bytes(tmp.file("corrupt.png"), png);
  const std::string msg = read_error(tmp.file("corrupt.png"));
  EXPECT_NE(msg.find("cannot decode PNG: the decoder rejected the data"), std::string::npos)
      << msg;
}

TEST(RasterRead, RandomBytesAndEmptyFilesAreRefused) {
  test::TempDir tmp;
  std::vector<uint8_t> noise(4096);
  uint32_t x = 99;
  for (auto& v : noise) v = static_cast<uint8_t>((x = x * 1664525u + 1013904223u) >> 24);
  write_bytes(tmp.file("noise.png"), noise);
  write_bytes(tmp.file("empty.jpg"), {});
  EXPECT_NE(read_error(tmp.file("noise.png")).find("cannot decode PNG"), std::string::npos);
  EXPECT_NE(read_error(tmp.file("empty.jpg")).find("cannot decode JPEG: the file is empty"),
            std::string::npos);
  // A valid signature followed by noise.
  std::vector<uint8_t> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  png.insert(png.end(), noise.begin(), noise.end());
  write_bytes(tmp.file("sig.png"), png);
  EXPECT_NE(read_error(tmp.file("sig.png")).find("cannot decode PNG"), std::string::npos);
  EXPECT_THROW(read_raster(tmp.file("missing.png")), InputError);
}

TEST(RasterRead, HugeClaimedSizeIsRefusedBeforeDecoding) {
  test::TempDir tmp;
  // PNG: signature and an IHDR claiming 100000 x 100000 RGB; no pixel data at all.
  std::vector<uint8_t> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13,
                              'I', 'H', 'D', 'R', 0, 1, 0x86, 0xa0, 0, 1, 0x86, 0xa0, 8, 2,
                              0, 0, 0, 0, 0, 0, 0};
  write_bytes(tmp.file("huge.png"), png);
  const std::string msg = read_error(tmp.file("huge.png"));
  EXPECT_NE(msg.find("100000x100000"), std::string::npos) << msg;
  EXPECT_NE(msg.find("MEDLENS_MAX_VOXELS"), std::string::npos) << msg;
  // JPEG: SOI, SOF0 claiming 60000 x 60000 x 3, EOI.
  std::vector<uint8_t> jpg = {0xff, 0xd8, 0xff, 0xc0, 0, 17, 8, 0xea, 0x60, 0xea, 0x60, 3,
                              1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1, 0xff, 0xd9};
  write_bytes(tmp.file("huge.jpg"), jpg);
  EXPECT_NE(read_error(tmp.file("huge.jpg")).find("60000x60000"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Writing

TEST(RasterWrite, SixteenBitPngAndTiffRoundTripLosslessly) {
  test::TempDir tmp;
  std::vector<float> ramp(3 * 1 * 20 * 30);
  for (size_t i = 0; i < ramp.size(); ++i) ramp[i] = static_cast<float>((i * 3779) % 65536);
  ramp[7] = 65535.f;
  ramp[8] = 0.f;
  for (const char* name : {"grey16.png", "grey16.tif"}) {
    SCOPED_TRACE(name);
    const std::vector<float> grey(ramp.begin(), ramp.begin() + 600);
    write_raster(make_image({1, 1, 20, 30}, grey), tmp.file(name));
    const VoxelBuffer b = read_raster(tmp.file(name));
    EXPECT_EQ(b.shape, (Shape{1, 1, 20, 30}));
    EXPECT_EQ(b.data, grey);
    EXPECT_EQ(b.metadata.tags.at("BitDepth"), "16");
  }
  write_raster(make_image({3, 1, 20, 30}, ramp), tmp.file("rgb16.png"));
  const VoxelBuffer rgb = read_raster(tmp.file("rgb16.png"));
  EXPECT_EQ(rgb.data, ramp);
  // skimage reads the same 16-bit values in the same RGB order.
  const auto o = skimage_read({tmp.file("grey16.png"), tmp.file("rgb16.png")});
  EXPECT_EQ(o[0].dtype, "uint16");
  EXPECT_EQ(o[0].planar, std::vector<float>(ramp.begin(), ramp.begin() + 600));
  // Pillow (under skimage) reduces 16-bit RGB PNGs to 8 bits, keeping the high byte.
  std::vector<float> high(ramp.size());
  for (size_t i = 0; i < ramp.size(); ++i) high[i] = std::floor(ramp[i] / 256.f);
  EXPECT_EQ(o[1].planar, high);
}

TEST(RasterWrite, EightBitIntegersAreWrittenAsTheyAre) {
  test::TempDir tmp;
  std::vector<float> v(3 * 16 * 16);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>((i * 7 + i / 256 * 50) % 256);
  const Image image = make_image({3, 1, 16, 16}, v);
  for (const char* name : {"rgb8.png", "rgb8.bmp", "rgb8.tif"}) {
    SCOPED_TRACE(name);
    write_raster(image, tmp.file(name));
    const VoxelBuffer b = read_raster(tmp.file(name));
    EXPECT_EQ(b.data, v);  // BMP: the identity window, not a stretch to the value range
    EXPECT_EQ(b.metadata.tags.at("BitDepth"), "8");
  }
  // An independent reader sees the same RGB pixels.
  const auto o = skimage_read({tmp.file("rgb8.png"), tmp.file("rgb8.bmp")});
  EXPECT_EQ(o[0].planar, v);
  EXPECT_EQ(o[1].planar, v);
}

TEST(RasterWrite, WindowMapsAKnownRamp) {
  test::TempDir tmp;
  std::vector<float> ramp(256);
  for (int i = 0; i < 256; ++i) ramp[i] = static_cast<float>(i);
  WriteOptions o;
  o.window = Window{100.5, 101};  // 50 and below black, above 150 white
  write_raster(make_image({1, 1, 1, 256}, ramp), tmp.file("ramp.png"), o);
  const VoxelBuffer b = read_raster(tmp.file("ramp.png"));
  ASSERT_EQ(b.data.size(), 256u);
  EXPECT_EQ(b.data[0], 0.f);
  EXPECT_EQ(b.data[50], 0.f);
  EXPECT_EQ(b.data[75], 64.f);   // ((75 - 100) / 100 + 0.5) * 255 = 63.75
  EXPECT_EQ(b.data[100], 128.f);  // 127.5 rounds up
  EXPECT_EQ(b.data[125], 191.f);  // 191.25
  EXPECT_EQ(b.data[150], 255.f);
  EXPECT_EQ(b.data[151], 255.f);
  EXPECT_EQ(b.data[255], 255.f);
  for (int i = 0; i < 256; ++i) EXPECT_EQ(b.data[i], apply_window(ramp[i], *o.window)) << i;
  EXPECT_EQ(b.metadata.tags.at("BitDepth"), "8");
}

TEST(RasterWrite, NonIntegerValuesUseTheImageWindowElseTheirRange) {
  test::TempDir tmp;
  // CT-like values with a default window: mapped through it.
  Metadata ct;
  ct.window = Window{40, 400};
  const std::vector<float> hu = {-1000.f, -160.f, 40.f, 240.f, 1000.f, -0.5f};
  write_raster(make_image({1, 1, 1, 6}, hu, ct), tmp.file("ct.png"));
  const VoxelBuffer c = read_raster(tmp.file("ct.png"));
  ASSERT_EQ(c.data.size(), 6u);
  for (size_t i = 0; i < hu.size(); ++i) EXPECT_EQ(c.data[i], apply_window(hu[i], *ct.window));
  EXPECT_EQ(c.data[0], 0.f);
  EXPECT_EQ(c.data[4], 255.f);
  // No window anywhere: the value range, lowest to 0 and highest to 255.
  const std::vector<float> unit = {0.f, 0.25f, 0.5f, 1.f};
  write_raster(make_image({1, 1, 2, 2}, unit), tmp.file("unit.png"));
  const VoxelBuffer u = read_raster(tmp.file("unit.png"));
  EXPECT_EQ(u.data, (std::vector<float>{0.f, 64.f, 128.f, 255.f}));
  // Integers beyond 16 bits too.
  write_raster(make_image({1, 1, 1, 3}, {0.f, 50000.f, 100000.f}), tmp.file("wide.png"));
  EXPECT_EQ(read_raster(tmp.file("wide.png")).data, (std::vector<float>{0.f, 128.f, 255.f}));
}

TEST(RasterWrite, JpegIsEightBitAndCloseToTheSource) {
  test::TempDir tmp;
  std::vector<float> v(64 * 64);
  for (int y = 0; y < 64; ++y)
    for (int x = 0; x < 64; ++x) v[y * 64 + x] = static_cast<float>(2 * x + y);  // 0..189
  write_raster(make_image({1, 1, 64, 64}, v), tmp.file("smooth.jpg"));
  const VoxelBuffer b = read_raster(tmp.file("smooth.jpg"));
  ASSERT_EQ(b.shape, (Shape{1, 1, 64, 64}));
  float worst = 0;
  for (size_t i = 0; i < v.size(); ++i) worst = std::max(worst, std::abs(b.data[i] - v[i]));
  EXPECT_LE(worst, 3.f);  // quality 95 on a smooth ramp; no contrast stretch
  EXPECT_EQ(b.metadata.source_format, "jpeg");
  // Progressive scans and restart markers pass the marker walk that detects truncation.
  cv::Mat colour(48, 40, CV_8UC3);
  cv::randu(colour, 0, 255);
  for (const std::vector<int>& params : {std::vector<int>{cv::IMWRITE_JPEG_PROGRESSIVE, 1},
                                         std::vector<int>{cv::IMWRITE_JPEG_RST_INTERVAL, 2}}) {
    ASSERT_TRUE(cv::imwrite(tmp.file("special.jpg"), colour, params));
    const VoxelBuffer s = read_raster(tmp.file("special.jpg"));
    EXPECT_EQ(s.shape, (Shape{3, 1, 48, 40}));
    const cv::Mat expected = cv::imread(tmp.file("special.jpg"), cv::IMREAD_UNCHANGED);
    EXPECT_EQ(s.data[0], expected.at<cv::Vec3b>(0, 0)[2]);  // R of the first pixel
  }
}

TEST(RasterWrite, ThreeDImagesAndOddChannelCountsAreRefused) {
  test::TempDir tmp;
  const Image volume = make_image({1, 2, 3, 3}, std::vector<float>(18, 1.f));
  try {
    write_raster(volume, tmp.file("vol.png"));
    ADD_FAILURE() << "no error";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("one 2-D slice"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("NIfTI"), std::string::npos) << e.what();
  }
  EXPECT_THROW(write_raster(make_image({2, 1, 3, 3}, std::vector<float>(18, 1.f)),
                            tmp.file("two.png")),
               UsageError);
  EXPECT_THROW(write_raster(make_image({1, 1, 3, 3}, std::vector<float>(9, 1.f)),
                            tmp.file("x.gif")),
               UsageError);
  EXPECT_TRUE(fs::is_empty(tmp.path()));
}

TEST(RasterWrite, FailedWriteLeavesNoFile) {
  test::TempDir tmp;
  const Image image = make_image({1, 1, 4, 4}, std::vector<float>(16, 7.f));
  // The destination is a non-empty folder, so the final rename fails after encoding.
  fs::create_directory(tmp.file("taken.png"));
  std::ofstream(tmp.file("taken.png") + "/keep") << "x";
  EXPECT_THROW(write_raster(image, tmp.file("taken.png")), InputError);
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(tmp.path())) left.push_back(e.path().filename());
  EXPECT_EQ(left, std::vector<std::string>{"taken.png"});  // no temporary left behind
  EXPECT_THROW(write_raster(image, tmp.file("no/such/folder.png")), InputError);
  // And a good write replaces an existing file.
  std::ofstream(tmp.file("ok.png")) << "old";
  write_raster(image, tmp.file("ok.png"));
  EXPECT_EQ(read_raster(tmp.file("ok.png")).data, std::vector<float>(16, 7.f));
}

// ---------------------------------------------------------------------------------------------
// OpenCV bridge

TEST(OpenCvBridge, PlaneViewSharesTheImageMemory) {
  std::vector<float> v(2 * 3 * 4 * 5);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i);
  Image image = make_image({2, 3, 4, 5}, v);
  const Image alias = image;  // copies share voxels
  cv::Mat view = plane_view(image, 2, 1);
  ASSERT_EQ(view.type(), CV_32FC1);
  ASSERT_EQ(view.rows, 4);
  ASSERT_EQ(view.cols, 5);
  const float* plane = image.data() + (1 * 3 + 2) * 20;
  EXPECT_EQ(view.ptr<float>(0), plane);
  EXPECT_EQ(view.at<float>(3, 4), v[(1 * 3 + 2) * 20 + 19]);
  view.at<float>(1, 2) = -42.f;
  cv::add(view, cv::Scalar(1000), view);  // an OpenCV op writing in place
  EXPECT_EQ(alias.data()[(1 * 3 + 2) * 20 + 1 * 5 + 2], -42.f + 1000.f);
  EXPECT_EQ(alias.data()[(1 * 3 + 2) * 20], v[(1 * 3 + 2) * 20] + 1000.f);
  EXPECT_EQ(alias.data()[0], 0.f);  // other planes untouched
  const std::vector<cv::Mat> views = plane_views(image, 0);
  ASSERT_EQ(views.size(), 2u);
  EXPECT_EQ(views[1].ptr<float>(0), image.data() + 3 * 20);
  EXPECT_THROW(plane_view(image, 3, 0), UsageError);
  EXPECT_THROW(plane_view(image, 0, 2), UsageError);
  EXPECT_THROW(plane_view(image, -1, 0), UsageError);
}

TEST(OpenCvBridge, ImageFromMatCopiesAnyDepthIntoPlanarFloat) {
  cv::Mat bgr(3, 4, CV_8UC3);
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 4; ++x) bgr.at<cv::Vec3b>(y, x) = cv::Vec3b(x, 10 + y, 200);
  Geometry g;
  g.spacing = {0.5, 0.5, 1.0};
  Metadata md;
  md.modality = "OT";
  const Image image = image_from_mat(bgr, g, md);
  ASSERT_EQ(image.shape(), (Shape{3, 1, 3, 4}));
  EXPECT_EQ(image.geometry(), g);
  EXPECT_EQ(image.metadata().modality, "OT");
  // OpenCV's channel order is kept: channel 0 is blue.
  EXPECT_EQ(image.data()[0 * 12 + 2 * 4 + 3], 3.f);
  EXPECT_EQ(image.data()[1 * 12 + 2 * 4 + 3], 12.f);
  EXPECT_EQ(image.data()[2 * 12 + 2 * 4 + 3], 200.f);
  // Round trip through the views: same values, merged back to the original Mat.
  std::vector<cv::Mat> planes = plane_views(image, 0), as_u8(3);
  for (int c = 0; c < 3; ++c) planes[c].convertTo(as_u8[c], CV_8U);
  cv::Mat merged;
  cv::merge(as_u8, merged);
  EXPECT_EQ(cv::norm(merged, bgr, cv::NORM_INF), 0.0);

  // Signed 16-bit and double, from a non-continuous region of interest.
  cv::Mat s16(6, 6, CV_16SC1);
  for (int i = 0; i < 36; ++i) s16.at<int16_t>(i / 6, i % 6) = static_cast<int16_t>(-900 * i);
  const cv::Mat roi = s16(cv::Rect(1, 2, 3, 4));
  ASSERT_FALSE(roi.isContinuous());
  const Image r = image_from_mat(roi);
  ASSERT_EQ(r.shape(), (Shape{1, 1, 4, 3}));
  EXPECT_EQ(r.data()[0], -900.f * (2 * 6 + 1));
  EXPECT_EQ(r.data()[11], -900.f * (5 * 6 + 3));
  cv::Mat d(2, 2, CV_64FC1, cv::Scalar(0.125));
  EXPECT_EQ(image_from_mat(d).data()[3], 0.125f);
  EXPECT_THROW(image_from_mat(cv::Mat()), UsageError);
}

}  // namespace
}  // namespace medlens
