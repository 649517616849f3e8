// Subgroup audit: the model's metrics per value of any manifest column (site, sex, age band,
// scanner, ...), each with a 95% bootstrap CI, the gap of each group to the rest of the cases
// with its own CI, and a flag when that CI excludes parity (0). Torch-free.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <map>
#include <string>
#include <vector>

#include "metrics/classification.h"

namespace medlens {

struct SubgroupOptions {
  int positive = 1;             ///< class index for sensitivity/specificity/AUC
  double threshold = 0.5;       ///< operating point on P(positive)
  int bootstrap_rounds = 1000;
  uint64_t seed = 0;
  int min_cases = 5;            ///< groups smaller than this are listed but not judged
};

/// `columns` maps a column name to one value per case. For each column: {"groups": [{"value",
/// "n", "accuracy", "sensitivity", "specificity", "auc" (each {"value", "ci95"}), "gap_accuracy",
/// "gap_sensitivity" ({"value", "ci95"}: group minus rest), "flagged"}], "largest_gap": {"metric",
/// "group", "value"}, "flagged": [...values]}. Metrics that are undefined for a group (no
/// positives, one class) are null.
nlohmann::json subgroup_audit(const ProbRows& probs, const std::vector<int>& labels,
                              const std::map<std::string, std::vector<std::string>>& columns,
                              const SubgroupOptions& options = {});

}  // namespace medlens
