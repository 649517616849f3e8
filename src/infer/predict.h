// Classification inference: calibrated probabilities from one model or an ensemble, with
// test-time augmentation and Monte-Carlo dropout as options, and the uncertainty they measure.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <map>
#include <string>
#include <vector>

#include "infer/model.h"

namespace medlens {

struct PredictOptions {
  /// Test-time augmentation: also run the horizontally mirrored input and average.
  bool tta = false;
  /// Monte-Carlo dropout samples per model (0: dropout off, one deterministic pass).
  int mc_samples = 0;
  /// Images per forward pass when predicting many.
  int batch_size = 32;
  /// Seed for Monte-Carlo dropout masks (reproducible uncertainty).
  uint64_t seed = 0;
};

struct Prediction {
  std::string input;                  ///< what was read (path)
  std::string model;                  ///< model id, or "ensemble(a,b,...)"
  std::vector<std::string> classes;
  std::vector<double> probabilities;  ///< calibrated (temperature-scaled), averaged
  std::string label;                  ///< arg-max class
  std::string status = "ok";          ///< "ok" or "inconclusive"
  std::vector<std::string> reasons;   ///< why inconclusive, in plain words
  /// Uncertainty: entropy (nats) of the mean prediction; over several passes (ensemble
  /// members x TTA x MC dropout) also the mutual information (entropy of the mean minus the
  /// mean entropy: disagreement between passes) and each class probability's variance.
  double entropy = 0, mutual_information = 0;
  std::vector<double> variance;
  int passes = 1;
  /// Input-quality measurements and flags (filled by the quality stage when it runs).
  std::map<std::string, double> quality;
  std::vector<std::string> quality_flags;
  std::vector<double> raw_logits;     ///< first model's uncalibrated logits (single pass)
};

/// Predicts one prepared-or-raw image. All models must share classes; each applies its own
/// preprocessing and temperature. Throws InputError when the image does not fit a model.
Prediction predict(const std::vector<Model>& models, const Image& image, const PredictOptions& options = {});

/// Predicts many images, batching forward passes; `read` failures are not caught here.
std::vector<Prediction> predict_many(const std::vector<Model>& models, const std::vector<Image>& images,
                                     const PredictOptions& options = {});

/// The contract's JSON line: {"input", "model", "probabilities": {class: p}, "label", "status",
/// "reasons", "uncertainty": {...}, "quality": {...}}.
nlohmann::json prediction_json(const Prediction& p);

}  // namespace medlens
