#include "nn/layers.h"

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

torch::nn::AnyModule max_pool(int64_t dims, int64_t kernel, int64_t stride, int64_t padding) {
  check_dims(dims);
  if (dims == 2)
    return torch::nn::AnyModule(torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(kernel).stride(stride).padding(padding)));
  return torch::nn::AnyModule(torch::nn::MaxPool3d(torch::nn::MaxPool3dOptions(kernel).stride(stride).padding(padding)));
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
