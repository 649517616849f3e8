// Classification metrics against scikit-learn on the same numbers, and the bootstrap.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <random>

#include "metrics/classification.h"
#include "tools/test_util.h"

namespace medlens {
namespace {

// Random 3-class probabilities that carry some signal, with ties (rounded to 2 decimals).
void make_cases(int n, ProbRows& probs, std::vector<int>& labels, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  for (int i = 0; i < n; ++i) {
    const int y = static_cast<int>(rng() % 3);
    std::vector<double> p(3);
    double s = 0;
    for (int k = 0; k < 3; ++k) s += p[k] = std::round((u(rng) + (k == y ? 0.6 : 0)) * 100) / 100;
    for (auto& v : p) v /= s;
    probs.push_back(p);
    labels.push_back(y);
  }
}

TEST(ClassificationMetrics, AgreeWithScikitLearn) {
  ProbRows probs;
  std::vector<int> labels;
  make_cases(300, probs, labels, 3);
  test::TempDir tmp;
  {
    std::ofstream f(tmp.file("cases.txt"));
    f.precision(17);
    for (size_t i = 0; i < probs.size(); ++i) f << labels[i] << " " << probs[i][0] << " " << probs[i][1] << " " << probs[i][2] << "\n";
  }
  const auto r = test::run_oracle("sklearn_metrics.py", {tmp.file("cases.txt")});
  const auto want = nlohmann::json::parse(r.output);
  std::vector<double> s;
  std::vector<bool> t;
  std::vector<int> pred;
  for (size_t i = 0; i < probs.size(); ++i) {
    s.push_back(probs[i][2]);
    t.push_back(labels[i] == 2);
    pred.push_back(static_cast<int>(std::max_element(probs[i].begin(), probs[i].end()) - probs[i].begin()));
  }
  EXPECT_NEAR(roc_auc(s, t), want["auc_last"].get<double>(), 1e-12);
  EXPECT_NEAR(auc_ovr_macro(probs, labels, 3), want["auc_ovr_macro"].get<double>(), 1e-12);
  EXPECT_NEAR(accuracy(labels, pred), want["accuracy"].get<double>(), 1e-12);
  EXPECT_NEAR(balanced_accuracy(labels, pred, 3), want["balanced_accuracy"].get<double>(), 1e-12);
  EXPECT_NEAR(macro_f1(labels, pred, 3), want["macro_f1"].get<double>(), 1e-12);
  EXPECT_NEAR(brier(probs, labels), want["brier"].get<double>(), 1e-12);
}

TEST(ClassificationMetrics, EdgeCases) {
  EXPECT_TRUE(std::isnan(roc_auc({0.1, 0.9}, {true, true})));
  EXPECT_DOUBLE_EQ(roc_auc({0.1, 0.2, 0.8, 0.9}, {false, false, true, true}), 1.0);
  EXPECT_DOUBLE_EQ(roc_auc({0.5, 0.5}, {false, true}), 0.5);
  const auto cm = confusion_matrix({0, 1, 1, 2}, {0, 1, 2, 2}, 3);
  EXPECT_EQ(cm[1][2], 1);
  EXPECT_EQ(cm[2][2], 1);
}

// The operating point maximises Youden's J over every threshold a val score defines, but sits
// strictly between two scores, so nudging every score by 1e-9 (last-bit drift) moves no case
// across it; the sensitivity rule keeps its target.
TEST(OperatingPoint, MaximisesYoudenAndSitsBetweenScores) {
  ProbRows probs;
  std::vector<int> labels;
  make_cases(300, probs, labels, 11);
  const int pos = 1;
  auto rates = [&](const ProbRows& p, double t) {
    double tp = 0, fn = 0, tn = 0, fp = 0;
    for (size_t i = 0; i < p.size(); ++i) {
      const bool yes = p[i][pos] >= t;
      if (labels[i] == pos) (yes ? tp : fn)++;
      else (yes ? fp : tn)++;
    }
    return std::pair<double, double>{tp / (tp + fn), tn / (tn + fp)};
  };
  const double op = choose_operating_point(probs, labels, pos);
  const auto [sens, spec] = rates(probs, op);
  for (const auto& r : probs) {
    EXPECT_NE(r[pos], op);
    const auto [s, c] = rates(probs, r[pos]);
    EXPECT_LE(s + c, sens + spec + 1e-12) << "threshold " << r[pos] << " has a larger J";
  }
  for (double nudge : {1e-9, -1e-9}) {
    ProbRows moved = probs;
    for (auto& r : moved) r[pos] += nudge;
    EXPECT_EQ(rates(moved, op), rates(probs, op)) << nudge;
  }
  const double op95 = choose_operating_point(probs, labels, pos, 0.95);
  EXPECT_GE(rates(probs, op95).first, 0.95);
  EXPECT_LT(op95, op);
  EXPECT_EQ(choose_operating_point({}, {}, pos), 0.5);
}

TEST(Calibration, EceIsTheWeightedGapBetweenConfidenceAndAccuracy) {
  // Ten cases at confidence 0.9, of which 6 right: ECE = |0.6 - 0.9| = 0.3.
  ProbRows probs(10, {0.9, 0.1});
  std::vector<int> labels = {0, 0, 0, 0, 0, 0, 1, 1, 1, 1};
  const Calibration c = calibration(probs, labels, 10);
  EXPECT_NEAR(c.ece, 0.3, 1e-12);
  EXPECT_NEAR(c.mce, 0.3, 1e-12);
}

TEST(Bootstrap, IntervalBracketsTheEstimateAndNarrowsWithMoreCases) {
  ProbRows small_p, big_p;
  std::vector<int> small_y, big_y;
  make_cases(60, small_p, small_y, 5);
  make_cases(2000, big_p, big_y, 5);
  auto width = [](const ProbRows& p, const std::vector<int>& y) {
    const Interval ci = bootstrap(
        [&](const std::vector<size_t>& idx) {
          ProbRows pp;
          std::vector<int> yy;
          for (size_t i : idx) pp.push_back(p[i]), yy.push_back(y[i]);
          return auc_ovr_macro(pp, yy, 3);
        },
        p.size(), 400, 1);
    EXPECT_LE(ci.lo, ci.value);
    EXPECT_GE(ci.hi, ci.value);
    return ci.hi - ci.lo;
  };
  EXPECT_GT(width(small_p, small_y), 2 * width(big_p, big_y));
}

TEST(ClassificationReport, HasEveryMetricWithCis) {
  ProbRows probs;
  std::vector<int> labels;
  make_cases(120, probs, labels, 9);
  ClassificationReportOptions o;
  o.classes = {"normal", "benign", "malignant"};
  o.positive_class = "malignant";
  o.bootstrap_rounds = 200;
  const auto j = classification_report(probs, labels, o);
  for (const char* k : {"accuracy", "balanced_accuracy", "auc", "auc_ovr_macro", "sensitivity", "specificity", "macro_f1",
                        "brier", "ece"}) {
    ASSERT_TRUE(j.contains(k)) << k;
    EXPECT_LE(j[k]["ci95"][0].get<double>(), j[k]["value"].get<double>() + 1e-12) << k;
    EXPECT_GE(j[k]["ci95"][1].get<double>(), j[k]["value"].get<double>() - 1e-12) << k;
  }
  EXPECT_EQ(j["n"], 120);
  EXPECT_EQ(j["confusion_matrix"].size(), 3u);
}

// Cases drawn from a model that is calibrated by construction: label ~ its own probabilities.
void draw_calibrated(size_t n, std::mt19937_64& rng, ProbRows& probs, std::vector<int>& labels) {
  std::uniform_real_distribution<double> unit(0, 1);
  probs.clear();
  labels.clear();
  for (size_t i = 0; i < n; ++i) {
    const double a = unit(rng), b = unit(rng) * (1 - a);
    probs.push_back({a, b, 1 - a - b});
    const double u = unit(rng);
    labels.push_back(u < a ? 0 : u < a + b ? 1 : 2);
  }
}

TEST(Calibration, EceFloorIsWhatAPerfectlyCalibratedModelScoresOnSoFewCases) {
  std::mt19937_64 rng(5);
  ProbRows probs;
  std::vector<int> labels;
  draw_calibrated(118, rng, probs, labels);
  const EceFloor small = ece_floor(probs, 15, 2000, 1);
  EXPECT_GT(small.mean, 0.04) << "118 cases: binned ECE is far from 0 even for perfect calibration";
  EXPECT_GT(small.q95, small.mean);
  // Seeded and reproducible.
  EXPECT_EQ(ece_floor(probs, 15, 2000, 1).mean, small.mean);
  // The floor falls as the sample grows (roughly as 1/sqrt(n)).
  ProbRows many;
  for (int copy = 0; copy < 40; ++copy) many.insert(many.end(), probs.begin(), probs.end());
  const EceFloor large = ece_floor(many, 15, 500, 1);
  EXPECT_LT(large.mean, small.mean / 4);
  // Certain and always right: no floor.
  EXPECT_EQ(ece_floor(ProbRows(50, std::vector<double>{1.0, 0.0}), 15, 100, 1).mean, 0.0);

  // Measured ECEs of truly calibrated samples land below the floor's 95th percentile about
  // 95% of the time, and average about its mean.
  int below = 0;
  double sum = 0;
  const int trials = 200;
  for (int t = 0; t < trials; ++t) {
    draw_calibrated(118, rng, probs, labels);
    const double e = calibration(probs, labels).ece;
    below += e <= ece_floor(probs, 15, 400, static_cast<uint64_t>(t)).q95;
    sum += e;
  }
  EXPECT_GE(below, trials * 85 / 100);
  EXPECT_NEAR(sum / trials, small.mean, 0.3 * small.mean);
}

}  // namespace
}  // namespace medlens
