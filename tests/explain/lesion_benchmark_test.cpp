// The acceptance lines on the small fixed lesion benchmark (lesion_bench.h): Grad-CAM and
// Integrated Gradients point at the lesion on at least 90% of the correctly classified lesion
// images; every gradient method's deletion curve falls faster than random orders'; and the
// cascading randomisation check flags an explainer that ignores the model (an edge detector)
// while Grad-CAM passes it.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "explain/evaluate.h"
#include "explain/explain.h"
#include "explain/lesion_bench.h"
#include "transforms/morphology.h"

namespace medlens {
namespace {

// Lesion images of the held-out set that the model classifies as lesion.
std::vector<const test::LesionCase*> correct_lesions(const test::LesionBench& b) {
  std::vector<const test::LesionCase*> out;
  ExplainOptions o;
  o.method = "saliency";
  for (const auto& c : b.test) {
    if (!c.lesion) continue;
    const Explanation e = explain(b.model, c.image, o);
    if (e.target == "lesion") out.push_back(&c);
  }
  return out;
}

TEST(LesionBenchmark, GradCamAndIntegratedGradientsPointAtLesionsAndGradientMapsBeatRandomDeletion) {
  const test::LesionBench& b = test::lesion_bench();
  EXPECT_GT(b.val_auc, 0.9) << "the benchmark's classifier must work for its explanations to mean anything";
  const auto cases = correct_lesions(b);
  ASSERT_GE(cases.size(), 20u) << "correctly classified lesion images out of 30";
  CurveOptions curves;
  curves.steps = 10;
  curves.random_orders = 2;
  curves.batch_size = 32;
  std::printf("%zu correctly classified lesion images; validation AUC %.3f\n", cases.size(), b.val_auc);
  std::printf("| method | pointing | relevance mass | deletion AUC | random deletion AUC |\n|---|---|---|---|---|\n");
  for (const char* m : {"gradcam", "gradcam++", "saliency", "smoothgrad", "integrated-gradients", "input-x-gradient"}) {
    SCOPED_TRACE(m);
    ExplainOptions o;
    o.method = m;
    o.target = "lesion";
    int hits = 0;
    double mass = 0, del = 0, del_random = 0;
    for (const auto* c : cases) {
      const Explanation e = explain(b.model, c->image, o);
      const LocalisationResult l = localisation(e.attribution, c->mask);
      hits += l.hit;
      mass += l.mass_accuracy;
      const FaithfulnessResult f = deletion_insertion(b.model, c->image, e, curves);
      del += f.deletion.auc;
      del_random += f.deletion_random.auc;
    }
    const double n = static_cast<double>(cases.size());
    std::printf("| %s | %.3f | %.3f | %.3f | %.3f |\n", m, hits / n, mass / n, del / n, del_random / n);
    if (std::string(m) == "gradcam" || std::string(m) == "integrated-gradients") {
      EXPECT_GE(hits / n, 0.90) << "pointing-game accuracy (no tolerance: the maximum must lie in the lesion)";
    }
    EXPECT_LT(del / n, del_random / n) << "deletion AUC must be below the random-order baseline";
  }
}

// An explainer that ignores the model: the image's gradient magnitude (Sobel).
Explanation edge_detector(const Model&, const Image& image) {
  Rng rng(0);
  Explanation e;
  e.method = "edges";
  e.attribution = make_sobel()->apply(Sample{image, std::nullopt}, rng).image;
  return e;
}

TEST(RandomisationCheck, FlagsAnEdgeDetectorAndPassesGradCam) {
  const test::LesionBench& b = test::lesion_bench();
  const auto cases = correct_lesions(b);
  ASSERT_GE(cases.size(), 3u);
  ExplainOptions o;
  o.method = "gradcam";
  o.target = "lesion";
  for (size_t i = 0; i < 3; ++i) {
    const Image& image = cases[i]->image;
    const RandomisationResult edges = randomisation_check(b.model, image, edge_detector);
    ASSERT_EQ(edges.steps.size(), 7u) << "fc, layer4.0 .. layer1.0, stem.1, stem.0";
    EXPECT_EQ(edges.steps.front().layer, "fc");
    EXPECT_EQ(edges.steps.back().layer, "stem.0");
    EXPECT_FALSE(edges.passed) << edges.verdict;
    EXPECT_NE(edges.verdict.find("FLAGGED"), std::string::npos);
    EXPECT_NEAR(edges.steps.back().spearman, 1.0, 1e-9);
    const RandomisationResult cam = randomisation_check(b.model, image, method_explainer(o));
    EXPECT_TRUE(cam.passed) << cam.verdict;
    for (const auto& s : cam.steps)
      std::printf("  case %zu %-9s spearman %+.3f |spearman| %+.3f ssim %.3f\n", i, s.layer.c_str(), s.spearman,
                  s.spearman_abs, s.ssim);
  }
}

}  // namespace
}  // namespace medlens
