#include "nn/layers.h"

#include <torch/csrc/jit/frontend/tracer.h>

#include <limits>

#include "core/error.h"

namespace medlens::layers {

namespace {
void check_dims(int64_t dims) {
  if (dims != 2 && dims != 3) throw UsageError("networks are 2-D or 3-D, not " + std::to_string(dims) + "-D");
}
}  // namespace

torch::nn::AnyModule conv(int64_t dims, int64_t in, int64_t out, int64_t kernel, int64_t stride,
                          int64_t padding, bool bias) {
  check_dims(dims);
  if (padding < 0) padding = kernel / 2;
  if (dims == 2)
    return torch::nn::AnyModule(torch::nn::Conv2d(
        torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding).bias(bias)));
  return torch::nn::AnyModule(torch::nn::Conv3d(
      torch::nn::Conv3dOptions(in, out, kernel).stride(stride).padding(padding).bias(bias)));
}

torch::nn::AnyModule norm(int64_t dims, const std::string& kind, int64_t channels) {
  check_dims(dims);
  if (kind == "batch") {
    if (dims == 2) return torch::nn::AnyModule(torch::nn::BatchNorm2d(channels));
    return torch::nn::AnyModule(torch::nn::BatchNorm3d(channels));
  }
  if (kind == "instance") {
    if (dims == 2)
      return torch::nn::AnyModule(torch::nn::InstanceNorm2d(torch::nn::InstanceNorm2dOptions(channels).affine(true)));
    return torch::nn::AnyModule(torch::nn::InstanceNorm3d(torch::nn::InstanceNorm3dOptions(channels).affine(true)));
  }
  throw UsageError("normalisation must be 'batch' or 'instance', not '" + kind + "'");
}

namespace {

// A parameter-free module around max_pool_forward.
class MaxPoolImpl : public torch::nn::Cloneable<MaxPoolImpl> {
 public:
  MaxPoolImpl(int64_t kernel, int64_t stride, int64_t padding) : kernel_(kernel), stride_(stride), padding_(padding) {}
  void reset() override {}
  at::Tensor forward(const at::Tensor& x) { return max_pool_forward(x, kernel_, stride_, padding_); }

 private:
  int64_t kernel_, stride_, padding_;
};
TORCH_MODULE(MaxPool);

}  // namespace

torch::nn::AnyModule max_pool(int64_t dims, int64_t kernel, int64_t stride, int64_t padding) {
  check_dims(dims);
  if (kernel < 1 || stride < 1 || padding < 0 || 2 * padding > kernel)
    throw UsageError("max pooling needs kernel >= 1, stride >= 1 and 0 <= padding <= kernel / 2");
  return torch::nn::AnyModule(MaxPool(kernel, stride, padding));
}

at::Tensor max_pool_forward(const at::Tensor& x, int64_t kernel, int64_t stride, int64_t padding) {
  const int64_t dims = x.dim() - 2;
  check_dims(dims);
  // LibTorch's own pooling when training (its backward routes to the argmax) and when traced
  // into an inference graph (nn/inference_graph.h: one op the graph keeps in oneDNN's layout,
  // and no slice bounds baked in for the traced size). Both take the same maxima.
  if ((x.requires_grad() && at::GradMode::is_enabled()) || torch::jit::tracer::isTracing())
    return dims == 2 ? at::max_pool2d(x, kernel, stride, padding) : at::max_pool3d(x, kernel, stride, padding);
  // Padded with -inf, which never wins: every window holds at least one voxel of x.
  const at::Tensor padded =
      padding > 0 ? at::constant_pad_nd(x, std::vector<int64_t>(static_cast<size_t>(2 * dims), padding),
                                        -std::numeric_limits<double>::infinity())
                  : x;
  at::Tensor y = padded;
  for (int64_t axis = 2; axis < x.dim(); ++axis) {
    const int64_t n = (x.size(axis) + 2 * padding - kernel) / stride + 1;
    if (n < 1) throw UsageError("max pooling window larger than the (padded) input");
    at::Tensor m;
    for (int64_t k = 0; k < kernel; ++k) {
      const at::Tensor v = y.slice(axis, k, k + stride * (n - 1) + 1, stride);
      m = m.defined() ? at::maximum(m, v) : v;
    }
    y = m;
  }
  return y.contiguous();
}

torch::nn::AnyModule dropout(int64_t dims, double p) {
  check_dims(dims);
  if (dims == 2) return torch::nn::AnyModule(torch::nn::Dropout2d(p));
  return torch::nn::AnyModule(torch::nn::Dropout3d(p));
}

torch::nn::AnyModule up_conv(int64_t dims, int64_t in, int64_t out) {
  check_dims(dims);
  if (dims == 2)
    return torch::nn::AnyModule(torch::nn::ConvTranspose2d(torch::nn::ConvTranspose2dOptions(in, out, 2).stride(2)));
  return torch::nn::AnyModule(torch::nn::ConvTranspose3d(torch::nn::ConvTranspose3dOptions(in, out, 2).stride(2)));
}

torch::nn::AnyModule registered(torch::nn::Module& owner, const std::string& name, torch::nn::AnyModule module) {
  owner.register_module(name, module.ptr());
  return module;
}

at::Tensor global_pool(const at::Tensor& x) { return x.flatten(2).mean(2); }

}  // namespace medlens::layers
