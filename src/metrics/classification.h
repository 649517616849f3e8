// Classification metrics with bootstrap confidence intervals. Torch-free: vectors in, numbers
// out. Probabilities are rows of K class probabilities; labels are class indices.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace medlens {

using ProbRows = std::vector<std::vector<double>>;

/// Area under the ROC curve of `scores` for `positive` (true = positive case), ties counted
/// half (Mann-Whitney U). NaN when one class is absent.
double roc_auc(const std::vector<double>& scores, const std::vector<bool>& positive);
/// Mean one-vs-rest AUC over classes present (macro), as sklearn's roc_auc_score(multi_class="ovr").
double auc_ovr_macro(const ProbRows& probs, const std::vector<int>& labels, int classes);
double accuracy(const std::vector<int>& labels, const std::vector<int>& predicted);
/// Mean per-class recall over classes present.
double balanced_accuracy(const std::vector<int>& labels, const std::vector<int>& predicted, int classes);
/// Rows: true class, columns: predicted class.
std::vector<std::vector<int64_t>> confusion_matrix(const std::vector<int>& labels,
                                                   const std::vector<int>& predicted, int classes);
/// Macro F1 over classes present.
double macro_f1(const std::vector<int>& labels, const std::vector<int>& predicted, int classes);
/// Multi-class Brier score: mean over cases of sum_k (p_k - [y == k])^2.
double brier(const ProbRows& probs, const std::vector<int>& labels);

/// Operating point on P(positive), the rule `P >= threshold`: the one maximising Youden's J
/// (sensitivity + specificity - 1), or, when target_sensitivity >= 0, the largest keeping
/// sensitivity at the target. It is returned midway between the val score that defines it and
/// the next lower one, so the same cases fall on either side when the scores move in their last
/// bits (another thread count or an optimised inference graph); an operating point equal to a
/// case's score would flip that case. 0.5 when no case has a score or none reaches the target.
double choose_operating_point(const ProbRows& probs, const std::vector<int>& labels, int positive,
                              double target_sensitivity = -1);

struct Calibration {
  double ece = 0, mce = 0;                 ///< expected / maximum calibration error
  std::vector<double> bin_confidence, bin_accuracy;
  std::vector<int64_t> bin_count;
};
/// Confidence = max probability; equal-width bins over [0, 1].
Calibration calibration(const ProbRows& probs, const std::vector<int>& labels, int bins = 15);

/// The ECE that a perfectly calibrated model with these confidences would show on this many
/// cases: each case is drawn correct with probability equal to its confidence, `rounds` times.
/// Binned ECE is biased upwards on small samples (15 bins, ~100 cases: about 0.08), so a
/// measured ECE says something only against this floor.
struct EceFloor {
  double mean = 0, q95 = 0;  ///< mean and 95th percentile over the rounds
};
EceFloor ece_floor(const ProbRows& probs, int bins = 15, int rounds = 2000, uint64_t seed = 0);

struct Interval {
  double value = 0, lo = 0, hi = 0;  ///< point estimate and the 95% percentile bootstrap interval
};
/// Percentile bootstrap: `stat` is evaluated on `rounds` resamples (with replacement) of the
/// case indices 0..n-1; resamples where it is NaN (e.g. one class missing) are skipped.
Interval bootstrap(const std::function<double(const std::vector<size_t>& idx)>& stat, size_t n,
                   int rounds = 1000, uint64_t seed = 0);

struct ClassificationReportOptions {
  std::vector<std::string> classes;
  std::string positive_class;   ///< for binary AUC, sensitivity, specificity
  double threshold = 0.5;       ///< on P(positive), the operating point
  int bootstrap_rounds = 1000;
  uint64_t seed = 0;
};
/// Every metric medlens reports, each with a 95% CI, as JSON: accuracy, balanced_accuracy,
/// auc (positive vs rest), auc_ovr_macro, sensitivity and specificity at the threshold,
/// macro_f1, brier, ece, confusion_matrix, n, class_counts.
nlohmann::json classification_report(const ProbRows& probs, const std::vector<int>& labels,
                                     const ClassificationReportOptions& options);

}  // namespace medlens
