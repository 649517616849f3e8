// Every method on 2-D and 3-D inputs, and the properties that say a method computes what it
// claims: Integrated Gradients' completeness, Kernel SHAP's exactness on a linear model.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "explain/evaluate.h"
#include "explain/explain.h"
#include "explain/methods.h"
#include "explain/tiny_models.h"
#include "nn/card.h"

namespace medlens {
namespace {

// Small settings per method so 2-D and 3-D runs stay fast; defaults are exercised by the CLI
// and the benchmark.
nlohmann::json quick_params(const std::string& m) {
  if (m == "smoothgrad") return {{"samples", 4}};
  if (m == "integrated-gradients") return {{"steps", 8}};
  if (m == "rise") return {{"masks", 40}, {"cells", 4}};
  if (m == "lime" || m == "kernel-shap") return {{"samples", 40}, {"segments", 8}};
  if (m == "occlusion") return {{"patch", 8}, {"stride", 8}};
  return nlohmann::json::object();
}

TEST(Methods, NamesAreTheStableList) {
  EXPECT_EQ(explanation_methods(),
            (std::vector<std::string>{"gradcam", "gradcam++", "saliency", "smoothgrad", "integrated-gradients",
                                      "input-x-gradient", "scorecam", "occlusion", "rise", "lime", "kernel-shap"}));
}

TEST(Methods, EveryMethodGivesAFiniteMapOnTheInputGridIn2DAnd3D) {
  for (int dims : {2, 3}) {
    // The image is not the network's size: preprocessing resizes it, and the map must come back
    // on the image's own grid and geometry.
    const Model model = test::tiny_resnet(dims, dims == 2 ? 32 : 16, /*resize=*/true);
    const Image image = test::textured_image(dims, dims == 2 ? std::vector<int64_t>{40, 36} : std::vector<int64_t>{20, 18, 14});
    for (const auto& m : explanation_methods()) {
      SCOPED_TRACE(m + " " + std::to_string(dims) + "-D");
      ExplainOptions o;
      o.method = m;
      o.params = quick_params(m);
      o.batch_size = 8;
      const Explanation e = explain(model, image, o);
      EXPECT_EQ(e.method, m);
      ASSERT_EQ(e.attribution.channels(), 1);
      EXPECT_EQ(e.attribution.width(), image.width());
      EXPECT_EQ(e.attribution.height(), image.height());
      EXPECT_EQ(e.attribution.depth(), image.depth());
      EXPECT_TRUE(e.attribution.geometry() == image.geometry());
      EXPECT_TRUE(at::isfinite(e.attribution.voxels()).all().item<bool>());
      EXPECT_EQ(e.attribution_input.width(), dims == 2 ? 32 : 16);
      EXPECT_GT(e.attribution.voxels().abs().max().item<double>(), 0.0) << "an all-zero map explains nothing";
      EXPECT_GE(e.seconds, 0.0);
    }
  }
}

TEST(Methods, UnknownMethodsLayersAndParametersAreRefusedByName) {
  const Model model = test::tiny_resnet(2, 32, false);
  const Image image = test::textured_image(2, {32, 32});
  ExplainOptions o;
  o.method = "gradcamm";
  EXPECT_THROW(explain(model, image, o), UsageError);
  o.method = "gradcam";
  o.layer = "layer9";
  try {
    explain(model, image, o);
    ADD_FAILURE() << "an unknown layer must be refused";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("layer9"), std::string::npos);
  }
  o.layer = "";
  o.method = "integrated-gradients";
  o.params = {{"stpes", 10}};
  try {
    explain(model, image, o);
    ADD_FAILURE() << "a misspelt parameter must be refused";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("stpes"), std::string::npos);
  }
  // Sample counts that would run for hours are refused up front, naming the method.
  for (const auto& [method, params] : std::vector<std::pair<std::string, nlohmann::json>>{
           {"integrated-gradients", {{"steps", 1000000000}}},
           {"smoothgrad", {{"samples", 1000000}}},
           {"rise", {{"masks", 1000000000}}},
           {"lime", {{"samples", 1000000000}}},
           {"kernel-shap", {{"samples", 1000000000}}}}) {
    o.method = method;
    o.params = params;
    try {
      explain(model, image, o);
      ADD_FAILURE() << method << " accepted " << params.dump();
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find(method), std::string::npos) << e.what();
    }
  }
}

TEST(Methods, CamLayerCanBeChosenByName) {
  const Model model = test::tiny_resnet(2, 32, false);
  const Image image = test::textured_image(2, {32, 32});
  ExplainOptions o;
  o.layer = "layer1";
  const Explanation a = explain(model, image, o);
  o.layer = "layer2";
  const Explanation b = explain(model, image, o);
  EXPECT_EQ(a.layer, "layer1");
  EXPECT_EQ(b.layer, "layer2");
  EXPECT_FALSE(at::allclose(a.attribution.voxels(), b.attribution.voxels()));
}

// Sundararajan et al.'s completeness axiom: sum of attributions = f(x) - f(baseline).
TEST(IntegratedGradients, AttributionsSumToTheScoreDifferenceWithinOnePercent) {
  for (int dims : {2, 3}) {
    SCOPED_TRACE(dims);
    const Model model = test::tiny_resnet(dims, dims == 2 ? 32 : 16, false);
    const Image image = test::textured_image(dims, dims == 2 ? std::vector<int64_t>{32, 32} : std::vector<int64_t>{16, 16, 16});
    for (const char* baseline : {"zeros", "blur"}) {
      SCOPED_TRACE(baseline);
      ExplainOptions o;
      o.method = "integrated-gradients";
      o.target = "b";
      o.params = {{"steps", 256}, {"baseline", baseline}};
      o.batch_size = 64;
      const Explanation e = explain(model, image, o);
      const at::Tensor x = model.prepare(image).unsqueeze(0);
      const at::Tensor b = explain_detail::baseline_input(x, baseline, "test");
      torch::NoGradGuard no_grad;
      const double fx = model.network()->forward(x)[0][1].item<double>();
      const double fb = model.network()->forward(b)[0][1].item<double>();
      const double sum = e.attribution_input.voxels().sum().item<double>();
      ASSERT_GT(std::abs(fx - fb), 1e-3) << "the test needs a score difference to explain";
      EXPECT_NEAR(sum, fx - fb, 0.01 * std::abs(fx - fb)) << "f(x) " << fx << " f(baseline) " << fb;
    }
  }
}

// A model linear in its input: the target's logit is sum_v w_v x_v. With segment s switched
// off showing the baseline m, f is linear in the on/off vector z with coefficients
// c_s = sum over s of w_v (x_v - m); Shapley values of a linear function are its coefficients.
TEST(KernelShap, RecoversTheCoefficientsOfALinearModel) {
  const int64_t side = 32;
  const test::LinearModel lm = test::linear_model(side, 7);
  const Image image = test::textured_image(2, {side, side});
  ExplainOptions o;
  o.method = "kernel-shap";
  o.target = "a";
  for (int samples : {2000, 300}) {  // every coalition enumerated (2^10 < 2000), then sampled
    SCOPED_TRACE(samples);
    o.params = {{"samples", samples}, {"segments", 10}, {"baseline", "mean"}};
    const Explanation e = explain(lm.model, image, o);
    const at::Tensor x = lm.model.prepare(image)[0];
    const at::Tensor labels = explain_detail::slic(x.unsqueeze(0), 10, 0.25);
    const int64_t segments = labels.max().item<int64_t>() + 1;
    ASSERT_GE(segments, 6);
    const double m = x.mean().item<double>();
    const at::Tensor a = e.attribution_input.voxels()[0][0];
    double worst = 0, scale = 0;
    for (int64_t s = 0; s < segments; ++s) {
      const at::Tensor in = labels == s;
      const double coefficient = (lm.weights.masked_select(in) * (x.masked_select(in) - m)).sum().item<double>();
      const double phi = a.masked_select(in).sum().item<double>();
      worst = std::max(worst, std::abs(phi - coefficient));
      scale = std::max(scale, std::abs(coefficient));
    }
    EXPECT_LT(worst, 1e-3 * scale) << "largest coefficient " << scale;
  }
}

TEST(Lime, FindsTheLargestCoefficientOfALinearModel) {
  const test::LinearModel lm = test::linear_model(32, 11);
  const Image image = test::textured_image(2, {32, 32});
  ExplainOptions o;
  o.method = "lime";
  o.target = "a";
  o.params = {{"samples", 400}, {"segments", 10}, {"alpha", 0.01}};
  const Explanation e = explain(lm.model, image, o);
  const at::Tensor x = lm.model.prepare(image)[0];
  const at::Tensor labels = explain_detail::slic(x.unsqueeze(0), 10, 0.25);
  const double m = x.mean().item<double>();
  const at::Tensor a = e.attribution_input.voxels()[0][0];
  int64_t best_true = -1, best_lime = -1;
  double top_true = -1e30, top_lime = -1e30;
  for (int64_t s = 0; s <= labels.max().item<int64_t>(); ++s) {
    const at::Tensor in = labels == s;
    const double c = (lm.weights.masked_select(in) * (x.masked_select(in) - m)).sum().item<double>();
    const double l = a.masked_select(in).sum().item<double>();
    if (c > top_true) top_true = c, best_true = s;
    if (l > top_lime) top_lime = l, best_lime = s;
  }
  EXPECT_EQ(best_lime, best_true);
}

TEST(Occlusion, ABrightSpotAModelAddsUpIsWhereTheDropIs) {
  // The linear model with all weight on one 4x4 block: occluding anything else changes nothing.
  const test::LinearModel lm = test::linear_model(32, 0, /*block=*/{20, 8});
  const Image image = test::textured_image(2, {32, 32});
  ExplainOptions o;
  o.method = "occlusion";
  o.target = "a";
  o.params = {{"patch", 4}, {"stride", 4}, {"baseline", 0}};
  const Explanation e = explain(lm.model, image, o);
  const at::Tensor a = e.attribution_input.voxels()[0][0];
  EXPECT_GT(a.narrow(0, 8, 4).narrow(1, 20, 4).abs().min().item<double>(), 0.0);
  const at::Tensor outside = a.clone();
  outside.narrow(0, 8, 4).narrow(1, 20, 4).zero_();
  EXPECT_EQ(outside.abs().max().item<double>(), 0.0);
}

}  // namespace
}  // namespace medlens
