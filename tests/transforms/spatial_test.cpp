// Spatial preprocessing on real images: resampling checked against scipy.ndimage, resizing
// against OpenCV and torch, crops/pads by the LPS position of every voxel, grey against skimage.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include <cmath>
#include <fstream>

#include "core/error.h"
#include "io/opencv_bridge.h"
#include "io/read.h"
#include "transforms/registry.h"
#include "transforms/spatial.h"
#include "tools/test_util.h"

namespace medlens {
namespace {

const Image& ch2() {
  static const Image image = read_image(test::mricron_templates() + "/ch2.nii.gz");
  return image;
}

// A block of the brain, small enough to keep each test well under a second.
Image brain_block(int64_t nx = 48, int64_t ny = 56, int64_t nz = 40) {
  CropBox box;
  box.start = {66, 80, 60};
  box.size = {nx, ny, nz};
  return (*make_crop(box))(ch2());
}

// An oblique, anisotropic grid: tests that only index arithmetic would pass fail here.
Geometry oblique() {
  Geometry g;
  g.spacing = {0.8, 1.1, 1.7};
  g.origin = {-31.5, 12.25, 40.0};
  const double a = 0.3, b = -0.2;  // rotations about z, then x
  const double ca = std::cos(a), sa = std::sin(a), cb = std::cos(b), sb = std::sin(b);
  g.direction = {ca, -sa * cb, sa * sb, sa, ca * cb, -ca * sb, 0, sb, cb};
  return g;
}

Image with_geometry(const Image& image, const Geometry& g) { return Image(image.voxels(), g, image.metadata()); }

void write_f32(const std::string& path, const at::Tensor& t) {
  const at::Tensor c = t.to(at::kFloat).contiguous();
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(c.data_ptr<float>()), c.numel() * 4);
}

at::Tensor read_tensor(const std::string& path, at::IntArrayRef shape) {
  return at::tensor(test::read_f32(path), at::kFloat).reshape(shape);
}

std::string zyx(const Image& image) {
  return std::to_string(image.depth()) + "," + std::to_string(image.height()) + "," + std::to_string(image.width());
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

double distance(const Vec3& a, const Vec3& b) { return norm({a[0] - b[0], a[1] - b[1], a[2] - b[2]}); }

Vec3 index3(int64_t flat, const Image& image) {
  const int64_t x = flat % image.width(), y = (flat / image.width()) % image.height(),
                z = flat / (image.width() * image.height());
  return {static_cast<double>(x), static_cast<double>(y), static_cast<double>(z)};
}

// Intensity-weighted mean LPS position of a one-channel image.
Vec3 centroid_lps(const Image& image) {
  const at::Tensor v = image.voxels()[0].to(at::kDouble);
  const double total = v.sum().item<double>();
  Vec3 idx{};
  for (int a = 0; a < 3; ++a) {
    const int64_t dim = 2 - a;  // (Z,Y,X)
    const int64_t n = v.size(dim);
    std::vector<int64_t> shape{1, 1, 1};
    shape[static_cast<size_t>(dim)] = n;
    idx[a] = (v * at::arange(n, at::kDouble).view(shape)).sum().item<double>() / total;
  }
  return image.geometry().index_to_lps(idx);
}

TEST(Resample, MatchesScipyMapCoordinatesAndKeepsTheGrid) {
  const Image img = brain_block();
  const Vec3 target{2.0, 0.7, 1.5};
  test::TempDir tmp;
  write_f32(tmp.file("in.f32"), img.voxels());
  const double range = img.voxels().max().item<double>() - img.voxels().min().item<double>();
  for (auto [how, order] : {std::pair{Interpolation::kLinear, 1}, std::pair{Interpolation::kBSpline, 3}}) {
    SCOPED_TRACE(order);
    const Image out = (*make_resample({target, how}))(img);
    // ITK's grid: size round(n * s / s'), origin and direction kept.
    EXPECT_EQ(out.width(), 24);   // 48 * 1 / 2
    EXPECT_EQ(out.height(), 80);  // 56 / 0.7
    EXPECT_EQ(out.depth(), 27);   // round(26.67)
    EXPECT_EQ(out.geometry().spacing, target);
    EXPECT_EQ(out.geometry().origin, img.geometry().origin);
    EXPECT_EQ(out.geometry().direction, img.geometry().direction);
    const std::string out_file = tmp.file("out" + std::to_string(order) + ".f32");
    test::run_oracle("spatial_resample.py", {tmp.file("in.f32"), zyx(img), std::to_string(order), zyx(out),
                                             "1.5,0.7,2.0", out_file});
    const double err = max_abs_diff(out.voxels()[0], read_tensor(out_file, {27, 80, 24}));
    // Both agree to float rounding (measured 1.6e-7 and 3.1e-7 of the range): ITK's B-spline
    // prefilter and scipy's differ only in how they truncate the boundary sums.
    EXPECT_LT(err / range, 1e-5) << "max |medlens - scipy| = " << err;
  }
}

TEST(Resample, KeepsTheLpsPositionOfADot) {
  // A Gaussian dot (sigma 3 mm) at a known off-grid LPS point of an oblique, anisotropic grid.
  const Geometry g = oblique();
  const Vec3 dot = g.index_to_lps({17.3, 15.6, 11.2});
  at::Tensor v = at::empty({1, 24, 36, 40}, at::kFloat);
  auto acc = v.accessor<float, 4>();
  for (int64_t z = 0; z < 24; ++z)
    for (int64_t y = 0; y < 36; ++y)
      for (int64_t x = 0; x < 40; ++x) {
        const double d = distance(g.index_to_lps({double(x), double(y), double(z)}), dot);
        acc[0][z][y][x] = static_cast<float>(std::exp(-d * d / (2 * 9.0)));
      }
  const Image img(v, g, Metadata{});
  for (Interpolation how : {Interpolation::kLinear, Interpolation::kBSpline}) {
    const Image coarse = (*make_resample({{2.0, 2.0, 2.0}, how}))(img);
    const Image back = (*make_resample({g.spacing, how}))(coarse);
    EXPECT_EQ(back.shape(), img.shape());
    for (const Image* r : {&coarse, &back}) {
      // The brightest voxel lies within half a voxel of the dot along every axis ...
      const Vec3 peak = index3(r->voxels().argmax().item<int64_t>(), *r);
      const Vec3 expected = r->geometry().lps_to_index(dot);
      for (int a = 0; a < 3; ++a) EXPECT_LE(std::abs(peak[a] - expected[a]), 0.5 + 1e-9) << "axis " << a;
      // ... and the dot's centre of mass stays put to a fraction of a millimetre.
      EXPECT_LT(distance(centroid_lps(*r), dot), 0.05);
    }
    // The round trip loses only what 2 mm sampling cannot hold.
    const at::Tensor both = at::stack({back.voxels().flatten(), img.voxels().flatten()});
    EXPECT_GT(at::corrcoef(both)[0][1].item<double>(), 0.99);
  }
}

TEST(Resample, LabelsUseNearestNeighbourAndFollowTheImage) {
  // The AAL atlas shares ch2's grid: a real label map with 35 regions in this block.
  const Image img = brain_block();
  const Image atlas = (*make_crop({{66, 80, 60}, {48, 56, 40}}))(read_image(test::mricron_templates() + "/aal.nii.gz"));
  ASSERT_EQ(atlas.geometry(), img.geometry());
  Sample s{img, atlas};
  Rng rng(0);
  const ResampleOptions o{{1.7, 2.3, 1.3}, Interpolation::kBSpline};
  const Sample out = make_resample(o)->apply(s, rng);
  EXPECT_EQ(out.label->geometry(), out.image.geometry());
  EXPECT_EQ(out.label->shape(), out.image.shape());
  // Only original label values survive (no blends of neighbouring region numbers) ...
  const at::Tensor before = std::get<0>(at::_unique(atlas.voxels()));
  const at::Tensor after = std::get<0>(at::_unique(out.label->voxels()));
  EXPECT_TRUE(at::isin(after, before).all().item<bool>());
  EXPECT_GE(after.numel(), before.numel() - 2);
  // ... and the label is exactly the atlas resampled with nearest neighbours.
  EXPECT_TRUE(at::equal(out.label->voxels(), (*make_resample({o.spacing, Interpolation::kNearest}))(atlas).voxels()));
}

TEST(Resize, AreaLinearAndNearestMatchOpenCvAndTorch) {
  const Image busi = (*make_crop({{0, 32, 0}, {256, 192, 1}}))(read_image(test::vendored_samples() + "/busi/normal_100.png"));
  const cv::Mat plane = plane_view(busi, 0, 0);
  const at::Tensor nchw = busi.voxels()[0];  // (1, H, W): Z plays the batch
  auto resized = [&](int64_t w, int64_t h, ResizeMode mode) { return (*make_resize({{w, h, 0}, mode}))(busi); };

  // Area with an integer factor: the 4x4 mean, as cv::INTER_AREA and adaptive average pooling.
  const Image area = resized(64, 48, ResizeMode::kArea);
  cv::Mat cv_area;
  cv::resize(plane, cv_area, cv::Size(64, 48), 0, 0, cv::INTER_AREA);
  EXPECT_LT(max_abs_diff(area.voxels()[0][0], at::from_blob(cv_area.data, {48, 64}, at::kFloat)), 1e-3);
  EXPECT_LT(max_abs_diff(area.voxels()[0], at::adaptive_avg_pool2d(nchw, {48, 64})), 1e-3);

  // Linear (half-pixel centres), shrinking and enlarging.
  for (auto [w, h] : {std::pair<int64_t, int64_t>{100, 77}, {300, 220}}) {
    const Image lin = resized(w, h, ResizeMode::kLinear);
    cv::Mat cv_lin;
    cv::resize(plane, cv_lin, cv::Size(int(w), int(h)), 0, 0, cv::INTER_LINEAR);
    EXPECT_LT(max_abs_diff(lin.voxels()[0][0], at::from_blob(cv_lin.data, {h, w}, at::kFloat)), 1e-3);
    EXPECT_LT(max_abs_diff(lin.voxels()[0], at::upsample_bilinear2d(nchw.unsqueeze(0), {h, w}, false)[0]), 1e-3);
    // Nearest: the voxel whose footprint holds the new centre, floor((2i + 1) n / 2m) exactly;
    // cv::INTER_NEAREST_EXACT agrees except on ties (a centre exactly on a voxel boundary), which
    // its 16.16 fixed point may send to the lower voxel.
    const Image near = resized(w, h, ResizeMode::kNearest);
    auto centres = [](int64_t n, int64_t m) {
      std::vector<int64_t> i(static_cast<size_t>(m));
      for (int64_t o = 0; o < m; ++o) i[static_cast<size_t>(o)] = (2 * o + 1) * n / (2 * m);
      return at::tensor(i, at::kLong);
    };
    auto ties = [](int64_t n, int64_t m) {
      std::vector<uint8_t> t(static_cast<size_t>(m));
      for (int64_t o = 0; o < m; ++o) t[static_cast<size_t>(o)] = (2 * o + 1) * n % (2 * m) == 0;
      return at::tensor(t, at::kByte).to(at::kBool);
    };
    const at::Tensor expected = nchw[0].index_select(0, centres(192, h)).index_select(1, centres(256, w));
    EXPECT_TRUE(at::equal(near.voxels()[0][0], expected));
    cv::Mat cv_near;
    cv::resize(plane, cv_near, cv::Size(int(w), int(h)), 0, 0, cv::INTER_NEAREST_EXACT);
    const at::Tensor same = near.voxels()[0][0].eq(at::from_blob(cv_near.data, {h, w}, at::kFloat));
    const at::Tensor tie = ties(192, h).view({h, 1}) | ties(256, w).view({1, w});
    EXPECT_TRUE((same | tie).all().item<bool>());
    EXPECT_GT(tie.to(at::kDouble).mean().item<double>(), 0.0);  // the sizes do produce ties
    // The physical box is kept: same far corners, spacing * size unchanged.
    for (const Vec3& corner : {Vec3{-0.5, -0.5, 0}, Vec3{-0.5 + 256, -0.5 + 192, 0}}) {
      const Vec3 scaled{(corner[0] + 0.5) * double(w) / 256 - 0.5, (corner[1] + 0.5) * double(h) / 192 - 0.5, 0};
      EXPECT_LT(distance(lin.geometry().index_to_lps(scaled), busi.geometry().index_to_lps(corner)), 1e-9);
    }
  }

  // 3-D: halving every axis of a brain block is the 2x2x2 mean.
  const Image block = brain_block();
  const Image half = (*make_resize({{24, 28, 20}, ResizeMode::kArea}))(block);
  EXPECT_LT(max_abs_diff(half.voxels(), at::avg_pool3d(block.voxels(), 2)), 1e-4);
  EXPECT_EQ(half.geometry().spacing, (Vec3{2, 2, 2}));
  EXPECT_LT(distance(half.geometry().origin, block.geometry().index_to_lps({0.5, 0.5, 0.5})), 1e-9);
}

// Every voxel of `out` at index i holds the value and LPS position of `in` at index i + shift.
void expect_same_voxels(const Image& in, const Image& out, std::array<int64_t, 3> shift) {
  const at::Tensor expected = in.voxels()
                                  .narrow(3, shift[0], out.width())
                                  .narrow(2, shift[1], out.height())
                                  .narrow(1, shift[2], out.depth());
  EXPECT_TRUE(at::equal(out.voxels(), expected));
  for (const Vec3& i : {Vec3{0, 0, 0}, Vec3{double(out.width() - 1), double(out.height() - 1), double(out.depth() - 1)}})
    EXPECT_LT(distance(out.geometry().index_to_lps(i),
                       in.geometry().index_to_lps({i[0] + double(shift[0]), i[1] + double(shift[1]), i[2] + double(shift[2])})),
              1e-9);
  EXPECT_EQ(out.geometry().spacing, in.geometry().spacing);
  EXPECT_EQ(out.geometry().direction, in.geometry().direction);
}

TEST(CropAndPad, KeepLpsPositionsOnAnObliqueAnisotropicGrid) {
  const Image img = with_geometry(brain_block(30, 26, 20), oblique());
  const Image crop = (*make_crop({{3, 5, 2}, {10, 12, 8}}))(img);
  EXPECT_EQ(crop.shape(), (Shape{1, 8, 12, 10}));
  expect_same_voxels(img, crop, {3, 5, 2});
  EXPECT_THROW((*make_crop({{25, 0, 0}, {10, 0, 0}}))(img), InputError);

  const Image centre = (*make_center_crop({20, 20, 0}))(img);
  EXPECT_EQ(centre.shape(), (Shape{1, 20, 20, 20}));
  expect_same_voxels(img, centre, {5, 3, 0});

  PadOptions margins;
  margins.margins = {2, 3, 1, 0, 4, 1};
  margins.value = -7;
  const Image padded = (*make_pad(margins))(img);
  EXPECT_EQ(padded.shape(), (Shape{1, 25, 27, 35}));
  expect_same_voxels(padded, img, {2, 1, 4});
  EXPECT_EQ(padded.voxels().eq(-7).sum().item<int64_t>(), padded.shape().voxels() - img.shape().voxels());

  PadOptions to_size;
  to_size.size = {35, 26, 21};
  const Image sized = (*make_pad(to_size))(img);
  EXPECT_EQ(sized.shape(), (Shape{1, 21, 26, 35}));
  expect_same_voxels(sized, img, {2, 0, 0});
}

TEST(CropAndPad, EdgeAndReflectPadLikeNumpy) {
  const Image row(at::tensor({1.f, 2.f, 3.f, 4.f}).reshape({1, 4}), Geometry{}, Metadata{});
  auto padded = [&](PadMode mode, int64_t m) {
    PadOptions o;
    o.margins = {m, m, 0, 0, 0, 0};
    o.mode = mode;
    return (*make_pad(o))(row).voxels().flatten();
  };
  // numpy.pad([1,2,3,4], 2, mode='edge' / 'reflect'); a margin past the length keeps reflecting.
  EXPECT_TRUE(at::equal(padded(PadMode::kEdge, 2), at::tensor({1.f, 1.f, 1.f, 2.f, 3.f, 4.f, 4.f, 4.f})));
  EXPECT_TRUE(at::equal(padded(PadMode::kReflect, 2), at::tensor({3.f, 2.f, 1.f, 2.f, 3.f, 4.f, 3.f, 2.f})));
  EXPECT_TRUE(at::equal(padded(PadMode::kReflect, 5).narrow(0, 0, 5), at::tensor({2.f, 3.f, 4.f, 3.f, 2.f})));
  // A 2-D image never grows along z.
  PadOptions all;
  all.margins = {1, 1, 1, 1, 1, 1};
  EXPECT_EQ((*make_pad(all))(row).depth(), 1);
}

TEST(ForegroundCrop, BoundingBoxPlusMarginInMillimetresWithTheLabel) {
  // The skull-stripped brain, 4x smaller, on an oblique grid: the brain sits inside the volume.
  const Image bet = read_image(test::mricron_templates() + "/ch2bet.nii.gz");
  const Image img = with_geometry((*make_resize({{45, 54, 45}, ResizeMode::kArea}))(bet), oblique());
  const double threshold = 20;
  Sample s{img, img.with_voxels((img.voxels() > threshold).to(at::kFloat))};
  Rng rng(0);
  const Sample out = make_foreground_crop({threshold, {2.0, 2.0, 2.0}})->apply(s, rng);
  // Expected box: the foreground's extent grown by ceil(2 mm / spacing) = 3, 2, 2 voxels.
  const at::Tensor fg = s.label->voxels()[0] > 0.5;
  std::array<int64_t, 3> first{}, last{};
  const std::array<int64_t, 3> margin{3, 2, 2};
  for (int a = 0; a < 3; ++a) {
    const int64_t dim = 2 - a;
    std::vector<int64_t> other;
    for (int64_t d = 0; d < 3; ++d)
      if (d != dim) other.push_back(d);
    const at::Tensor hits = fg.any(other[1]).any(other[0]).nonzero();
    const int64_t n = fg.size(dim);
    first[a] = std::max<int64_t>(0, hits.min().item<int64_t>() - margin[a]);
    last[a] = std::min<int64_t>(n - 1, hits.max().item<int64_t>() + margin[a]);
  }
  EXPECT_EQ(out.image.width(), last[0] - first[0] + 1);
  EXPECT_EQ(out.image.height(), last[1] - first[1] + 1);
  EXPECT_EQ(out.image.depth(), last[2] - first[2] + 1);
  EXPECT_LT(out.image.shape().voxels(), img.shape().voxels());
  expect_same_voxels(img, out.image, first);
  // The label was cut with the same box: it still marks exactly the bright voxels.
  EXPECT_EQ(out.label->geometry(), out.image.geometry());
  EXPECT_TRUE(at::equal(out.label->voxels(), (out.image.voxels() > threshold).to(at::kFloat)));
  EXPECT_EQ((out.label->voxels()).sum().item<double>(), s.label->voxels().sum().item<double>());
}

TEST(Grey, EqualsSkimageRgb2grayOnRetina) {
  test::TempDir tmp;
  const std::string path = test::skimage_data() + "/retina.jpg";
  test::run_oracle("spatial_grey.py", {path, tmp.path().string()});
  int64_t h = 0, w = 0;
  std::istringstream(test::read_text(tmp.file("shape.txt"))) >> h >> w;
  ASSERT_GT(h * w, 0);
  Image rgb(read_tensor(tmp.file("rgb.f32"), {3, 1, h, w}), Geometry{}, Metadata{});
  rgb.metadata().photometric = "RGB";
  const Image grey = (*make_grey())(rgb);
  EXPECT_EQ(grey.channels(), 1);
  EXPECT_EQ(grey.metadata().photometric, "MONOCHROME2");
  EXPECT_LT(max_abs_diff(grey.voxels()[0][0], read_tensor(tmp.file("grey.f32"), {h, w})), 1e-3);
  // medlens decodes the JPEG as skimage does (measured: identical), so the whole path agrees.
  const Image ours = (*make_grey())(read_image(path));
  EXPECT_LT((ours.voxels()[0][0] - read_tensor(tmp.file("grey.f32"), {h, w})).abs().mean().item<double>(), 0.5);
}

TEST(Channels, RepeatAndRefuseOtherCounts) {
  const Image one = brain_block(8, 8, 1);
  const Image three = (*make_repeat_channels(3))(one);
  ASSERT_EQ(three.channels(), 3);
  for (int64_t c = 0; c < 3; ++c) EXPECT_TRUE(at::equal(three.voxels()[c], one.voxels()[0]));
  EXPECT_TRUE(at::equal((*make_grey())(three).voxels(), one.voxels()));  // weights sum to 1
  const Image two(at::zeros({2, 1, 4, 4}), Geometry{}, Metadata{});
  EXPECT_THROW((*make_grey())(two), InputError);
  EXPECT_THROW((*make_repeat_channels(3))(two), InputError);
}

TEST(SpatialRegistry, ParametersParseAndBadOnesAreUsageErrors) {
  const TransformPtr r = parse_op("resample:spacing=2;2;3,interpolation=bspline");
  EXPECT_EQ(r->params()["spacing"], nlohmann::json({2.0, 2.0, 3.0}));
  EXPECT_EQ(parse_op("resample:spacing=1.5")->params()["spacing"], nlohmann::json({1.5, 1.5, 1.5}));
  EXPECT_EQ(parse_op("resize:size=128;96,mode=area")->params()["size"], nlohmann::json({128, 96, 0}));
  EXPECT_EQ(parse_op("pad:margin=1;2")->params()["margin"], nlohmann::json({1, 1, 2, 2, 0, 0}));
  EXPECT_THROW(parse_op("resample:spacing=-1"), UsageError);
  EXPECT_THROW(parse_op("resample:interpolation=cubic"), UsageError);
  EXPECT_THROW(parse_op("resize:size=1.5;2"), UsageError);
  EXPECT_THROW(parse_op("pad:size=10;10,margin=2"), UsageError);
  EXPECT_THROW(parse_op("pad:margin=1;2;3;4;5"), UsageError);
  EXPECT_THROW(parse_op("repeat-channels:n=0"), UsageError);
  // Sizes beyond any image medlens would read are refused when parsed (1e12 used to be cast
  // to int64 unchecked), and results over the voxel limit before they are allocated.
  EXPECT_THROW(parse_op("resize:size=1e12;1e12"), UsageError);
  const Image small = brain_block(8, 8, 8);
  for (const char* op : {"resize:size=100000;100000;100000", "pad:margin=100000"}) {
    try {
      (*parse_op(op))(small);
      ADD_FAILURE() << op;
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find("MEDLENS_MAX_VOXELS"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace medlens
