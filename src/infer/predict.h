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

/// Each model's batch of the images, Model::prepare_many: models whose preprocessing and input
/// spec are the same share one batch (each still checks that the images fit it).
std::vector<at::Tensor> prepare_for(const std::vector<Model>& models, const std::vector<Image>& images);

/// predict_many on images already prepared: `batches` as prepare_for() gives them, `inputs`
/// naming each row (Prediction::input). Each model makes one deterministic pass per batch of
/// options.batch_size, plus the mirrored and Monte-Carlo passes asked for (with Monte-Carlo
/// dropout only the first model makes a deterministic pass). That first pass is kept when asked: `logits` receives its uncalibrated logits (N,K) and `features` its OOD
/// features (N,F) from that same pass (Model::forward), so the quality stage needs no pass of
/// its own.
std::vector<Prediction> predict_prepared(const std::vector<Model>& models, const std::vector<at::Tensor>& batches,
                                         const std::vector<std::string>& inputs, const PredictOptions& options = {},
                                         at::Tensor* logits = nullptr, at::Tensor* features = nullptr);

/// The contract's JSON line: {"input", "model", "probabilities": {class: p}, "label", "status",
/// "reasons", "uncertainty": {...}, "quality": {...}}.
nlohmann::json prediction_json(const Prediction& p);

}  // namespace medlens
