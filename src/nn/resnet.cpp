#include "nn/resnet.h"

#include "core/error.h"
#include "nn/layers.h"

namespace medlens {
namespace {

// conv-norm-relu-conv-norm plus identity (or a 1x1 projection when the shape changes).
class BasicBlockImpl : public torch::nn::Module {
 public:
  BasicBlockImpl(int64_t dims, int64_t in, int64_t out, int64_t stride) {
    conv1_ = layers::registered(*this, "conv1", layers::conv(dims, in, out, 3, stride));
    bn1_ = layers::registered(*this, "bn1", layers::norm(dims, "batch", out));
    conv2_ = layers::registered(*this, "conv2", layers::conv(dims, out, out, 3, 1));
    bn2_ = layers::registered(*this, "bn2", layers::norm(dims, "batch", out));
    if (stride != 1 || in != out) {
      torch::nn::Sequential down;
      down->push_back(layers::conv(dims, in, out, 1, stride, 0));
      down->push_back(layers::norm(dims, "batch", out));
      down_ = register_module("downsample", down);
    }
  }
  at::Tensor forward(const at::Tensor& x) {
    at::Tensor y = at::relu(bn1_.forward(conv1_.forward(x)));
    y = bn2_.forward(conv2_.forward(y));
    return at::relu(y + (down_ ? down_->forward(x) : x));
  }

 private:
  torch::nn::AnyModule conv1_, bn1_, conv2_, bn2_;
  torch::nn::Sequential down_{nullptr};
};
TORCH_MODULE(BasicBlock);

}  // namespace

ResNet::ResNet(const ResNetOptions& o) : options_(o) {
  if (o.in_channels() < 1 || o.num_classes() < 1) throw UsageError("resnet: in_channels and num_classes must be >= 1");
  if (o.blocks().empty()) throw UsageError("resnet: blocks must list at least one stage");
  // Bounds far beyond any useful network, so a corrupt card is refused by name instead of
  // asking the allocator for terabytes or shifting the width past 64 bits.
  if (o.width() < 4 || o.width() > 1024) throw UsageError("resnet: width must be 4..1024");
  if (o.blocks().size() > 6) throw UsageError("resnet: at most 6 stages");
  for (int64_t b : o.blocks())
    if (b < 1 || b > 64) throw UsageError("resnet: each stage needs 1..64 blocks");
  if (o.in_channels() > 4096 || o.num_classes() > 100000) throw UsageError("resnet: in_channels or num_classes out of range");
  const int64_t d = o.dims();
  torch::nn::Sequential stem;
  if (o.small_input()) {
    stem->push_back(layers::conv(d, o.in_channels(), o.width(), 3, 1));
    stem->push_back(layers::norm(d, "batch", o.width()));
    stem->push_back(torch::nn::ReLU());
  } else {
    stem->push_back(layers::conv(d, o.in_channels(), o.width(), 7, 2, 3));
    stem->push_back(layers::norm(d, "batch", o.width()));
    stem->push_back(torch::nn::ReLU());
    stem->push_back(layers::max_pool(d, 3, 2, 1));
  }
  stem_ = register_module("stem", stem);
  int64_t in = o.width();
  for (size_t s = 0; s < o.blocks().size(); ++s) {
    const int64_t out = o.width() << s;
    torch::nn::Sequential stage;
    for (int64_t b = 0; b < o.blocks()[s]; ++b)
      stage->push_back(BasicBlock(d, b == 0 ? in : out, out, b == 0 && s > 0 ? 2 : 1));
    if (o.stage_dropout() > 0) stage->push_back(layers::dropout(d, o.stage_dropout()));
    stages_.push_back(register_module("layer" + std::to_string(s + 1), stage));
    in = out;
  }
  head_dropout_ = register_module("dropout", torch::nn::Dropout(o.dropout()));
  fc_ = register_module("fc", torch::nn::Linear(in, o.num_classes()));
}

at::Tensor ResNet::trunk(const at::Tensor& x, const std::string& layer, at::Tensor* activation,
                         std::vector<at::Tensor>* all) {
  if (x.dim() != options_.dims() + 2)
    throw InputError("", "network expects " + std::to_string(options_.dims()) + "-D batches (N,C," +
                             (options_.dims() == 3 ? "D," : "") + "H,W), got rank " + std::to_string(x.dim()));
  if (x.size(1) != options_.in_channels())
    throw InputError("", "network expects " + std::to_string(options_.in_channels()) + " channel(s), got " +
                             std::to_string(x.size(1)));
  at::Tensor y = stem_->forward(x);
  if (activation && layer == "stem") *activation = y;
  if (all) all->push_back(y);
  for (size_t s = 0; s < stages_.size(); ++s) {
    y = stages_[s]->forward(y);
    if (activation && layer == "layer" + std::to_string(s + 1)) *activation = y;
    if (all) all->push_back(y);
  }
  return y;
}

at::Tensor ResNet::forward(const at::Tensor& x) {
  return fc_->forward(head_dropout_->forward(layers::global_pool(trunk(x, "", nullptr))));
}

at::Tensor ResNet::forward_capture(const at::Tensor& x, const std::string& layer, at::Tensor& activation) {
  const auto names = layers();
  if (std::find(names.begin(), names.end(), layer) == names.end())
    throw UsageError("resnet has no layer '" + layer + "'");
  return fc_->forward(head_dropout_->forward(layers::global_pool(trunk(x, layer, &activation))));
}

at::Tensor ResNet::forward_capture_many(const at::Tensor& x, const std::vector<std::string>& layers,
                                        std::vector<at::Tensor>& activations) {
  const auto names = this->layers();
  std::vector<size_t> index;
  for (const auto& l : layers) {
    const auto it = std::find(names.begin(), names.end(), l);
    if (it == names.end()) throw UsageError("resnet has no layer '" + l + "'");
    index.push_back(static_cast<size_t>(it - names.begin()));
  }
  std::vector<at::Tensor> stages;  // stem, layer1, ..., as layers() names them
  const at::Tensor y = trunk(x, "", nullptr, &stages);
  activations.clear();
  for (size_t i : index) activations.push_back(stages[i]);
  return fc_->forward(head_dropout_->forward(layers::global_pool(y)));
}

at::Tensor ResNet::forward_from(const std::string& layer, const at::Tensor& replacement) {
  const auto names = layers();
  const auto it = std::find(names.begin(), names.end(), layer);
  if (it == names.end()) throw UsageError("resnet has no layer '" + layer + "'");
  at::Tensor y = replacement;
  for (size_t s = static_cast<size_t>(it - names.begin()); s < stages_.size(); ++s) y = stages_[s]->forward(y);
  return fc_->forward(head_dropout_->forward(layers::global_pool(y)));
}

std::vector<std::string> ResNet::layers() const {
  std::vector<std::string> names{"stem"};
  for (size_t s = 0; s < stages_.size(); ++s) names.push_back("layer" + std::to_string(s + 1));
  return names;
}

std::string ResNet::default_cam_layer() const { return "layer" + std::to_string(stages_.size()); }

at::Tensor ResNet::embed(const at::Tensor& x) { return layers::global_pool(trunk(x, "", nullptr)); }

nlohmann::json ResNet::architecture() const {
  const auto& o = options_;
  return {{"name", "resnet"},       {"in_channels", o.in_channels()}, {"num_classes", o.num_classes()},
          {"dims", o.dims()},       {"blocks", o.blocks()},           {"width", o.width()},
          {"small_input", o.small_input()}, {"dropout", o.dropout()}, {"stage_dropout", o.stage_dropout()}};
}

}  // namespace medlens
