// Internal to explain/: the attribution methods behind explain(). Torch-heavy.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <string>

#include "nn/network.h"

namespace medlens::explain_detail {

/// Maps the network's output for a batch to one score per item: the quantity explained.
using ScoreFn = std::function<at::Tensor(const at::Tensor& output)>;

struct Context {
  Network* net = nullptr;
  at::Tensor x;                 ///< (1, C, [D,] H, W), the prepared input
  ScoreFn score;
  std::string layer;            ///< CAM layer
  nlohmann::json params;        ///< method parameters
  int batch_size = 16;
  uint64_t seed = 0;
  int64_t dims() const { return x.dim() - 2; }
};

/// An attribution method: returns a map ([D,] H, W) on the input grid (one value per voxel;
/// channel contributions are summed where the method gives one per channel).
using Method = std::function<at::Tensor(Context&)>;

/// The method registered under `name`; UsageError for unknown names.
Method method(const std::string& name);
/// Every registered name, in a stable order.
std::vector<std::string> method_names();

/// Scores of a batch of inputs (N, C, ...) computed in chunks of ctx.batch_size, no gradients.
at::Tensor batched_scores(Context& ctx, const at::Tensor& inputs);
/// d score / d x for a batch of inputs, one backward pass per chunk.
at::Tensor input_gradients(Context& ctx, const at::Tensor& inputs);
/// Upsamples a ([D,] h, w) map to the input's spatial size (linear interpolation).
at::Tensor upsample_to_input(const at::Tensor& map, const Context& ctx);

// Method families (one file each) register here.
void add_gradient_methods(std::vector<std::pair<std::string, Method>>& table);
void add_perturbation_methods(std::vector<std::pair<std::string, Method>>& table);

}  // namespace medlens::explain_detail
