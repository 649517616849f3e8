// Findings: the lesions in a probability map, measured in millimetres. A finding is one
// connected component (26 neighbours in 3-D, 8 in 2-D) of the thresholded map, holes filled, with
// its confidence, position (voxel and LPS), box, size and RECIST-style axial diameters, and the
// original image's intensities inside it. Definitions are in docs/FINDINGS.md. Torch-free header.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <array>
#include <cstdint>
#include <vector>

#include "core/geometry.h"

namespace medlens {

class Image;

struct FindingOptions {
  double threshold = 0.5;       ///< foreground: probability > threshold
  int64_t min_voxels = 1;       ///< smaller components are dropped
  double min_volume_mm3 = 0;    ///< likewise by size (mm² on a 2-D image)
  bool fill_holes = true;       ///< fill cavities not connected to the border before labelling
  bool largest_only = false;    ///< keep only the largest component (by voxels) after the size filters
};

struct Finding {
  int id = 0;                       ///< 1..N in the order returned (highest probability first)
  double probability = 0;           ///< max of the map over the component's voxels
  double mean_probability = 0;      ///< mean over them (filled holes included)
  Vec3 centroid_voxel{};            ///< mean voxel index (x, y, z)
  Vec3 centroid_lps{};              ///< the same point in LPS mm
  std::array<int64_t, 6> bbox_voxel{};  ///< x0, y0, z0, x1, y1, z1, inclusive
  Vec3 bbox_lps_min{}, bbox_lps_max{};  ///< axis-aligned LPS box around the box's voxel footprints
  int64_t voxels = 0;
  double volume_mm3 = 0;            ///< voxels x voxel volume; on a 2-D image the area in mm²
  bool planar = false;              ///< from a 2-D image (volume_mm3 holds an area)
  double longest_axial_diameter_mm = 0;  ///< longest in-slice diameter over all slices
  double perpendicular_diameter_mm = 0;  ///< extent at right angles to it, in the same slice
  int64_t diameter_slice = 0;       ///< z index where the longest diameter lies
  int64_t best_slice = 0;           ///< z index with the largest cross-section
  std::vector<double> mean_intensity, max_intensity;  ///< per channel of the intensity image
};

/// Findings of a one-channel probability map, highest probability first (ties: larger first).
/// `intensity` (optional, any channel count, same Z,Y,X grid) gives mean/max per channel, e.g.
/// HU on CT. When `labels` is given it receives a one-channel map in the probability's geometry
/// with finding k's voxels set to k, 0 elsewhere. UsageError for a map with other than one
/// channel, an intensity image on another grid, a NaN threshold or negative minimum sizes.
/// Thread-safe: no shared state.
std::vector<Finding> extract_findings(const Image& probability, const Image* intensity,
                                      const FindingOptions& options = {}, Image* labels = nullptr);

/// {"id", "probability", "mean_probability", "centroid_voxel", "centroid_lps", "bbox_voxel",
/// "bbox_lps": {"min", "max"}, "voxels", "volume_mm3" (or "area_mm2" for a 2-D image),
/// "longest_axial_diameter_mm", "perpendicular_diameter_mm", "diameter_slice", "best_slice",
/// "mean_intensity", "max_intensity"}.
nlohmann::json to_json(const Finding& finding);

}  // namespace medlens
