// N4 bias-field correction (Tustison et al. 2010) for MRI intensity inhomogeneity.
#pragma once

#include <vector>

#include "transforms/transform.h"

namespace medlens {

/// ITK's N4BiasFieldCorrectionImageFilter, run per channel on a copy shrunk by `shrink` along
/// each axis (2-D images keep Z = 1), within a mask of positive voxels above Otsu's threshold
/// (or all positive voxels when otsu_mask is false). The log bias field's B-spline is evaluated
/// on the shrunk grid and interpolated (linearly) to the full grid, and the whole image is
/// divided by it: geometry and metadata are kept. One fitting level per entry of `iterations`.
struct N4Options {
  int shrink_ = 4;
  std::vector<int> iterations_{50, 50, 50, 50};
  double convergence_ = 0.001;
  int control_points_ = 4;  ///< per axis at the first level (spline order 3: one span)
  int bins_ = 200;
  bool otsu_mask_ = true;
  N4Options& shrink(int v) { shrink_ = v; return *this; }
  N4Options& iterations(std::vector<int> v) { iterations_ = std::move(v); return *this; }
  N4Options& convergence(double v) { convergence_ = v; return *this; }
  N4Options& control_points(int v) { control_points_ = v; return *this; }
  N4Options& bins(int v) { bins_ = v; return *this; }
  N4Options& otsu_mask(bool v) { otsu_mask_ = v; return *this; }
};
TransformPtr make_n4(const N4Options& options = {});

}  // namespace medlens
