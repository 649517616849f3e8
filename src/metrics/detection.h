// Detection metrics, lesion by lesion: predicted lesions are matched one-to-one to truth
// lesions (centre-in-mask or IoU rule, greedily by score), giving lesion-wise sensitivity and
// precision; the FROC curve and the LUNA16 competition performance metric (CPM: mean sensitivity
// at 1/8 .. 8 false positives per image) summarise the scores. Definitions: docs/FINDINGS.md.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/geometry.h"
#include "findings/findings.h"

namespace at {
class Tensor;
}

namespace medlens {

class Image;

// ---- FROC -------------------------------------------------------------------------------------

/// One scored mark of a detector on one image.
struct Candidate {
  int64_t image = 0;   ///< which image (any id; only equality matters)
  double score = 0;    ///< higher = more confident
  int64_t hit = -1;    ///< the truth lesion it hits (an id unique within its image), or -1: a false positive
};

/// The false-positive rates of the LUNA16 CPM.
inline constexpr std::array<double, 7> kFrocRates{0.125, 0.25, 0.5, 1, 2, 4, 8};

struct Froc {
  /// The curve, one point per distinct score (descending), starting at (0, 0) above every score.
  std::vector<double> thresholds, fps_per_image, sensitivity;
  std::array<double, 7> sensitivity_at{};  ///< at kFrocRates
  double cpm = 0;                          ///< mean of sensitivity_at; NaN without truth lesions
  int64_t lesions = 0, images = 0, detected = 0, false_positives = 0;
};

/// FROC as the LUNA16 evaluation: a lesion hit by several candidates counts once, with the
/// highest of their scores, and the others are ignored (neither hits nor false positives). At
/// each threshold, sensitivity = lesions hit by a candidate scoring >= it / `lesions`, and
/// FPs per image = false positives scoring >= it / `images`. sensitivity_at(r) is the
/// sensitivity at the lowest threshold whose FP rate is <= r (np.interp over the curve, as the
/// LUNA16 script, gives the same wherever no true and false positive share a score). UsageError
/// for images < 1, lesions < 0 or more distinct hits than lesions.
Froc froc(const std::vector<Candidate>& candidates, int64_t lesions, int64_t images);

/// {"rates", "sensitivity_at", "cpm", "lesions", "images", "detected", "false_positives",
/// "curve": {"threshold", "fps_per_image", "sensitivity"}}.
nlohmann::json to_json(const Froc& froc);

// ---- matching ---------------------------------------------------------------------------------

enum class MatchRule {
  kCentreInMask,  ///< the predicted lesion's centroid lies in the truth lesion's voxels
  kIou,           ///< voxel IoU >= MatchOptions::min_iou
};

/// "centre-in-mask" or "iou"; UsageError otherwise.
MatchRule parse_match_rule(const std::string& name);
std::string to_string(MatchRule rule);

struct MatchOptions {
  MatchRule rule = MatchRule::kCentreInMask;
  double min_iou = 0.1;             ///< for MatchRule::kIou
  bool duplicates_are_fp = false;   ///< a second prediction on a detected lesion: false positive
                                    ///< (true) or ignored, as in LUNA16 (false)
};

/// Outcome of matching one image's predicted lesions to its truth lesions.
struct LesionMatch {
  /// Per predicted lesion (label k at index k-1): the truth lesion it detects (label - 1), or -1.
  std::vector<int64_t> matched;
  /// Per predicted lesion: the truth lesion it satisfies the rule with but that a higher-scoring
  /// prediction already took (label - 1), or -1.
  std::vector<int64_t> duplicate_of;
  /// Per truth lesion: the predicted lesion that detects it (label - 1), or -1.
  std::vector<int64_t> detected_by;
};

/// Greedy one-to-one matching, highest score first: each predicted lesion takes the truth lesion
/// that satisfies the rule (centre-in-mask: the one holding the voxel nearest its centroid; IoU:
/// the untaken one with the highest IoU). `predicted` and `truth` are label maps on the same grid
/// (first channel; lesion k has value k, 0 is background); `scores[k-1]` is lesion k's score, so
/// predicted labels must lie in 1..scores.size(); truth lesions are 1..max label. UsageError for
/// other grids or labels.
LesionMatch match_lesions(const Image& predicted, const std::vector<double>& scores, const Image& truth,
                          const MatchOptions& options = {});

/// The FROC candidates of one matched image: a detection hits its truth lesion, a duplicate hits
/// the same lesion (so froc() ignores it) or, with duplicates_are_fp, none.
std::vector<Candidate> froc_candidates(const LesionMatch& match, const std::vector<double>& scores, int64_t image,
                                       const MatchOptions& options = {});

// ---- the whole report -------------------------------------------------------------------------

struct DetectionOptions {
  /// How candidates are cut from a probability map (threshold, size filters, hole filling);
  /// each candidate's score is its maximum probability.
  FindingOptions candidates{};
  MatchOptions match{};
};

/// Detection report of probability maps against truth label maps (same grids; every non-zero
/// truth voxel is lesion, split into 26-connected lesions, 8 in 2-D): {"rule", "threshold",
/// "images", "truth_lesions", "predicted_lesions", "true_positives", "false_positives",
/// "duplicates", "false_negatives", "sensitivity", "precision", "f1", "froc" (as to_json(Froc)),
/// "per_image": [{"truth_lesions", "predicted_lesions", "true_positives", "false_positives",
/// "false_negatives"}], "lesions": [{"image", "id", "voxels", "volume_mm3" or "area_mm2",
/// "longest_axial_diameter_mm", "detected", "score"}]}. sensitivity and precision count every
/// candidate (the map's own threshold); undefined ratios are null. UsageError for mismatched
/// counts or grids.
nlohmann::json detection_report(const std::vector<Image>& probability, const std::vector<Image>& truth,
                                const DetectionOptions& options = {});
/// The same for tensors (N,[D,]H,W) of probabilities and labels; `geometry` gives each case's
/// spacing for sizes in mm (empty: 1 mm voxels).
nlohmann::json detection_report(const at::Tensor& probability, const at::Tensor& truth,
                                const std::vector<Geometry>& geometry = {}, const DetectionOptions& options = {});

/// detection_report without its per-image and per-lesion lists: what a model card states.
nlohmann::json detection_summary(const at::Tensor& probability, const at::Tensor& truth,
                                 const std::vector<Geometry>& geometry = {}, const DetectionOptions& options = {});

}  // namespace medlens
