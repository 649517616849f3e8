// `medlens explain` end to end: the three outputs, and bad input refused with a clear message,
// a non-zero exit and nothing written.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>

#include "explain/tiny_models.h"
#include "io/read.h"
#include "io/write.h"
#include "nn/card.h"
#include "nn/network.h"
#include "tools/test_util.h"

namespace fs = std::filesystem;

namespace medlens {
namespace {

// A bundle of the tiny 2-D ResNet (resizing to 32x32) in `dir`.
void write_bundle(const std::string& dir) {
  fs::create_directories(dir);
  const Model m = test::tiny_resnet(2, 32, true);
  save_card(m.card(), dir);
  save_weights(*m.network(), dir + "/weights.pt", false);
}

TEST(ExplainCli, WritesAttributionOverlayAndExplanation) {
  test::TempDir tmp;
  write_bundle(tmp.file("model"));
  const Image image = test::textured_image(2, {40, 36});
  write_image(image, tmp.file("in.nii.gz"));
  for (const char* method : {"gradcam", "kernel-shap"}) {
    SCOPED_TRACE(method);
    const std::string out = tmp.file(std::string("out-") + method);
    std::vector<std::string> args{"explain", "--model", tmp.file("model"), tmp.file("in.nii.gz"), "--method", method,
                                  "--out", out, "--target", "b"};
    if (std::string(method) == "kernel-shap") args.insert(args.end(), {"--param", "samples=60", "--param", "segments=8"});
    const test::CommandResult r = test::run_medlens(args);
    ASSERT_EQ(r.status, 0) << r.error;
    EXPECT_NE(r.output.find("wrote"), std::string::npos);
    for (const char* f : {"attribution.nii.gz", "overlay.png", "explanation.json"}) EXPECT_TRUE(fs::exists(out + "/" + f)) << f;
    const Image a = read_image(out + "/attribution.nii.gz");
    EXPECT_EQ(a.width(), 40);
    EXPECT_EQ(a.height(), 36);
    for (int k = 0; k < 3; ++k) {
      EXPECT_NEAR(a.geometry().spacing[k], image.geometry().spacing[k], 1e-5);
      EXPECT_NEAR(a.geometry().origin[k], image.geometry().origin[k], 1e-4);
    }
    const nlohmann::json j = nlohmann::json::parse(test::read_text(out + "/explanation.json"));
    EXPECT_EQ(j["method"], method);
    EXPECT_EQ(j["target"], "b");
    EXPECT_EQ(j["model"], "tiny@1");
    EXPECT_TRUE(j["score"].is_number());
    EXPECT_TRUE(j["seconds"].is_number());
    ASSERT_TRUE(j["top_regions"].is_array());
    for (const auto& reg : j["top_regions"])
      EXPECT_TRUE(reg.contains("box_voxels") && reg.contains("box_lps_mm") && reg.contains("mass_share"));
    if (std::string(method) == "kernel-shap") {
      EXPECT_EQ(j["params"]["samples"], 60);
    }
  }
}

TEST(ExplainCli, EvaluateAddsTheMetrics) {
  test::TempDir tmp;
  write_bundle(tmp.file("model"));
  write_image(test::textured_image(2, {32, 32}), tmp.file("in.nii.gz"));
  const test::CommandResult r = test::run_medlens({"explain", "--model", tmp.file("model"), tmp.file("in.nii.gz"), "--out",
                                                   tmp.file("out"), "--evaluate", "--json"});
  ASSERT_EQ(r.status, 0) << r.error;
  const nlohmann::json j = nlohmann::json::parse(r.output);
  const auto& ev = j["evaluation"];
  EXPECT_TRUE(ev["deletion"]["auc"].is_number());
  EXPECT_TRUE(ev["insertion"]["random_auc"].is_number());
  EXPECT_TRUE(ev["randomisation"]["passed"].is_boolean());
  EXPECT_TRUE(ev["stability"]["max_sensitivity"].is_number());
}

TEST(ExplainCli, BadInputIsRefusedClearlyWithNothingWritten) {
  test::TempDir tmp;
  write_bundle(tmp.file("model"));
  write_image(test::textured_image(2, {32, 32}), tmp.file("in.nii.gz"));
  write_image(test::textured_image(3, {16, 16, 8}), tmp.file("vol.nii.gz"));
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  const std::string model = tmp.file("model");
  const std::vector<Case> cases = {
      {{"--method", "gradcamm", tmp.file("in.nii.gz")}, "unknown method 'gradcamm'"},
      {{tmp.file("vol.nii.gz")}, "3-D volume"},
      {{tmp.file("missing.nii.gz")}, "missing.nii.gz"},
      {{"--layer", "layer7", tmp.file("in.nii.gz")}, "no layer 'layer7'"},
      {{"--target", "c", tmp.file("in.nii.gz")}, "no class 'c'"},
      {{"--param=steps", tmp.file("in.nii.gz")}, "key=value"},
      {{"--method", "integrated-gradients", "--param=stpes=3", tmp.file("in.nii.gz")}, "unknown parameter 'stpes'"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.says);
    const std::string out = tmp.file("out");
    std::vector<std::string> args{"explain", "--model", model, "--out", out};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const test::CommandResult r = test::run_medlens(args);
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.error.find(c.says), std::string::npos) << r.error;
    EXPECT_FALSE(fs::exists(out)) << "nothing may be written for bad input";
  }
  // The volume's message names the file.
  const test::CommandResult r =
      test::run_medlens({"explain", "--model", model, "--out", tmp.file("out"), tmp.file("vol.nii.gz")});
  EXPECT_NE(r.error.find("vol.nii.gz"), std::string::npos) << r.error;
}

}  // namespace
}  // namespace medlens
