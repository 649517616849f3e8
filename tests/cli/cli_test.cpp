// The medlens binary as users script it: help, exit statuses, info and convert on real files,
// and bad input of every kind giving one line, status 3 and no output file.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <random>

#include "tools/test_util.h"

namespace fs = std::filesystem;

namespace medlens {
namespace {

using test::run_medlens;

std::string pyd(const std::string& name) { return test::pydicom_files() + "/" + name; }
std::string ch2() { return test::mricron_templates() + "/ch2.nii.gz"; }

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string prefix(const std::string& path, size_t n) {
  std::string all = test::read_text(path);
  return all.substr(0, std::min(n, all.size()));
}

int lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

TEST(Cli, HelpWorksForEveryCommand) {
  for (const char* cmd : {"info", "convert"}) {
    SCOPED_TRACE(cmd);
    const auto r = run_medlens({cmd, "--help"});
    EXPECT_EQ(r.status, 0);
    EXPECT_NE(r.output.find("Usage"), std::string::npos) << r.output;
  }
  const auto top = run_medlens({"--help"});
  EXPECT_EQ(top.status, 0);
  EXPECT_NE(top.output.find("convert"), std::string::npos);
}

TEST(Cli, BadUsageIsStatusTwo) {
  EXPECT_EQ(run_medlens({"frobnicate"}).status, 2);
  EXPECT_EQ(run_medlens({}).status, 2);
  EXPECT_EQ(run_medlens({"info"}).status, 2);
  test::TempDir tmp;
  const auto r = run_medlens({"convert", pyd("CT_small.dcm"), tmp.file("x.png"), "--window", "40"});
  EXPECT_EQ(r.status, 2) << r.error;
  EXPECT_NE(r.error.find("--window"), std::string::npos);
  EXPECT_EQ(run_medlens({"convert", pyd("CT_small.dcm"), tmp.file("x.unknownext")}).status, 2);
  // Counts that could only be typos are refused before any work (they used to run for hours).
  const std::string model = std::string(MEDLENS_SOURCE_DIR) + "/models/pneumoniamnist";
  const std::string png = test::vendored_samples() + "/pneumoniamnist/val_00112.png";
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"predict", png, "--model", model, "--mc", "100000000"},
        std::vector<std::string>{"synth-lesions", "--background", png, "--out", tmp.file("s"), "--count", "1000000000"}}) {
    const auto bad = run_medlens(args);
    EXPECT_EQ(bad.status, 2) << args[0] << ": " << bad.error;
    EXPECT_NE(bad.error.find("not in range"), std::string::npos) << bad.error;
  }
  EXPECT_FALSE(std::filesystem::exists(tmp.file("s")));
  // Options for another kind of input are refused, not silently ignored (the whole slice
  // would come back where a region was asked for).
  for (const std::vector<std::string>& extra : {std::vector<std::string>{"--region", "0,0,16,16"},
                                                std::vector<std::string>{"--level", "1"},
                                                std::vector<std::string>{"--series", "2"}}) {
    std::vector<std::string> args = {"convert", pyd("CT_small.dcm"), tmp.file("r.png")};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto r = run_medlens(args);
    EXPECT_EQ(r.status, 2) << extra[0] << ": " << r.error;
    EXPECT_NE(r.error.find("applies to"), std::string::npos) << r.error;
    EXPECT_FALSE(std::filesystem::exists(tmp.file("r.png")));
  }
}

TEST(Cli, TrainRefusesBadMixupAndEmaBeforeReadingAnyImage) {
  test::TempDir tmp;
  const std::string manifest = test::vendored_samples() + "/pneumoniamnist/manifest.csv";
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--mixup", "beta=1"}, "no key 'beta'"},
      {{"--mixup", "alpha=0"}, "alpha must be > 0"},
      {{"--ema", "1"}, "ema"},
      {{"--ema", "-0.5"}, "--ema"},
      {{"--task", "segment", "--mixup", "alpha=1"}, "for classifiers"}};
  for (const auto& [flags, message] : cases) {
    std::vector<std::string> args = {"train", "--manifest", manifest, "--out", tmp.file("m"), "--epochs", "1"};
    args.insert(args.end(), flags.begin(), flags.end());
    const auto r = run_medlens(args);
    EXPECT_EQ(r.status, 2) << flags.back();
    EXPECT_NE(r.error.find(message), std::string::npos) << r.error;
    EXPECT_FALSE(fs::exists(tmp.file("m"))) << flags.back();
  }
}

TEST(Cli, InfoJsonDescribesACtSlice) {
  const auto r = run_medlens({"info", pyd("CT_small.dcm"), "--json"});
  ASSERT_EQ(r.status, 0) << r.error;
  const auto j = nlohmann::json::parse(r.output);
  ASSERT_EQ(j["images"].size(), 1u);
  const auto& img = j["images"][0];
  EXPECT_EQ(img["metadata"]["modality"], "CT");
  EXPECT_EQ(img["metadata"]["units"], "HU");
  EXPECT_EQ(img["geometry"]["size"], nlohmann::json({128, 128, 1}));
  EXPECT_NEAR(img["geometry"]["spacing_mm"][0].get<double>(), 0.661468, 1e-6);
  EXPECT_EQ(img["geometry"]["orientation"], "LPS");
  EXPECT_FLOAT_EQ(img["value_range"][0].get<float>(), -896.f);
  EXPECT_FLOAT_EQ(img["value_range"][1].get<float>(), 1167.f);
  // Identity never appears in info output.
  EXPECT_EQ(r.output.find("CompressedSamples"), std::string::npos);  // CT_small's PatientName
}

TEST(Cli, InfoOnAFolderListsEverySeries) {
  test::TempDir tmp;
  fs::create_directories(tmp.file("study"));
  ASSERT_EQ(run_medlens({"convert", ch2(), tmp.file("study/t1") + "/", "--modality", "MR"}).status, 0);
  fs::copy_file(pyd("CT_small.dcm"), tmp.file("study/ct.dcm"));
  fs::copy_file(pyd("test-SR.dcm"), tmp.file("study/sr.dcm"));
  const auto r = run_medlens({"info", tmp.file("study"), "--json"});
  ASSERT_EQ(r.status, 0) << r.error;
  const auto j = nlohmann::json::parse(r.output);
  ASSERT_EQ(j["images"].size(), 3u);
  int mr = 0, ct = 0, sr = 0;
  for (const auto& s : j["images"]) {
    if (s["metadata"]["modality"] == "MR") {
      ++mr;
      EXPECT_EQ(s["files"], 181);
      EXPECT_EQ(s["geometry"]["size"], nlohmann::json({181, 217, 181}));
    } else if (s["metadata"]["modality"] == "CT") {
      ++ct;
    } else if (s["metadata"]["modality"] == "SR") {
      ++sr;
      EXPECT_FALSE(s["readable"].get<bool>());
    }
  }
  EXPECT_EQ(mr + ct + sr, 3);
  const auto text = run_medlens({"info", tmp.file("study")});
  EXPECT_EQ(text.status, 0);
  EXPECT_NE(text.output.find("series 3 of 3"), std::string::npos);
}

TEST(Cli, ConvertWritesWindowedPngAndNifti) {
  test::TempDir tmp;
  auto r = run_medlens({"convert", pyd("CT_small.dcm"), tmp.file("ct.png"), "--window", "40,400"});
  ASSERT_EQ(r.status, 0) << r.error;
  EXPECT_TRUE(fs::file_size(tmp.file("ct.png")) > 100);
  r = run_medlens({"convert", pyd("CT_small.dcm"), tmp.file("ct.nii.gz")});
  ASSERT_EQ(r.status, 0) << r.error;
  const auto info = run_medlens({"info", tmp.file("ct.nii.gz"), "--json"});
  const auto j = nlohmann::json::parse(info.output);
  EXPECT_FLOAT_EQ(j["images"][0]["value_range"][0].get<float>(), -896.f);
  EXPECT_NEAR(j["images"][0]["geometry"]["origin_lps_mm"][0].get<double>(), -158.135803, 1e-4);
}

// Every kind of bad input: exit status 3, a single line naming the file, nothing written.
TEST(Cli, BadInputGivesOneLineStatusThreeAndNoOutput) {
  test::TempDir tmp;
  std::mt19937 rng(42);
  std::string random(4096, '\0');
  for (auto& c : random) c = static_cast<char>(rng());
  write_bytes(tmp.file("random.dcm"), random);
  write_bytes(tmp.file("random.nii"), random);
  write_bytes(tmp.file("random.png"), random);
  write_bytes(tmp.file("truncated.dcm"), prefix(pyd("CT_small.dcm"), 20000));
  write_bytes(tmp.file("truncated.nii.gz"), prefix(ch2(), 50000));
  write_bytes(tmp.file("empty.nii"), "");

  // A NIfTI header claiming 10^9 voxels (1000^3) with no data behind it.
  std::string header = prefix(test::nibabel_data() + "/anatomical.nii", 352);
  auto set_i16 = [&](size_t at, int16_t v) { std::memcpy(&header[at], &v, 2); };
  set_i16(40, 3);
  set_i16(42, 1000);
  set_i16(44, 1000);
  set_i16(46, 1000);
  write_bytes(tmp.file("huge.nii"), header);
  // Zero spacing: pixdim[1] = 0 with no sform/qform, so the spacing comes from pixdim.
  std::string zero = test::read_text(test::nibabel_data() + "/anatomical.nii");
  float f0 = 0.f;
  std::memcpy(&zero[80], &f0, 4);
  int16_t code0 = 0;
  std::memcpy(&zero[252], &code0, 2);
  std::memcpy(&zero[254], &code0, 2);
  write_bytes(tmp.file("zero_spacing.nii"), zero);
  // NaN voxels in a float NIfTI written from numpy by the oracle's peer (nibabel).
  test::run({"/usr/bin/python3", "-c",
             "import numpy as np, nibabel as nb, sys; a=np.ones((4,4,4),np.float32); a[1,2,3]=np.nan; "
             "nb.save(nb.Nifti1Image(a, np.eye(4)), sys.argv[1])",
             tmp.file("nan.nii")});
  // A transfer syntax DCMTK knows but cannot decode: relabel a JPEG-LS file's meta header as
  // JPIP Referenced (same length, so a byte patch keeps the file well formed).
  std::string jls = test::read_text(pyd("MR_small_jpeg_ls_lossless.dcm"));
  const size_t at = jls.find("1.2.840.10008.1.2.4.80");
  ASSERT_NE(at, std::string::npos);
  jls.replace(at, 22, "1.2.840.10008.1.2.4.94");
  write_bytes(tmp.file("odd_syntax.dcm"), jls);
  // A DICOM header claiming 60000 x 60000 x 300 frames.
  fs::copy_file(pyd("MR_small.dcm"), tmp.file("claims.dcm"));
  test::run({"dcmodify", "-nb", "-m", "(0028,0010)=60000", "-m", "(0028,0011)=60000", "-i",
             "(0028,0008)=300", tmp.file("claims.dcm")});
  // A folder we may not read (skipped when running as root, who reads everything).
  fs::create_directories(tmp.file("locked"));
  fs::permissions(tmp.file("locked"), fs::perms::none);

  struct Case {
    std::string input, why;
  };
  std::vector<Case> cases = {
      {tmp.file("random.dcm"), "DICOM"},
      {tmp.file("random.nii"), ""},
      {tmp.file("random.png"), ""},
      {tmp.file("truncated.dcm"), ""},
      {tmp.file("truncated.nii.gz"), "truncated"},
      {tmp.file("empty.nii"), ""},
      {tmp.file("huge.nii"), ""},
      {tmp.file("zero_spacing.nii"), "spacing"},
      {tmp.file("nan.nii"), "NaN"},
      {tmp.file("odd_syntax.dcm"), "1.2.840.10008.1.2.4.94"},
      {tmp.file("claims.dcm"), "claims"},
      {tmp.file("does-not-exist.dcm"), "no such file"},
      {tmp.file("empty-folder"), ""},
  };
  fs::create_directories(tmp.file("empty-folder"));
  if (::geteuid() != 0) cases.push_back({tmp.file("locked"), ""});
  for (const auto& c : cases) {
    SCOPED_TRACE(c.input);
    const std::string out = tmp.file("out.nii.gz");
    const auto r = run_medlens({"convert", c.input, out});
    EXPECT_EQ(r.status, 3) << r.error;
    EXPECT_EQ(lines(r.error), 1) << r.error;
    EXPECT_NE(r.error.find(c.input), std::string::npos) << r.error;
    if (!c.why.empty()) {
      EXPECT_NE(r.error.find(c.why), std::string::npos) << r.error;
    }
    EXPECT_FALSE(fs::exists(out)) << "no partial output";
    const auto info = run_medlens({"info", c.input});
    if (c.why == "NaN") {  // info describes the file and says what is wrong with it
      EXPECT_EQ(info.status, 0) << info.error;
      EXPECT_NE(info.output.find("NaN"), std::string::npos) << info.output;
    } else {
      EXPECT_EQ(info.status, 3) << info.error;
    }
  }
  fs::permissions(tmp.file("locked"), fs::perms::owner_all);
  // Nothing but the inputs is left in the folder: no temporaries.
  for (auto& e : fs::directory_iterator(tmp.path()))
    EXPECT_EQ(e.path().filename().string().find("medlens-tmp"), std::string::npos) << e.path();
}

TEST(Cli, OutputIntoMissingFolderIsBadInputAndLeavesNothing) {
  test::TempDir tmp;
  const auto r = run_medlens({"convert", pyd("CT_small.dcm"), tmp.file("nope/out.nii")});
  EXPECT_EQ(r.status, 3);
  EXPECT_NE(r.error.find("does not exist"), std::string::npos) << r.error;
}

}  // namespace
}  // namespace medlens
