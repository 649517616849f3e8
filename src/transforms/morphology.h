// Edges, grey-scale morphology and connected components. Sizes are physical: a structuring
// element's radius is in mm and becomes a different number of voxels along each axis when the
// spacing is anisotropic; gradients are per mm. Every operation works per channel on 2-D and
// 3-D images and keeps geometry; the Sample's label passes through untouched.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "transforms/transform.h"

namespace medlens {

/// One connected component of a binary image.
struct ComponentStats {
  int64_t label = 0;     ///< 1 = largest; ties keep raster order of the first voxel
  int64_t voxels = 0;
  double volume_mm3 = 0; ///< voxels * spacing x * y * z (for a 2-D image: area * slice thickness)
  std::array<int64_t, 3> min_index{};  ///< bounding box, inclusive, voxel (x, y, z)
  std::array<int64_t, 3> max_index{};
  Vec3 centroid_lps{};   ///< mean voxel position in LPS mm
};

struct ComponentOptions {
  double threshold = 0.5;          ///< foreground: value > threshold
  bool full_connectivity = false;  ///< 26 (3-D) / 8 (2-D) neighbours instead of 6 / 4
  int64_t min_voxels = 0;          ///< smaller components are dropped
  double min_volume_mm3 = 0;       ///< likewise, by volume
  int64_t channel = 0;
};

/// Connected components of channel `options.channel`'s foreground, largest first. When `labels`
/// is given it receives a one-channel label map in the image's geometry: component k has value
/// k (1..N in the returned order), background and dropped components 0. UsageError for a bad
/// channel.
std::vector<ComponentStats> connected_components(const Image& binary, const ComponentOptions& options = {},
                                                 Image* labels = nullptr);

/// Label map 1..N ordered by size (per channel), as connected_components.
TransformPtr make_connected_components(const ComponentOptions& options = {});

/// Keeps the largest connected component: 1 inside it, 0 elsewhere (per channel).
TransformPtr make_largest_component(double threshold = 0.5, bool full_connectivity = false);

/// Fills background regions not connected (through faces) to the image border: in 3-D, or in
/// each 2-D slice when `per_slice`. Output 0/1, foreground = value > threshold.
TransformPtr make_fill_holes(double threshold = 0.5, bool per_slice = false);

enum class MorphologyOp { kErode, kDilate, kOpen, kClose };

/// Grey-scale morphology with a flat ball (a disk on 2-D images) of `radius_mm`: the footprint
/// holds the voxel offsets d with sum_a (d_a * spacing_a)^2 <= radius^2, so it spans
/// floor(radius / spacing_a) voxels each way along axis a. Voxels outside the image do not take
/// part (scipy.ndimage grey_erosion with cval=+inf, grey_dilation with cval=-inf). Opening is
/// dilate(erode), closing erode(dilate). Works on binary masks as well.
TransformPtr make_morphology(MorphologyOp op, double radius_mm = 1.0);

/// Gradient magnitude in image units per mm: central differences smoothed by [1 2 1]/4 across
/// the other axes (the Sobel operator), divided by the spacing along each axis; in 3-D, or in
/// each 2-D slice when `per_slice`. Edges repeat the border voxel.
TransformPtr make_sobel(bool per_slice = false);

/// Canny edges (0/1): Gaussian smoothing with `sigma_mm` (normalised at the border, as
/// skimage), Sobel gradient per mm, non-maximum suppression along the neighbour direction
/// closest to the physical gradient (4 directions in 2-D, 13 in 3-D), then hysteresis: edge
/// voxels above `low` that connect (8 / 26 neighbours) to one above `high`. With `quantiles` the
/// thresholds are quantiles (0..1) of the gradient magnitude, otherwise image units per mm.
struct CannyOptions {
  double sigma_mm = 1.0;
  double low = 0.75;
  double high = 0.9;
  bool quantiles = true;
  bool per_slice = false;  ///< 2-D edges in each slice of a volume
};
TransformPtr make_canny(const CannyOptions& options = {});

}  // namespace medlens
