// Is this image fit to judge? Checks before any answer is trusted: the input fits the model
// (Model::check_fits refuses outright), and measurements of the image as the network sees it
// (noise, sharpness, dynamic range) compared with what the model met in training, recorded in
// its card. A failed check turns the result "inconclusive" with a plain-language reason.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "infer/model.h"
#include "infer/predict.h"

namespace medlens {

struct QualityCheck {
  std::string name;    ///< noise, sharpness, dynamic-range, ...
  double value = 0;    ///< the measurement
  bool passed = true;
  std::string reason;  ///< plain language, when it failed
};

struct QualityReport {
  std::vector<QualityCheck> checks;
  bool ok() const;
};

/// Measurements on a preprocessed input ((C,[D,]H,W) float tensor): "noise" (robust noise SD
/// from the finest wavelet details, in the input's units), "sharpness" (mean absolute
/// Laplacian / value SD), "dynamic_range" (value SD).
std::map<std::string, double> quality_features(const at::Tensor& prepared);

/// Per-feature quantiles (q01, q50, q99) over a training set, for the card's "ood.quality".
nlohmann::json quality_reference(const std::vector<std::map<std::string, double>>& features);

/// An image's in-plane size as read, before preprocessing: min(height, width) in voxels. The
/// card's "ood.quality.size" holds its quantiles over the training images (size_reference),
/// and an image less than half of what the model reads (its input grid, or the smallest (q01)
/// training images when smaller) is refused: enlarging a small image cannot supply the detail
/// the network reads (a 28x28 thumbnail given to a 160x160 model of 256x256 ultrasound, say),
/// whatever its features happen to look like.
double in_plane_size(const Image& image);
nlohmann::json size_reference(const std::vector<double>& sizes);

/// Checks an image against the card's quality reference (checks without a reference are
/// measured and reported, not judged), then, when the bundle has a feature-space OOD reference
/// (card.ood.features, quality/ood.h), its Mahalanobis distance and energy score against the
/// thresholds chosen on validation.
QualityReport assess_quality(const Image& image, const Model& model);
/// The same for many images, with the network's passes batched.
std::vector<QualityReport> assess_quality_many(const std::vector<Image>& images, const Model& model);
/// The same on what prediction already computed, with no pass of its own: `prepared` is
/// model.prepare_many(images) (N,C,...); `logits` (N,K) and `features` (N,F) are the model's
/// deterministic pass over it (Model::forward; predict_prepared keeps them), needed only when
/// the bundle has a feature-space OOD reference (FeatureOod::load) and unused otherwise.
std::vector<QualityReport> assess_quality_prepared(const std::vector<Image>& images, const at::Tensor& prepared,
                                                   const at::Tensor& logits, const at::Tensor& features,
                                                   const Model& model);

/// What `medlens predict` and `analyze` answer: predictions with every check applied. Each
/// image is prepared once per model (prepare_for), each model makes one deterministic pass per
/// batch, whose first-model logits and features also serve the OOD checks, the quality checks
/// run on the same prepared tensors (the first model's), then apply_quality and
/// apply_abstention with the first model's card. `reports`, when given, receives each image's
/// checks. Throws what predict_prepared and assess_quality_prepared throw.
std::vector<Prediction> predict_checked(const std::vector<Model>& models, const std::vector<Image>& images,
                                        const PredictOptions& options = {},
                                        std::vector<QualityReport>* reports = nullptr);

/// Copies the measurements into the prediction and, when a check failed, sets its status to
/// "inconclusive" with the checks' reasons.
void apply_quality(const QualityReport& report, Prediction& prediction);

/// The card's abstention rules (thresholds.abstain: min_confidence, max_entropy,
/// max_mutual_information), applied to a prediction: status "inconclusive" with the reason.
void apply_abstention(const ModelCard& card, Prediction& prediction);

nlohmann::json quality_json(const QualityReport& report);

}  // namespace medlens
