// Networks: shapes in 2-D and 3-D, gradients, capture points, rebuilding from the
// architecture JSON, float16 weights, Monte-Carlo dropout.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/error.h"
#include "nn/layers.h"
#include "nn/network.h"
#include "nn/resnet.h"
#include "nn/unet.h"
#include "tools/test_util.h"

namespace medlens {
namespace {

int64_t parameter_count(torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

TEST(ResNet, ClassifiesBatchesIn2dAnd3dWithAnyChannelCount) {
  torch::manual_seed(0);
  for (int64_t dims : {2, 3}) {
    SCOPED_TRACE(dims);
    ResNet net(ResNetOptions(2, 3).dims(dims).blocks({1, 1}).width(8).small_input(true));
    const at::Tensor x = dims == 2 ? at::randn({4, 2, 32, 32}) : at::randn({2, 2, 16, 16, 16});
    const at::Tensor y = net.forward(x);
    EXPECT_EQ(y.sizes(), (std::vector<int64_t>{x.size(0), 3}));
    y.sum().backward();
    for (const auto& p : net.parameters()) ASSERT_TRUE(p.grad().defined());
    at::Tensor act;
    const at::Tensor y2 = net.forward_capture(x, "layer2", act);
    EXPECT_TRUE(at::allclose(y, y2));
    EXPECT_EQ(act.size(1), 16);  // width 8 doubled at the second stage
    EXPECT_EQ(net.embed(x).sizes(), (std::vector<int64_t>{x.size(0), 16}));
  }
  ResNet wrong(ResNetOptions(1, 2));
  EXPECT_THROW(wrong.forward(at::randn({1, 3, 32, 32})), InputError);
}

TEST(Layers, MaxPoolWithoutGradientsGivesLibTorchsValuesExactly) {
  torch::manual_seed(0);
  struct Case {
    std::vector<int64_t> shape;
    int64_t kernel, stride, padding;
  };
  const std::vector<Case> cases = {{{4, 8, 32, 32}, 3, 2, 1},  {{2, 3, 17, 9}, 3, 2, 1}, {{2, 3, 16, 16}, 2, 2, 0},
                                   {{1, 2, 7, 6}, 3, 1, 1},    {{2, 2, 9, 8, 7}, 3, 2, 1}, {{1, 1, 5, 5}, 1, 1, 0}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.shape.size());
    at::Tensor x = at::randn(c.shape);
    x.view(-1)[3] = NAN;  // NaN and -inf propagate as LibTorch's kernel has them
    x.view(-1)[11] = -INFINITY;
    const bool flat = c.shape.size() == 4;
    const at::Tensor want = flat ? at::max_pool2d(x, c.kernel, c.stride, c.padding)
                                 : at::max_pool3d(x, c.kernel, c.stride, c.padding);
    torch::NoGradGuard no_grad;
    const at::Tensor got = layers::max_pool_forward(x, c.kernel, c.stride, c.padding);
    ASSERT_EQ(got.sizes(), want.sizes());
    EXPECT_TRUE(got.isnan().equal(want.isnan()));
    EXPECT_TRUE(at::nan_to_num(got, 0).equal(at::nan_to_num(want, 0)));
  }
  // With gradients it is LibTorch's own (its backward routes to the argmax).
  const at::Tensor x = at::randn({2, 3, 8, 8}).requires_grad_();
  layers::max_pool_forward(x, 3, 2, 1).sum().backward();
  const at::Tensor g = x.grad().clone();
  x.grad().zero_();
  at::max_pool2d(x, 3, 2, 1).sum().backward();
  EXPECT_TRUE(g.equal(x.grad()));
}

TEST(ResNet, PresetsHaveTheStandardSizes) {
  // torchvision's ResNet-18 has 11.17 M parameters for 3 channels and 1000 classes; ours with
  // 3 channels and 1000 classes must match it exactly.
  auto r18 = make_network(preset_architecture("resnet18", 2, 3, 1000));
  EXPECT_EQ(parameter_count(*r18), 11689512);
  auto r34 = make_network(preset_architecture("resnet34", 2, 3, 1000));
  EXPECT_EQ(parameter_count(*r34), 21797672);
  auto compact = make_network(preset_architecture("resnet-compact", 2, 1, 2));
  EXPECT_LT(parameter_count(*compact), 400000);
}

TEST(UNet, SegmentsAtInputResolutionWithDeepSupervision) {
  torch::manual_seed(0);
  for (int64_t dims : {2, 3}) {
    SCOPED_TRACE(dims);
    UNet net(UNetOptions(2, 3).dims(dims).depth(2).width(4).deep_supervision(true).dropout(0.1));
    const at::Tensor x = dims == 2 ? at::randn({2, 2, 32, 32}) : at::randn({1, 2, 16, 16, 16});
    const at::Tensor y = net.forward(x);
    std::vector<int64_t> want(x.sizes().begin(), x.sizes().end());
    want[1] = 3;
    EXPECT_EQ(y.sizes(), want);
    const auto deep = net.forward_deep(x);
    ASSERT_EQ(deep.size(), 2u);  // full resolution and half
    EXPECT_EQ(deep[1].size(2), x.size(2) / 2);
    deep[0].sum().backward();
  }
  UNet net(UNetOptions(1, 2).depth(3));
  EXPECT_THROW(net.forward(at::randn({1, 1, 20, 20})), InputError) << "20 is not divisible by 8";
}

TEST(Network, RebuildsFromItsArchitectureAndRefusesUnknownOnes) {
  for (const char* arch : {"resnet18", "resnet-compact", "unet"}) {
    SCOPED_TRACE(arch);
    auto a = make_network(preset_architecture(arch, 2, 1, 2));
    auto b = make_network(a->architecture());
    EXPECT_EQ(parameter_count(*a), parameter_count(*b));
    EXPECT_EQ(a->architecture(), b->architecture());
  }
  EXPECT_THROW(make_network({{"name", "vit"}}), UsageError);
  EXPECT_THROW(make_network({{"name", "resnet"}, {"wdith", 3}}), UsageError);
  EXPECT_THROW(preset_architecture("resnet50", 2, 1, 2), UsageError);
  // Sizes from a corrupt card are refused before anything is allocated.
  EXPECT_THROW(make_network({{"name", "resnet"}, {"width", 1000000}}), UsageError);
  EXPECT_THROW(make_network({{"name", "resnet"}, {"blocks", {2, 2, 2, 2, 2, 2, 2}}}), UsageError);
  EXPECT_THROW(make_network({{"name", "resnet"}, {"blocks", {2, 0}}}), UsageError);
  EXPECT_THROW(make_network({{"name", "unet"}, {"width", 5000}}), UsageError);
}

TEST(Weights, Float16StorageIsHalfTheSizeAndCloseFloat32IsExact) {
  torch::manual_seed(1);
  test::TempDir tmp;
  auto a = make_network(preset_architecture("resnet-compact", 2, 1, 2));
  auto b = make_network(a->architecture());
  auto c = make_network(a->architecture());
  save_weights(*a, tmp.file("w16.pt"), true);
  save_weights(*a, tmp.file("w32.pt"), false);
  EXPECT_LT(std::filesystem::file_size(tmp.file("w16.pt")), std::filesystem::file_size(tmp.file("w32.pt")) * 0.6);
  load_weights(*b, tmp.file("w32.pt"));
  load_weights(*c, tmp.file("w16.pt"));
  a->eval(), b->eval(), c->eval();
  const at::Tensor x = at::randn({3, 1, 28, 28});
  EXPECT_TRUE(at::equal(a->forward(x), b->forward(x)));
  EXPECT_TRUE(at::allclose(a->forward(x), c->forward(x), 1e-2, 1e-2));
  auto other = make_network(preset_architecture("resnet18", 2, 1, 2));
  EXPECT_THROW(load_weights(*other, tmp.file("w16.pt")), InputError);
  EXPECT_THROW(load_weights(*other, tmp.file("missing.pt")), InputError);
}

TEST(Network, MonteCarloDropoutVariesOnlyWhenOn) {
  torch::manual_seed(2);
  auto net = make_network(preset_architecture("resnet-compact", 2, 1, 2));  // dropout 0.2
  net->eval();
  const at::Tensor x = at::randn({2, 1, 28, 28});
  EXPECT_TRUE(at::equal(net->forward(x), net->forward(x)));
  net->set_mc_dropout(true);
  EXPECT_FALSE(at::equal(net->forward(x), net->forward(x)));
  net->set_mc_dropout(false);
  EXPECT_TRUE(at::equal(net->forward(x), net->forward(x)));
}

}  // namespace
}  // namespace medlens
