// ResNet classifiers (He et al. 2016), 2-D or 3-D, any number of input channels.
#pragma once

#include "nn/network.h"

namespace medlens {

struct ResNetOptions {
  ResNetOptions(int64_t in_channels, int64_t num_classes)
      : in_channels_(in_channels), num_classes_(num_classes) {}
  /// Channels of the input (e.g. 1 for X-ray, 2 for T1 + a second contrast stacked).
  TORCH_ARG(int64_t, in_channels);
  /// Logits produced.
  TORCH_ARG(int64_t, num_classes);
  /// 2 for (N,C,H,W) inputs, 3 for (N,C,D,H,W).
  TORCH_ARG(int64_t, dims) = 2;
  /// Basic blocks per stage: {2,2,2,2} is ResNet-18, {3,4,6,3} ResNet-34.
  TORCH_ARG(std::vector<int64_t>, blocks) = std::vector<int64_t>{2, 2, 2, 2};
  /// Channels of the first stage; each later stage doubles them.
  TORCH_ARG(int64_t, width) = 64;
  /// Small inputs (e.g. 28x28): a 3x3 stride-1 stem without max-pooling instead of 7x7/2 + pool.
  TORCH_ARG(bool, small_input) = false;
  /// Dropout before the classifier (also the Monte-Carlo dropout at inference).
  TORCH_ARG(double, dropout) = 0.0;
  /// Spatial dropout probability after each stage (0: none).
  TORCH_ARG(double, stage_dropout) = 0.0;
};

class ResNet final : public Network {
 public:
  explicit ResNet(const ResNetOptions& options);
  at::Tensor forward(const at::Tensor& x) override;
  at::Tensor forward_capture(const at::Tensor& x, const std::string& layer, at::Tensor& activation) override;
  at::Tensor forward_from(const std::string& layer, const at::Tensor& replacement) override;
  at::Tensor forward_capture_many(const at::Tensor& x, const std::vector<std::string>& layers,
                                  std::vector<at::Tensor>& activations) override;
  std::vector<std::string> layers() const override;
  std::string default_cam_layer() const override;
  at::Tensor embed(const at::Tensor& x) override;
  nlohmann::json architecture() const override;
  int64_t dims() const override { return options_.dims(); }
  const ResNetOptions& options() const { return options_; }

 private:
  /// Runs the trunk; when `layer` names a stage its output goes to `activation`; with `all`,
  /// every stage's output (stem first) is appended to it.
  at::Tensor trunk(const at::Tensor& x, const std::string& layer, at::Tensor* activation,
                   std::vector<at::Tensor>* all = nullptr);
  ResNetOptions options_;
  torch::nn::Sequential stem_{nullptr};
  std::vector<torch::nn::Sequential> stages_;
  torch::nn::Dropout head_dropout_{nullptr};
  torch::nn::Linear fc_{nullptr};
};

}  // namespace medlens
