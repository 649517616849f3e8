// Findings on shapes whose answers are known in millimetres: spheres and ellipsoids in an
// anisotropic (0.7 x 0.7 x 3 mm) volume, a rotated direction matrix, 2-D images; then the
// options (size filters, hole filling, largest only), intensities and connectivity.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <functional>

#include "core/error.h"
#include "core/image.h"
#include "findings/findings.h"

namespace medlens {
namespace {

constexpr double kPi = 3.14159265358979323846;

Geometry grid(Vec3 spacing) {
  Geometry g;
  g.spacing = spacing;
  return g;
}

// A one-channel image of size (x, y, z) whose voxel at index (x, y, z) holds value(index).
Image paint(std::array<int64_t, 3> n, const Geometry& g, const std::function<float(double, double, double)>& value) {
  at::Tensor t = at::zeros({1, n[2], n[1], n[0]}, at::kFloat);
  float* p = t.data_ptr<float>();
  for (int64_t z = 0; z < n[2]; ++z)
    for (int64_t y = 0; y < n[1]; ++y)
      for (int64_t x = 0; x < n[0]; ++x)
        *p++ = value(static_cast<double>(x), static_cast<double>(y), static_cast<double>(z));
  return Image(t, g, Metadata{});
}

// An ellipsoid with semi-axes (a, b, c) mm, turned by `angle` about z, centred at voxel index
// `centre`: true where the voxel centre lies inside.
std::function<bool(double, double, double)> ellipsoid(const Geometry& g, Vec3 centre, Vec3 axes, double angle = 0) {
  return [=](double x, double y, double z) {
    const double dx = (x - centre[0]) * g.spacing[0], dy = (y - centre[1]) * g.spacing[1],
                 dz = (z - centre[2]) * g.spacing[2];
    const double u = std::cos(angle) * dx + std::sin(angle) * dy, v = -std::sin(angle) * dx + std::cos(angle) * dy;
    return std::pow(u / axes[0], 2) + std::pow(v / axes[1], 2) + std::pow(dz / axes[2], 2) <= 1;
  };
}

std::function<bool(double, double, double)> box(std::array<int64_t, 6> b) {
  return [=](double x, double y, double z) {
    return x >= b[0] && y >= b[1] && z >= b[2] && x <= b[3] && y <= b[4] && z <= b[5];
  };
}

TEST(Findings, SpheresAndEllipsoidsAreRightInMillimetres) {
  const Geometry g = grid({0.7, 0.7, 3.0});
  // Centres off the voxel grid so nothing is symmetric by accident.
  const auto sphere = ellipsoid(g, {30.3, 40.6, 10.4}, {10, 10, 10});
  const double tilt = 30 * kPi / 180;
  const auto oval = ellipsoid(g, {100.45, 60.2, 12.7}, {14, 8, 12}, tilt);
  const Image prob = paint({150, 110, 24}, g, [&](double x, double y, double z) {
    return sphere(x, y, z) ? 0.9f : oval(x, y, z) ? 0.7f : 0.05f;
  });
  const std::vector<Finding> f = extract_findings(prob, nullptr);
  ASSERT_EQ(f.size(), 2u);

  const Finding& s = f[0];  // higher probability first
  EXPECT_EQ(s.id, 1);
  EXPECT_FLOAT_EQ(s.probability, 0.9f);
  EXPECT_NEAR(s.volume_mm3, 4.0 / 3 * kPi * 1000, 0.05 * 4.0 / 3 * kPi * 1000);
  EXPECT_NEAR(s.longest_axial_diameter_mm, 20, 0.7) << "within one in-plane voxel";
  EXPECT_NEAR(s.perpendicular_diameter_mm, 20, 0.7);
  EXPECT_LE(s.perpendicular_diameter_mm, s.longest_axial_diameter_mm);
  EXPECT_EQ(s.diameter_slice, 10);  // the slice through the centre (z = 10.4)
  EXPECT_EQ(s.best_slice, 10);
  EXPECT_NEAR(s.centroid_voxel[0], 30.3, 0.05);
  EXPECT_NEAR(s.centroid_voxel[1], 40.6, 0.05);
  EXPECT_NEAR(s.centroid_voxel[2], 10.4, 0.1) << "six 3 mm slices sample z coarsely";
  // Box: +-10 mm around the centre, in voxels.
  EXPECT_EQ(s.bbox_voxel[0], static_cast<int64_t>(std::ceil(30.3 - 10 / 0.7)));
  EXPECT_EQ(s.bbox_voxel[3], static_cast<int64_t>(std::floor(30.3 + 10 / 0.7)));
  EXPECT_EQ(s.bbox_voxel[2], 8);   // |z - 10.4| * 3 <= 10: z in 7.07..13.7
  EXPECT_EQ(s.bbox_voxel[5], 13);

  const Finding& e = f[1];
  EXPECT_FLOAT_EQ(e.probability, 0.7f);
  const double volume = 4.0 / 3 * kPi * 14 * 8 * 12;
  EXPECT_NEAR(e.volume_mm3, volume, 0.05 * volume);
  EXPECT_NEAR(e.longest_axial_diameter_mm, 28, 0.7) << "the long axis, 30 degrees off x";
  EXPECT_NEAR(e.perpendicular_diameter_mm, 16, 0.7);
  EXPECT_NEAR(e.centroid_voxel[0], 100.45, 0.05);
  EXPECT_NEAR(e.centroid_voxel[1], 60.2, 0.05);
  EXPECT_NEAR(e.centroid_voxel[2], 12.7, 0.1);
  EXPECT_EQ(e.diameter_slice, 13);
}

TEST(Findings, DiametersCountVoxelFootprints) {
  // A row of 10 voxels measures 10 spacings; a single voxel one spacing each way.
  const Geometry g = grid({0.7, 0.9, 3.0});
  const Image prob = paint({30, 20, 3}, g, [](double x, double y, double z) {
    return (z == 1 && y == 5 && x >= 3 && x <= 12) || (z == 1 && y == 15 && x == 20) ? 1.0f : 0.0f;
  });
  const std::vector<Finding> f = extract_findings(prob, nullptr);
  ASSERT_EQ(f.size(), 2u);
  const Finding& row = f[0].voxels == 10 ? f[0] : f[1];
  const Finding& dot = f[0].voxels == 1 ? f[0] : f[1];
  EXPECT_NEAR(row.longest_axial_diameter_mm, 7.0, 1e-9);
  EXPECT_NEAR(row.perpendicular_diameter_mm, 0.9, 1e-9);
  EXPECT_NEAR(dot.longest_axial_diameter_mm, 0.7, 1e-9);
  EXPECT_NEAR(dot.perpendicular_diameter_mm, 0.9, 1e-9);
  EXPECT_NEAR(row.volume_mm3, 10 * 0.7 * 0.9 * 3.0, 1e-9);
  // A square of 4 x 4 voxels: the diagonal of the centres (3 * sqrt 2) plus one voxel.
  const Image square = paint({10, 10, 1}, grid({1, 1, 1}), [](double x, double y, double) {
    return x >= 2 && x <= 5 && y >= 2 && y <= 5 ? 1.0f : 0.0f;
  });
  const Finding q = extract_findings(square, nullptr).at(0);
  EXPECT_NEAR(q.longest_axial_diameter_mm, 3 * std::sqrt(2.0) + 1, 1e-9);
  EXPECT_NEAR(q.perpendicular_diameter_mm, 3 * std::sqrt(2.0) + 1, 1e-9);
}

TEST(Findings, CentroidMapsToLpsThroughARotatedDirection) {
  // A quarter turn about S, worked by hand: index x runs to P, index y to R.
  Geometry g = grid({0.7, 0.7, 3.0});
  g.direction = {0, -1, 0, 1, 0, 0, 0, 0, 1};
  g.origin = {10, 20, 30};
  // Centred on voxel (20, 10, 5), so the digitised ball is symmetric and its centroid exact.
  const auto ball = ellipsoid(g, {20, 10, 5}, {5, 5, 5});
  Finding f = extract_findings(paint({40, 30, 12}, g, [&](double x, double y, double z) {
                                 return ball(x, y, z) ? 1.0f : 0.0f;
                               }), nullptr).at(0);
  const Vec3 expected{10 - 10 * 0.7, 20 + 20 * 0.7, 30 + 5 * 3.0};  // (3, 34, 45)
  for (int a = 0; a < 3; ++a) EXPECT_NEAR(f.centroid_lps[a], expected[a], 1e-9) << "axis " << a;
  // The LPS box spans the footprints: x index 20 +- 7.5 voxels becomes P 34 +- 5.25 mm.
  EXPECT_NEAR(f.bbox_lps_min[1], 34 - 7.5 * 0.7, 1e-9);
  EXPECT_NEAR(f.bbox_lps_max[1], 34 + 7.5 * 0.7, 1e-9);
  EXPECT_NEAR(f.bbox_lps_min[2], 45 - 1.5 * 3.0, 1e-9);

  // An oblique rotation (25 degrees about (1, 1, 1)/sqrt 3, Rodrigues) and a lesion placed at an
  // LPS point off the grid: found there to within the sampling of 3 mm slices.
  const double t = 25 * kPi / 180, c = std::cos(t), s = std::sin(t), k = 1 / std::sqrt(3.0);
  const double K[9] = {0, -k, k, k, 0, -k, -k, k, 0};
  for (int r = 0; r < 3; ++r)
    for (int q = 0; q < 3; ++q) {
      double kk = 0;
      for (int m = 0; m < 3; ++m) kk += K[r * 3 + m] * K[m * 3 + q];
      g.direction[r * 3 + q] = (r == q ? 1.0 : 0.0) + s * K[r * 3 + q] + (1 - c) * kk;
    }
  g.origin = {-120.5, 35.25, 402.0};
  ASSERT_TRUE(g.valid());
  const Vec3 lesion_lps{-95.0, 62.0, 420.0};
  const Vec3 centre = g.lps_to_index(lesion_lps);
  ASSERT_GT(centre[0], 15);
  ASSERT_GT(centre[2], 4);
  const auto oblique_ball = ellipsoid(g, centre, {8, 8, 8});
  f = extract_findings(paint({100, 100, 30}, g, [&](double x, double y, double z) {
                         return oblique_ball(x, y, z) ? 0.8f : 0.0f;
                       }), nullptr).at(0);
  for (int a = 0; a < 3; ++a) {
    EXPECT_NEAR(f.centroid_lps[a], lesion_lps[a], 0.4) << "axis " << a;
    EXPECT_LT(f.bbox_lps_min[a], lesion_lps[a] - 7);
    EXPECT_GT(f.bbox_lps_max[a], lesion_lps[a] + 7);
  }
  EXPECT_NEAR(f.longest_axial_diameter_mm, 16, 0.7);
}

TEST(Findings, TwoDimensionalImagesReportArea) {
  const Geometry g = grid({0.5, 0.8, 1.0});
  const auto disk = ellipsoid(g, {60.3, 40.7, 0}, {12, 12, 1});
  const Image prob = paint({120, 80, 1}, g, [&](double x, double y, double z) { return disk(x, y, z) ? 0.6f : 0.1f; });
  const std::vector<Finding> f = extract_findings(prob, nullptr);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_TRUE(f[0].planar);
  EXPECT_NEAR(f[0].volume_mm3, kPi * 144, 0.05 * kPi * 144);
  EXPECT_NEAR(f[0].longest_axial_diameter_mm, 24, 0.8) << "within one voxel (0.8 mm the coarser axis)";
  EXPECT_NEAR(f[0].perpendicular_diameter_mm, 24, 0.8);
  EXPECT_EQ(f[0].best_slice, 0);
  const nlohmann::json j = to_json(f[0]);
  EXPECT_TRUE(j.contains("area_mm2"));
  EXPECT_FALSE(j.contains("volume_mm3"));
  EXPECT_EQ(j["bbox_voxel"].size(), 6u);
}

TEST(Findings, MinimumSizeDropsSmallComponents) {
  const Geometry g = grid({1, 1, 2});
  // 2 x 2 x 2 = 8 voxels (16 mm^3) and 4 x 4 x 4 = 64 voxels (128 mm^3).
  const auto small = box({2, 2, 2, 3, 3, 3}), large = box({10, 10, 2, 13, 13, 5});
  const Image prob = paint({20, 20, 8}, g, [&](double x, double y, double z) {
    return small(x, y, z) ? 0.99f : large(x, y, z) ? 0.7f : 0.0f;
  });
  EXPECT_EQ(extract_findings(prob, nullptr).size(), 2u);
  FindingOptions o;
  o.min_voxels = 9;
  auto f = extract_findings(prob, nullptr, o);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].voxels, 64);
  o = {};
  o.min_volume_mm3 = 16.5;
  f = extract_findings(prob, nullptr, o);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_NEAR(f[0].volume_mm3, 128, 1e-9);
  o.min_volume_mm3 = 16;  // inclusive
  EXPECT_EQ(extract_findings(prob, nullptr, o).size(), 2u);
}

TEST(Findings, HolesAreFilled) {
  const Geometry g = grid({1, 1, 1});
  // A 7^3 cube with a 3^3 cavity: 343 voxels filled, 316 without filling.
  const auto cube = box({5, 5, 5, 11, 11, 11}), cavity = box({7, 7, 7, 9, 9, 9});
  const Image prob = paint({16, 16, 16}, g, [&](double x, double y, double z) {
    return cube(x, y, z) && !cavity(x, y, z) ? 0.8f : 0.0f;
  });
  EXPECT_EQ(extract_findings(prob, nullptr).at(0).voxels, 343);
  FindingOptions o;
  o.fill_holes = false;
  EXPECT_EQ(extract_findings(prob, nullptr, o).at(0).voxels, 316);
  // The mean probability includes the filled voxels (0 there).
  EXPECT_NEAR(extract_findings(prob, nullptr).at(0).mean_probability, 0.8 * 316 / 343, 1e-6);
  // A cavity open to the border is not a hole.
  const auto tube = box({7, 7, 0, 9, 9, 15});
  const Image open = paint({16, 16, 16}, g, [&](double x, double y, double z) {
    return box({5, 5, 0, 11, 11, 15})(x, y, z) && !tube(x, y, z) ? 0.8f : 0.0f;
  });
  EXPECT_EQ(extract_findings(open, nullptr).at(0).voxels, 49 * 16 - 9 * 16);
  // In 2-D: a ring becomes a disk.
  const Image ring = paint({12, 12, 1}, g, [&](double x, double y, double) {
    return box({2, 2, 0, 8, 8, 0})(x, y, 0) && !box({4, 4, 0, 6, 6, 0})(x, y, 0) ? 1.0f : 0.0f;
  });
  EXPECT_EQ(extract_findings(ring, nullptr).at(0).voxels, 49);
}

TEST(Findings, LargestOnlyKeepsTheBiggest) {
  const Geometry g = grid({1, 1, 1});
  const auto a = box({1, 1, 1, 2, 2, 2}), b = box({6, 6, 1, 9, 9, 4}), c = box({12, 1, 1, 13, 3, 3});
  const Image prob = paint({16, 12, 6}, g, [&](double x, double y, double z) {
    return a(x, y, z) ? 0.95f : b(x, y, z) ? 0.6f : c(x, y, z) ? 0.9f : 0.0f;
  });
  const std::vector<Finding> all = extract_findings(prob, nullptr);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_FLOAT_EQ(all[0].probability, 0.95f);
  EXPECT_FLOAT_EQ(all[1].probability, 0.9f);
  FindingOptions o;
  o.largest_only = true;
  const std::vector<Finding> one = extract_findings(prob, nullptr, o);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].voxels, 64);
  EXPECT_EQ(one[0].id, 1);
}

TEST(Findings, MeanAndMaxIntensityPerChannel) {
  const Geometry g = grid({1, 1, 1});
  const auto lesion = box({2, 2, 1, 4, 4, 1});  // 9 voxels in slice 1
  const Image prob = paint({8, 8, 3}, g, [&](double x, double y, double z) { return lesion(x, y, z) ? 1.0f : 0.0f; });
  // Channel 0: HU-like values growing with x; channel 1: constant -5.
  at::Tensor hu = at::zeros({2, 3, 8, 8}, at::kFloat);
  hu[0] = at::arange(8, at::kFloat).mul(10).sub(1000).view({1, 1, 8}).expand({3, 8, 8});
  hu[1].fill_(-5);
  const Image intensity(hu, g, Metadata{});
  const Finding f = extract_findings(prob, &intensity).at(0);
  ASSERT_EQ(f.mean_intensity.size(), 2u);
  EXPECT_NEAR(f.mean_intensity[0], -970, 1e-9);  // x = 2, 3, 4 -> -980, -970, -960
  EXPECT_NEAR(f.max_intensity[0], -960, 1e-9);
  EXPECT_NEAR(f.mean_intensity[1], -5, 1e-9);
  EXPECT_NEAR(f.max_intensity[1], -5, 1e-9);
  const Image wrong(at::zeros({1, 3, 8, 7}), g, Metadata{});
  EXPECT_THROW(extract_findings(prob, &wrong), UsageError);
}

TEST(Findings, CornerContactJoinsComponents) {
  const Geometry g = grid({1, 1, 1});
  // Two cubes sharing only a corner: one finding under 26-connectivity.
  const auto a = box({2, 2, 2, 4, 4, 4}), b = box({5, 5, 5, 7, 7, 7});
  const Image prob = paint({10, 10, 10}, g, [&](double x, double y, double z) { return a(x, y, z) || b(x, y, z) ? 1.0f : 0.0f; });
  const std::vector<Finding> f = extract_findings(prob, nullptr);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].voxels, 54);
  // In 2-D, diagonal neighbours join (8-connectivity).
  const Image flat = paint({10, 10, 1}, g, [&](double x, double y, double) {
    return (x == 2 && y == 2) || (x == 3 && y == 3) || (x == 5 && y == 3) ? 1.0f : 0.0f;
  });
  EXPECT_EQ(extract_findings(flat, nullptr).size(), 2u);
}

TEST(Findings, EmptyMapHasNoFindings) {
  const Image prob = paint({8, 8, 4}, grid({1, 1, 1}), [](double, double, double) { return 0.2f; });
  Image labels;
  EXPECT_TRUE(extract_findings(prob, nullptr, {}, &labels).empty());
  EXPECT_EQ(labels.voxels().max().item<float>(), 0.0f);
  EXPECT_EQ(labels.channels(), 1);
}

TEST(Findings, LabelMapNumbersFindingsById) {
  const Geometry g = grid({1, 1, 1});
  const auto a = box({1, 1, 1, 2, 2, 2}), b = box({5, 5, 1, 7, 7, 3});
  const Image prob = paint({10, 10, 5}, g, [&](double x, double y, double z) {
    return a(x, y, z) ? 0.6f : b(x, y, z) ? 0.9f : 0.0f;
  });
  Image labels;
  const std::vector<Finding> f = extract_findings(prob, nullptr, {}, &labels);
  ASSERT_EQ(f.size(), 2u);
  EXPECT_EQ(f[0].voxels, 27);  // the more probable one is id 1
  const float* l = labels.data();
  EXPECT_EQ(l[(1 * 10 + 1) * 10 + 1], 2.0f);
  EXPECT_EQ(l[(2 * 10 + 6) * 10 + 6], 1.0f);
  EXPECT_EQ(labels.geometry(), prob.geometry());
}

TEST(Findings, RefusesMultiChannelMaps) {
  const Image two(at::zeros({2, 2, 4, 4}), grid({1, 1, 1}), Metadata{});
  EXPECT_THROW(extract_findings(two, nullptr), UsageError);
  const Image one(at::zeros({1, 2, 4, 4}), grid({1, 1, 1}), Metadata{});
  FindingOptions o;
  o.threshold = NAN;
  EXPECT_THROW(extract_findings(one, nullptr, o), UsageError);
}

}  // namespace
}  // namespace medlens
