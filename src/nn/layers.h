// Dimension-agnostic building blocks: the same code builds 2-D and 3-D networks.
#pragma once

#include <torch/torch.h>

namespace medlens::layers {

torch::nn::AnyModule conv(int64_t dims, int64_t in, int64_t out, int64_t kernel, int64_t stride = 1,
                          int64_t padding = -1, bool bias = false);
/// Normalisation: "batch" or "instance" (affine), over `channels`.
torch::nn::AnyModule norm(int64_t dims, const std::string& kind, int64_t channels);
/// Max pooling (a MaxPool module: max_pool_forward with these settings).
torch::nn::AnyModule max_pool(int64_t dims, int64_t kernel, int64_t stride, int64_t padding);
/// Max pooling of (N,C,H,W) or (N,C,D,H,W) over cubic windows of `kernel` voxels, `stride`
/// apart, padding <= kernel / 2 (no dilation, floor rounding): the values of max_pool2d/3d
/// exactly. When gradients are needed it is max_pool2d/3d; otherwise the maximum of the
/// window's strided views, axis by axis, which skips the argmax indices LibTorch's CPU kernel
/// always computes (several times faster; a maximum involves no rounding, so the same values).
at::Tensor max_pool_forward(const at::Tensor& x, int64_t kernel, int64_t stride, int64_t padding);
torch::nn::AnyModule dropout(int64_t dims, double p);
/// Transposed convolution that doubles the spatial size.
torch::nn::AnyModule up_conv(int64_t dims, int64_t in, int64_t out);
/// Registers `module` as a child of `owner` under `name` (so its parameters are saved and
/// trained) and returns it, for modules held as AnyModule.
torch::nn::AnyModule registered(torch::nn::Module& owner, const std::string& name, torch::nn::AnyModule module);
/// Global average pooling to (N, C).
at::Tensor global_pool(const at::Tensor& x);

}  // namespace medlens::layers
