// A model exported from PyTorch with torch.jit.trace plus a card runs in medlens with the
// same outputs (within 1e-5).
#include <gtest/gtest.h>

#include "infer/model.h"
#include "nn/card.h"
#include "nn/network.h"
#include "tools/test_util.h"

namespace medlens {
namespace {

TEST(TorchScript, TracedPyTorchModelAgreesWithinOneInHundredThousand) {
  test::TempDir tmp;
  test::run_oracle("torch_export.py", {tmp.path().string()});
  ModelCard card = ModelCard::from_json(
      {{"name", "traced"}, {"version", "0.1"}, {"task", "classify"}, {"classes", {"a", "b"}},
       {"weights", "model.ts"}, {"weights_format", "torchscript"},
       {"input", {{"dims", 2}, {"channels", 1}, {"size", {28, 28}}}},
       {"architecture", {{"name", "torchscript"}, {"dims", 2}, {"split", {"features", "head"}}}}});
  save_card(card, tmp.path().string());
  const Model m = Model::load(tmp.path().string());
  const std::vector<float> in = test::read_f32(tmp.file("input.f32"));
  const std::vector<float> want = test::read_f32(tmp.file("logits.f32"));
  const std::vector<float> want_features = test::read_f32(tmp.file("features.f32"));
  const at::Tensor x = at::from_blob(const_cast<float*>(in.data()), {3, 1, 28, 28}).clone();
  torch::NoGradGuard no_grad;
  const at::Tensor y = m.network()->forward(x);
  ASSERT_EQ(y.numel(), static_cast<int64_t>(want.size()));
  const at::Tensor expect = at::from_blob(const_cast<float*>(want.data()), y.sizes()).clone();
  EXPECT_LE((y - expect).abs().max().item<float>(), 1e-5f);
  // The card's split makes the features capturable for explanations.
  at::Tensor features;
  const at::Tensor y2 = m.network()->forward_capture(x, "features", features);
  EXPECT_TRUE(at::allclose(y, y2));
  const at::Tensor expect_f = at::from_blob(const_cast<float*>(want_features.data()), features.sizes()).clone();
  EXPECT_LE((features - expect_f).abs().max().item<float>(), 1e-5f);
  EXPECT_EQ(m.network()->layers(), std::vector<std::string>{"features"});
}

}  // namespace
}  // namespace medlens
