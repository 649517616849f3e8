// Morphology, components and edges on real images, checked against scipy.ndimage and
// scikit-image on the same voxels, and on shapes whose answer is known in millimetres.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>

#include "core/error.h"
#include "io/read.h"
#include "transforms/morphology.h"
#include "transforms/registry.h"
#include "transforms/spatial.h"
#include "tools/test_util.h"

namespace medlens {
namespace {

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

Image ct() { return read_image(test::pydicom_files() + "/CT_small.dcm"); }

const Image& ch2() {
  static const Image image = read_image(test::mricron_templates() + "/ch2.nii.gz");
  return image;
}

Image ch2_block(std::array<int64_t, 3> start, std::array<int64_t, 3> size) { return (*make_crop({start, size}))(ch2()); }

Image busi() { return read_image(test::vendored_samples() + "/busi/benign_103.png"); }

// A one-channel image from a (Z,Y,X) tensor on the given spacing.
Image make_image(const at::Tensor& zyx_voxels, Vec3 spacing) {
  Geometry g;
  g.spacing = spacing;
  return Image(zyx_voxels.unsqueeze(0), g, Metadata{});
}

// Distance (mm) of every voxel centre from a point given in voxel index (x, y, z).
at::Tensor distance_map(std::array<int64_t, 3> n, Vec3 spacing, Vec3 centre) {
  auto axis = [&](int a, std::vector<int64_t> shape) {
    return ((at::arange(n[a], at::kDouble) - centre[a]) * spacing[a]).view(shape).pow(2);
  };
  return (axis(0, {1, 1, n[0]}) + axis(1, {1, n[1], 1}) + axis(2, {n[2], 1, 1})).sqrt();
}

// Runs the four grey operations and scipy's on the same voxels; all must agree exactly.
void expect_grey_morphology_matches_scipy(const Image& img, double radius) {
  test::TempDir tmp;
  write_f32(tmp.file("in.f32"), img.voxels());
  const Vec3& s = img.geometry().spacing;
  test::run_oracle("spatial_morphology.py",
                   {"grey", tmp.file("in.f32"), zyx(img),
                    std::to_string(s[0]) + "," + std::to_string(s[1]) + "," + std::to_string(s[2]),
                    std::to_string(radius), tmp.path().string()});
  for (MorphologyOp op : {MorphologyOp::kErode, MorphologyOp::kDilate, MorphologyOp::kOpen, MorphologyOp::kClose}) {
    const TransformPtr t = make_morphology(op, radius);
    SCOPED_TRACE(t->name());
    const Image out = (*t)(img);
    EXPECT_EQ(out.geometry(), img.geometry());
    const at::Tensor expected = read_tensor(tmp.file(t->name() + ".f32"), {img.depth(), img.height(), img.width()});
    EXPECT_EQ(max_abs_diff(out.voxels()[0], expected), 0.0);
  }
  // The operations changed something (a radius of at least one voxel).
  EXPECT_FALSE(at::equal((*make_morphology(MorphologyOp::kErode, radius))(img).voxels(), img.voxels()));
}

TEST(GreyMorphology, MatchesScipyOnACtSliceInMillimetres) {
  // 0.66 mm pixels: a 2 mm disk spans 3 pixels each way.
  expect_grey_morphology_matches_scipy(ct(), 2.0);
}

TEST(GreyMorphology, MatchesScipyIn3DWithAnisotropicSpacing) {
  // A 3 mm ball on 1 x 1.2 x 2.5 mm voxels reaches 3, 2 and 1 voxels.
  const Image block = ch2_block({70, 90, 70}, {24, 20, 12});
  Geometry g = block.geometry();
  g.spacing = {1.0, 1.2, 2.5};
  expect_grey_morphology_matches_scipy(Image(block.voxels(), g, block.metadata()), 3.0);
}

// Extent in voxels (x, y, z) of the non-zero voxels.
std::array<int64_t, 3> extent(const Image& image) {
  const at::Tensor nz = image.voxels()[0].nonzero();  // (N, 3): z, y, x
  std::array<int64_t, 3> e{};
  for (int a = 0; a < 3; ++a) {
    const at::Tensor c = nz.select(1, 2 - a);
    e[a] = c.max().item<int64_t>() - c.min().item<int64_t>() + 1;
  }
  return e;
}

TEST(GreyMorphology, RadiusInMillimetresBecomesVoxelsPerAxis) {
  // Dilating one bright voxel draws the footprint itself.
  at::Tensor dot = at::zeros({1, 21, 21});
  dot[0][10][10] = 1;
  const Image flat = make_image(dot, {0.5, 2.0, 1.0});
  const Image disk = (*make_morphology(MorphologyOp::kDilate, 2.0))(flat);
  EXPECT_EQ(extent(disk), (std::array<int64_t, 3>{9, 3, 1}));  // 4 voxels of 0.5 mm, 1 of 2 mm
  // Every footprint voxel lies within 2 mm of the centre, and the ellipse's lattice points are all there.
  const at::Tensor d = distance_map({21, 21, 1}, {0.5, 2.0, 1.0}, {10, 10, 0});
  EXPECT_TRUE(at::equal(disk.voxels()[0] > 0.5, d <= 2.0 + 1e-9));

  at::Tensor dot3 = at::zeros({9, 15, 15});
  dot3[4][7][7] = 1;
  const Image ball = (*make_morphology(MorphologyOp::kDilate, 3.0))(make_image(dot3, {1.0, 1.0, 3.0}));
  EXPECT_EQ(extent(ball), (std::array<int64_t, 3>{7, 7, 3}));
  EXPECT_TRUE(at::equal(ball.voxels()[0] > 0.5, distance_map({15, 15, 9}, {1.0, 1.0, 3.0}, {7, 7, 4}) <= 3.0 + 1e-9));
}

TEST(FillHoles, RingsSpheresAndTubes) {
  const at::Tensor r2 = distance_map({41, 41, 1}, {1, 1, 1}, {20, 20, 0});
  const at::Tensor ring = ((r2 >= 8) & (r2 <= 11)).to(at::kFloat);
  const Image filled = (*make_fill_holes())(make_image(ring, {1, 1, 1}));
  EXPECT_TRUE(at::equal(filled.voxels()[0], (r2 <= 11).to(at::kFloat)));
  // A ring with a gap encloses nothing.
  at::Tensor open_ring = ring.clone();
  open_ring.narrow(2, 28, 5).narrow(1, 18, 5).zero_();
  EXPECT_TRUE(at::equal((*make_fill_holes())(make_image(open_ring, {1, 1, 1})).voxels()[0], open_ring));

  // A hollow sphere fills in 3-D.
  const at::Tensor r3 = distance_map({31, 31, 31}, {1, 1, 1}, {15, 15, 15});
  const at::Tensor shell = ((r3 >= 9) & (r3 <= 12)).to(at::kFloat);
  EXPECT_TRUE(at::equal((*make_fill_holes())(make_image(shell, {1, 1, 1})).voxels()[0], (r3 <= 12).to(at::kFloat)));
  // A tube open at both ends does not enclose its inside in 3-D, but does in every slice.
  const at::Tensor disk = distance_map({31, 31, 1}, {1, 1, 1}, {15, 15, 0});
  const at::Tensor tube = ((disk >= 6) & (disk <= 9)).to(at::kFloat).expand({20, 31, 31}).contiguous();
  const Image tube_img = make_image(tube, {1, 1, 2});
  EXPECT_TRUE(at::equal((*make_fill_holes())(tube_img).voxels()[0], tube));
  const Image per_slice = (*make_fill_holes(0.5, true))(tube_img);
  EXPECT_TRUE(at::equal(per_slice.voxels()[0], (disk <= 9).to(at::kFloat).expand({20, 31, 31})));
}

TEST(FillHoles, MatchesScipyOnAnUltrasoundMask) {
  // Dark regions (cysts, shadows) inside brighter tissue are holes of the tissue mask.
  const Image img = busi();
  const double threshold = 60;
  test::TempDir tmp;
  write_f32(tmp.file("in.f32"), img.voxels());
  test::run_oracle("spatial_morphology.py", {"fill", tmp.file("in.f32"), zyx(img), "60", tmp.file("out.f32")});
  const Image filled = (*make_fill_holes(threshold))(img);
  const at::Tensor expected = read_tensor(tmp.file("out.f32"), {1, img.height(), img.width()});
  EXPECT_TRUE(at::equal(filled.voxels()[0], expected));
  EXPECT_GT(expected.sum().item<double>(), (img.voxels() > threshold).sum().item<double>());  // holes existed
}

// Our component sizes, largest first, and scipy's for both connectivities.
void expect_components_match_scipy(const Image& img, double threshold) {
  test::TempDir tmp;
  write_f32(tmp.file("in.f32"), img.voxels());
  test::run_oracle("spatial_morphology.py",
                   {"label", tmp.file("in.f32"), zyx(img), std::to_string(threshold), tmp.file("out.json")});
  const auto scipy = nlohmann::json::parse(test::read_text(tmp.file("out.json")));
  for (bool full : {false, true}) {
    SCOPED_TRACE(full ? "full" : "faces");
    ComponentOptions o;
    o.threshold = threshold;
    o.full_connectivity = full;
    Image labels;
    const auto stats = connected_components(img, o, &labels);
    const auto& expected = scipy[full ? "full" : "faces"];
    std::vector<int64_t> sizes;
    for (const auto& s : stats) sizes.push_back(s.voxels);
    EXPECT_EQ(sizes, expected["sizes"].get<std::vector<int64_t>>());
    ASSERT_FALSE(stats.empty());
    const auto box = expected["box"].get<std::vector<int64_t>>();
    EXPECT_EQ(stats[0].min_index, (std::array<int64_t, 3>{box[0], box[1], box[2]}));
    EXPECT_EQ(stats[0].max_index, (std::array<int64_t, 3>{box[3], box[4], box[5]}));
    // Label k marks exactly the k-th component; volumes are in mm^3.
    const Vec3& sp = img.geometry().spacing;
    for (size_t k = 0; k < std::min<size_t>(stats.size(), 5); ++k) {
      EXPECT_EQ(labels.voxels().eq(static_cast<float>(k + 1)).sum().item<int64_t>(), stats[k].voxels);
      EXPECT_DOUBLE_EQ(stats[k].volume_mm3, static_cast<double>(stats[k].voxels) * sp[0] * sp[1] * sp[2]);
    }
    EXPECT_EQ(labels.voxels().max().item<float>(), static_cast<float>(stats.size()));
  }
}

TEST(ConnectedComponents, MatchScipyLabelOnABrainSliceAndBlock) {
  expect_components_match_scipy(ch2_block({0, 0, 90}, {0, 0, 1}), 100);   // 29 / 16 components in 2-D
  expect_components_match_scipy(ch2_block({60, 70, 60}, {48, 56, 40}), 105);  // 6 / 26 in 3-D
}

TEST(ConnectedComponents, MinimumSizeLargestComponentAndCentroid) {
  const Image slice = ch2_block({0, 0, 90}, {0, 0, 1});
  const auto all = connected_components(slice, {100, true, 0, 0, 0});
  const auto big = connected_components(slice, {100, true, 50, 0, 0});
  int64_t at_least_50 = 0;
  for (const auto& s : all) at_least_50 += s.voxels >= 50;
  EXPECT_EQ(static_cast<int64_t>(big.size()), at_least_50);
  EXPECT_LT(big.size(), all.size());
  // min_volume: ch2 voxels are 1 mm^3, so 50 mm^3 keeps the same components.
  EXPECT_EQ(make_connected_components({100, true, 0, 50.0, 0})->params()["min_volume"], 50.0);
  const Image map = (*make_connected_components({100, true, 0, 50.0, 0}))(slice);
  EXPECT_EQ(map.voxels().max().item<float>(), static_cast<float>(big.size()));
  const Image largest = (*make_largest_component(100, true))(slice);
  EXPECT_EQ(largest.voxels().sum().item<double>(), static_cast<double>(all[0].voxels));
  // The centroid of the largest component lies inside its bounding box.
  const Vec3 c = slice.geometry().lps_to_index(all[0].centroid_lps);
  for (int a = 0; a < 3; ++a) {
    EXPECT_GE(c[a], all[0].min_index[a] - 1e-9);
    EXPECT_LE(c[a], all[0].max_index[a] + 1e-9);
  }
}

TEST(Sobel, EqualsSkimageUpToItsScaleIn2DAnd3D) {
  test::TempDir tmp;
  const std::vector<Image> images{busi(), ch2_block({70, 80, 60}, {32, 28, 20})};
  std::vector<std::string> args{"sobel"};
  for (size_t i = 0; i < images.size(); ++i) {
    write_f32(tmp.file(std::to_string(i) + ".f32"), images[i].voxels());
    for (const std::string& a : {tmp.file(std::to_string(i) + ".f32"), zyx(images[i]), tmp.file(std::to_string(i) + ".out")})
      args.push_back(a);
  }
  test::run_oracle("spatial_edges.py", args);
  for (size_t i = 0; i < images.size(); ++i) {
    const Image& img = images[i];
    // skimage: sqrt(sum_i (2 g_i)^2 / ndim) with g_i medlens's per-voxel derivative.
    const double scale = img.is_3d() ? 2 / std::sqrt(3.0) : std::sqrt(2.0);
    const at::Tensor expected = read_tensor(tmp.file(std::to_string(i) + ".out"), {img.depth(), img.height(), img.width()});
    const at::Tensor ours = (*make_sobel())(img).voxels()[0] * scale;
    EXPECT_LT(max_abs_diff(ours, expected) / expected.max().item<double>(), 1e-5);  // measured 1e-7
  }
}

TEST(Sobel, GradientIsPerMillimetre) {
  // v = 3 x_mm + 2 y_mm - z_mm on 0.5 x 2 x 1.5 mm voxels: |grad| = sqrt(14) inside.
  const Vec3 s{0.5, 2.0, 1.5};
  const at::Tensor x = at::arange(12, at::kFloat).view({1, 1, 12}) * s[0];
  const at::Tensor y = at::arange(10, at::kFloat).view({1, 10, 1}) * s[1];
  const at::Tensor z = at::arange(8, at::kFloat).view({8, 1, 1}) * s[2];
  const Image ramp = make_image(3 * x + 2 * y - z, s);
  const at::Tensor inner = (*make_sobel())(ramp).voxels()[0].narrow(0, 1, 6).narrow(1, 1, 8).narrow(2, 1, 10);
  EXPECT_LT((inner - std::sqrt(14.0)).abs().max().item<double>(), 1e-4);
  // Per slice, only the in-plane part: sqrt(13).
  const at::Tensor plane = (*make_sobel(true))(ramp).voxels()[0].narrow(1, 1, 8).narrow(2, 1, 10);
  EXPECT_LT((plane - std::sqrt(13.0)).abs().max().item<double>(), 1e-4);
}

// Fraction of the edge voxels of `a` with an edge of `b` within one voxel (3x3 neighbourhood).
double near_fraction(const at::Tensor& a, const at::Tensor& b, const Image& like) {
  const Image grown = (*make_morphology(MorphologyOp::kDilate, 1.5))(like.with_voxels(b.unsqueeze(0)));
  return ((a > 0.5) & (grown.voxels()[0] > 0.5)).sum().item<double>() / (a > 0.5).sum().item<double>();
}

TEST(Canny, FindsTheEdgesSkimageFinds) {
  const Image img = busi();
  test::TempDir tmp;
  write_f32(tmp.file("in.f32"), img.voxels());
  test::run_oracle("spatial_edges.py", {"canny", tmp.file("in.f32"), std::to_string(img.height()) + "," +
                                        std::to_string(img.width()), "2", "0.8", "0.9", tmp.file("out.f32")});
  const at::Tensor expected = read_tensor(tmp.file("out.f32"), {1, img.height(), img.width()});
  CannyOptions o;
  o.sigma_mm = 2.0 * img.geometry().spacing[0];  // skimage's sigma is in pixels
  o.low = 0.8;
  o.high = 0.9;
  const at::Tensor ours = (*make_canny(o))(img).voxels()[0];
  ASSERT_GT(ours.sum().item<double>(), 500);
  // Precision and recall within one pixel of skimage's edges (measured 0.993 and 0.991; the
  // non-maximum suppression differs: quantised vs interpolated directions).
  EXPECT_GT(near_fraction(ours, expected, img), 0.97);
  EXPECT_GT(near_fraction(expected, ours, img), 0.97);
  // Equally thin: the edge counts agree within 5% (measured 3348 vs 3325).
  EXPECT_NEAR(ours.sum().item<double>(), expected.sum().item<double>(), expected.sum().item<double>() * 0.05);
}

TEST(Canny, EdgesOfABallLieOnItsSurfaceInMillimetres) {
  // A ball of radius 9 mm on 1 x 1 x 2 mm voxels.
  const Vec3 s{1, 1, 2};
  const at::Tensor d = distance_map({33, 33, 17}, s, {16.2, 15.7, 8.1});
  const Image ball = make_image((d <= 9).to(at::kFloat) * 100, s);
  CannyOptions o;
  o.sigma_mm = 1.5;
  o.quantiles = false;
  o.low = 5;
  o.high = 10;  // grey levels per mm
  const at::Tensor edges = (*make_canny(o))(ball).voxels()[0] > 0.5;
  const at::Tensor r = d.masked_select(edges);
  ASSERT_GT(r.numel(), 300);
  EXPECT_LT((r - 9).abs().max().item<double>(), 2.0);   // within a voxel (2 mm along z) of the surface
  EXPECT_LT(std::abs(r.mean().item<double>() - 9), 0.5);
  // Per slice, every slice crossing the ball draws a closed circle: no edge above or below it.
  const at::Tensor planar = (*make_canny({1.5, 5, 10, false, true}))(ball).voxels()[0] > 0.5;
  EXPECT_EQ(planar.narrow(0, 0, 3).sum().item<int64_t>(), 0);
  EXPECT_GT(planar[8].sum().item<int64_t>(), 40);
}

TEST(MorphologyRegistry, ParametersParseAndBadOnesAreUsageErrors) {
  EXPECT_EQ(parse_op("erode:radius=2.5")->params()["radius"], 2.5);
  EXPECT_EQ(parse_op("connected-components:connectivity=8")->params()["connectivity"], 26);
  EXPECT_EQ(parse_op("canny:sigma=2,quantiles=false,low=1,high=3")->params()["high"], 3.0);
  EXPECT_THROW(parse_op("dilate:radius=-1"), UsageError);
  EXPECT_THROW(parse_op("connected-components:connectivity=5"), UsageError);
  EXPECT_THROW(parse_op("canny:low=0.9,high=0.5"), UsageError);
  EXPECT_THROW(parse_op("canny:low=2,high=3"), UsageError);  // quantiles lie in [0, 1]
  EXPECT_THROW(connected_components(ct(), {0.5, false, 0, 0, 1}), UsageError);
}

}  // namespace
}  // namespace medlens
