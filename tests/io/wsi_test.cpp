// Whole-slide reading through OpenSlide. No real slide file is available, so the suite builds a
// pyramidal tiled TIFF (OpenSlide's "generic-tiff") with libtiff from a real micrograph, skimage's
// ihc.png, and checks what OpenSlide hands back against the pixels written.

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <tiffio.h>

#include <algorithm>
#include <filesystem>
#include <memory>

#include "core/error.h"
#include "io/read.h"
#include "io/wsi.h"
#include "tools/test_util.h"

namespace fs = std::filesystem;

namespace medlens {
namespace {

constexpr int kTile = 256;
constexpr double kPixelsPerCm = 20000.0;  // 0.5 micron per level-0 pixel

// Writes RGB levels (finest first) as one tiled, deflate-compressed TIFF directory each.
void write_pyramid(const std::string& path, const std::vector<cv::Mat>& levels, bool resolution) {
  TIFF* tif = TIFFOpen(path.c_str(), "w");
  ASSERT_NE(tif, nullptr);
  for (size_t l = 0; l < levels.size(); ++l) {
    const cv::Mat& m = levels[l];  // CV_8UC3 in RGB order
    TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, m.cols);
    TIFFSetField(tif, TIFFTAG_IMAGELENGTH, m.rows);
    TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, 3);
    TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, 8);
    TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_RGB);
    TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
    TIFFSetField(tif, TIFFTAG_TILEWIDTH, kTile);
    TIFFSetField(tif, TIFFTAG_TILELENGTH, kTile);
    TIFFSetField(tif, TIFFTAG_COMPRESSION, COMPRESSION_ADOBE_DEFLATE);
    if (l > 0) TIFFSetField(tif, TIFFTAG_SUBFILETYPE, FILETYPE_REDUCEDIMAGE);
    if (resolution) {
      const float res = static_cast<float>(kPixelsPerCm * m.cols / levels[0].cols);
      TIFFSetField(tif, TIFFTAG_RESOLUTIONUNIT, RESUNIT_CENTIMETER);
      TIFFSetField(tif, TIFFTAG_XRESOLUTION, res);
      TIFFSetField(tif, TIFFTAG_YRESOLUTION, res);
    }
    std::vector<uint8_t> tile(kTile * kTile * 3);
    for (int ty = 0; ty < m.rows; ty += kTile) {
      for (int tx = 0; tx < m.cols; tx += kTile) {
        std::fill(tile.begin(), tile.end(), 0);
        for (int y = 0; y < kTile && ty + y < m.rows; ++y)
          for (int x = 0; x < kTile && tx + x < m.cols; ++x)
            for (int c = 0; c < 3; ++c)
              tile[(y * kTile + x) * 3 + c] = m.at<cv::Vec3b>(ty + y, tx + x)[c];
        ASSERT_GE(TIFFWriteTile(tif, tile.data(), tx, ty, 0, 0), 0);
      }
    }
    ASSERT_EQ(TIFFWriteDirectory(tif), 1);
  }
  TIFFClose(tif);
}

class WsiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::make_unique<test::TempDir>();
    cv::Mat bgr = cv::imread(test::skimage_data() + "/ihc.png", cv::IMREAD_COLOR);
    ASSERT_FALSE(bgr.empty());
    cv::Mat rgb, l0, l1, l2;
    cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
    // Sizes that are not multiples of the tile, with exact downsamples 2 and 4. Every level is
    // at least one tile: OpenSlide 3.4.1 with libtiff 4.5 misplaces the pixels of generic-TIFF
    // levels smaller than a tile (read_wsi warns about those; see the bare slide below).
    cv::resize(rgb, l0, cv::Size(1300, 1100), 0, 0, cv::INTER_CUBIC);
    cv::resize(l0, l1, cv::Size(650, 550), 0, 0, cv::INTER_AREA);
    cv::resize(l1, l2, cv::Size(325, 275), 0, 0, cv::INTER_AREA);
    levels_ = {l0, l1, l2};
    slide_ = dir_->file("slide.tif");
    write_pyramid(slide_, levels_, true);
    bare_ = dir_->file("bare.tif");  // one level, no resolution, smaller than a tile in height
    cv::Mat small;
    cv::resize(l2, small, cv::Size(300, 200), 0, 0, cv::INTER_AREA);
    write_pyramid(bare_, {small}, false);
  }
  static void TearDownTestSuite() {
    levels_.clear();
    dir_.reset();
  }

  // Counts pixels of a buffer region that differ from the written level.
  static int64_t mismatches(const VoxelBuffer& b, int level, int64_t x, int64_t y) {
    const cv::Mat& m = levels_[static_cast<size_t>(level)];
    const int64_t w = b.shape.x, h = b.shape.y, plane = w * h;
    int64_t bad = 0;
    for (int64_t j = 0; j < h; ++j)
      for (int64_t i = 0; i < w; ++i)
        for (int c = 0; c < 3; ++c)
          bad += b.data[static_cast<size_t>(c * plane + j * w + i)] !=
                 static_cast<float>(
                     m.at<cv::Vec3b>(static_cast<int>(y + j), static_cast<int>(x + i))[c]);
    return bad;
  }

  static inline std::unique_ptr<test::TempDir> dir_;
  static inline std::vector<cv::Mat> levels_;
  static inline std::string slide_, bare_;
};

TEST_F(WsiTest, DetectsSlidesOnly) {
  EXPECT_TRUE(is_whole_slide(slide_));
  EXPECT_EQ(detect_format(slide_), Format::kWsi);
  const std::string png = test::skimage_data() + "/ihc.png";
  EXPECT_FALSE(is_whole_slide(png));
  EXPECT_EQ(detect_format(png), Format::kRaster);
  // A plain striped TIFF is an ordinary raster image, not a slide.
  const std::string striped = dir_->file("striped.tif");
  ASSERT_TRUE(cv::imwrite(striped, levels_[2]));
  EXPECT_FALSE(is_whole_slide(striped));
  EXPECT_EQ(detect_format(striped), Format::kRaster);
  EXPECT_FALSE(is_whole_slide(dir_->file("missing.svs")));
}

TEST_F(WsiTest, SlideInfoDescribesThePyramid) {
  const SlideInfo info = slide_info(slide_);
  EXPECT_EQ(info.vendor, "generic-tiff");
  ASSERT_EQ(info.levels.size(), 3u);
  for (size_t l = 0; l < 3; ++l) {
    EXPECT_EQ(info.levels[l].width, levels_[l].cols) << l;
    EXPECT_EQ(info.levels[l].height, levels_[l].rows) << l;
    EXPECT_DOUBLE_EQ(info.levels[l].downsample, double(1 << l)) << l;
  }
  // OpenSlide 3.4's generic-tiff gives only the TIFF tags; mpp is derived from them.
  EXPECT_EQ(info.properties.at("openslide.level-count"), "3");
  EXPECT_EQ(info.properties.at("tiff.ResolutionUnit"), "centimeter");
  EXPECT_NEAR(info.mpp_x, 0.5, 1e-9);
  EXPECT_NEAR(info.mpp_y, 0.5, 1e-9);
  EXPECT_EQ(slide_info(bare_).mpp_x, 0.0);
}

TEST_F(WsiTest, RegionsEqualTheWrittenPixels) {
  // Level 0, across tile boundaries.
  const VoxelBuffer a = read_slide_region(slide_, 0, 300, 200, 333, 222);
  EXPECT_EQ(a.shape, (Shape{3, 1, 222, 333}));
  EXPECT_EQ(mismatches(a, 0, 300, 200), 0);
  EXPECT_EQ(a.metadata.modality, "SM");
  EXPECT_EQ(a.metadata.photometric, "RGB");
  EXPECT_DOUBLE_EQ(a.geometry.spacing[0], 0.0005);
  EXPECT_DOUBLE_EQ(a.geometry.origin[0], 300 * 0.0005);
  // Level 1, in level-1 pixels, reaching the clipped last tile column and row.
  const VoxelBuffer b = read_slide_region(slide_, 1, 250, 190, 400, 360);
  EXPECT_EQ(b.shape, (Shape{3, 1, 360, 400}));
  EXPECT_EQ(mismatches(b, 1, 250, 190), 0);
  EXPECT_DOUBLE_EQ(b.geometry.spacing[1], 0.001);
  // Pixel 250 of level 1 covers level-0 pixels 500..501: centre 500.5.
  EXPECT_DOUBLE_EQ(b.geometry.origin[0], 500.5 * 0.0005);
  // The whole coarsest level.
  const VoxelBuffer c = read_slide_region(slide_, 2, 0, 0, 325, 275);
  EXPECT_EQ(mismatches(c, 2, 0, 0), 0);
}

TEST_F(WsiTest, ReadWsiPicksTheFinestLevelThatFits) {
  ReadOptions o;
  o.max_wsi_pixels = 1300 * 1100;
  EXPECT_EQ(read_wsi(slide_, o).shape, (Shape{3, 1, 1100, 1300}));
  o.max_wsi_pixels = 1300 * 1100 - 1;
  VoxelBuffer b = read_voxels(slide_, o);  // the dispatching reader and its shared checks
  EXPECT_EQ(b.shape, (Shape{3, 1, 550, 650}));
  EXPECT_EQ(mismatches(b, 1, 0, 0), 0);
  EXPECT_EQ(b.metadata.source_format, "wsi");
  EXPECT_EQ(b.metadata.tags.at("ReadLevel"), "1");
  EXPECT_EQ(b.metadata.tags.at("LevelCount"), "3");
  EXPECT_EQ(b.metadata.tags.at("Vendor"), "generic-tiff");
  EXPECT_EQ(b.metadata.tags.at("Level2"), "325x275 downsample 4");
  EXPECT_TRUE(b.metadata.warnings.empty());
  o.max_wsi_pixels = 650 * 550 - 1;
  EXPECT_EQ(read_wsi(slide_, o).shape, (Shape{3, 1, 275, 325}));
  o.max_wsi_pixels = 100;
  EXPECT_THROW(read_wsi(slide_, o), InputError);
  // An explicit level and region.
  ReadOptions r;
  r.wsi_level = 1;
  r.wsi_region = std::array<int64_t, 4>{10, 20, 64, 32};
  b = read_wsi(slide_, r);
  EXPECT_EQ(b.shape, (Shape{3, 1, 32, 64}));
  EXPECT_EQ(mismatches(b, 1, 10, 20), 0);
  // Unknown resolution: 1 mm spacing and a warning; and a warning for the sub-tile level.
  b = read_wsi(bare_);
  EXPECT_EQ(b.shape, (Shape{3, 1, 200, 300}));
  EXPECT_EQ(b.geometry.spacing, (Vec3{1, 1, 1}));
  ASSERT_EQ(b.metadata.warnings.size(), 2u);
  EXPECT_NE(b.metadata.warnings[0].find("microns per pixel"), std::string::npos);
  EXPECT_NE(b.metadata.warnings[1].find("smaller than one tile"), std::string::npos);
}

TEST_F(WsiTest, TilesCoverEachLevelExactlyOnce) {
  const SlideInfo info = slide_info(slide_);
  for (int level = 0; level < 3; ++level) {
    const SlideLevel& L = info.levels[static_cast<size_t>(level)];
    for (int64_t tile : {256, 100, 1000}) {
      SCOPED_TRACE("level " + std::to_string(level) + " tile " + std::to_string(tile));
      std::vector<int> hits(static_cast<size_t>(L.width * L.height), 0);
      int64_t area = 0;
      for (const auto& [x, y, w, h] : slide_tiles(info, level, tile, 0)) {
        ASSERT_TRUE(x >= 0 && y >= 0 && w > 0 && h > 0 && w <= tile && h <= tile);
        ASSERT_TRUE(x + w <= L.width && y + h <= L.height);
        area += w * h;
        for (int64_t j = y; j < y + h; ++j)
          for (int64_t i = x; i < x + w; ++i) ++hits[static_cast<size_t>(j * L.width + i)];
      }
      EXPECT_EQ(area, L.width * L.height);
      EXPECT_EQ(std::count(hits.begin(), hits.end(), 1), L.width * L.height);
    }
    // With overlap every pixel is still covered, and neighbours share `overlap` pixels.
    const auto tiles = slide_tiles(info, level, 128, 32);
    std::vector<int> hits(static_cast<size_t>(L.width * L.height), 0);
    for (const auto& [x, y, w, h] : tiles)
      for (int64_t j = y; j < y + h; ++j)
        for (int64_t i = x; i < x + w; ++i) ++hits[static_cast<size_t>(j * L.width + i)];
    EXPECT_EQ(std::count(hits.begin(), hits.end(), 0), 0);
    EXPECT_EQ(tiles[1][0], 96);
  }
  EXPECT_THROW(slide_tiles(info, 3, 256, 0), UsageError);
  EXPECT_THROW(slide_tiles(info, 0, 256, 256), UsageError);
}

TEST_F(WsiTest, BadRegionsAndFilesAreRefused) {
  auto expect_refused = [](const std::string& path, auto&& fn) {
    try {
      fn();
      ADD_FAILURE() << "no error";
    } catch (const InputError& e) {
      EXPECT_EQ(e.path(), path);
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
    }
  };
  expect_refused(slide_, [&] { read_slide_region(slide_, 1, 600, 0, 51, 10); });  // 651 > 650
  expect_refused(slide_, [&] { read_slide_region(slide_, 0, -1, 0, 10, 10); });
  expect_refused(slide_, [&] { read_slide_region(slide_, 0, 0, 0, 0, 10); });
  expect_refused(slide_, [&] { read_slide_region(slide_, 3, 0, 0, 10, 10); });
  ReadOptions o;
  o.wsi_level = 2;
  o.wsi_region = std::array<int64_t, 4>{200, 200, 126, 10};  // 326 > 325
  expect_refused(slide_, [&] { read_wsi(slide_, o); });
  const std::string png = test::skimage_data() + "/ihc.png";
  expect_refused(png, [&] { slide_info(png); });
  expect_refused(png, [&] { read_wsi(png); });
  // A tiled TIFF cut short: OpenSlide's error surfaces as InputError, not a crash.
  const std::string cut = dir_->file("cut.tif");
  fs::copy_file(slide_, cut);
  fs::resize_file(cut, fs::file_size(slide_) / 3);
  try {
    read_wsi(cut);
    ADD_FAILURE() << "truncated slide read without error";
  } catch (const InputError& e) {
    EXPECT_EQ(e.path(), cut);
  }
}

}  // namespace
}  // namespace medlens
