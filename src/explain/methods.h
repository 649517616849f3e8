// Internal to explain/: the attribution methods behind explain(), and the pieces the methods and
// the evaluation share. Torch-heavy: include only from explain/ .cpp files and tests.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <initializer_list>
#include <string>

#include "core/error.h"
#include "explain/explain.h"
#include "nn/network.h"

namespace medlens::explain_detail {

/// Maps the network's output for a batch to one value per item.
using ScoreFn = std::function<at::Tensor(const at::Tensor& output)>;

struct Context {
  Network* net = nullptr;
  at::Tensor x;                 ///< (1, C, [D,] H, W), the prepared input
  /// The explained quantity: the target's logit (classifier) or the target's logits summed
  /// inside the region (segmenter).
  ScoreFn score;
  /// A bounded version of it, in [0, 1]: the target's calibrated softmax probability
  /// (classifier) or its mean softmax probability inside the region (segmenter). RISE and the
  /// deletion/insertion curves use it.
  ScoreFn confidence;
  /// score divided by the number of voxels it sums (1 for classifiers): a mean logit, for
  /// Score-CAM's channel softmax.
  double score_scale = 1.0;
  std::string layer;            ///< CAM layer
  nlohmann::json params;        ///< method parameters
  int batch_size = 16;
  uint64_t seed = 0;
  int64_t dims() const { return x.dim() - 2; }
  /// Spatial size of the input ([D,] H, W).
  std::vector<int64_t> spatial() const { return {x.sizes().begin() + 2, x.sizes().end()}; }
};

/// An attribution method: returns a map ([D,] H, W) on the input grid (one value per voxel;
/// channel contributions are summed where the method gives one per channel).
using Method = std::function<at::Tensor(Context&)>;

/// The method registered under `name`; UsageError for unknown names.
Method method(const std::string& name);
/// Every registered name, in a stable order.
std::vector<std::string> method_names();

/// Builds the context explain() hands to a method: the prepared input, the target and its
/// score functions. Fills e.method, e.layer, e.prepared, e.target(_index), e.score and
/// e.probability.
Context make_context(const Model& model, const Image& image, const ExplainOptions& options, Explanation& e);
/// Completes `e` from a method's map ([D,] H, W on the prepared grid): attribution_input,
/// attribution on `image`'s grid, regions.
void finish_explanation(const at::Tensor& map, const Image& image, const ExplainOptions& options, Explanation& e);

/// Scores of a batch of inputs (N, C, ...) computed in chunks of ctx.batch_size, no gradients.
at::Tensor batched_scores(Context& ctx, const at::Tensor& inputs);
/// Any score function over a batch, in chunks of ctx.batch_size, no gradients.
at::Tensor batched(Context& ctx, const at::Tensor& inputs, const ScoreFn& fn);
/// d score / d x for a batch of inputs, one backward pass per chunk.
at::Tensor input_gradients(Context& ctx, const at::Tensor& inputs);
/// Upsamples maps (..., [d,] h, w) to `size` ([D,] H, W) by linear interpolation aligned with
/// the receptive fields of strided "same" convolutions: cell k of an axis downsampled by
/// s = H / h is centred on input voxel s * k (a stride-2 3x3 convolution with padding 1 centres
/// output j on input 2j), not on s * k + (s - 1) / 2 as align_corners=false resizing assumes, which
/// shifts CAMs by half a cell (3.5 voxels at stride 8) towards the far corner. Voxels past the
/// last centre take the last cell's value.
at::Tensor upsample_aligned(const at::Tensor& maps, const std::vector<int64_t>& size);
/// upsample_aligned() of a ([D,] h, w) map to the input's spatial size.
at::Tensor upsample_to_input(const at::Tensor& map, const Context& ctx);

/// A reference input like `x` (1, C, ...): "zeros", "mean" (the input's mean), "min", "blur" (a
/// box blur over an eighth of the image, which removes small structures and keeps the rest), or
/// a number. UsageError otherwise.
at::Tensor baseline_input(const at::Tensor& x, const nlohmann::json& kind, const std::string& method);

/// Refuses (UsageError naming the method) parameters that the method does not know.
void check_params(const Context& ctx, const std::string& method, std::initializer_list<const char*> known);
/// ctx.params[key] as T, or `fallback` when absent; UsageError naming the key when the value has
/// another type.
template <class T>
T param(const Context& ctx, const std::string& method, const char* key, T fallback) {
  if (!ctx.params.contains(key)) return fallback;
  try {
    return ctx.params.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    throw UsageError(method + ": parameter '" + key + "' has the wrong type (" + ctx.params.at(key).dump() + ")");
  }
}

/// SLIC superpixels (Achanta et al. 2012) of a (C, [D,] H, W) image: k-means on intensity
/// (each channel scaled to [0, 1]) and position, searched within 2S of each centre (S the grid
/// step for `segments` centres), 10 iterations, distance sqrt(dc^2 + (ds / S)^2 compactness^2);
/// then connectivity is enforced (components below a quarter of the mean size join a
/// neighbour). Returns int64 labels ([D,] H, W), 0..n-1, each label one face-connected region.
at::Tensor slic(const at::Tensor& image, int64_t segments, double compactness, int iterations = 10);

// Method families (one file each) register here.
void add_gradient_methods(std::vector<std::pair<std::string, Method>>& table);
void add_perturbation_methods(std::vector<std::pair<std::string, Method>>& table);

}  // namespace medlens::explain_detail
