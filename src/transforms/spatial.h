// Spatial transforms: flips, resampling, resizing, crops, pads and channel layout. Each keeps
// geometry right: a resample, resize, crop or pad changes spacing/origin so every voxel keeps its
// LPS position; a flip mirrors the content (an augmentation) and keeps the geometry. Label maps
// in a Sample follow the image with nearest-neighbour sampling (never interpolated values).
#pragma once

#include <array>
#include <cstdint>

#include "transforms/transform.h"

namespace medlens {

/// Mirrors voxels along the chosen index axes (x, y, z). Geometry is kept: the content is
/// mirrored, which is what augmentation wants.
TransformPtr make_flip(std::array<bool, 3> axes);

/// Flips each allowed axis with probability p.
TransformPtr make_random_flip(double p = 0.5, std::array<bool, 3> axes = {true, false, false});

enum class Interpolation {
  kNearest,  ///< nearest voxel (ties round up, as ITK)
  kLinear,   ///< (tri)linear
  kBSpline,  ///< cubic B-spline (ITK's B-spline decomposition, mirror boundary)
};

/// Resampling to a new voxel spacing on the same physical extent (ITK ResampleImageFilter
/// convention): origin and direction kept, size along each axis round(size * spacing /
/// new_spacing) (at least 1), so output voxel i lies at input index i * new/old spacing and keeps
/// its LPS position. Samples past the last voxel centre (at most half an input voxel) take the
/// edge value (linear, nearest) or follow the mirror-symmetric spline (bspline). A spacing entry
/// of 0 keeps that axis; 2-D images always keep z.
struct ResampleOptions {
  Vec3 spacing{1.0, 1.0, 1.0};  ///< target spacing in mm (x, y, z)
  Interpolation interpolation = Interpolation::kLinear;
};
TransformPtr make_resample(const ResampleOptions& options);

enum class ResizeMode {
  kNearest,  ///< nearest voxel centre (torch "nearest-exact", cv INTER_NEAREST_EXACT)
  kLinear,   ///< (tri)linear, half-pixel centres (torch align_corners=false, cv INTER_LINEAR)
  kArea,     ///< exact average over each output voxel's footprint (cv INTER_AREA when shrinking)
};

/// Resizing to a fixed voxel shape (network input). The physical extent is kept: spacing becomes
/// spacing * old_size / new_size and the origin moves so voxel footprints tile the same box.
/// A size entry <= 0 keeps that axis; 2-D images always keep z.
struct ResizeOptions {
  std::array<int64_t, 3> size{224, 224, 0};  ///< voxels (x, y, z)
  ResizeMode mode = ResizeMode::kLinear;
};
TransformPtr make_resize(const ResizeOptions& options);

/// A box of voxels: first voxel (x, y, z) and size; a size <= 0 runs to the end of that axis.
struct CropBox {
  std::array<int64_t, 3> start{0, 0, 0};
  std::array<int64_t, 3> size{0, 0, 0};
};
/// Crops to the box; the origin moves to the box's first voxel. InputError when the box does not
/// lie inside the image.
TransformPtr make_crop(const CropBox& box);

/// Crops the central `size` voxels (x, y, z); axes already no larger than `size` (or with size
/// <= 0) are kept. The box starts at floor((n - size) / 2).
TransformPtr make_center_crop(std::array<int64_t, 3> size);

enum class PadMode {
  kConstant,  ///< a fixed value (labels: 0)
  kEdge,      ///< repeat the edge voxel
  kReflect,   ///< mirror about the edge voxel, as numpy "reflect" (d c b | a b c d | c b a)
};

/// Pads either to a size (x, y, z; entries <= 0 or below the current size leave the axis; the
/// extra goes floor(d/2) before, the rest after) or by margins (voxels before/after each axis:
/// x_lo, x_hi, y_lo, y_hi, z_lo, z_hi). 2-D images are never padded along z. The origin moves so
/// the original voxels keep their LPS positions.
struct PadOptions {
  std::array<int64_t, 3> size{0, 0, 0};
  std::array<int64_t, 6> margins{0, 0, 0, 0, 0, 0};
  PadMode mode = PadMode::kConstant;
  double value = 0.0;
};
TransformPtr make_pad(const PadOptions& options);

/// Crops to the bounding box of the voxels above `threshold` (in any channel), grown by
/// `margin_mm` on every side (rounded up to whole voxels per axis) and clipped to the image. The
/// label is cropped with the same box. An image with no voxel above the threshold is unchanged.
struct ForegroundCropOptions {
  double threshold = 0.0;
  Vec3 margin_mm{0.0, 0.0, 0.0};
};
TransformPtr make_foreground_crop(const ForegroundCropOptions& options);

/// RGB (or RGBA, alpha ignored) to one channel with skimage.color.rgb2gray's weights
/// 0.2125 R + 0.7154 G + 0.0721 B. One-channel images pass unchanged; other channel counts are an
/// InputError.
TransformPtr make_grey();

/// `image` resampled onto another grid (`shape` and `geometry`, e.g. a reference image's) by
/// LPS position: each output voxel takes the image's value at the same point in the patient
/// (trilinear, or nearest for labels; 0 outside). Used to bring a map computed on a network's
/// input grid back to the original image, and to stack co-registered modalities on one grid.
/// 2-D images map to 2-D grids (the z coordinate must agree within half a slice).
Image resample_onto(const Image& image, const Shape& shape, const Geometry& geometry, bool nearest = false);

/// One channel repeated `n` times (e.g. grey to 3 channels for an ImageNet backbone). Images that
/// already have n channels pass unchanged; others are an InputError.
TransformPtr make_repeat_channels(int64_t n = 3);

}  // namespace medlens
