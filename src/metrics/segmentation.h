// Segmentation metrics: Dice, IoU, 95th-percentile Hausdorff and average surface distance in
// mm (spacing-aware), per case and class, with bootstrap CIs over cases.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cmath>

#include <vector>

#include "core/geometry.h"

namespace at {
class Tensor;
}

namespace medlens {

struct OverlapScores {
  double dice = NAN, iou = NAN;  ///< 1 when both masks are empty
  double hd95 = NAN, asd = NAN;  ///< mm; NaN when either mask is empty
};

/// Scores of binary masks `pred` and `truth` (same shape, [D,]H,W, non-zero = inside) on a
/// grid with `spacing` (x, y, z mm).
OverlapScores overlap_scores(const at::Tensor& pred, const at::Tensor& truth, const Vec3& spacing,
                             bool surface_distances = true);

/// Mean Dice over cases and foreground classes 1..K-1 of label maps (N,[D,]H,W).
double mean_dice(const at::Tensor& pred, const at::Tensor& truth, int classes);

/// Per-class mean Dice, IoU, HD95 and ASD over cases with 95% bootstrap CIs, as JSON.
nlohmann::json segmentation_report(const at::Tensor& pred, const at::Tensor& truth, int classes,
                                   const std::vector<Geometry>& geometry, int bootstrap_rounds, uint64_t seed);

}  // namespace medlens
