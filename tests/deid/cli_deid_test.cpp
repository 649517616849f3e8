// `medlens deid` end to end: a file and a folder, the --json report, and bad input (not DICOM,
// truncated, a missing key file) failing with a message naming the file, a non-zero exit and
// nothing written. The audit lines and the report never hold an identifying value.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include "deid_util.h"
#include "dicom_builder.h"

namespace fs = std::filesystem;

namespace medlens::deid {
namespace {

using test_util::read_bytes;

const char* const kCanaries[] = {"Finch", "Canary", "CANARY", "20210304", "MRN-", "Saint"};

void expect_no_canary(const std::string& text, const std::string& what) {
  for (const char* c : kCanaries) EXPECT_EQ(text.find(c), std::string::npos) << what << " holds " << c;
}

class DeidCli : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(dir_.file("in/sub"));
    test_util::ImageSpec spec;
    spec.burned_in_annotation = "NO";
    const cv::Mat image(24, 24, CV_8U, cv::Scalar(80));
    test_util::write_dicom_image(image, dir_.file("in/a.dcm"), spec);
    test_util::write_dicom_image(image, dir_.file("in/sub/b.dcm"), spec);
    test_util::write_bytes(dir_.file("in/notes.txt"), "not DICOM: Finch Canary");
    test_util::write_key(dir_.file("site.key"), 's');
  }
  test::TempDir dir_;
};

TEST_F(DeidCli, FileAndFolderWithAuditLinesThatIdentifyNoOne) {
  auto r = test::run_medlens({"deid", dir_.file("in/a.dcm"), dir_.file("a-out.dcm"), "--key", dir_.file("site.key")});
  ASSERT_EQ(r.status, 0) << r.error;
  EXPECT_TRUE(fs::exists(dir_.file("a-out.dcm")));
  EXPECT_NE(r.output.find("deid ok"), std::string::npos) << r.output;
  expect_no_canary(r.output + r.error, "file run output");
  expect_no_canary(read_bytes(dir_.file("a-out.dcm")), "de-identified file");

  r = test::run_medlens({"deid", dir_.file("in"), dir_.file("out"), "--key", dir_.file("site.key"),
                         "--report", dir_.file("report.json")});
  ASSERT_EQ(r.status, 0) << r.error;
  int files = 0;
  for (auto& e : fs::recursive_directory_iterator(dir_.file("out"))) {
    if (!e.is_regular_file()) continue;
    ++files;
    EXPECT_EQ(e.path().extension(), ".dcm");
    EXPECT_EQ(fs::relative(e.path(), dir_.file("out")).string().rfind("2.25.", 0), 0u) << "named by new UIDs";
    expect_no_canary(read_bytes(e.path().string()), e.path().string());
  }
  EXPECT_EQ(files, 2) << "the text file is not copied";
  EXPECT_NE(r.output.find("1 non-DICOM file(s) not copied"), std::string::npos) << r.output;
  expect_no_canary(r.output + r.error, "folder run output");
  expect_no_canary(read_bytes(dir_.file("report.json")), "report file");
}

TEST_F(DeidCli, JsonReportListsEveryAction) {
  const auto r = test::run_medlens({"deid", dir_.file("in"), dir_.file("out"), "--json", "--key", dir_.file("site.key"),
                                    "--options", "retain-long-modified-dates,clean-descriptors"});
  ASSERT_EQ(r.status, 0) << r.error;
  const auto j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["profile"], "Basic Application Confidentiality Profile");
  EXPECT_EQ(j["options"], nlohmann::json::array({"retain-long-modified-dates", "clean-descriptors"}));
  EXPECT_EQ(j["key_fingerprint"].get<std::string>().size(), 16u);
  EXPECT_EQ(j["skipped_non_dicom"], 1);
  ASSERT_EQ(j["instances"].size(), 2u);
  for (const auto& i : j["instances"]) {
    EXPECT_EQ(i["status"], "ok");
    EXPECT_EQ(i["input_sha256"].get<std::string>().size(), 64u);
    std::set<std::string> names;
    for (const auto& a : i["actions"]) names.insert(a["name"].get<std::string>() + ":" + a["action"].get<std::string>());
    EXPECT_TRUE(names.count("Patient's Name:P")) << "pseudonym";
    EXPECT_TRUE(names.count("Study Date:C")) << "shifted";
    EXPECT_TRUE(names.count("Institution Name:X"));
    EXPECT_TRUE(names.count("PatientIdentityRemoved:A"));
    EXPECT_GT(i["counts"]["U"].get<int>(), 2);
  }
  EXPECT_NE(r.error.find("deid ok"), std::string::npos) << "audit lines go to stderr with --json";
  expect_no_canary(r.output + r.error, "--json output");
}

TEST_F(DeidCli, BadInputFailsNamingTheFileAndWritesNothing) {
  // Not DICOM.
  auto r = test::run_medlens({"deid", dir_.file("in/notes.txt"), dir_.file("x.dcm")});
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.error.find("notes.txt"), std::string::npos) << r.error;
  EXPECT_FALSE(fs::exists(dir_.file("x.dcm")));
  // Truncated DICOM (half of a real file), alone and inside a folder of good ones.
  const std::string whole = read_bytes(dir_.file("in/a.dcm"));
  test_util::write_bytes(dir_.file("in/sub/cut.dcm"), whole.substr(0, whole.size() / 2));
  r = test::run_medlens({"deid", dir_.file("in/sub/cut.dcm"), dir_.file("x.dcm")});
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.error.find("cut.dcm"), std::string::npos) << r.error;
  EXPECT_FALSE(fs::exists(dir_.file("x.dcm")));
  r = test::run_medlens({"deid", dir_.file("in"), dir_.file("out")});
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.error.find("cut.dcm"), std::string::npos) << r.error;
  EXPECT_FALSE(fs::exists(dir_.file("out"))) << "a folder is written whole or not at all";
  for (auto& e : fs::directory_iterator(dir_.path()))
    EXPECT_EQ(e.path().filename().string().find("out"), std::string::npos) << "temporary left: " << e.path();
  // A missing key file.
  fs::remove(dir_.file("in/sub/cut.dcm"));
  r = test::run_medlens({"deid", dir_.file("in"), dir_.file("out"), "--key", dir_.file("nokey")});
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.error.find("nokey"), std::string::npos) << r.error;
  EXPECT_FALSE(fs::exists(dir_.file("out")));
  // Unknown option, OUT inside IN, missing IN.
  r = test::run_medlens({"deid", dir_.file("in"), dir_.file("out"), "--options", "retain-all"});
  EXPECT_EQ(r.status, 2) << r.error;
  EXPECT_NE(r.error.find("retain-all"), std::string::npos);
  r = test::run_medlens({"deid", dir_.file("in"), dir_.file("in/sub/out")});
  EXPECT_NE(r.status, 0);
  EXPECT_FALSE(fs::exists(dir_.file("in/sub/out")));
  r = test::run_medlens({"deid", dir_.file("nothing"), dir_.file("out")});
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.error.find("nothing"), std::string::npos);
  for (const auto& err : {r.error}) expect_no_canary(err, "error messages");
}

}  // namespace
}  // namespace medlens::deid
