// The post-training "trust fit": everything a classifier's card needs so that its answers can
// be trusted or withheld, fitted after training on the bundle's own splits:
//  - temperature scaling on val (ECE, MCE, Brier before and after; reliability diagram);
//  - the abstention threshold (thresholds.abstain.min_confidence): the smallest calibrated
//    confidence such that the val cases answered keep the target sensitivity (and selective
//    accuracy), never abstaining on more than 1 - min_coverage of val; risk-coverage curve, AURC;
//  - the feature-space OOD reference fitted on train (quality/ood.h), with energy and
//    Mahalanobis thresholds that let `ood_pass` of the val images through.
// Run at the end of training (trainer) and on an existing bundle (`medlens calibrate`).
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "infer/model.h"
#include "metrics/classification.h"
#include "nn/card.h"

namespace medlens {

struct TrustOptions {
  /// Sensitivity for the positive class the answered val cases must keep.
  double target_sensitivity = 0.95;
  /// Selective accuracy (arg-max) the answered val cases must keep (0: no target).
  double target_accuracy = 0.0;
  /// Abstain on at most 1 - this fraction of val, whatever the targets.
  double min_coverage = 0.90;
  /// Fraction of val images each OOD threshold lets through.
  double ood_pass = 0.99;
  /// Whether the energy score turns a result inconclusive (it is always measured and reported).
  bool judge_energy = false;
  /// Exact eigen-directions of the Mahalanobis covariance (the rest share one variance).
  int components = 64;
  /// Keep the card's operating point as the calibrated probability it is (a training recipe's
  /// fixed point) instead of carrying its decision rule over to the new temperature.
  bool keep_operating_point = false;
  int64_t batch_size = 64;
  int bootstrap_rounds = 1000;
  uint64_t seed = 0;
};

struct TrustFit {
  ModelCard card;          ///< the input card with temperature, thresholds.abstain, ood.features, metrics.val updated
  std::string ood_bytes;   ///< the ood.pt archive the card's ood.features names
  nlohmann::json summary;  ///< what was fitted and measured (also printed by `medlens calibrate --json`)
  Calibration before, after;              ///< reliability bins on val
  std::vector<double> coverage, risk;     ///< risk-coverage curve on val (calibrated confidence)
};

/// Fits on prepared inputs (N,C,...) and class indices (N). UsageError for segmenters or when
/// either split is empty.
TrustFit fit_trust(const Model& model, const at::Tensor& train_x, const at::Tensor& train_y, const at::Tensor& val_x,
                   const at::Tensor& val_y, const TrustOptions& options = {});

/// Writes BUNDLE/ood.pt, reliability.png and risk_coverage.png, and (when `with_card`)
/// card.json; ood.pt and card.json are committed together at the end, each atomically.
void save_trust(const TrustFit& fit, const std::string& bundle_dir, bool with_card = true);

struct CalibrateOptions {
  std::string train_split = "train", val_split = "val";
  TrustOptions trust;
};

/// `medlens calibrate`: loads the bundle, reads the manifest's train and val rows, fits and
/// rewrites the bundle. Returns the summary. InputError naming the manifest or image for
/// unusable input (nothing is written then).
nlohmann::json calibrate_bundle(const std::string& bundle_dir, const std::string& manifest,
                                const CalibrateOptions& options = {});

/// Risk-coverage of calibrated confidences: cases sorted by confidence (highest first),
/// risk(k) = error rate of the k most confident. Returns AURC (mean risk over k = 1..N).
double risk_coverage(const std::vector<double>& confidence, const std::vector<bool>& correct,
                     std::vector<double>* coverage = nullptr, std::vector<double>* risk = nullptr);

}  // namespace medlens
