#include "explain/tiny_models.h"

#include <ATen/CPUGeneratorImpl.h>

#include "core/error.h"
#include "nn/card.h"
#include "nn/network.h"

namespace medlens::test {
namespace {

class LinearNet : public Network {
 public:
  explicit LinearNet(at::Tensor w) : w_(register_buffer("w", std::move(w))) {}
  at::Tensor forward(const at::Tensor& x) override {
    const at::Tensor s = (x.select(1, 0) * w_).flatten(1).sum(1);
    return at::stack({s, -s}, 1);
  }
  at::Tensor forward_capture(const at::Tensor&, const std::string& layer, at::Tensor&) override {
    throw UsageError("the linear test model has no layer '" + layer + "'");
  }
  std::vector<std::string> layers() const override { return {}; }
  std::string default_cam_layer() const override { return ""; }
  nlohmann::json architecture() const override { return {{"name", "linear-test"}}; }
  int64_t dims() const override { return 2; }

 private:
  at::Tensor w_;
};

}  // namespace

nlohmann::json tiny_resnet_card(int dims, int64_t side, bool resize) {
  std::vector<int64_t> size(static_cast<size_t>(dims), side);
  nlohmann::json pre = {{"transforms", nlohmann::json::array()}};
  if (resize) pre["transforms"].push_back({{"op", "resize"}, {"size", size}});
  return {{"name", "tiny"}, {"version", "1"}, {"task", "classify"}, {"classes", {"a", "b"}},
          {"positive_class", "b"}, {"input", {{"dims", dims}, {"channels", 1}, {"size", size}}},
          {"preprocessing", pre},
          {"architecture", {{"name", "resnet"}, {"in_channels", 1}, {"num_classes", 2}, {"dims", dims},
                            {"blocks", {1, 1}}, {"width", 8}, {"small_input", true}, {"dropout", 0.0}}}};
}

Model tiny_resnet(int dims, int64_t side, bool resize, uint64_t seed) {
  const ModelCard card = ModelCard::from_json(tiny_resnet_card(dims, side, resize));
  torch::manual_seed(seed);
  NetworkPtr net = make_network(card.architecture);
  net->eval();
  return Model::from_parts(card, net);
}

Image textured_image(int dims, const std::vector<int64_t>& size, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const int64_t Z = dims == 3 ? size[2] : 1;
  at::Tensor v = at::rand({1, Z, size[1], size[0]}, gen);
  // Smooth it (3 box blurs of 5 voxels in-plane) so it has structure at a few scales.
  for (int i = 0; i < 3; ++i) v = at::avg_pool2d(v.view({Z, 1, size[1], size[0]}), 5, 1, 2, false, false).view(v.sizes());
  v = v + 0.3 * at::rand(v.sizes(), gen);
  const double lo = v.min().item<double>(), hi = v.max().item<double>();
  v = 0.2 + (v - lo) / (hi - lo);
  Geometry g;
  g.spacing = {0.8, 0.8, 0.8};
  g.origin = {10.0, -5.0, 3.0};
  Metadata meta;
  meta.modality = "MR";
  meta.source_path = "textured";
  return Image(v.to(at::kFloat).contiguous(), g, meta);
}

LinearModel linear_model(int64_t side, uint64_t seed, std::pair<int64_t, int64_t> block) {
  LinearModel out;
  if (block.first >= 0) {
    out.weights = at::zeros({side, side});
    out.weights.narrow(0, block.second, 4).narrow(1, block.first, 4).fill_(1.0);
  } else {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    out.weights = at::randn({side, side}, gen);
  }
  const ModelCard card = ModelCard::from_json(
      {{"name", "linear"}, {"version", "1"}, {"task", "classify"}, {"classes", {"a", "b"}},
       {"input", {{"dims", 2}, {"channels", 1}, {"size", {side, side}}}},
       {"architecture", {{"name", "linear-test"}}}});
  out.model = Model::from_parts(card, std::make_shared<LinearNet>(out.weights.clone()));
  return out;
}

}  // namespace medlens::test
