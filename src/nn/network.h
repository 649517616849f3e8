// Networks: LibTorch C++ modules behind one interface, so training, inference, explanation and
// robustness code treat a native ResNet/U-Net and an imported TorchScript model alike.
// Heavy header (torch/torch.h): include only from nn/, train/, infer/, explain/, robust/ .cpp.
#pragma once

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

namespace medlens {

/// Maps a batch (N,C,H,W) or (N,C,D,H,W) to logits: (N,K) for classifiers, (N,K,[D,]H,W) for
/// segmenters. Layers named by layers() can be captured for explanations and features.
class Network : public torch::nn::Module {
 public:
  virtual at::Tensor forward(const at::Tensor& x) = 0;
  /// forward(x), also storing the output of layer `layer` (one of layers()) in `activation`.
  /// The activation stays in the autograd graph so gradients can be taken with respect to it.
  virtual at::Tensor forward_capture(const at::Tensor& x, const std::string& layer,
                                     at::Tensor& activation) = 0;
  /// forward(x), also storing the output of each of `layers` (in that order) in `activations`:
  /// one pass for networks that support it (ResNet, Ensemble), one per layer otherwise.
  virtual at::Tensor forward_capture_many(const at::Tensor& x, const std::vector<std::string>& layers,
                                          std::vector<at::Tensor>& activations);
  /// The network's output when layer `layer` outputs `replacement` instead of what it computes
  /// (the layers before it are skipped). Lets an Ensemble route its members through one
  /// concatenated activation so that gradients with respect to it exist. UsageError for
  /// networks that do not support it.
  virtual at::Tensor forward_from(const std::string& layer, const at::Tensor& replacement);
  /// Capture points, from input to output (e.g. "stem", "layer1", ..., "layer4").
  virtual std::vector<std::string> layers() const = 0;
  /// The layer Grad-CAM uses by default (the last spatial one).
  virtual std::string default_cam_layer() const = 0;
  /// Penultimate features (N,F) of a classifier, used for feature-space OOD scores; throws for
  /// networks that have none.
  virtual at::Tensor embed(const at::Tensor& x);
  /// The architecture as JSON: make_network(architecture()) rebuilds the same network.
  virtual nlohmann::json architecture() const = 0;
  /// Spatial dimensions the network expects: 2 or 3.
  virtual int64_t dims() const = 0;
  /// Turns dropout layers on (for Monte-Carlo sampling) or off, leaving everything else in
  /// evaluation mode. Call after eval().
  void set_mc_dropout(bool on);
};

using NetworkPtr = std::shared_ptr<Network>;

/// Builds a network from its architecture JSON ({"name": "resnet"|"unet", ...options}).
/// Throws UsageError for an unknown name or bad options.
NetworkPtr make_network(const nlohmann::json& architecture);

/// Named architectures for `medlens train --arch`: resnet18, resnet34, resnet-compact, unet.
nlohmann::json preset_architecture(const std::string& arch, int64_t dims, int64_t in_channels,
                                   int64_t outputs);

/// Saves parameters and buffers (floating point as float16 when `half`, to keep bundles small)
/// to `path`, written atomically.
void save_weights(torch::nn::Module& module, const std::string& path, bool half);
/// Loads weights saved by save_weights into `module` (float32). Throws InputError naming the
/// file when it is unreadable or does not match the module's parameters.
void load_weights(torch::nn::Module& module, const std::string& path);

}  // namespace medlens
