// `medlens audit`: one trust report for a classifier on a labelled manifest — calibration
// (reliability before/after), risk-coverage and abstention, the input/OOD checks, the corruption
// benchmark (table and heat map), robust accuracy under PGD over an eps ladder, and subgroup
// metrics per extra manifest column — as OUT/audit.html (self-contained) and OUT/audit.json.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace medlens {

struct AuditOptions {
  std::string split;                      ///< rows of this split (empty: all rows)
  int64_t limit = 0;                      ///< at most this many rows, evenly spaced (0: all)
  std::vector<std::string> corruptions;   ///< empty: every kind
  std::vector<int> severities{1, 2, 3, 4, 5};
  std::vector<double> attack_eps{0, 0.5 / 255, 1.0 / 255, 2.0 / 255, 4.0 / 255, 8.0 / 255};
  int attack_steps = 10;
  int64_t attack_limit = 100;             ///< cases attacked (evenly spaced)
  int bootstrap_rounds = 500;
  uint64_t seed = 0;
};

/// Runs the audit and writes OUT (replaced as a whole, atomically). Returns audit.json's
/// content. InputError naming the manifest/bundle for unusable input; UsageError for segmenters.
nlohmann::json audit(const std::string& bundle, const std::string& manifest, const std::string& out,
                     const AuditOptions& options = {});

}  // namespace medlens
