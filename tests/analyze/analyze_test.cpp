// `medlens analyze` as users run it: PNG, DICOM and NIfTI inputs each give findings.json and
// report.html; wrong inputs are refused with a reason; results are bit-identical run after run.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>

#include "core/image.h"
#include "io/read.h"
#include "io/write.h"
#include "tools/test_util.h"

namespace fs = std::filesystem;

namespace medlens {
namespace {

const std::string kModel = std::string(MEDLENS_MODELS_DIR) + "/pneumoniamnist";
std::string xray() { return test::vendored_samples() + "/pneumoniamnist/val_00000.png"; }

nlohmann::json findings(const std::string& dir) { return nlohmann::json::parse(test::read_text(dir + "/findings.json")); }

TEST(Analyze, PngDicomAndNiftiInputsEachGiveFindingsAndAReport) {
  test::TempDir tmp;
  // The same chest X-ray as PNG, as a DICOM (Secondary Capture of a DX image) and as NIfTI.
  Image img = read_image(xray());
  img.metadata().modality = "DX";
  write_image(img, tmp.file("xray.dcm"));
  write_image(img, tmp.file("xray.nii.gz"));
  double p_png = -1;
  for (const std::string& input : {xray(), tmp.file("xray.dcm"), tmp.file("xray.nii.gz")}) {
    SCOPED_TRACE(input);
    const std::string out = tmp.file(fs::path(input).filename().string() + ".out");
    const auto r = test::run_medlens({"analyze", input, "--model", kModel, "--out", out});
    ASSERT_EQ(r.status, 0) << r.error;
    for (const char* f : {"findings.json", "report.html", "overlay.png", "attribution.nii.gz"})
      EXPECT_TRUE(fs::exists(out + "/" + f)) << f;
    const auto j = findings(out);
    const auto& res = j["result"];
    EXPECT_TRUE(res["status"] == "ok" || res["status"] == "inconclusive");
    double sum = 0;
    for (auto& [k, v] : res["probabilities"].items()) sum += v.get<double>();
    EXPECT_NEAR(sum, 1.0, 1e-6);
    EXPECT_EQ(j["provenance"]["bundle_sha256"].get<std::string>().size(), 64u);
    EXPECT_FALSE(j["model"]["limitations"].empty());
    EXPECT_EQ(j["explanation"]["method"], "gradcam");
    const std::string html = test::read_text(out + "/report.html");
    EXPECT_NE(html.find("What this model cannot do"), std::string::npos);
    EXPECT_NE(html.find("data:image/png;base64,"), std::string::npos);
    // The same pixels give the same answer whatever the container.
    const double p = res["probabilities"]["pneumonia"].get<double>();
    if (p_png < 0) p_png = p;
    EXPECT_NEAR(p, p_png, 1e-6);
    // The attribution map is on the input's grid.
    EXPECT_EQ(read_image(out + "/attribution.nii.gz").shape(), (Shape{1, 1, 28, 28}));
  }
}

TEST(Analyze, WrongModalityAndVolumesAreRefusedNotGuessedAt) {
  test::TempDir tmp;
  auto r = test::run_medlens({"analyze", test::pydicom_files() + "/CT_small.dcm", "--model", kModel, "--out", tmp.file("ct")});
  EXPECT_EQ(r.status, 3);
  EXPECT_NE(r.error.find("modality is CT"), std::string::npos) << r.error;
  r = test::run_medlens({"analyze", test::mricron_templates() + "/ch2.nii.gz", "--model", kModel, "--out", tmp.file("vol")});
  EXPECT_EQ(r.status, 3);
  EXPECT_NE(r.error.find("3-D volume"), std::string::npos) << r.error;
  EXPECT_FALSE(fs::exists(tmp.file("ct/findings.json")));
  EXPECT_FALSE(fs::exists(tmp.file("vol/findings.json")));
  r = test::run_medlens({"analyze", tmp.file("missing.png"), "--model", kModel, "--out", tmp.file("x")});
  EXPECT_EQ(r.status, 3);
}

TEST(Analyze, FindingsAreBitIdenticalRunAfterRun) {
  test::TempDir tmp;
  for (const char* out : {"a", "b"})
    ASSERT_EQ(test::run_medlens({"analyze", xray(), "--model", kModel, "--out", tmp.file(out), "--mc", "8"}).status, 0);
  EXPECT_EQ(test::read_text(tmp.file("a/findings.json")), test::read_text(tmp.file("b/findings.json")));
  EXPECT_EQ(test::read_text(tmp.file("a/report.html")), test::read_text(tmp.file("b/report.html")));
}

TEST(Analyze, DefaultModelIsChosenByModality) {
  test::TempDir tmp;
  // No --model: a PNG chest X-ray goes to the pneumonia model shipped in models/.
  const auto r = test::run_medlens({"analyze", xray(), "--out", tmp.file("d")});
  ASSERT_EQ(r.status, 0) << r.error;
  EXPECT_EQ(findings(tmp.file("d"))["model"]["id"].get<std::string>().rfind("pneumoniamnist@", 0), 0u);
}

}  // namespace
}  // namespace medlens
