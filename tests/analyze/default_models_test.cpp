// The default models shipped in models/ still do what their cards say: predictions on the
// bundled val splits reach the AUC (and accuracy) the cards state, within 0.01, and do not fall
// below a floor. The floors are regression guards at what the committed bundles measure, not
// the project's targets: busi's targets (AUC >= 0.90, accuracy >= 0.80) are not met yet, which
// docs/MODELS.md states.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "infer/evaluate.h"
#include "infer/model.h"
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
  EXPECT_GE(auc, min_auc);
  EXPECT_GE(acc, min_accuracy);
  // Every card states its numbers with confidence intervals, calibration and limits.
  EXPECT_LE(card.metrics["val"]["auc"]["ci95"][0].get<double>(), card_auc);
  EXPECT_GT(card.temperature, 0.0);
  EXPECT_FALSE(card.limitations.empty());
  EXPECT_FALSE(card.intended_use.empty());
}

TEST(DefaultModels, PneumoniaMnistReachesItsCard) { check_model("pneumoniamnist", 0.98, 0.90); }

TEST(DefaultModels, BusiReachesItsCard) { check_model("busi", 0.84, 0.73); }

}  // namespace
}  // namespace medlens
