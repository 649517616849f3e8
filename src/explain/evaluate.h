// Is an explanation faithful, localised, sensitive to the model and stable? Metrics for any
// explainer (a built-in method or any function from a model and an image to a map), used by
// `medlens explain --evaluate`, bench/explain and the tests. Light header (no LibTorch types).
//
//  - deletion / insertion (Petsiuk et al. 2018): the target's confidence as voxels are removed
//    from (inserted into) the prepared input in the map's order, against random orders;
//  - pointing game (Zhang et al. 2018) and relevance mass / rank accuracy (Arras et al. 2022)
//    against a lesion mask;
//  - cascading model-parameter randomisation (Adebayo et al. 2018): layers re-initialised from
//    the output backwards, the map recomputed, compared with the original by Spearman rank
//    correlation and SSIM;
//  - max-sensitivity (Yeh et al. 2019) under small input noise; time per explanation.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

#include "core/image.h"
#include "explain/explain.h"
#include "infer/model.h"

namespace medlens {

/// Something that explains: a model and an image in, an Explanation out (at least `attribution`
/// on the image's grid; `attribution_input`, `target_index` and `prepared` are filled in when
/// left empty). Must not change the model.
using Explainer = std::function<Explanation(const Model& model, const Image& image)>;

/// The built-in explain() with fixed options, as an Explainer.
Explainer method_explainer(const ExplainOptions& options);

struct CurveOptions {
  int steps = 20;                 ///< points on each curve after the start (fractions k / steps)
  /// What removed voxels show (deletion) and what the insertion starts from: "blur" (box blur
  /// over an eighth of the image), "zeros", "mean", "min" or a number.
  nlohmann::json baseline = "blur";
  int random_orders = 3;          ///< random orders averaged for the baseline curves
  uint64_t seed = 0;
  int batch_size = 16;            ///< forward passes per batch
};

struct Curve {
  std::vector<double> fraction;   ///< of the voxels removed (deletion) or inserted (insertion)
  std::vector<double> score;      ///< the target's confidence (probability) at each fraction
  double auc = 0;                 ///< trapezoid area under score over fraction in [0, 1]
};

struct FaithfulnessResult {
  Curve deletion, insertion;                  ///< in the map's order (highest first)
  Curve deletion_random, insertion_random;    ///< mean over random orders
};

/// Deletion and insertion curves of explanation `e` of `image` (from explain() or an
/// Explainer, with `prepared` and `attribution_input` set). Classifiers: the target's
/// calibrated probability; segmenters: the mean probability of the target inside `region` (or
/// everywhere). Ties in the map are broken at random (seeded).
FaithfulnessResult deletion_insertion(const Model& model, const Image& image, const Explanation& e,
                                      const CurveOptions& options = {}, const Image* region = nullptr);

struct LocalisationResult {
  bool hit = false;               ///< pointing game: the map's maximum lies in the (grown) mask
  double mass_accuracy = 0;       ///< share of the positive attribution inside the mask
  double rank_accuracy = 0;       ///< share of the top-|mask| voxels that lie inside the mask
};

/// Pointing game and relevance mass / rank accuracy of an attribution map against a lesion mask
/// (> 0.5), both on one grid (the mask is resampled, nearest, when not). The pointing game
/// counts a hit when the maximum lies within `tolerance_mm` of the mask. InputError when the
/// mask is empty.
LocalisationResult localisation(const Image& attribution, const Image& mask, double tolerance_mm = 0);

struct RandomisationOptions {
  uint64_t seed = 0;
  /// The check passes when the map of the fully randomised model differs from the original:
  /// |Spearman| (of the maps) and SSIM both below this. An explainer whose map survives the
  /// model's destruction does not explain the model.
  double max_similarity = 0.5;
};

struct RandomisationStep {
  std::string layer;              ///< the block re-initialised at this step (cumulative)
  double spearman = 0;            ///< rank correlation with the original map
  double spearman_abs = 0;        ///< rank correlation of the absolute maps
  double ssim = 0;                ///< SSIM of the maps scaled to [0, 1]
};

struct RandomisationResult {
  std::vector<RandomisationStep> steps;  ///< top layer first, down to the input
  bool passed = false;                   ///< the map changed (see max_similarity)
  std::string verdict;                   ///< one line for reports
};

/// Cascading model-parameter randomisation (Adebayo et al. 2018): the network's parameter
/// blocks (named by their first one or two path components, e.g. fc, layer4.0, ..., stem.0)
/// are re-initialised from the output backwards, cumulatively (weights He-normal, 1-D
/// parameters redrawn with the trained mean and spread), and the map recomputed after each
/// step. The target stays the original explanation's. Needs a native network (UsageError for
/// TorchScript models); the model itself is not changed.
RandomisationResult randomisation_check(const Model& model, const Image& image, const Explainer& explainer,
                                        const RandomisationOptions& options = {});

struct StabilityOptions {
  int samples = 8;                ///< noisy copies
  double radius = 0.02;           ///< uniform noise in [-radius, radius] times the image's value range
  uint64_t seed = 0;
};

/// Max-sensitivity (Yeh et al. 2019): max over noisy copies x' of ||map(x') - map(x)|| / ||map(x)||
/// (Frobenius norms on the image's grid; 0 is perfectly stable).
double max_sensitivity(const Model& model, const Image& image, const Explainer& explainer,
                       const StabilityOptions& options = {});

/// Spearman rank correlation of two maps on one grid (average ranks for ties; 0 when either is
/// constant).
double spearman(const Image& a, const Image& b);
/// Structural similarity of two maps on one grid, each scaled to [0, 1] by its own range
/// (Gaussian window sigma 1.5 voxels, per slice for volumes; K1 0.01, K2 0.03).
double ssim(const Image& a, const Image& b);

struct EvaluationOptions {
  CurveOptions curves;
  bool randomisation = true;
  RandomisationOptions randomisation_options;
  bool stability = true;
  StabilityOptions stability_options;
  double pointing_tolerance_mm = 0;
};

/// Every metric above for one image and method, as JSON: seconds, deletion/insertion (AUC,
/// random AUCs, curves), localisation (with `lesion_mask`), randomisation (or the reason it
/// was skipped), stability.
nlohmann::json evaluate_explanation(const Model& model, const Image& image, const ExplainOptions& options,
                                    const Image* lesion_mask = nullptr, const EvaluationOptions& eval = {});

}  // namespace medlens
