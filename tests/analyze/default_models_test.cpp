// The default models shipped in models/ still do what their cards say: predictions on the
// bundled val splits reach the AUC (and accuracy) the cards state, within 0.01, and do not fall
// below a floor. The floors are regression guards at what the committed bundles measure, not
// the project's targets: busi's targets (AUC >= 0.90, accuracy >= 0.80) are not met yet, which
// docs/MODELS.md states.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "infer/evaluate.h"
#include "infer/model.h"
#include "io/manifest.h"
#include "quality/quality.h"
#include "tools/test_util.h"

namespace medlens {
namespace {

void check_model(const std::string& name, double min_auc, double min_accuracy) {
  const Model m = Model::load(std::string(MEDLENS_MODELS_DIR) + "/" + name);
  const ModelCard& card = m.card();
  EvaluateOptions o;
  o.split = "val";
  o.bootstrap_rounds = 0;
  const nlohmann::json r = evaluate_manifest({m}, test::vendored_samples() + "/" + name + "/manifest.csv", o);
  const double auc = r["metrics"]["auc"]["value"], acc = r["metrics"]["accuracy"]["value"];
  const double card_auc = card.metrics["val"]["auc"]["value"], card_acc = card.metrics["val"]["accuracy"]["value"];
  std::printf("[%s] val AUC %.4f (card %.4f), accuracy %.4f (card %.4f)\n", name.c_str(), auc, card_auc, acc, card_acc);
  EXPECT_NEAR(auc, card_auc, 0.01);
  EXPECT_NEAR(acc, card_acc, 0.01);
  // The vendored samples are the whole val split the card's operating point was chosen on, and
  // the point sits between two val scores: the stated sensitivity and specificity are exactly
  // what this binary measures (one image flipping across it moves them by 1/32 for busi).
  for (const char* k : {"sensitivity", "specificity"})
    EXPECT_DOUBLE_EQ(r["metrics"][k]["value"].get<double>(), card.metrics["val"][k]["value"].get<double>()) << k;
  // The ECE is reported with the floor sampling noise alone puts under it on these cases.
  const auto& floor = r["metrics"]["ece_floor"];
  EXPECT_GT(floor["mean"].get<double>(), 0.0);
  EXPECT_GE(floor["q95"].get<double>(), floor["mean"].get<double>());
  EXPECT_GE(auc, min_auc);
  EXPECT_GE(acc, min_accuracy);
  // Every card states its numbers with confidence intervals, calibration and limits.
  EXPECT_LE(card.metrics["val"]["auc"]["ci95"][0].get<double>(), card_auc);
  EXPECT_GT(card.temperature, 0.0);
  EXPECT_FALSE(card.limitations.empty());
  EXPECT_FALSE(card.intended_use.empty());
}

// `predict` and `analyze` prepare each image once and make one pass that gives both the
// probabilities and the OOD features: their answers must be those of the separate stages
// (predict_many, then assess_quality_many with its own preparation and pass) bit for bit.
void check_one_pass(const std::string& name, size_t images_used, bool tta) {
  const std::vector<Model> models{Model::load(std::string(MEDLENS_MODELS_DIR) + "/" + name)};
  std::vector<std::string> paths;
  for (const auto& r : load_manifest(test::vendored_samples() + "/" + name + "/manifest.csv").rows)
    if (paths.size() < images_used) paths.push_back(r.path);
  const std::vector<Image> images = read_images(paths);
  PredictOptions o;
  o.tta = tta;
  std::vector<QualityReport> reports;
  const std::vector<Prediction> fused = predict_checked(models, images, o, &reports);
  std::vector<Prediction> separate = predict_many(models, images, o);
  const std::vector<QualityReport> quality = assess_quality_many(images, models.front());
  ASSERT_EQ(fused.size(), images.size());
  ASSERT_EQ(reports.size(), images.size());
  int flagged = 0;
  for (size_t i = 0; i < images.size(); ++i) {
    apply_quality(quality[i], separate[i]);
    apply_abstention(models.front().card(), separate[i]);
    EXPECT_EQ(prediction_json(fused[i]).dump(), prediction_json(separate[i]).dump()) << paths[i];
    EXPECT_EQ(quality_json(reports[i]).dump(), quality_json(quality[i]).dump()) << paths[i];
    EXPECT_TRUE(fused[i].quality.count("mahalanobis")) << "the bundle's OOD reference was not used";
    flagged += fused[i].status != "ok";
  }
  std::printf("[%s] %zu images, %d inconclusive, same answers from one pass\n", name.c_str(), images.size(), flagged);
}

TEST(DefaultModels, OnePassGivesTheSeparateStagesAnswersExactly) {
  check_one_pass("pneumoniamnist", 70, false);  // batches of 32: 32 + 32 + 6 (the separate OOD pass: 64 + 6)
  check_one_pass("pneumoniamnist", 20, true);
  check_one_pass("busi", 40, false);
}

TEST(DefaultModels, PneumoniaMnistReachesItsCard) { check_model("pneumoniamnist", 0.98, 0.90); }

TEST(DefaultModels, BusiReachesItsCard) { check_model("busi", 0.84, 0.73); }

}  // namespace
}  // namespace medlens
