// Feature-space out-of-distribution scores (is this image like the ones the model learned
// from?), fitted on the training split and judged against thresholds chosen on validation:
//  - energy score E(x) = -logsumexp(logits) (Liu et al. 2020): high = unfamiliar;
//  - Mahalanobis distance of the network's features to the nearest class mean under a shared
//    covariance (Lee et al. 2018). The features are every stage's activations summarised per
//    channel by spatial mean and SD (the penultimate features are the last stage's means), each
//    standardised over train; the covariance is a probabilistic PCA: the top `components`
//    eigen-directions exactly, the rest with their mean variance (Tipping & Bishop 1999), after
//    shrinkage towards the mean eigenvalue. Stored compactly in the bundle as ood.pt
//    (standardisation 2 x F, class means K x F and d variances in float32, basis F x d in
//    float16), described and hashed in card.ood.features.
// Light header: tensors are forward-declared.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

#include "infer/model.h"

namespace medlens {

class FeatureOod {
 public:
  /// Fits class means and the regularised shared covariance of `features` (N,F) with class
  /// indices `labels` (N). UsageError when there are fewer than two cases.
  static FeatureOod fit(const at::Tensor& features, const at::Tensor& labels, int classes, int components = 64,
                        double shrinkage = 0.05);
  /// The reference a bundle ships (card.ood.features + BUNDLE/ood.pt); empty() when the card
  /// has none or the model was built in memory. InputError naming the file when it is
  /// unreadable or its SHA-256 differs from the card's. Cached per file and hash: thread-safe.
  static FeatureOod load(const Model& model);

  bool empty() const { return state_ == nullptr; }
  /// Minimum over classes of the squared Mahalanobis distance, per row of `features` (N,F).
  std::vector<double> mahalanobis(const at::Tensor& features) const;
  /// The archive bytes for ood.pt (deterministic for the same fit).
  std::string serialize() const;
  /// {"file", "sha256", "classes", "features", "components", "method"} for card.ood.features
  /// (thresholds are added by the trust fit).
  nlohmann::json describe(const std::string& file, const std::string& sha256) const;

 private:
  struct State;
  std::shared_ptr<const State> state_;
};

/// Energy score per row of logits (N,K): -logsumexp(logits). Higher means less familiar.
std::vector<double> energy_scores(const at::Tensor& logits);

/// OOD features (N,F) and logits (N,K) of prepared inputs (N,C,...): Model::forward over
/// batches of `batch_size` (one pass each gives both).
void features_and_logits(const Model& model, const at::Tensor& inputs, at::Tensor& features, at::Tensor& logits,
                         int64_t batch_size = 64);

}  // namespace medlens
