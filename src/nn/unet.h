// U-Net segmenters (Ronneberger et al. 2015) with residual blocks, 2-D or 3-D.
#pragma once

#include "nn/network.h"

namespace medlens {

struct UNetOptions {
  UNetOptions(int64_t in_channels, int64_t out_channels)
      : in_channels_(in_channels), out_channels_(out_channels) {}
  /// Input channels (several co-registered modalities are stacked as channels).
  TORCH_ARG(int64_t, in_channels);
  /// Output logits per voxel (classes, background included).
  TORCH_ARG(int64_t, out_channels);
  TORCH_ARG(int64_t, dims) = 2;
  /// Down-samplings; inputs must be divisible by 2^depth along each axis.
  TORCH_ARG(int64_t, depth) = 4;
  /// Channels at full resolution; doubled at each level, capped at 16x.
  TORCH_ARG(int64_t, width) = 16;
  /// Residual blocks (a 1x1 projection adds the block input) instead of plain double convs.
  TORCH_ARG(bool, residual) = true;
  /// "instance" (robust for small batches of volumes) or "batch".
  TORCH_ARG(std::string, norm) = "instance";
  /// Extra 1x1 heads on the coarser decoder levels (forward_deep), for deep supervision.
  TORCH_ARG(bool, deep_supervision) = false;
  /// Spatial dropout in the bottleneck (also used for Monte-Carlo sampling).
  TORCH_ARG(double, dropout) = 0.0;
};

class UNet final : public Network {
 public:
  explicit UNet(const UNetOptions& options);
  at::Tensor forward(const at::Tensor& x) override;
  at::Tensor forward_capture(const at::Tensor& x, const std::string& layer, at::Tensor& activation) override;
  /// Logits at every decoder level, full resolution first; coarser ones only with
  /// deep_supervision (else a single element).
  std::vector<at::Tensor> forward_deep(const at::Tensor& x);
  std::vector<std::string> layers() const override;
  std::string default_cam_layer() const override;
  nlohmann::json architecture() const override;
  int64_t dims() const override { return options_.dims(); }
  const UNetOptions& options() const { return options_; }

 private:
  std::vector<at::Tensor> run(const at::Tensor& x, const std::string& layer, at::Tensor* activation, bool all_heads);
  UNetOptions options_;
  std::vector<torch::nn::AnyModule> encoders_, decoders_, ups_, heads_;
  torch::nn::AnyModule bottleneck_drop_;
};

}  // namespace medlens
