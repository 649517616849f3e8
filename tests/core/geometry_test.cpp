#include "core/geometry.h"

#include <gtest/gtest.h>

#include <cmath>

namespace medlens {
namespace {

Geometry rotated() {
  // 30 degrees about S, anisotropic spacing, offset origin.
  Geometry g;
  const double c = std::cos(M_PI / 6), s = std::sin(M_PI / 6);
  g.direction = {c, -s, 0, s, c, 0, 0, 0, 1};
  g.spacing = {0.7, 0.7, 3.0};
  g.origin = {-100, 20, 35};
  return g;
}

TEST(Geometry, IndexToLpsAndBackRoundTrip) {
  const Geometry g = rotated();
  const Vec3 idx{12.5, -3, 7};
  const Vec3 p = g.index_to_lps(idx);
  const Vec3 back = g.lps_to_index(p);
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(back[i], idx[i], 1e-9);
  // Moving one voxel along x moves spacing[0] mm along the first direction column.
  const Vec3 p1 = g.index_to_lps({13.5, -3, 7});
  EXPECT_NEAR(norm({p1[0] - p[0], p1[1] - p[1], p1[2] - p[2]}), 0.7, 1e-12);
}

TEST(Geometry, RasAffineRoundTripFlipsXY) {
  const Geometry g = rotated();
  const auto a = to_ras_affine(g);
  EXPECT_DOUBLE_EQ(a[3], 100.0);   // L -100 -> R +100
  EXPECT_DOUBLE_EQ(a[7], -20.0);
  EXPECT_DOUBLE_EQ(a[11], 35.0);
  const Geometry back = from_ras_affine(a);
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(back.spacing[i], g.spacing[i], 1e-12);
  for (int i = 0; i < 9; ++i) EXPECT_NEAR(back.direction[i], g.direction[i], 1e-12);
}

TEST(Geometry, OrientationCodes) {
  Geometry g;
  EXPECT_EQ(g.orientation_code(), "LPS");
  g.direction = {-1, 0, 0, 0, -1, 0, 0, 0, 1};
  EXPECT_EQ(g.orientation_code(), "RAS");
  EXPECT_EQ(rotated().orientation_code(), "lpS");  // x, y 30 degrees off (oblique), z exact
}

TEST(Geometry, ValidityRejectsBadSpacingAndDegenerateAxes) {
  Geometry g;
  std::string why;
  EXPECT_TRUE(g.valid(&why));
  g.spacing[2] = 0;
  EXPECT_FALSE(g.valid(&why));
  EXPECT_NE(why.find("spacing"), std::string::npos);
  g.spacing[2] = -1;
  EXPECT_FALSE(g.valid());
  g = Geometry{};
  g.spacing[0] = NAN;
  EXPECT_FALSE(g.valid());
  g = Geometry{};
  g.direction = {1, 1, 0, 0, 0, 0, 0, 0, 1};  // not unit, parallel
  EXPECT_FALSE(g.valid(&why));
}

}  // namespace
}  // namespace medlens
