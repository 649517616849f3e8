// Training classifiers and segmenters from a manifest, reproducibly, into a model bundle whose
// card records everything later stages need. Light header (no LibTorch types).
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

namespace medlens {

struct TrainOptions {
  std::string manifest;             ///< CSV: path,label[,mask][,split]
  std::string out;                  ///< bundle folder to write
  std::string task = "classify";    ///< classify | segment
  std::string arch = "resnet-compact";  ///< resnet18 | resnet34 | resnet-compact | unet
  nlohmann::json architecture;      ///< overrides on top of the preset (e.g. {"width": 32})
  std::string train_split = "train", val_split = "val";
  /// When the manifest has no split column: the stratified fraction held out for validation.
  double val_fraction = 0.15;
  /// Stratified k-fold over the training rows (k >= 2): `fold` is held out as validation.
  int folds = 0, fold = 0;
  /// Deterministic preprocessing (pipeline spec); it must produce a fixed input size.
  nlohmann::json preprocessing = nlohmann::json{{"transforms", nlohmann::json::array()}};
  /// Random augmentation applied to training samples only (pipeline spec).
  nlohmann::json augmentation = nlohmann::json{{"transforms", nlohmann::json::array()}};
  int epochs = 30;
  int batch_size = 64;
  double lr = 1e-3, weight_decay = 1e-4;
  std::string schedule = "cosine";  ///< cosine (with 1 warm-up epoch) | onecycle | constant
  std::string balance = "weights";  ///< weights (class-weighted loss) | sampler (balanced batches) | none
  double label_smoothing = 0.0;
  int patience = 10;                ///< early stopping: epochs without val improvement
  /// Independently trained members (seeds seed, seed+1000, ...) shipped as one averaged
  /// ensemble bundle.
  int members = 1;
  /// Validation metric for early stopping and model selection: auto (binary: auc, multi-class:
  /// auc_ovr_macro, segmentation: dice) | auc | auc_ovr_macro | accuracy | balanced_accuracy | loss.
  std::string monitor = "auto";
  /// Adversarial training (classifiers): {"eps": 2/255, "steps": 3, "ratio": 0.5, "method":
  /// "pgd", "norm": "linf"}. A share `ratio` of every batch is replaced by its PGD/FGSM version
  /// (eps a fraction of each image's range, as in `medlens attack`). Empty: off.
  nlohmann::json adversarial = nlohmann::json::object();
  /// Mixup / CutMix (classifiers): {"alpha": 0.4, "p": 1.0, "cutmix": 0.5}. A share `p` of the
  /// batches is mixed with a shuffled copy of itself, the mixing weight drawn from
  /// Beta(alpha, alpha); `cutmix` is the chance that a mixed batch pastes a box (Yun et al. 2019)
  /// instead of blending whole images (Zhang et al. 2018). Targets mix by the same weight. Empty: off.
  nlohmann::json mixup = nlohmann::json::object();
  /// Exponential moving average of the weights (0: off; e.g. 0.995). Validation, model selection
  /// and the shipped bundle use the averaged weights, which are smoother and usually better
  /// calibrated than the last step's; the decay ramps up as (1 + t) / (10 + t) early on.
  double ema = 0;
  uint64_t seed = 0;
  bool resume = false;              ///< continue from OUT/checkpoint if present
  int64_t max_steps = -1;           ///< stop after this many optimiser steps (tests, smoke runs)
  int bootstrap_rounds = 1000;
  bool quiet = false;               ///< no progress bar
  /// Card fields copied as given: name, version, description, input.modalities,
  /// input.body_parts, intended_use, limitations, thresholds, explanation, ...
  nlohmann::json card = nlohmann::json::object();

  /// Reads a training config (the same keys as this struct, in JSON). UsageError naming the
  /// key for anything unknown or mistyped.
  static TrainOptions from_json(const nlohmann::json& j);
  nlohmann::json to_json() const;
};

struct EpochLog {
  int epoch = 0;
  double train_loss = 0, val_loss = 0, val_metric = 0, lr = 0, seconds = 0;
};

struct TrainResult {
  std::string bundle;             ///< folder written
  std::vector<EpochLog> history;
  int best_epoch = 0;
  double best_metric = 0;         ///< the monitored validation metric at the best epoch
  nlohmann::json val_metrics;     ///< as written to the card (calibrated, with CIs)
  double temperature = 1.0;
  int64_t steps = 0;
};

/// Trains and writes OUT/card.json, OUT/weights.pt (float16), OUT/metrics.csv, (classifiers)
/// the trust fit's OUT/ood.pt, reliability.png and risk_coverage.png (quality/trust.h),
/// OUT/training_curve.png and OUT/checkpoint/ (for --resume). Throws InputError/UsageError.
TrainResult train_model(const TrainOptions& options);

}  // namespace medlens
