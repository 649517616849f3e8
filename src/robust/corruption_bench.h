// Corruption benchmark (ImageNet-C / MedMNIST-C style): a classifier's accuracy and AUC under
// every corruption kind at every severity, its corruption error per kind (CE: mean error over
// severities), relative CE (the same minus the clean error), their means over kinds (mCE,
// relative mCE), and how often the trust checks refuse the corrupted images. Errors are not
// normalised by a baseline network (AlexNet in ImageNet-C): the reference is the clean model.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "core/image.h"
#include "infer/model.h"

namespace medlens {

struct CorruptionBenchOptions {
  std::vector<std::string> kinds;          ///< empty: every kind (corruption_kinds())
  std::vector<int> severities{1, 2, 3, 4, 5};
  bool judge = true;                       ///< also run the input/OOD checks and abstention
  uint64_t seed = 0;
  int batch_size = 64;
};

/// `labels` are class indices of `images` (raw, as read). Kinds that cannot corrupt these images
/// (e.g. 3-D only) get null cells and a "skipped" entry with the reason.
/// {"clean": {"accuracy", "auc", "refused"}, "kinds", "severities", "accuracy": [[...]],
///  "auc": [[...]], "refused": [[...]], "ce": {kind: x}, "relative_ce": {kind: x}, "mce",
///  "relative_mce", "n"}
nlohmann::json corruption_benchmark(const Model& model, const std::vector<Image>& images, const std::vector<int>& labels,
                                    const CorruptionBenchOptions& options = {});

}  // namespace medlens
