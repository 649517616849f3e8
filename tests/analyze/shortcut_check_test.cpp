// The shortcut check in `medlens analyze`: findings.json says how much of the explanation lies
// on burned-in text or calipers, and report.html shows it. Runs on a small bundle written here
// (the default models may not be trained yet) and a real BUSI image with text drawn on it.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <ATen/ATen.h>

#include <filesystem>
#include <opencv2/imgproc.hpp>

#include "core/image.h"
#include "io/read.h"
#include "io/write.h"
#include "nn/card.h"
#include "nn/network.h"
#include "tools/test_util.h"

namespace fs = std::filesystem;

namespace medlens {
namespace {

void write_us_bundle(const std::string& dir) {
  fs::create_directories(dir);
  const ModelCard card = ModelCard::from_json(
      {{"name", "us-tiny"}, {"version", "1"}, {"task", "classify"}, {"classes", {"normal", "lesion"}},
       {"positive_class", "lesion"}, {"limitations", {"test model"}},
       {"input", {{"dims", 2}, {"channels", 1}, {"size", {64, 64}}, {"modalities", {"US"}}}},
       {"preprocessing", {{"transforms", {{{"op", "resize"}, {"size", {64, 64}}}, {{"op", "zscore"}}}}}},
       {"architecture", {{"name", "resnet"}, {"in_channels", 1}, {"num_classes", 2}, {"dims", 2},
                         {"blocks", {1, 1}}, {"width", 8}, {"small_input", true}, {"dropout", 0.0}}}});
  torch::manual_seed(2);
  NetworkPtr net = make_network(card.architecture);
  save_card(card, dir);
  save_weights(*net, dir + "/weights.pt", false);
}

TEST(AnalyzeShortcutCheck, FindingsAndReportSayHowMuchAttributionLiesOnBurnedInMarks) {
  test::TempDir tmp;
  write_us_bundle(tmp.file("model"));
  Image us = read_image(test::vendored_samples() + "/busi/normal_100.png");
  if (us.channels() > 1) us = us.with_voxels(us.voxels().mean(0, true));
  us.metadata().modality = "US";
  const at::Tensor g = us.voxels()[0][0].to(at::kFloat).contiguous();
  cv::Mat m(static_cast<int>(g.size(0)), static_cast<int>(g.size(1)), CV_32F, g.data_ptr<float>());
  cv::putText(m, "RT BREAST 9:00 4CM FN", {60, 230}, cv::FONT_HERSHEY_SIMPLEX, 0.4, cv::Scalar(255), 1, cv::LINE_8);
  write_image(us.with_voxels(g.clone().view({1, 1, g.size(0), g.size(1)})), tmp.file("us.nii.gz"));
  const auto r = test::run_medlens({"analyze", tmp.file("us.nii.gz"), "--model", tmp.file("model"), "--out", tmp.file("out")});
  ASSERT_EQ(r.status, 0) << r.error;
  const auto j = nlohmann::json::parse(test::read_text(tmp.file("out/findings.json")));
  const auto& s = j["explanation"]["shortcut_check"];
  ASSERT_TRUE(s.is_object()) << j["explanation"].dump();
  EXPECT_TRUE(s["applicable"].get<bool>());
  const double share = s["marks_share"].get<double>(), area = s["marks_area_share"].get<double>();
  EXPECT_GE(share, 0.0);
  EXPECT_LE(share, 1.0);
  EXPECT_GT(area, 0.001) << "the drawn text must be found";
  EXPECT_LT(area, 0.1);
  EXPECT_EQ(s["flag"].get<bool>(), share >= 0.10 && share >= 3 * area);
  const std::string html = test::read_text(tmp.file("out/report.html"));
  EXPECT_NE(html.find("Shortcut check"), std::string::npos);
  EXPECT_NE(html.find("share of the attribution on text/calipers"), std::string::npos);
}

}  // namespace
}  // namespace medlens
