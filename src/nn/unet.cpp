#include "nn/unet.h"

#include "core/error.h"
#include "nn/layers.h"

namespace medlens {
namespace {

class ConvBlockImpl : public torch::nn::Module {
 public:
  ConvBlockImpl(int64_t dims, int64_t in, int64_t out, const std::string& norm, bool residual) {
    conv1_ = layers::registered(*this, "conv1", layers::conv(dims, in, out, 3));
    n1_ = layers::registered(*this, "norm1", layers::norm(dims, norm, out));
    conv2_ = layers::registered(*this, "conv2", layers::conv(dims, out, out, 3));
    n2_ = layers::registered(*this, "norm2", layers::norm(dims, norm, out));
    if (residual) skip_ = layers::registered(*this, "skip", layers::conv(dims, in, out, 1, 1, 0));
  }
  at::Tensor forward(const at::Tensor& x) {
    at::Tensor y = at::leaky_relu(n1_.forward(conv1_.forward(x)), 0.01);
    y = n2_.forward(conv2_.forward(y));
    if (!skip_.is_empty()) y = y + skip_.forward(x);
    return at::leaky_relu(y, 0.01);
  }

 private:
  torch::nn::AnyModule conv1_, n1_, conv2_, n2_, skip_;
};
TORCH_MODULE(ConvBlock);

at::Tensor downsample(const at::Tensor& x, int64_t dims) {
  return dims == 2 ? at::max_pool2d(x, 2) : at::max_pool3d(x, 2);
}

}  // namespace

UNet::UNet(const UNetOptions& o) : options_(o) {
  if (o.in_channels() < 1 || o.out_channels() < 1) throw UsageError("unet: channels must be >= 1");
  if (o.depth() < 1 || o.depth() > 6) throw UsageError("unet: depth must be 1..6");
  if (o.width() < 1 || o.width() > 1024) throw UsageError("unet: width must be 1..1024");
  if (o.in_channels() > 4096 || o.out_channels() > 4096) throw UsageError("unet: channels must be at most 4096");
  const int64_t d = o.dims();
  auto width_at = [&](int64_t level) { return o.width() * (int64_t{1} << std::min<int64_t>(level, 4)); };
  for (int64_t l = 0; l <= o.depth(); ++l) {
    const int64_t in = l == 0 ? o.in_channels() : width_at(l - 1);
    encoders_.push_back(layers::registered(*this, "enc" + std::to_string(l),
                                        torch::nn::AnyModule(ConvBlock(d, in, width_at(l), o.norm(), o.residual()))));
  }
  bottleneck_drop_ = layers::registered(*this, "bottleneck_dropout", layers::dropout(d, o.dropout()));
  for (int64_t l = o.depth() - 1; l >= 0; --l) {
    ups_.push_back(layers::registered(*this, "up" + std::to_string(l), layers::up_conv(d, width_at(l + 1), width_at(l))));
    decoders_.push_back(layers::registered(*this, "dec" + std::to_string(l),
                                        torch::nn::AnyModule(ConvBlock(d, 2 * width_at(l), width_at(l), o.norm(), o.residual()))));
    if (l == 0 || o.deep_supervision())
      heads_.push_back(layers::registered(*this, "head" + std::to_string(l), layers::conv(d, width_at(l), o.out_channels(), 1, 1, 0, true)));
  }
}

std::vector<at::Tensor> UNet::run(const at::Tensor& x, const std::string& layer, at::Tensor* activation, bool all_heads) {
  const int64_t d = options_.dims();
  if (x.dim() != d + 2)
    throw InputError("", "network expects " + std::to_string(d) + "-D batches, got rank " + std::to_string(x.dim()));
  if (x.size(1) != options_.in_channels())
    throw InputError("", "network expects " + std::to_string(options_.in_channels()) + " channel(s), got " +
                             std::to_string(x.size(1)));
  const int64_t multiple = int64_t{1} << options_.depth();
  for (int64_t a = 2; a < x.dim(); ++a)
    if (x.size(a) % multiple != 0)
      throw InputError("", "U-Net of depth " + std::to_string(options_.depth()) + " needs sizes divisible by " +
                               std::to_string(multiple) + ", got " + std::to_string(x.size(a)));
  std::vector<at::Tensor> skips;
  at::Tensor y = x;
  for (size_t l = 0; l < encoders_.size(); ++l) {
    if (l > 0) y = downsample(y, d);
    y = encoders_[l].forward(y);
    if (activation && layer == "enc" + std::to_string(l)) *activation = y;
    skips.push_back(y);
  }
  y = bottleneck_drop_.forward(y);
  std::vector<at::Tensor> outputs;
  size_t head = 0;
  for (size_t i = 0; i < decoders_.size(); ++i) {
    const int64_t level = options_.depth() - 1 - static_cast<int64_t>(i);
    y = ups_[i].forward(y);
    y = decoders_[i].forward(at::cat({y, skips[static_cast<size_t>(level)]}, 1));
    if (activation && layer == "dec" + std::to_string(level)) *activation = y;
    if (level == 0 || options_.deep_supervision()) {
      if (level == 0 || all_heads) outputs.push_back(heads_[head].forward(y));
      ++head;
    }
  }
  std::reverse(outputs.begin(), outputs.end());  // full resolution first
  return outputs;
}

at::Tensor UNet::forward(const at::Tensor& x) { return run(x, "", nullptr, false).front(); }

at::Tensor UNet::forward_capture(const at::Tensor& x, const std::string& layer, at::Tensor& activation) {
  const auto names = layers();
  if (std::find(names.begin(), names.end(), layer) == names.end()) throw UsageError("unet has no layer '" + layer + "'");
  return run(x, layer, &activation, false).front();
}

std::vector<at::Tensor> UNet::forward_deep(const at::Tensor& x) { return run(x, "", nullptr, true); }

std::vector<std::string> UNet::layers() const {
  std::vector<std::string> names;
  for (int64_t l = 0; l <= options_.depth(); ++l) names.push_back("enc" + std::to_string(l));
  for (int64_t l = options_.depth() - 1; l >= 0; --l) names.push_back("dec" + std::to_string(l));
  return names;
}

std::string UNet::default_cam_layer() const { return "dec0"; }

nlohmann::json UNet::architecture() const {
  const auto& o = options_;
  return {{"name", "unet"},          {"in_channels", o.in_channels()}, {"out_channels", o.out_channels()},
          {"dims", o.dims()},        {"depth", o.depth()},             {"width", o.width()},
          {"residual", o.residual()}, {"norm", o.norm()},              {"deep_supervision", o.deep_supervision()},
          {"dropout", o.dropout()}};
}

}  // namespace medlens
