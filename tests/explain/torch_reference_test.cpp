// Grad-CAM computed by medlens on a TorchScript model agrees with Grad-CAM computed by PyTorch
// itself (python3-torch, autograd hooks) on the same model and input.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "explain/explain.h"
#include "infer/model.h"
#include "nn/card.h"
#include "tools/test_util.h"

namespace medlens {
namespace {

double correlation(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor x = a.flatten().to(at::kDouble) - a.to(at::kDouble).mean();
  const at::Tensor y = b.flatten().to(at::kDouble) - b.to(at::kDouble).mean();
  return (x * y).sum().item<double>() / std::sqrt((x * x).sum().item<double>() * (y * y).sum().item<double>());
}

TEST(GradCam, AgreesWithAPyTorchReferenceOnTheSameTorchScriptModel) {
  test::TempDir tmp;
  const test::CommandResult r =
      test::run({"/usr/bin/python3", std::string(MEDLENS_SOURCE_DIR) + "/tests/explain/gradcam_reference.py", tmp.path().string()});
  ASSERT_EQ(r.status, 0) << r.error;
  const ModelCard card = ModelCard::from_json(
      {{"name", "traced"}, {"version", "0.1"}, {"task", "classify"}, {"classes", {"a", "b"}},
       {"weights", "model.ts"}, {"weights_format", "torchscript"},
       {"input", {{"dims", 2}, {"channels", 1}, {"size", {32, 32}}}},
       {"architecture", {{"name", "torchscript"}, {"dims", 2}, {"split", {"features", "head"}}}}});
  save_card(card, tmp.path().string());
  const Model model = Model::load(tmp.path().string());
  std::vector<float> in = test::read_f32(tmp.file("input.f32"));
  const std::vector<float> want = test::read_f32(tmp.file("cam.f32"));
  const std::vector<float> want_low = test::read_f32(tmp.file("cam_low.f32"));
  ASSERT_EQ(in.size(), 32u * 32u);
  const Image image(at::from_blob(in.data(), {1, 1, 32, 32}).clone(), Geometry{}, Metadata{});
  ExplainOptions o;
  o.method = "gradcam";
  o.layer = "features";
  o.target = test::read_text(tmp.file("target.txt"));
  const Explanation e = explain(model, image, o);
  const at::Tensor cam = e.attribution.voxels()[0][0];
  const at::Tensor expect = at::from_blob(const_cast<float*>(want.data()), {32, 32}).clone();
  ASSERT_GT(expect.max().item<double>(), 0.0) << "the reference map must not be empty";
  const double rho = correlation(cam, expect);
  EXPECT_GE(rho, 0.99);
  EXPECT_LE((cam - expect).abs().max().item<double>(), 1e-4 * expect.abs().max().item<double>() + 1e-6);
  // At the layer's own resolution too: the aligned upsampling samples cell k at voxel 4k.
  const at::Tensor low = at::from_blob(const_cast<float*>(want_low.data()), {8, 8}).clone();
  EXPECT_TRUE(at::allclose(cam.index({at::indexing::Slice(0, 32, 4), at::indexing::Slice(0, 32, 4)}), low, 1e-4, 1e-6));
  std::printf("correlation with PyTorch's Grad-CAM: %.6f\n", rho);
}

}  // namespace
}  // namespace medlens
