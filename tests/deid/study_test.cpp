// A multi-series study (a medlens-written CT series, an SR and a SEG that reference it, built
// with pydicom) through `medlens deid`: every reference still resolves, the same key gives the
// same bytes, another key gives unlinkable identifiers, dciodvfy finds no new errors, and
// medlens and pydicom read the pixels unchanged.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/image.h"
#include "deid_util.h"
#include "io/read.h"
#include "io/write.h"

namespace fs = std::filesystem;

namespace medlens::deid {
namespace {

using test_util::read_bytes;

const std::string kScripts = std::string(MEDLENS_SOURCE_DIR) + "/tests/deid/";

// A 6-slice CT in HU with identity filled, written by medlens's DICOM series writer.
void write_ct(const std::string& folder) {
  VoxelBuffer b;
  b.shape = Shape{1, 6, 24, 28};
  b.data.resize(static_cast<size_t>(b.shape.elements()));
  for (size_t i = 0; i < b.data.size(); ++i) b.data[i] = static_cast<float>(static_cast<int>(i * 37 % 2000) - 1000);
  b.geometry.spacing = {0.8, 0.8, 2.5};
  b.geometry.origin = {-10.0, -12.0, 30.0};
  Metadata& m = b.metadata;
  m.modality = "CT";
  m.units = "HU";
  m.series_description = "CHEST CANARY";
  m.identity = {{"PatientName", "Finch^Canary"}, {"PatientID", "MRN-CANARY-77"},
                {"PatientBirthDate", "19480211"}, {"PatientSex", "F"},
                {"StudyDate", "20210304"},      {"StudyTime", "101500"},
                {"AccessionNumber", "ACC-CANARY-9"}, {"StudyID", "S77"},
                {"ReferringPhysicianName", "Doctor^Canary"}};
  WriteOptions w;
  w.dicom_modality = "CT";
  write_image(Image::from_buffer(std::move(b)), folder + "/", w);
}

nlohmann::json describe(const std::string& folder) {
  const auto r = test_util::python_script(kScripts + "describe_study.py", {folder});
  EXPECT_EQ(r.status, 0) << r.error;
  return nlohmann::json::parse(r.output);
}

// dciodvfy's error lines, with UIDs and values blanked so inputs and outputs compare.
std::multiset<std::string> dciodvfy_errors(const std::string& file) {
  const auto r = test::run({"dciodvfy", file});
  std::multiset<std::string> errors;
  std::string all = r.output + r.error, line;
  for (size_t start = 0; start < all.size();) {
    size_t end = all.find('\n', start);
    if (end == std::string::npos) end = all.size();
    line = all.substr(start, end - start);
    if (line.rfind("Error", 0) == 0) {
      if (auto q = line.find(" - Value is"); q != std::string::npos) line.resize(q);  // values differ by design
      errors.insert(line);
    }
    start = end + 1;
  }
  return errors;
}

class Study : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    const std::string in = dir_->file("in");
    fs::create_directories(in);
    write_ct(in + "/ct");
    // A failed set-up is recorded and fails every test (an ASSERT here would report them as
    // skipped).
    const auto made = test_util::python_script(kScripts + "make_study.py", {in + "/ct", in});
    if (made.status != 0) {
      setup_error_ = "make_study.py failed: " + made.error;
      return;
    }
    test_util::write_key(dir_->file("key-a"), 'a');
    test_util::write_key(dir_->file("key-b"), 'b');
    for (const auto& [out, key] : std::vector<std::pair<std::string, std::string>>{
             {"a1", "key-a"}, {"a2", "key-a"}, {"b", "key-b"}}) {
      const auto r = test::run_medlens({"deid", in, dir_->file(out), "--key", dir_->file(key)});
      if (r.status != 0) {
        setup_error_ = "medlens deid failed: " + r.error;
        return;
      }
      logs_ += r.output + r.error;
    }
    in_ = new nlohmann::json(describe(in));
    a1_ = new nlohmann::json(describe(dir_->file("a1")));
  }
  void SetUp() override { ASSERT_TRUE(setup_error_.empty()) << setup_error_; }
  static void TearDownTestSuite() {
    delete in_;
    delete a1_;
    delete dir_;
  }
  static test::TempDir* dir_;
  static nlohmann::json *in_, *a1_;
  static std::string logs_, setup_error_;
};
test::TempDir* Study::dir_ = nullptr;
nlohmann::json* Study::in_ = nullptr;
nlohmann::json* Study::a1_ = nullptr;
std::string Study::logs_;
std::string Study::setup_error_;

TEST_F(Study, EveryReferenceResolvesAfterDeidentification) {
  ASSERT_EQ(in_->size(), 8u) << "6 CT slices, an SR and a SEG";
  ASSERT_EQ(a1_->size(), 8u);
  std::set<std::string> sops, series, studies, frames, in_uids;
  for (const auto& [path, f] : in_->items())
    for (const char* k : {"SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "FrameOfReferenceUID"})
      in_uids.insert(f[k].get<std::string>());
  int refs = 0;
  for (const auto& [path, f] : a1_->items()) {
    sops.insert(f["SOPInstanceUID"]);
    series.insert(f["SeriesInstanceUID"]);
    studies.insert(f["StudyInstanceUID"]);
    if (!f["FrameOfReferenceUID"].get<std::string>().empty()) frames.insert(f["FrameOfReferenceUID"]);
    EXPECT_FALSE(in_uids.count(f["SOPInstanceUID"])) << "UIDs are replaced";
  }
  EXPECT_EQ(studies.size(), 1u) << "one study, still";
  EXPECT_EQ(series.size(), 3u);
  EXPECT_EQ(frames.size(), 1u) << "the SEG keeps the CT's frame of reference";
  for (const auto& [path, f] : a1_->items()) {
    for (const auto& r : f["refs"]) {
      const std::string kind = r[0], uid = r[1];
      ++refs;
      EXPECT_FALSE(in_uids.count(uid)) << path << ": an original UID survived in a reference";
      const std::set<std::string>& known = kind == "sop" ? sops : kind == "series" ? series : kind == "study" ? studies : frames;
      EXPECT_TRUE(known.count(uid)) << path << ": dangling " << kind << " reference";
    }
  }
  EXPECT_GE(refs, 6 + 6 + 1 + 6 + 2) << "SR evidence and content, SEG series, instances and sources";
  // Output is laid out by the new UIDs.
  for (const auto& [path, f] : a1_->items())
    EXPECT_EQ(path, f["StudyInstanceUID"].get<std::string>() + "/" + f["SeriesInstanceUID"].get<std::string>() + "/" +
                        f["SOPInstanceUID"].get<std::string>() + ".dcm");
}

TEST_F(Study, SameKeyGivesIdenticalBytesAndAnotherKeyUnlinkableIdentifiers) {
  const auto a2 = describe(dir_->file("a2"));
  const auto b = describe(dir_->file("b"));
  ASSERT_EQ(a2.size(), a1_->size());
  for (const auto& [path, f] : a1_->items()) {
    ASSERT_TRUE(a2.contains(path)) << path;
    EXPECT_EQ(read_bytes(dir_->file("a1") + "/" + path), read_bytes(dir_->file("a2") + "/" + path))
        << path << ": the same key must reproduce the file byte for byte";
  }
  std::set<std::string> ids_a, ids_b;
  auto collect = [](const nlohmann::json& d, std::set<std::string>& ids) {
    for (const auto& [path, f] : d.items())
      for (const char* k : {"SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "FrameOfReferenceUID",
                            "PatientID", "AccessionNumber"}) {
        if (!f[k].get<std::string>().empty()) ids.insert(f[k].get<std::string>());
      }
  };
  collect(*a1_, ids_a);
  collect(b, ids_b);
  std::vector<std::string> common;
  std::set_intersection(ids_a.begin(), ids_a.end(), ids_b.begin(), ids_b.end(), std::back_inserter(common));
  EXPECT_TRUE(common.empty()) << "another key must give other identifiers: " << common.front();
  // The pseudonyms: patient ID and accession are consistent across the three series.
  std::set<std::string> patients, accessions;
  for (const auto& [path, f] : a1_->items()) {
    patients.insert(f["PatientID"]);
    accessions.insert(f["AccessionNumber"]);
    EXPECT_NE(f["PatientID"], "MRN-CANARY-77");
  }
  EXPECT_EQ(patients.size(), 1u);
  EXPECT_EQ(accessions.size(), 1u);
  // Nothing identifying in the files, nor in the audit lines.
  for (const auto& [path, f] : a1_->items()) {
    const std::string bytes = read_bytes(dir_->file("a1") + "/" + path);
    for (const char* canary : {"Canary", "CANARY", "Finch", "20210304", "19480211"})
      EXPECT_FALSE(test_util::contains(bytes, canary)) << path << " holds " << canary;
  }
  for (const char* canary : {"Canary", "CANARY", "Finch", "20210304", "19480211", "1.2.826.0.1.3680043"})
    EXPECT_FALSE(test_util::contains(logs_, canary)) << "the log holds " << canary;
}

TEST_F(Study, DciodvfyReportsNoNewErrors) {
  // Pair inputs and outputs by their pixel hash (CT slices differ; SR has none, one per class).
  int compared = 0;
  for (const auto& [in_path, fi] : in_->items()) {
    for (const auto& [out_path, fo] : a1_->items()) {
      if (fo["SOPClassUID"] != fi["SOPClassUID"] || fo["InstanceNumber"] != fi["InstanceNumber"]) continue;
      if (fi.contains("pixels") && fo.value("pixels", "") != fi["pixels"]) continue;
      const auto before = dciodvfy_errors(dir_->file("in") + "/" + in_path);
      const auto after = dciodvfy_errors(dir_->file("a1") + "/" + out_path);
      std::vector<std::string> added;
      std::set_difference(after.begin(), after.end(), before.begin(), before.end(), std::back_inserter(added));
      EXPECT_TRUE(added.empty()) << out_path << ": " << added.size() << " new error(s), first: " << added.front();
      ++compared;
    }
  }
  EXPECT_EQ(compared, 8);
}

TEST_F(Study, PixelsReadUnchangedByPydicomAndMedlens) {
  std::map<std::string, int> in_pixels, out_pixels;
  for (const auto& [p, f] : in_->items())
    if (f.contains("pixels")) ++in_pixels[f["pixels"]];
  for (const auto& [p, f] : a1_->items())
    if (f.contains("pixels")) ++out_pixels[f["pixels"]];
  EXPECT_EQ(in_pixels.size(), 7u) << "6 CT slices and the SEG";
  EXPECT_EQ(in_pixels, out_pixels) << "pydicom decodes the same pixels";

  const Image before = read_image(dir_->file("in") + "/ct");
  std::string ct_out;
  for (const auto& [p, f] : a1_->items())
    if (f["Modality"] == "CT") ct_out = dir_->file("a1") + "/" + fs::path(p).parent_path().string();
  const Image after = read_image(ct_out);
  ASSERT_EQ(after.shape(), before.shape());
  EXPECT_TRUE(std::equal(before.data(), before.data() + before.shape().elements(), after.data()));
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(after.geometry().spacing[i], before.geometry().spacing[i], 1e-6);
    EXPECT_NEAR(after.geometry().origin[i], before.geometry().origin[i], 1e-6);
  }
  EXPECT_EQ(after.metadata().units, "HU");
}

}  // namespace
}  // namespace medlens::deid
