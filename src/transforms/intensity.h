// Intensity preprocessing: windowing, clipping, normalisation, histogram methods.
#pragma once

#include <cmath>

#include "transforms/transform.h"

namespace medlens {

/// Clips to a display/CT window and maps it linearly to [out_min, out_max]
/// (e.g. center 40, width 400 HU -> [0, 1]).
struct WindowOptions {
  WindowOptions(double center, double width) : center_(center), width_(width) {}
  double center_, width_;
  double out_min_ = 0.0, out_max_ = 1.0;
  WindowOptions& out_range(double lo, double hi) { out_min_ = lo; out_max_ = hi; return *this; }
};
TransformPtr make_window(const WindowOptions& options);

/// Clips values to [min, max] (e.g. HU clip) without rescaling.
TransformPtr make_clip(double min, double max);

/// Per-channel z-score: (v - mean) / std over voxels whose value exceeds `threshold` (all
/// voxels when threshold is -inf), so background does not dominate in brain MRI.
TransformPtr make_zscore(double threshold = -INFINITY);

/// Per-channel percentile scaling: the `lo`-th percentile maps to 0, the `hi`-th to 1,
/// optionally clipped to [0, 1].
TransformPtr make_scale_percentile(double lo = 0.5, double hi = 99.5, bool clip = true);

}  // namespace medlens
