// Evaluating models on a labelled manifest: the numbers `medlens evaluate` prints and that
// model cards state.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <string>
#include <vector>

#include "infer/model.h"
#include "infer/predict.h"

namespace medlens {

struct EvaluateOptions {
  std::string split;              ///< rows of this split only (empty: all rows)
  int bootstrap_rounds = 1000;
  uint64_t seed = 0;
  double threshold = -1;          ///< operating point on P(positive); < 0: the card's
  PredictOptions predict;
};

/// Classification: every classification_report() metric with 95% CIs, plus per-case
/// predictions; segmentation: Dice, IoU, HD95, ASD per class. Throws InputError for unusable
/// manifests or images.
nlohmann::json evaluate_manifest(const std::vector<Model>& models, const std::string& manifest,
                                 const EvaluateOptions& options);

/// Reads images in parallel (the slow part of evaluating on many files).
std::vector<Image> read_images(const std::vector<std::string>& paths);

}  // namespace medlens
