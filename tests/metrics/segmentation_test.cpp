// Segmentation metrics on shapes whose answers are known, with anisotropic spacing.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "metrics/segmentation.h"

namespace medlens {
namespace {

at::Tensor box(int64_t z0, int64_t z1, int64_t y0, int64_t y1, int64_t x0, int64_t x1) {
  at::Tensor m = at::zeros({20, 40, 40}, at::kByte);
  m.slice(0, z0, z1).slice(1, y0, y1).slice(2, x0, x1).fill_(1);
  return m;
}

TEST(OverlapScores, DiceIouAndSurfaceDistancesInMillimetres) {
  const at::Tensor a = box(5, 15, 10, 30, 10, 30);
  EXPECT_DOUBLE_EQ(overlap_scores(a, a, {1, 1, 1}).dice, 1.0);
  EXPECT_DOUBLE_EQ(overlap_scores(a, a, {1, 1, 1}).hd95, 0.0);
  // Shift by 4 voxels along x: overlap 16/20 along x.
  const at::Tensor b = box(5, 15, 10, 30, 14, 34);
  const OverlapScores s = overlap_scores(a, b, {0.5, 0.7, 3.0});
  EXPECT_NEAR(s.dice, 16.0 / 20.0, 1e-12);
  EXPECT_NEAR(s.iou, 16.0 / 24.0, 1e-12);
  // Surfaces are 4 voxels apart along x at 0.5 mm: 2 mm, and never more.
  EXPECT_NEAR(s.hd95, 2.0, 1e-4);
  EXPECT_GT(s.asd, 0.0);
  EXPECT_LE(s.asd, 2.0 + 1e-6);
  // The same shift along z at 3 mm spacing is 12 mm.
  const at::Tensor c = box(1, 11, 10, 30, 10, 30);
  EXPECT_NEAR(overlap_scores(a, c, {0.5, 0.7, 3.0}).hd95, 12.0, 1e-4);
}

TEST(OverlapScores, EmptyMasks) {
  const at::Tensor e = at::zeros({4, 8, 8}, at::kByte);
  EXPECT_DOUBLE_EQ(overlap_scores(e, e, {1, 1, 1}).dice, 1.0);
  at::Tensor some = e.clone();
  some.slice(1, 2, 5).slice(2, 2, 5).fill_(1);
  const OverlapScores s = overlap_scores(e, some, {1, 1, 1});
  EXPECT_DOUBLE_EQ(s.dice, 0.0);
  EXPECT_TRUE(std::isnan(s.hd95)) << "no distance to an empty mask";
}

TEST(MeanDice, AveragesForegroundClassesOverCases) {
  at::Tensor truth = at::zeros({2, 10, 10}, at::kLong);
  truth.slice(1, 0, 5).fill_(1);
  at::Tensor pred = truth.clone();
  pred[1].slice(0, 0, 5).fill_(0);  // second case misses everything
  EXPECT_NEAR(mean_dice(pred, truth, 2), 0.5, 1e-12);
}

}  // namespace
}  // namespace medlens
