// Spatial transforms: flips, resampling, crops and pads. Each keeps geometry right: a resample or
// crop changes spacing/origin so every voxel keeps its LPS position; a flip mirrors the content
// (an augmentation) and keeps the geometry.
#pragma once

#include <array>

#include "transforms/transform.h"

namespace medlens {

/// Mirrors voxels along the chosen index axes (x, y, z). Geometry is kept: the content is
/// mirrored, which is what augmentation wants.
TransformPtr make_flip(std::array<bool, 3> axes);

/// Flips each allowed axis with probability p.
TransformPtr make_random_flip(double p = 0.5, std::array<bool, 3> axes = {true, false, false});

}  // namespace medlens
