// The default lesion model (models/brain-lesion: 3-D U-Net on T1 + a second contrast) on
// held-out synthetic volumes drawn with a new seed, against its one-channel ablation
// (models/brain-lesion-t1only, trained the same way on T1 alone); and `medlens analyze` on a
// two-series study: findings in mm, overlays, masks, explanations, and refusals.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/image.h"
#include "infer/model.h"
#include "io/manifest.h"
#include "io/read.h"
#include "metrics/detection.h"
#include "metrics/segmentation.h"
#include "nn/network.h"
#include "tools/test_util.h"
#include "transforms/channels.h"

namespace fs = std::filesystem;

namespace medlens {
namespace {

const std::string kModels = MEDLENS_MODELS_DIR;
std::string sample(const std::string& f) { return test::vendored_samples() + "/brain-lesion/" + f; }

struct Scores {
  double dice = 0;  // mean over volumes with lesions (normals would add free 1s)
  double cpm = 0, sensitivity = 0, precision = 0;
};

// Windows like the training data's, from a seed the models never saw.
const std::string& held_out() {
  static test::TempDir* tmp = new test::TempDir;
  static const std::string dir = [] {
    const std::string out = tmp->file("held_out");
    const std::string t = test::mricron_templates();
    const auto r = test::run_medlens({"synth-lesions", "--background", t + "/ch2.nii.gz", "--region", t + "/ch2bet.nii.gz",
                                      "--spacing-mm", "2", "--second-contrast", "t2-like", "--size", "48;48;48",
                                      "--count", "40", "--seed", "424242", "--normal-fraction", "0.2",
                                      "--lesions-per-image", "1;2", "--radius-mm", "4;10", "--out", out});
    EXPECT_EQ(r.status, 0) << r.error;
    return out;
  }();
  return dir;
}

Scores score(const std::string& bundle) {
  const Model model = Model::load(bundle);
  Network& net = *model.network();
  net.eval();
  torch::NoGradGuard no_grad;
  const auto& channels = model.card().input.channel_names;
  std::vector<at::Tensor> probs, truths;
  std::vector<Geometry> geometry;
  double dice = 0;
  int lesion_cases = 0;
  for (const auto& r : load_manifest(held_out() + "/manifest.csv").rows) {
    const Image image = read_manifest_input(r, channels);
    const at::Tensor p = at::softmax(net.forward(model.prepare(image).unsqueeze(0)), 1)[0][1];
    const at::Tensor truth = read_image(r.mask).voxels()[0] > 0.5;
    if (truth.any().item<bool>()) {
      dice += overlap_scores(p > 0.5, truth, image.geometry().spacing, false).dice;
      ++lesion_cases;
    }
    probs.push_back(p);
    truths.push_back(truth.to(at::kFloat));
    geometry.push_back(image.geometry());
  }
  const nlohmann::json d = detection_summary(at::stack(probs), at::stack(truths), geometry);
  return {dice / lesion_cases, d["froc"]["cpm"].get<double>(), d["sensitivity"].get<double>(), d["precision"].get<double>()};
}

TEST(BrainLesionModel, BothChannelsReachTheTargetsAndBeatOneChannel) {
  const Scores two = score(kModels + "/brain-lesion");
  const Scores one = score(kModels + "/brain-lesion-t1only");
  std::printf("held-out (40 windows, seed 424242)   Dice   CPM    sensitivity precision\n");
  std::printf("  T1 + contrast2 (brain-lesion)       %.3f  %.3f  %.3f       %.3f\n", two.dice, two.cpm, two.sensitivity, two.precision);
  std::printf("  T1 only (brain-lesion-t1only)       %.3f  %.3f  %.3f       %.3f\n", one.dice, one.cpm, one.sensitivity, one.precision);
  EXPECT_GE(two.dice, 0.80);
  EXPECT_GE(two.cpm, 0.85);
  EXPECT_LT(one.dice, two.dice);
  EXPECT_LT(one.cpm, two.cpm);
}

TEST(BrainLesionModel, CardDeclaresItsSeriesAndItsDetectionMetrics) {
  const Model model = Model::load(kModels + "/brain-lesion");
  EXPECT_EQ(model.card().input.channel_names, (std::vector<std::string>{"T1", "contrast2"}));
  EXPECT_EQ(model.card().task, "segment");
  EXPECT_TRUE(model.card().metrics["val"]["detection"]["froc"].contains("cpm"));
  EXPECT_FALSE(model.card().limitations.empty());
}

nlohmann::json findings(const std::string& dir) { return nlohmann::json::parse(test::read_text(dir + "/findings.json")); }

TEST(AnalyzeLesions, ATwoSeriesStudyGivesFindingsInMillimetres) {
  test::TempDir tmp;
  const std::string out = tmp.file("out");
  const auto r = test::run_medlens({"analyze", sample("t1.nii.gz"), "--channel", "contrast2=" + sample("contrast2.nii.gz"),
                                    "--out", out});  // the default model for an MR volume
  ASSERT_EQ(r.status, 0) << r.error;
  std::printf("%s", r.output.c_str());
  const nlohmann::json j = findings(out);
  EXPECT_EQ(j["model"]["id"].get<std::string>().rfind("brain-lesion", 0), 0u);
  EXPECT_EQ(j["result"]["status"], "ok");
  const nlohmann::json truth = nlohmann::json::parse(test::read_text(sample("lesions.json")))["images"][0]["lesions"];
  ASSERT_EQ(j["lesions"].size(), truth.size()) << j["lesions"].dump(1);
  for (const auto& t : truth) {
    // The finding whose centre lies nearest the drawn lesion's centre.
    const Vec3 c{t["centre_lps_mm"][0].get<double>(), t["centre_lps_mm"][1].get<double>(), t["centre_lps_mm"][2].get<double>()};
    double best = 1e9;
    nlohmann::json match;
    for (const auto& f : j["lesions"]) {
      double d2 = 0;
      for (int a = 0; a < 3; ++a) d2 += std::pow(f["centroid_lps"][a].get<double>() - c[a], 2);
      if (std::sqrt(d2) < best) best = std::sqrt(d2), match = f;
    }
    EXPECT_LT(best, 4.0) << "centre within two voxels of the drawn lesion's";
    const double v = t["volume_mm3"].get<double>();
    EXPECT_NEAR(match["volume_mm3"].get<double>(), v, 0.3 * v) << "volume within 30% of the drawn lesion's";
    EXPECT_GT(match["probability"].get<double>(), 0.5);
    EXPECT_GT(match["longest_axial_diameter_mm"].get<double>(), match["perpendicular_diameter_mm"].get<double>() - 1e-9);
    for (const auto& file : match["files"]) EXPECT_TRUE(fs::exists(out + "/" + file.get<std::string>())) << file;
    EXPECT_TRUE(match.contains("explanation"));
    EXPECT_GE(match["explanation"]["share_inside_lesion"].get<double>(), 0.0);
  }
  const Image labels = read_image(out + "/lesions.nii.gz");
  EXPECT_EQ(labels.shape(), read_image(sample("t1.nii.gz")).shape()) << "the lesion mask is on the input's grid";
  EXPECT_EQ(labels.voxels().max().item<float>(), static_cast<float>(truth.size()));
  const std::string html = test::read_text(out + "/report.html");
  EXPECT_NE(html.find("RECIST"), std::string::npos);
  EXPECT_NE(html.find("What this model cannot do"), std::string::npos);

  // Deterministic: the same study gives byte-identical findings.
  const auto again = test::run_medlens({"analyze", sample("t1.nii.gz"), "--channel", "contrast2=" + sample("contrast2.nii.gz"),
                                        "--model", kModels + "/brain-lesion", "--explain", "none", "--out", tmp.file("a")});
  const auto twice = test::run_medlens({"analyze", sample("t1.nii.gz"), "--channel", "contrast2=" + sample("contrast2.nii.gz"),
                                        "--model", kModels + "/brain-lesion", "--explain", "none", "--out", tmp.file("b")});
  ASSERT_EQ(again.status, 0) << again.error;
  EXPECT_EQ(test::read_text(tmp.file("a/findings.json")), test::read_text(tmp.file("b/findings.json")));
}

TEST(AnalyzeLesions, AStudyWithoutTheSecondSeriesOrOfTheWrongKindIsRefused) {
  test::TempDir tmp;
  const std::string model = kModels + "/brain-lesion";
  auto r = test::run_medlens({"analyze", sample("t1.nii.gz"), "--model", model, "--out", tmp.file("o1")});
  EXPECT_EQ(r.status, 3);
  EXPECT_NE(r.error.find("--channel contrast2="), std::string::npos) << r.error;
  EXPECT_FALSE(fs::exists(tmp.file("o1/findings.json")));
  r = test::run_medlens({"analyze", sample("t1.nii.gz"), "--model", model, "--channel", "flair=" + sample("contrast2.nii.gz"),
                         "--out", tmp.file("o2")});
  EXPECT_EQ(r.status, 2) << r.error;
  EXPECT_NE(r.error.find("flair"), std::string::npos) << r.error;
  r = test::run_medlens({"analyze", test::vendored_samples() + "/pneumoniamnist/val_00000.png", "--model", model,
                         "--channel", "contrast2=" + sample("contrast2.nii.gz"), "--out", tmp.file("o3")});
  EXPECT_NE(r.status, 0);
  EXPECT_FALSE(fs::exists(tmp.file("o3/findings.json")));
}

}  // namespace
}  // namespace medlens
