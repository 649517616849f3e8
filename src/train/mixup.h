// Mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019) for classifier training: a batch is
// blended with, or has a box pasted from, a shuffled copy of itself, and the loss mixes the two
// targets by the same weight. They regularise small data sets and soften over-confidence.
// Light header: tensors are forward-declared.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>

namespace at {
class Tensor;
}

namespace medlens {

struct MixupOptions {
  double alpha = 0.4;   ///< the mixing weight is drawn from Beta(alpha, alpha)
  double p = 1.0;       ///< share of batches that are mixed at all
  double cutmix = 0.0;  ///< share of mixed batches that paste a box instead of blending

  /// From the training config's `mixup` object; UsageError naming an unknown key or a bad value.
  static MixupOptions from_json(const nlohmann::json& j);
};

/// Replaces the batch `x` (N, C, [D,] H, W) by its mixed version, a new tensor (whatever `x`
/// shared its storage with is left alone); the same seed gives the same result. `partner`
/// receives the index (N) of the sample each row was mixed with, and the return value is
/// lambda, the weight of the original sample's target (1: the batch was left as it is and
/// `partner` is undefined). For CutMix lambda is the exact share of voxels kept.
double mix_batch(at::Tensor& x, at::Tensor& partner, const MixupOptions& options, uint64_t seed);

}  // namespace medlens
