// Detection metrics: FROC and CPM by hand and against the LUNA16 evaluation logic (oracle
// tests/oracles/luna16_froc.py), the two matching rules on label maps whose answers are
// known, and the whole report from probability maps.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <iomanip>
#include <random>
#include <sstream>

#include "core/error.h"
#include "core/image.h"
#include "metrics/detection.h"
#include "tools/test_util.h"

namespace medlens {
namespace {

double mean7(std::array<double, 7> v) {
  double s = 0;
  for (double x : v) s += x;
  return s / 7;
}

TEST(Froc, HandComputedCurveAndCpm) {
  // 4 images, 5 lesions. The 0.3 mark re-hits lesion (0, 0): ignored, as in LUNA16.
  const std::vector<Candidate> c = {{0, 0.9, 0}, {0, 0.8, -1}, {1, 0.7, 0}, {1, 0.6, -1},
                                    {2, 0.5, -1}, {3, 0.4, 0}, {0, 0.3, 0}, {2, 0.2, -1}};
  const Froc f = froc(c, 5, 4);
  EXPECT_EQ(f.detected, 3);
  EXPECT_EQ(f.false_positives, 4);
  // Curve: (0, 0) then per threshold (FPs/image, sensitivity).
  const std::vector<double> fps{0, 0, 0.25, 0.25, 0.5, 0.75, 0.75, 1.0};
  const std::vector<double> sens{0, 0.2, 0.2, 0.4, 0.4, 0.4, 0.6, 0.6};
  ASSERT_EQ(f.fps_per_image.size(), fps.size());
  for (size_t i = 0; i < fps.size(); ++i) {
    EXPECT_DOUBLE_EQ(f.fps_per_image[i], fps[i]) << i;
    EXPECT_DOUBLE_EQ(f.sensitivity[i], sens[i]) << i;
  }
  // At 1/8: no FP allowed (0.5 < 1) -> 0.2; 1/4 and 1/2: 1 and 2 FPs -> 0.4; 1.. 8 -> 0.6.
  const std::array<double, 7> expected{0.2, 0.4, 0.4, 0.6, 0.6, 0.6, 0.6};
  for (size_t r = 0; r < 7; ++r) EXPECT_DOUBLE_EQ(f.sensitivity_at[r], expected[r]) << kFrocRates[r];
  EXPECT_NEAR(f.cpm, 3.4 / 7, 1e-15);
  const nlohmann::json j = to_json(f);
  EXPECT_NEAR(j["cpm"].get<double>(), 3.4 / 7, 1e-15);
  EXPECT_TRUE(j["curve"]["threshold"][0].is_null()) << "the start point lies above every score";
}

TEST(Froc, ATieBetweenAHitAndAFalsePositiveTakesNoPartialCredit) {
  // The second lesion and a false positive share 0.5: at 1/8 FP per image (0.5 FPs over 4
  // images) that threshold is not allowed, so sensitivity stays 1/2 (LUNA16's np.interp
  // would give 3/4 on the diagonal).
  const Froc f = froc({{0, 0.9, 0}, {0, 0.5, 1}, {1, 0.5, -1}, {2, 0.3, -1}}, 2, 4);
  EXPECT_DOUBLE_EQ(f.sensitivity_at[0], 0.5);
  EXPECT_DOUBLE_EQ(f.sensitivity_at[1], 1.0);
  EXPECT_NEAR(f.cpm, 6.5 / 7, 1e-15);
}

TEST(Froc, MatchesTheLuna16Script) {
  test::TempDir tmp;
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> score(0, 1);
  // Four random detectors (distinct scores, duplicates included); one oracle run for all.
  std::vector<Froc> ours;
  std::vector<std::string> args;
  for (int trial = 0; trial < 4; ++trial) {
    const int64_t images = 10 + trial * 7, lesions = 12 + trial * 5;
    std::vector<Candidate> c;
    const std::string path = tmp.file("rows" + std::to_string(trial) + ".txt");
    std::ofstream rows(path);
    for (int k = 0; k < 40 + 60 * trial; ++k) {
      Candidate m;
      m.image = static_cast<int64_t>(rng() % static_cast<uint64_t>(images));
      m.score = score(rng);
      // About a third hit one of three lesions per image (ids image * 3 + hit < lesions).
      if (rng() % 3 == 0 && m.image * 3 < lesions) m.hit = static_cast<int64_t>(rng() % 3);
      if (m.image * 3 + m.hit >= lesions) m.hit = -1;
      c.push_back(m);
      rows << m.image << " " << std::setprecision(17) << m.score << " " << m.hit << "\n";
    }
    ours.push_back(froc(c, lesions, images));
    args.insert(args.end(), {path, std::to_string(lesions), std::to_string(images)});
  }
  const auto r = test::run_oracle("luna16_froc.py", args);
  std::istringstream lines(r.output);
  for (size_t trial = 0; trial < ours.size(); ++trial) {
    std::string line;
    ASSERT_TRUE(std::getline(lines, line)) << r.error;
    const nlohmann::json want = nlohmann::json::parse(line);
    const Froc& f = ours[trial];
    for (size_t k = 0; k < 7; ++k)
      EXPECT_NEAR(f.sensitivity_at[k], want["sensitivity_at"][k].get<double>(), 1e-12) << "trial " << trial << " rate " << kFrocRates[k];
    EXPECT_NEAR(f.cpm, want["cpm"].get<double>(), 1e-12) << "trial " << trial;
    EXPECT_GT(f.cpm, 0.0);
    EXPECT_LT(f.cpm, 1.0);
  }
}

TEST(Froc, PerfectDetectorScoresOneAndFalsePositivesOnlyZero) {
  std::vector<Candidate> perfect;
  for (int64_t i = 0; i < 5; ++i) perfect.push_back({i, 0.9, 0}), perfect.push_back({i, 0.8, 1});
  EXPECT_DOUBLE_EQ(froc(perfect, 10, 5).cpm, 1.0);
  // False positives scoring below every hit do not lower it.
  perfect.push_back({0, 0.1, -1});
  EXPECT_DOUBLE_EQ(froc(perfect, 10, 5).cpm, 1.0);
  std::vector<Candidate> noise;
  for (int64_t i = 0; i < 5; ++i) noise.push_back({i, 0.1 * static_cast<double>(i), -1});
  EXPECT_DOUBLE_EQ(froc(noise, 10, 5).cpm, 0.0);
  EXPECT_DOUBLE_EQ(froc({}, 10, 5).cpm, 0.0);
  EXPECT_TRUE(std::isnan(froc(noise, 0, 5).cpm)) << "no lesions: sensitivity undefined";
  EXPECT_THROW(froc(noise, 10, 0), UsageError);
  EXPECT_THROW(froc({{0, 0.5, 0}, {0, 0.5, 1}}, 1, 1), UsageError);
}

// A one-channel label map (Z = 1) of width x height with boxes x0..x1, y0..y1 (inclusive) set
// to 1, 2, ... in order.
Image labels(int64_t width, int64_t height, const std::vector<std::array<int64_t, 4>>& boxes) {
  at::Tensor t = at::zeros({1, 1, height, width}, at::kFloat);
  for (size_t k = 0; k < boxes.size(); ++k) {
    const auto& b = boxes[k];
    t[0][0].slice(0, b[2], b[3] + 1).slice(1, b[0], b[1] + 1).fill_(static_cast<float>(k + 1));
  }
  return Image(t, Geometry{}, Metadata{});
}

TEST(MatchLesions, CentreInMaskAndIou) {
  // Truth: lesion 0 at x, y 2..7; lesion 1 at x 20..29, y 0..9.
  const Image truth = labels(40, 20, {{2, 7, 2, 7}, {20, 29, 0, 9}});
  // Predictions: inside lesion 0 (0.9); straddling lesion 1 with its centroid (17.5, 4.5)
  // outside it (0.8, IoU 20/160); far away (0.7); a second, smaller mark in lesion 0 (0.6).
  const Image pred = labels(40, 20, {{3, 6, 3, 6}, {14, 21, 0, 9}, {35, 37, 15, 17}, {2, 2, 2, 3}});
  const std::vector<double> scores{0.9, 0.8, 0.7, 0.6};

  const LesionMatch centre = match_lesions(pred, scores, truth);
  EXPECT_EQ(centre.matched, (std::vector<int64_t>{0, -1, -1, -1}));
  EXPECT_EQ(centre.duplicate_of, (std::vector<int64_t>{-1, -1, -1, 0}));
  EXPECT_EQ(centre.detected_by, (std::vector<int64_t>{0, -1}));

  MatchOptions iou;
  iou.rule = parse_match_rule("iou");
  const LesionMatch by_iou = match_lesions(pred, scores, truth, iou);
  EXPECT_EQ(by_iou.matched, (std::vector<int64_t>{0, 1, -1, -1}));
  // The 2-voxel mark duplicates lesion 0 by its centre, but its IoU (2/36) is too small to count.
  EXPECT_EQ(by_iou.duplicate_of, (std::vector<int64_t>{-1, -1, -1, -1}));
  EXPECT_EQ(by_iou.detected_by, (std::vector<int64_t>{0, 1}));
  iou.min_iou = 0.13;  // above 20/160
  EXPECT_EQ(match_lesions(pred, scores, truth, iou).matched, (std::vector<int64_t>{0, -1, -1, -1}));

  // For the FROC a duplicate re-hits its lesion (ignored there) unless it counts as an FP.
  std::vector<Candidate> c = froc_candidates(centre, scores, 3);
  ASSERT_EQ(c.size(), 4u);
  EXPECT_EQ(c[0].hit, 0);
  EXPECT_EQ(c[3].hit, 0);
  EXPECT_EQ(c[3].image, 3);
  MatchOptions strict;
  strict.duplicates_are_fp = true;
  EXPECT_EQ(froc_candidates(centre, scores, 3, strict)[3].hit, -1);
  EXPECT_THROW(parse_match_rule("overlap"), UsageError);
}

TEST(MatchLesions, IouTakesTheBestUntakenLesionGreedilyByScore) {
  // Truth A: x 0..19, B: x 20..39 (full height 4). P1 (0.9) lies in A (IoU 0.6); P2 (0.8)
  // overlaps A more (IoU 32/104) than B (24/112) but A is taken, so it detects B; P3 (0.7)
  // touches B with IoU 8/104 < 0.1: a false positive, not a duplicate.
  const Image truth = labels(50, 4, {{0, 19, 0, 3}, {20, 39, 0, 3}});
  const Image pred = labels(50, 4, {{0, 11, 0, 3}, {12, 25, 0, 3}, {38, 45, 0, 3}});
  MatchOptions o;
  o.rule = MatchRule::kIou;
  const LesionMatch m = match_lesions(pred, {0.9, 0.8, 0.7}, truth, o);
  EXPECT_EQ(m.matched, (std::vector<int64_t>{0, 1, -1}));
  EXPECT_EQ(m.duplicate_of, (std::vector<int64_t>{-1, -1, -1}));
  // Scores decide the order, not labels: with P2 first it takes A, and P1 is left a duplicate.
  const LesionMatch swapped = match_lesions(pred, {0.5, 0.8, 0.7}, truth, o);
  EXPECT_EQ(swapped.matched, (std::vector<int64_t>{-1, 0, -1}));
  EXPECT_EQ(swapped.duplicate_of, (std::vector<int64_t>{0, -1, -1}));
  EXPECT_THROW(match_lesions(pred, {0.9, 0.8}, truth, o), UsageError) << "label 3 has no score";
  EXPECT_THROW(match_lesions(labels(49, 4, {}), {}, truth, o), UsageError);
}

// (N, Z, Y, X) maps for the report: case 0 has two truth lesions (one found at 0.9, one only at
// 0.3, below the 0.5 threshold) and a false positive at 0.7; case 1 one lesion found at 0.8.
struct Cases {
  at::Tensor prob = at::zeros({2, 4, 16, 16}), truth = at::zeros({2, 4, 16, 16});
  Cases() {
    truth[0].slice(0, 1, 3).slice(1, 2, 6).slice(2, 2, 6).fill_(1);
    truth[0].slice(0, 1, 3).slice(1, 10, 14).slice(2, 10, 14).fill_(1);
    truth[1].slice(0, 0, 3).slice(1, 5, 9).slice(2, 5, 9).fill_(2);  // any non-zero label is lesion
    prob[0].slice(0, 1, 3).slice(1, 3, 5).slice(2, 3, 5).fill_(0.9);
    prob[0].slice(0, 1, 3).slice(1, 10, 14).slice(2, 10, 14).fill_(0.3);
    prob[0].slice(0, 2, 3).slice(1, 2, 4).slice(2, 12, 14).fill_(0.7);
    prob[1].slice(0, 0, 2).slice(1, 5, 8).slice(2, 5, 8).fill_(0.8);
  }
};

TEST(DetectionReport, CountsLesionsAndScoresTheFroc) {
  const Cases c;
  const nlohmann::json r = detection_report(c.prob, c.truth);
  EXPECT_EQ(r["rule"], "centre-in-mask");
  EXPECT_EQ(r["truth_lesions"], 3);
  EXPECT_EQ(r["predicted_lesions"], 3);
  EXPECT_EQ(r["true_positives"], 2);
  EXPECT_EQ(r["false_positives"], 1);
  EXPECT_EQ(r["false_negatives"], 1);
  EXPECT_NEAR(r["sensitivity"].get<double>(), 2.0 / 3, 1e-12);
  EXPECT_NEAR(r["precision"].get<double>(), 2.0 / 3, 1e-12);
  // Hits at 0.9 and 0.8 come before the one false positive (0.7), so every rate sees 2 of 3.
  EXPECT_NEAR(r["froc"]["cpm"].get<double>(), 2.0 / 3, 1e-12);
  ASSERT_EQ(r["per_image"].size(), 2u);
  EXPECT_EQ(r["per_image"][0]["false_negatives"], 1);
  ASSERT_EQ(r["lesions"].size(), 3u);
  int detected = 0;
  for (const auto& l : r["lesions"]) {
    detected += l["detected"].get<bool>();
    EXPECT_EQ(l["volume_mm3"].get<double>(), l["voxels"].get<double>()) << "1 mm voxels by default";
  }
  EXPECT_EQ(detected, 2);
  // A lower candidate threshold finds the 0.3 lesion too.
  DetectionOptions low;
  low.candidates.threshold = 0.2;
  const nlohmann::json all = detection_report(c.prob, c.truth, {}, low);
  EXPECT_EQ(all["true_positives"], 3);
  // At 0.3 it comes after the false positive (0.7): 1 FP over 2 images is 0.5 per image.
  const std::array<double, 7> want{2.0 / 3, 2.0 / 3, 1, 1, 1, 1, 1};
  for (size_t k = 0; k < 7; ++k) EXPECT_NEAR(all["froc"]["sensitivity_at"][k].get<double>(), want[k], 1e-12);
  EXPECT_NEAR(all["froc"]["cpm"].get<double>(), mean7(want), 1e-12);
}

TEST(DetectionReport, PerfectAndFalsePositiveOnlyDetectors) {
  const Cases c;
  const at::Tensor perfect = (c.truth > 0).to(at::kFloat) * 0.9;
  const nlohmann::json p = detection_report(perfect, c.truth);
  EXPECT_DOUBLE_EQ(p["froc"]["cpm"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(p["sensitivity"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(p["precision"].get<double>(), 1.0);
  DetectionOptions iou;
  iou.match.rule = MatchRule::kIou;
  EXPECT_DOUBLE_EQ(detection_report(perfect, c.truth, {}, iou)["froc"]["cpm"].get<double>(), 1.0);

  at::Tensor noise = at::zeros_like(c.prob);
  noise.select(2, 15).select(2, 15).fill_(0.95);  // a column in a corner no lesion reaches
  const nlohmann::json n = detection_report(noise, c.truth);
  EXPECT_DOUBLE_EQ(n["froc"]["cpm"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(n["sensitivity"].get<double>(), 0.0);
  EXPECT_EQ(n["false_positives"], 2);
  EXPECT_TRUE(n["f1"].is_null());
  // Sizes in mm come from the geometry.
  Geometry g;
  g.spacing = {0.5, 0.5, 2.0};
  const nlohmann::json mm = detection_report(perfect, c.truth, {g, g});
  EXPECT_DOUBLE_EQ(mm["lesions"][0]["volume_mm3"].get<double>(), mm["lesions"][0]["voxels"].get<double>() * 0.5);
  EXPECT_THROW(detection_report(perfect, c.truth, {g}), UsageError);
  EXPECT_THROW(detection_report(perfect, c.truth.slice(3, 0, 8)), UsageError);
}

}  // namespace
}  // namespace medlens
