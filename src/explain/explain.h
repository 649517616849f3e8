// Explanations: why a model gave its result, as an attribution map over the input, for
// classifiers (a class score) and segmenters (the sum of a class's logits inside a region).
// Light header: the CLI and the analysis use this; methods live in the .cpp files.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "core/image.h"
#include "infer/model.h"

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

/// Regions of an attribution map on `grid_of`'s geometry: thresholded at `quantile` of the
/// positive values, connected components by mass, top `n`.
std::vector<AttributionRegion> attribution_regions(const Image& attribution, int n, double quantile = 0.9);

}  // namespace medlens
