// DICOM writing and series reading: round trips through real anatomy (mricron's ch2), the
// series diagnostics users rely on, and dciodvfy's verdict on what medlens writes.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>

#include "core/error.h"
#include "core/image.h"
#include "io/dicom.h"
#include "io/read.h"
#include "io/write.h"
#include "tools/test_util.h"

namespace fs = std::filesystem;

namespace medlens {
namespace {

std::string ch2() { return test::mricron_templates() + "/ch2.nii.gz"; }

void expect_same_geometry(const Geometry& a, const Geometry& b, double tol = 1e-5) {
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(a.spacing[i], b.spacing[i], tol) << "spacing " << i;
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(a.origin[i], b.origin[i], tol) << "origin " << i;
  for (int i = 0; i < 9; ++i) EXPECT_NEAR(a.direction[i], b.direction[i], tol) << "direction " << i;
}

std::vector<std::string> files_in(const std::string& folder) {
  std::vector<std::string> out;
  for (auto& e : fs::directory_iterator(folder)) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

// Copies a series under random names into a new folder so that on-disk order says nothing.
std::string shuffled_copy(const std::string& series, const std::string& dest, unsigned seed) {
  fs::create_directories(dest);
  std::vector<std::string> files = files_in(series);
  std::mt19937 rng(seed);
  std::shuffle(files.begin(), files.end(), rng);
  int n = 0;
  for (auto& f : files) fs::copy_file(f, dest + "/x" + std::to_string(rng() % 100000) + "_" + std::to_string(n++));
  return dest;
}

// Returns dciodvfy's error lines for a file (warnings are allowed).
std::vector<std::string> dciodvfy_errors(const std::string& file) {
  const auto r = test::run({"dciodvfy", file});
  std::vector<std::string> errors;
  std::string all = r.output + r.error;
  size_t start = 0;
  while (start < all.size()) {
    size_t end = all.find('\n', start);
    if (end == std::string::npos) end = all.size();
    std::string line = all.substr(start, end - start);
    if (line.rfind("Error", 0) == 0) errors.push_back(line);
    start = end + 1;
  }
  return errors;
}

TEST(DicomSeries, Ch2WrittenAsMrReadsBackIdenticallyFromShuffledFiles) {
  test::TempDir tmp;
  const Image volume = read_image(ch2());
  ASSERT_TRUE(volume.is_3d());
  WriteOptions w;
  w.dicom_modality = "MR";
  write_image(volume, tmp.file("series") + "/", w);
  EXPECT_EQ(static_cast<int64_t>(files_in(tmp.file("series")).size()), volume.depth());

  const std::string shuffled = shuffled_copy(tmp.file("series"), tmp.file("shuffled"), 7);
  const Image back = read_image(shuffled);
  ASSERT_EQ(back.shape(), volume.shape());
  EXPECT_TRUE(at::equal(back.voxels(), volume.voxels())) << "ch2 holds integers: exact round trip";
  expect_same_geometry(back.geometry(), volume.geometry());
  EXPECT_EQ(back.metadata().modality, "MR");
  EXPECT_TRUE(back.metadata().warnings.empty()) << back.metadata().warnings.front();

  // dciodvfy checks the slices against the MR Image IOD: no errors.
  for (const auto& f : {files_in(tmp.file("series")).front(), files_in(tmp.file("series"))[90]}) {
    const auto errors = dciodvfy_errors(f);
    EXPECT_TRUE(errors.empty()) << f << ": " << errors.front();
  }
}

TEST(DicomSeries, ObliqueFloatCtRoundTripsThroughRescale) {
  test::TempDir tmp;
  at::Tensor v = at::linspace(-1000.5, 2999.25, 4 * 20 * 30).reshape({1, 4, 20, 30});
  Geometry g;
  const double c = std::cos(0.3), s = std::sin(0.3);
  g.direction = {c, 0, s, 0, 1, 0, -s, 0, c};  // rotated about P
  g.spacing = {0.7, 0.8, 2.5};
  g.origin = {-120.25, 33.5, 80};
  Metadata m;
  m.modality = "CT";
  m.window = Window{40, 400};
  const Image ct(v, g, m);
  write_image(ct, tmp.file("ct") + "/");
  const Image back = read_image(tmp.file("ct"));
  expect_same_geometry(back.geometry(), g);
  EXPECT_EQ(back.metadata().units, "HU");
  const double slope = (2999.25 + 1000.5) / 65535.0;
  EXPECT_LE((back.voxels() - v).abs().max().item<double>(), slope / 2 + 1e-3);
  ASSERT_TRUE(back.metadata().window.has_value());
  EXPECT_DOUBLE_EQ(back.metadata().window->center, 40);
  EXPECT_TRUE(dciodvfy_errors(files_in(tmp.file("ct")).front()).empty());
}

TEST(DicomSeries, MissingSliceIsDetectedAndRefusedUnlessAllowed) {
  test::TempDir tmp;
  const Image volume(at::rand({1, 12, 16, 16}) * 100, Geometry{}, Metadata{.modality = "MR"});
  write_image(volume, tmp.file("s") + "/");
  fs::remove(files_in(tmp.file("s"))[5]);
  const auto series = scan_dicom_folder(tmp.file("s"));
  ASSERT_EQ(series.size(), 1u);
  EXPECT_TRUE(series[0].blocking);
  ASSERT_FALSE(series[0].issues.empty());
  EXPECT_NE(series[0].issues[0].find("missing slice"), std::string::npos) << series[0].issues[0];
  try {
    read_image(tmp.file("s"));
    ADD_FAILURE() << "a series with a gap must be refused";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("missing slice"), std::string::npos) << e.what();
  }
  ReadOptions o;
  o.allow_irregular_series = true;
  const Image read = read_image(tmp.file("s"), o);
  EXPECT_EQ(read.depth(), 11);
  EXPECT_FALSE(read.metadata().warnings.empty());
}

TEST(DicomSeries, UnevenSpacingAndGantryTiltAreReported) {
  test::TempDir tmp;
  // Uneven: move one slice 0.6 mm along z.
  const Image volume(at::rand({1, 6, 8, 8}) * 100, Geometry{}, Metadata{.modality = "MR"});
  write_image(volume, tmp.file("u") + "/");
  const std::string f = files_in(tmp.file("u"))[3];
  ASSERT_EQ(test::run({"dcmodify", "-nb", "-m", "(0020,0032)=0\\0\\3.6", f}).status, 0);
  auto series = scan_dicom_folder(tmp.file("u"));
  ASSERT_EQ(series.size(), 1u);
  bool uneven = false;
  for (auto& i : series[0].issues) uneven |= i.find("uneven slice spacing") != std::string::npos;
  EXPECT_TRUE(uneven);

  // Tilt: slices step along z but also 0.5 mm along y per slice (a 26.6 degree shear).
  Geometry tilted;
  const double n = std::sqrt(1 + 0.25);
  tilted.direction = {1, 0, 0, 0, 1, 0.5 / n, 0, 0, 1 / n};
  tilted.spacing = {1, 1, n};
  write_image(Image(at::rand({1, 5, 8, 8}), tilted, Metadata{.modality = "CT"}), tmp.file("t") + "/");
  series = scan_dicom_folder(tmp.file("t"));
  bool tilt = false;
  for (auto& i : series[0].issues) tilt |= i.find("gantry tilt") != std::string::npos;
  EXPECT_TRUE(tilt);
  EXPECT_FALSE(series[0].blocking) << "a tilted series is regular; its geometry keeps the shear";
  const Image back = read_image(tmp.file("t"));
  expect_same_geometry(back.geometry(), tilted);
}

TEST(DicomSeries, FolderWithTwoSeriesNeedsAChoice) {
  test::TempDir tmp;
  fs::create_directories(tmp.file("study"));
  write_image(Image(at::zeros({1, 3, 4, 4}), Geometry{}, Metadata{.modality = "MR"}), tmp.file("study/a") + "/");
  write_image(Image(at::ones({1, 4, 4, 4}), Geometry{}, Metadata{.modality = "CT"}), tmp.file("study/b") + "/");
  const auto series = scan_dicom_folder(tmp.file("study"));
  ASSERT_EQ(series.size(), 2u);
  try {
    read_image(tmp.file("study"));
    ADD_FAILURE();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("2 image series"), std::string::npos) << e.what();
  }
  for (const auto& s : series) {
    ReadOptions o;
    o.series = s.series_uid;
    const Image img = read_image(tmp.file("study"), o);
    EXPECT_EQ(img.metadata().modality, s.modality);
    EXPECT_EQ(img.depth(), s.modality == "MR" ? 3 : 4);
  }
  ReadOptions by_index;
  by_index.series = "2";
  EXPECT_NO_THROW(read_image(tmp.file("study"), by_index));
}

TEST(DicomSeries, MixedStacksInOneSeriesAreReported) {
  test::TempDir tmp;
  write_image(Image(at::zeros({1, 3, 4, 4}), Geometry{}, Metadata{.modality = "MR"}), tmp.file("m") + "/");
  // Give one slice another size by writing a different image into the same series UID.
  const std::string series_uid = read_dicom_header(files_in(tmp.file("m"))[0]).series_uid;
  write_image(Image(at::zeros({1, 1, 6, 6}), Geometry{}, Metadata{.modality = "MR"}), tmp.file("other") + "/");
  const std::string extra = files_in(tmp.file("other"))[0];
  ASSERT_EQ(test::run({"dcmodify", "-nb", "-m", "(0020,000e)=" + series_uid, extra}).status, 0);
  fs::copy_file(extra, tmp.file("m/extra.dcm"));
  const auto series = scan_dicom_folder(tmp.file("m"));
  ASSERT_EQ(series.size(), 1u);
  EXPECT_TRUE(series[0].blocking);
  EXPECT_NE(series[0].issues[0].find("mixed series"), std::string::npos) << series[0].issues[0];
}

TEST(DicomFile, SecondaryCaptureGreyAndRgbRoundTrip) {
  test::TempDir tmp;
  const Image grey(at::arange(0, 64 * 48).reshape({48, 64}).remainder(256).to(at::kFloat), Geometry{}, Metadata{});
  write_image(grey, tmp.file("grey.dcm"));
  const VoxelBuffer g = read_dicom_file(tmp.file("grey.dcm"));
  EXPECT_EQ(g.shape, (Shape{1, 1, 48, 64}));
  EXPECT_EQ(g.data, std::vector<float>(grey.data(), grey.data() + grey.shape().elements()));
  EXPECT_EQ(g.metadata.tags.at("SOPClassUID"), "1.2.840.10008.5.1.4.1.1.7");

  const Image rgb(at::randint(0, 256, {3, 1, 10, 12}).to(at::kFloat), Geometry{}, Metadata{});
  write_image(rgb, tmp.file("rgb.dcm"));
  const VoxelBuffer c = read_dicom_file(tmp.file("rgb.dcm"));
  EXPECT_EQ(c.shape, (Shape{3, 1, 10, 12}));
  EXPECT_EQ(c.data, std::vector<float>(rgb.data(), rgb.data() + rgb.shape().elements()));
  for (const char* f : {"grey.dcm", "rgb.dcm"}) {
    const auto errors = dciodvfy_errors(tmp.file(f));
    EXPECT_TRUE(errors.empty()) << f << ": " << errors.front();
  }
}

TEST(DicomFile, UidsAreValidAndUnique) {
  test::TempDir tmp;
  const Image img(at::zeros({1, 2, 4, 4}), Geometry{}, Metadata{.modality = "MR"});
  write_image(img, tmp.file("a") + "/");
  std::vector<std::string> uids;
  for (auto& f : files_in(tmp.file("a"))) {
    const DicomFileHeader h = read_dicom_header(f);
    for (const std::string& uid : {h.sop_instance_uid, h.series_uid, h.study_uid, h.frame_of_reference_uid}) {
      EXPECT_LE(uid.size(), 64u);
      EXPECT_EQ(uid.rfind("2.25.", 0), 0u) << uid;
      EXPECT_EQ(uid.find_first_not_of("0123456789."), std::string::npos) << uid;
      // PS3.5 9.1: components are non-empty and have no leading zero.
      size_t start = 0;
      while (start <= uid.size()) {
        size_t end = uid.find('.', start);
        if (end == std::string::npos) end = uid.size();
        const std::string part = uid.substr(start, end - start);
        EXPECT_FALSE(part.empty()) << uid;
        EXPECT_TRUE(part == "0" || part[0] != '0') << uid;
        start = end + 1;
      }
    }
    uids.push_back(h.sop_instance_uid);
  }
  EXPECT_NE(uids[0], uids[1]);
}

TEST(DicomWrite, VolumesNeedAModalityAndFailuresLeaveNothing) {
  test::TempDir tmp;
  const Image img(at::zeros({1, 2, 4, 4}), Geometry{}, Metadata{});
  EXPECT_THROW(write_image(img, tmp.file("x") + "/"), UsageError);
  EXPECT_THROW(write_image(img, tmp.file("x.dcm")), UsageError);
  EXPECT_FALSE(fs::exists(tmp.file("x")));
  EXPECT_FALSE(fs::exists(tmp.file("x.dcm")));
  EXPECT_TRUE(fs::is_empty(tmp.path())) << "no temporary left behind";
}

}  // namespace
}  // namespace medlens
