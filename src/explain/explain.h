// Explanations: why a model gave its result, as an attribution map over the input, for
// classifiers (a class score) and segmenters (the sum of a class's logits inside a region).
// Light header: the CLI and the analysis use this; methods live in the .cpp files.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "core/image.h"
#include "infer/model.h"
#include "transforms/marks.h"

namespace medlens {

struct ExplainOptions {
  /// Stable method name: gradcam, gradcam++, scorecam, saliency, smoothgrad,
  /// integrated-gradients, input-x-gradient, occlusion, rise, lime, kernel-shap.
  std::string method = "gradcam";
  /// Layer for CAM methods (one of the network's layers()); empty: the card's or the network's
  /// default.
  std::string layer;
  /// Class to explain by name; empty: the predicted class.
  std::string target;
  /// Segmenters: explain the target class's logits summed inside this mask (on the input
  /// image's grid); null: over the whole image.
  const Image* region = nullptr;
  /// Method parameters (e.g. {"steps": 64, "baseline": "zeros"} for integrated gradients,
  /// {"samples": 50, "noise": 0.15} for SmoothGrad, {"patch": 8, "stride": 4} for occlusion,
  /// {"masks": 2000, "cells": 8} for RISE, {"samples": 500, "segments": 50} for LIME/SHAP).
  nlohmann::json params = nlohmann::json::object();
  /// Forward passes per batch for perturbation methods (bounds memory).
  int batch_size = 16;
  uint64_t seed = 0;
  /// How many top regions to describe.
  int top_regions = 3;
};

/// A connected region of high attribution, described for readers and reports.
struct AttributionRegion {
  std::array<int64_t, 3> box_min{}, box_max{};  ///< voxel bounding box (inclusive), x, y, z
  Vec3 lps_min{}, lps_max{};                    ///< the box's corners in patient space (mm)
  Vec3 centroid_lps{};                          ///< attribution-weighted centre (mm)
  double mass_share = 0;                        ///< share of the positive attribution inside it
};

struct Explanation {
  std::string method, layer, target;
  int64_t target_index = 0;
  double score = 0;           ///< the explained score: logit (classifier) or summed logits
  double probability = 0;     ///< calibrated probability of the target (classifiers)
  Image attribution;          ///< one channel, on the input image's grid
  Image attribution_input;    ///< one channel, on the network's input grid
  Image prepared;             ///< the preprocessed image the network saw
  std::vector<AttributionRegion> regions;
  double seconds = 0;
};

/// Explains `image` with `model`. Throws UsageError for an unknown method or layer,
/// InputError when the image does not fit the model.
Explanation explain(const Model& model, const Image& image, const ExplainOptions& options);

/// The stable method names.
std::vector<std::string> explanation_methods();

/// explanation.json's content (no voxels).
nlohmann::json explanation_json(const Explanation& e, const Model& model);

/// Share of the positive attribution mass that lies inside `mask` (voxels > 0.5):
/// sum(max(a, 0) inside) / sum(max(a, 0)), in [0, 1]; 0 when the map has no positive mass. The
/// mask is resampled (nearest) onto the attribution's grid when its grid differs. For the
/// shortcut check: how much of an explanation falls on burned-in text or calipers.
double attribution_share_in(const Image& attribution, const Image& mask);

/// The shortcut check: does an explanation lean on burned-in text or calipers rather than on
/// anatomy? (A model that learnt "the sonographer measured something" from caliper crosses is
/// right for the wrong reason.)
struct ShortcutCheck {
  bool applicable = false;    ///< 2-D images only (marks are burned into projections and US)
  double marks_share = 0;     ///< attribution_share_in(attribution, marks)
  double marks_area_share = 0;  ///< share of the image's voxels the marks cover
  int64_t marks_voxels = 0;
  /// Flagged when marks_share >= kShortcutMinShare and >= kShortcutMinRatio * marks_area_share:
  /// at least a tenth of the positive attribution sits on marks, three times what a map
  /// spread evenly over the image would put there.
  bool flag = false;
  std::string summary;        ///< one line for reports
};
inline constexpr double kShortcutMinShare = 0.10;
inline constexpr double kShortcutMinRatio = 3.0;

/// Runs detect_burned_in_marks() on `image` and measures how much of `e.attribution` (on the
/// image's grid) lies on the marks. Not applicable (applicable = false, zeros) for volumes.
/// `marks_out`, when given, receives the mask (for drawing).
ShortcutCheck shortcut_check(const Image& image, const Explanation& e, const MarkOptions& options = {},
                             Image* marks_out = nullptr);
nlohmann::json shortcut_check_json(const ShortcutCheck& c);

/// Regions of an attribution map on `grid_of`'s geometry: thresholded at `quantile` of the
/// positive values, connected components by mass, top `n`.
std::vector<AttributionRegion> attribution_regions(const Image& attribution, int n, double quantile = 0.9);

}  // namespace medlens
