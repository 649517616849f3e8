// Sliding-window inference against whole-volume inference: exact where it must be (one window
// covering the volume; a point-wise network under any tiling; mirror TTA against manually
// flipped runs; padding against manual padding), close where context differs (a 3-D U-Net on
// real brain MR), and refusals of bad options.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "core/image.h"
#include "infer/sliding_window.h"
#include "io/read.h"
#include "nn/ensemble.h"
#include "nn/layers.h"
#include "nn/network.h"
#include "nn/resnet.h"
#include "nn/unet.h"
#include "tools/test_util.h"

namespace medlens {
namespace {

// 1x1(x1) convolutions only: each output voxel depends on its own input voxel, so any tiling
// and blending that normalises correctly reproduces whole-volume inference exactly.
class Pointwise final : public Network {
 public:
  Pointwise(int64_t dims, int64_t in, int64_t out) : dims_(dims) {
    a_ = layers::registered(*this, "a", layers::conv(dims, in, 8, 1, 1, 0, true));
    b_ = layers::registered(*this, "b", layers::conv(dims, 8, out, 1, 1, 0, true));
  }
  at::Tensor forward(const at::Tensor& x) override { return b_.forward(at::tanh(a_.forward(x))); }
  at::Tensor forward_capture(const at::Tensor& x, const std::string&, at::Tensor& activation) override {
    activation = a_.forward(x);
    return b_.forward(at::tanh(activation));
  }
  std::vector<std::string> layers() const override { return {"a"}; }
  std::string default_cam_layer() const override { return "a"; }
  nlohmann::json architecture() const override { return {{"name", "pointwise"}}; }
  int64_t dims() const override { return dims_; }

 private:
  int64_t dims_;
  torch::nn::AnyModule a_, b_;
};

at::Tensor whole_volume(Network& net, const at::Tensor& x) {
  torch::NoGradGuard g;
  net.eval();
  return at::softmax(net.forward(x.unsqueeze(0)), 1).squeeze(0);
}

double max_diff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

std::shared_ptr<UNet> small_unet(int64_t dims, int64_t depth, const std::string& norm = "instance") {
  return std::make_shared<UNet>(UNetOptions(2, 3).dims(dims).depth(depth).width(4).norm(norm));
}

TEST(SlidingWindow, OneWindowCoveringTheVolumeEqualsWholeVolumeSoftmax) {
  torch::manual_seed(1);
  for (int64_t dims : {2, 3}) {
    SCOPED_TRACE(dims);
    auto net = small_unet(dims, 2);
    const at::Tensor x = dims == 2 ? at::randn({2, 48, 40}) : at::randn({2, 24, 32, 20});
    const std::vector<int64_t> patch(x.sizes().begin() + 1, x.sizes().end());
    const at::Tensor want = whole_volume(*net, x);
    for (bool gaussian : {true, false}) {
      const at::Tensor got = sliding_window_inference(*net, x, SlidingWindowOptions(patch).gaussian(gaussian));
      ASSERT_EQ(got.sizes(), want.sizes());
      EXPECT_LT(max_diff(got, want), 1e-5);
    }
  }
}

TEST(SlidingWindow, PointwiseNetworkGivesWholeVolumeResultForAnyTiling) {
  torch::manual_seed(2);
  struct Case {
    std::vector<int64_t> patch;
    double overlap;
    bool gaussian;
    int64_t batch;
  };
  const std::vector<Case> cases3 = {
      {{8, 8, 8}, 0.5, true, 1},    {{8, 8, 8}, 0.0, true, 3},   {{7, 5, 11}, 0.25, true, 4},
      {{16, 3, 9}, 0.75, false, 2}, {{40, 40, 40}, 0.5, true, 1}, {{1, 1, 1}, 0.0, true, 64},
      {{10, 12, 6}, 0.9, true, 8}};
  Pointwise net3(3, 2, 3);
  const at::Tensor x3 = at::randn({2, 19, 13, 22});
  const at::Tensor want3 = whole_volume(net3, x3);
  for (const auto& c : cases3)
    for (auto padding : {WindowPadding::kMinimum, WindowPadding::kReflect}) {
      SCOPED_TRACE(::testing::Message() << c.patch[0] << "x" << c.patch[1] << "x" << c.patch[2] << " overlap "
                                        << c.overlap << " batch " << c.batch);
      const auto o =
          SlidingWindowOptions(c.patch).overlap(c.overlap).gaussian(c.gaussian).batch_size(c.batch).padding(padding);
      EXPECT_LT(max_diff(sliding_window_inference(net3, x3, o), want3), 1e-5);
    }
  Pointwise net2(2, 1, 2);
  const at::Tensor x2 = at::randn({1, 45, 31});
  const at::Tensor want2 = whole_volume(net2, x2);
  for (const auto& patch : std::vector<std::vector<int64_t>>{{16, 16}, {9, 40}, {64, 64}, {5, 7}})
    EXPECT_LT(max_diff(sliding_window_inference(net2, x2, SlidingWindowOptions(patch).overlap(0.6)), want2), 1e-5);
}

// Real anatomy: the ch2 T1 template and its brain-extracted twin as two channels, halved in
// resolution and cropped to 64^3 (whole-head context), each channel z-scored.
const at::Tensor& brain_volume() {
  static const at::Tensor volume = [] {
    std::vector<at::Tensor> channels;
    for (const char* name : {"/ch2.nii.gz", "/ch2bet.nii.gz"}) {
      const Image img = read_image(test::mricron_templates() + name);
      at::Tensor v = at::avg_pool3d(img.voxels().select(0, 0).unsqueeze(0).unsqueeze(0).to(at::kFloat), 2)[0][0];
      for (int64_t a = 0; a < 3; ++a) v = v.narrow(a, (v.size(a) - 64) / 2, 64);
      channels.push_back((v - v.mean()) / v.std());
    }
    return at::stack(channels).contiguous();
  }();
  return volume;
}

// A 3-D U-Net of the brain-lesion kind (2 channels, 2 classes, depth 3, width 8), random
// weights, on 64^3 of brain MR with 32^3 windows overlapping by half (27 windows).
//  - batch norm (eval): windows compute the whole-volume function except near their borders,
//    where zero padding replaces the context the whole volume has. The Gaussian gives those
//    borders almost no weight wherever another window covers them (1e-3 per axis at a window's
//    faces), so measured: mean |difference| 3.9e-6 with Gaussian blending against 8.0e-4 with
//    uniform blending; arg-max labels agree on every voxel. Asserted: < 5e-5 (ten times what
//    we measured), Gaussian better than uniform, >= 99.9% agreement.
//  - instance norm: each window is normalised by its own statistics (as in patch training,
//    which is why nnU-Net infers by windows), so it differs from whole-volume inference by
//    design: measured 0.042 against a spread of 0.086 in the whole-volume probabilities.
//    Asserted: the difference shrinks as windows grow (48^3: 0.035; 64^3 is exact, see
//    OneWindowCoveringTheVolumeEqualsWholeVolumeSoftmax) and stays below the spread.
TEST(SlidingWindow, UNetWithOverlapStaysCloseToWholeVolumeOnBrainMr) {
  const at::Tensor& x = brain_volume();
  auto mad = [](const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().mean().item<double>(); };
  {
    torch::manual_seed(3);
    UNet net(UNetOptions(2, 2).dims(3).depth(3).width(8).norm("batch"));
    const at::Tensor whole = whole_volume(net, x);
    const auto o = SlidingWindowOptions({32, 32, 32}).overlap(0.5);
    const at::Tensor gauss = sliding_window_inference(net, x, o);
    const at::Tensor uniform = sliding_window_inference(net, x, SlidingWindowOptions(o).gaussian(false));
    const double agree = (gauss.argmax(0) == whole.argmax(0)).to(at::kFloat).mean().item<double>();
    std::printf("batch norm: mean |p_sw - p_whole| Gaussian %.2e, uniform %.2e; labels agree %.4f\n",
                mad(gauss, whole), mad(uniform, whole), agree);
    EXPECT_LT(mad(gauss, whole), 5e-5);
    EXPECT_LT(mad(gauss, whole), mad(uniform, whole));
    EXPECT_GE(agree, 0.999);
  }
  {
    torch::manual_seed(3);
    UNet net(UNetOptions(2, 2).dims(3).depth(3).width(8).norm("instance"));
    const at::Tensor whole = whole_volume(net, x);
    const double spread = mad(whole, whole.mean({1, 2, 3}, true));
    const double d32 = mad(sliding_window_inference(net, x, SlidingWindowOptions({32, 32, 32})), whole);
    const double d48 = mad(sliding_window_inference(net, x, SlidingWindowOptions({48, 48, 48})), whole);
    std::printf("instance norm: mean |p_sw - p_whole| 32^3 %.4f, 48^3 %.4f; spread of p_whole %.4f\n", d32, d48,
                spread);
    EXPECT_LT(d48, d32);
    EXPECT_LT(d32, spread);
  }
}

TEST(SlidingWindow, MirrorTtaEqualsTheAverageOfManuallyFlippedRuns) {
  torch::manual_seed(4);
  struct Case {
    int64_t dims;
    at::Tensor x;
    std::vector<int64_t> patch, axes;
  };
  // Window grids symmetric under mirroring (no padding), so flipping the volume flips the grid.
  const std::vector<Case> cases = {{3, at::randn({2, 20, 24, 28}), {16, 16, 16}, {0, 1, 2}},
                                   {3, at::randn({2, 20, 24, 28}), {16, 16, 16}, {2}},
                                   {2, at::randn({2, 40, 36}), {32, 32}, {1}},
                                   {2, at::randn({2, 40, 36}), {32, 32}, {0, 1}}};
  for (const auto& c : cases) {
    SCOPED_TRACE(::testing::Message() << c.dims << "-D, " << c.axes.size() << " mirror axes");
    auto net = small_unet(c.dims, 2);
    const auto plain = SlidingWindowOptions(c.patch).overlap(0.5);
    const at::Tensor tta = sliding_window_inference(*net, c.x, SlidingWindowOptions(plain).mirror_axes(c.axes));
    at::Tensor manual = at::zeros_like(tta);
    const int64_t combos = int64_t{1} << c.axes.size();
    for (int64_t mask = 0; mask < combos; ++mask) {
      std::vector<int64_t> flip;
      for (size_t i = 0; i < c.axes.size(); ++i)
        if (mask & (int64_t{1} << i)) flip.push_back(c.axes[i] + 1);
      const at::Tensor in = flip.empty() ? c.x : c.x.flip(flip);
      const at::Tensor out = sliding_window_inference(*net, in, plain);
      manual += flip.empty() ? out : out.flip(flip);
    }
    manual /= static_cast<double>(combos);
    EXPECT_LT(max_diff(tta, manual), 1e-5);
    EXPECT_GT(max_diff(tta, sliding_window_inference(*net, c.x, plain)), 1e-3);  // the flips did something
  }
}

// x (C, D, H, W) padded with each channel's minimum, `before` voxels before the data.
at::Tensor pad_with_minimum(const at::Tensor& x, const std::vector<int64_t>& before, const std::vector<int64_t>& size) {
  at::Tensor y = x.flatten(1).amin(1).view({-1, 1, 1, 1}).expand({x.size(0), size[0], size[1], size[2]}).clone();
  y.narrow(1, before[0], x.size(1)).narrow(2, before[1], x.size(2)).narrow(3, before[2], x.size(3)).copy_(x);
  return y;
}

at::Tensor crop(const at::Tensor& y, const std::vector<int64_t>& before, const at::Tensor& like) {
  return y.narrow(1, before[0], like.size(1)).narrow(2, before[1], like.size(2)).narrow(3, before[2], like.size(3));
}

TEST(SlidingWindow, PadsVolumesSmallerThanThePatchAndCropsBack) {
  torch::manual_seed(5);
  auto net = small_unet(3, 2);
  // 13x10x14 under a 16^3 window: padded by 3, 6 and 2 voxels, split evenly (the extra one after).
  const at::Tensor x = at::randn({2, 13, 10, 14}) + 3;
  const std::vector<int64_t> before{1, 3, 1}, padded{16, 16, 16};
  const at::Tensor want_min = crop(whole_volume(*net, pad_with_minimum(x, before, padded)), before, x);
  const at::Tensor got_min = sliding_window_inference(*net, x, SlidingWindowOptions({16, 16, 16}));
  ASSERT_EQ(got_min.sizes(), (std::vector<int64_t>{3, 13, 10, 14}));
  EXPECT_LT(max_diff(got_min, want_min), 1e-5);
  const at::Tensor reflected = at::reflection_pad3d(x.unsqueeze(0), {1, 1, 3, 3, 1, 2}).squeeze(0);
  const at::Tensor want_reflect = crop(whole_volume(*net, reflected), before, x);
  const at::Tensor got_reflect =
      sliding_window_inference(*net, x, SlidingWindowOptions({16, 16, 16}).padding(WindowPadding::kReflect));
  EXPECT_LT(max_diff(got_reflect, want_reflect), 1e-5);
  EXPECT_GT(max_diff(got_reflect, got_min), 1e-4);  // the two paddings differ

  // A patch the U-Net cannot take (14 is not a multiple of 2^2) grows to the next multiple.
  EXPECT_LT(max_diff(sliding_window_inference(*net, x, SlidingWindowOptions({14, 13, 16})), got_min), 1e-6);
  // Forcing a multiple of 1 hands the U-Net a size it refuses.
  EXPECT_THROW(sliding_window_inference(*net, x, SlidingWindowOptions({14, 16, 16}).size_multiple(1)), InputError);
  // An ensemble of U-Nets of depth 2 and 3 takes multiples of 8: a 12^3 patch becomes 16^3.
  Ensemble ensemble({net, small_unet(3, 3)});
  const at::Tensor want_ensemble = crop(whole_volume(ensemble, pad_with_minimum(x, before, padded)), before, x);
  EXPECT_LT(max_diff(sliding_window_inference(ensemble, x, SlidingWindowOptions({12, 12, 12})), want_ensemble), 1e-5);
}

TEST(SlidingWindow, OddSizesMixedPaddingAnd2dGiveProbabilities) {
  torch::manual_seed(6);
  struct Case {
    int64_t dims;
    std::vector<int64_t> shape, patch;
  };
  const std::vector<Case> cases = {{3, {2, 37, 21, 30}, {16, 16, 16}},  // not divisible by the patch
                                   {3, {2, 9, 40, 23}, {16, 16, 16}},   // smaller along one axis only
                                   {3, {2, 5, 6, 7}, {16, 16, 16}},     // smaller along every axis
                                   {2, {2, 50, 70}, {32, 32}},
                                   {2, {2, 17, 100}, {24, 24}}};
  for (const auto& c : cases) {
    SCOPED_TRACE(::testing::Message() << c.shape.size() - 1 << "-D volume " << c.shape[1] << "x" << c.shape[2]);
    auto net = small_unet(c.dims, c.dims == 2 ? 3 : 2);
    const at::Tensor x = at::randn(c.shape);
    const at::Tensor p = sliding_window_inference(*net, x, SlidingWindowOptions(c.patch).batch_size(3));
    std::vector<int64_t> want = c.shape;
    want[0] = 3;
    ASSERT_EQ(p.sizes(), want);
    EXPECT_TRUE(p.isfinite().all().item<bool>());
    EXPECT_GE(p.min().item<double>(), 0.0);
    EXPECT_LT((p.sum(0) - 1).abs().max().item<double>(), 1e-5);
  }
}

TEST(SlidingWindow, RunsInEvalModeRestoresTrainingAndReportsProgress) {
  torch::manual_seed(7);
  auto net = small_unet(3, 2, "batch");
  const at::Tensor x = at::randn({2, 32, 32, 32});
  const at::Tensor want = whole_volume(*net, x);  // eval mode: running statistics
  net->train();
  std::vector<std::pair<int64_t, int64_t>> calls;
  const at::Tensor one = sliding_window_inference(*net, x, SlidingWindowOptions({32, 32, 32}));
  EXPECT_TRUE(net->is_training());
  EXPECT_LT(max_diff(one, want), 1e-5);
  const at::Tensor tiled = sliding_window_inference(
      *net, x, SlidingWindowOptions({16, 16, 16}).batch_size(4).progress([&](int64_t done, int64_t total) {
        calls.emplace_back(done, total);
      }));
  ASSERT_EQ(calls.size(), 7u);  // 3x3x3 windows in batches of 4
  EXPECT_EQ(calls.front(), std::make_pair(int64_t{4}, int64_t{27}));
  EXPECT_EQ(calls.back(), std::make_pair(int64_t{27}, int64_t{27}));
  // The result is an ordinary tensor: callers may modify it in place.
  EXPECT_NO_THROW(tiled.mul_(2));
}

TEST(SlidingWindow, StartsAreEvenSymmetricAndCoverTheAxis) {
  struct Case {
    int64_t size, window;
    double overlap;
    std::vector<int64_t> want;
  };
  const std::vector<Case> cases = {{64, 32, 0.5, {0, 16, 32}},       {32, 32, 0.5, {0}},
                                   {100, 32, 0.5, {0, 14, 27, 41, 54, 68}}, {10, 3, 0.0, {0, 2, 5, 7}},
                                   {5, 1, 0.9, {0, 1, 2, 3, 4}},      {28, 16, 0.5, {0, 6, 12}},
                                   {300, 96, 0.5, {0, 41, 82, 122, 163, 204}}};
  for (const auto& c : cases) {
    SCOPED_TRACE(::testing::Message() << c.size << " / " << c.window << " / " << c.overlap);
    EXPECT_EQ(sliding_window_starts(c.size, c.window, c.overlap), c.want);
  }
  EXPECT_THROW(sliding_window_starts(10, 11, 0.5), UsageError);
  EXPECT_THROW(sliding_window_starts(10, 0, 0.5), UsageError);
}

TEST(SlidingWindow, RefusesBadOptionsAndInputs) {
  auto net = small_unet(3, 2);
  const at::Tensor x = at::randn({2, 16, 16, 16});
  const std::vector<SlidingWindowOptions> bad = {
      SlidingWindowOptions({}),
      SlidingWindowOptions({0, 16, 16}),
      SlidingWindowOptions({16, 16}),
      SlidingWindowOptions({16, 16, 16}).overlap(1.0),
      SlidingWindowOptions({16, 16, 16}).overlap(-0.1),
      SlidingWindowOptions({16, 16, 16}).overlap(std::nan("")),
      SlidingWindowOptions({16, 16, 16}).batch_size(0),
      SlidingWindowOptions({16, 16, 16}).sigma_scale(0),
      SlidingWindowOptions({16, 16, 16}).mirror_axes({3}),
      SlidingWindowOptions({16, 16, 16}).mirror_axes({0, 0}),
      SlidingWindowOptions({16, 16, 16}).size_multiple(-1)};
  for (size_t i = 0; i < bad.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_THROW(sliding_window_inference(*net, x, bad[i]), UsageError);
  }
  const SlidingWindowOptions good({16, 16, 16});
  EXPECT_THROW(sliding_window_inference(*net, x[0], good), InputError);      // no channel axis
  EXPECT_THROW(sliding_window_inference(*net, at::randn({3, 16, 16, 16}), good), InputError);  // channels
  EXPECT_THROW(sliding_window_inference(*net, at::randn({2, 0, 16, 16}), good), InputError);
  ResNet classifier(ResNetOptions(2, 2).dims(3).blocks({1}).width(4).small_input(true));
  EXPECT_THROW(sliding_window_inference(classifier, x, good), InputError);  // not a segmenter
}

}  // namespace
}  // namespace medlens
