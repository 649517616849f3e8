// Burned-in text (Clean Pixel Data): on BUSI ultrasound images, which carry side labels, and on
// images with text drawn at known places, the text is blanked, Tesseract OCR (the judge, run as
// the `tesseract` CLI) finds none of it afterwards although it found it before, and pixels away
// from the text are unchanged.
#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <regex>
#include <set>

#include "deid/burned_text.h"
#include "deid/deid.h"
#include "deid_util.h"
#include "dicom_builder.h"

namespace medlens::deid {
namespace {

using test_util::read_dicom_image;
using test_util::write_dicom_image;

// What Tesseract reads in an image, upper case, sparse-text mode.
std::string ocr(const cv::Mat& image, const test::TempDir& dir) {
  const std::string png = dir.file("ocr.png");
  cv::Mat bgr = image;
  if (image.channels() == 3) cv::cvtColor(image, bgr, cv::COLOR_RGB2BGR);
  EXPECT_TRUE(cv::imwrite(png, bgr));
  const auto r = test::run({"tesseract", png, "stdout", "--psm", "11"});
  EXPECT_EQ(r.status, 0) << r.error;
  std::string text = r.output;
  for (char& c : text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return text;
}

std::string squeeze(const std::string& s) {
  std::string out;
  for (char c : s)
    if (std::isalnum(static_cast<unsigned char>(c))) out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// Words of four or more capitals (the labels Tesseract reads on BUSI).
std::set<std::string> words(const std::string& text) {
  std::set<std::string> out;
  const std::regex word("[A-Z]{4,}");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), word); it != std::sregex_iterator(); ++it)
    out.insert(it->str());
  return out;
}

Report clean(const std::string& in, const std::string& out) {
  Options o;
  o.options = {Option::kCleanPixelData};
  o.key = std::string(32, 'k');
  return deidentify(in, out, o);
}

// Pixels outside `keep_out` (a mask of allowed changes) must be equal.
int changed_outside(const cv::Mat& a, const cv::Mat& b, const cv::Mat& keep_out) {
  cv::Mat diff;
  cv::absdiff(a, b, diff);
  if (diff.channels() == 3) cv::cvtColor(diff, diff, cv::COLOR_RGB2GRAY);
  diff.setTo(0, keep_out);
  return cv::countNonZero(diff);
}

cv::Mat region_mask(const cv::Mat& image, const InstanceReport& r) {
  cv::Mat m = cv::Mat::zeros(image.rows, image.cols, CV_8U);
  for (const auto& b : r.blanked) m(cv::Rect(b.x, b.y, b.width, b.height)).setTo(255);
  return m;
}

// BUSI images on which Tesseract reads a label (LEFT BREAST, RT UOQ, ...).
class Busi : public ::testing::TestWithParam<std::string> {};

TEST_P(Busi, SideLabelsAreBlankedAndOcrFindsThemNoMore) {
  test::TempDir dir;
  const cv::Mat image = cv::imread(test::vendored_samples() + "/busi/" + GetParam() + ".png", cv::IMREAD_GRAYSCALE);
  ASSERT_FALSE(image.empty());
  const std::set<std::string> before = words(ocr(image, dir));
  ASSERT_FALSE(before.empty()) << "OCR must read the label before cleaning, or the test proves nothing";

  write_dicom_image(image, dir.file("in.dcm"));
  const Report report = clean(dir.file("in.dcm"), dir.file("out.dcm"));
  ASSERT_EQ(report.instances.size(), 1u);
  const InstanceReport& r = report.instances[0];
  ASSERT_FALSE(r.blanked.empty());
  const cv::Mat after = read_dicom_image(dir.file("out.dcm"));

  const std::set<std::string> left = words(ocr(after, dir));
  for (const std::string& w : before) EXPECT_FALSE(left.count(w)) << w << " still readable";
  const cv::Mat regions = region_mask(image, r);
  // Blanked to the image's black, nothing else touched, and only a small part of the image.
  double black = 0;
  cv::minMaxLoc(image, &black);
  EXPECT_EQ(cv::countNonZero((after != black) & regions), 0);
  EXPECT_EQ(changed_outside(image, after, regions), 0);
  EXPECT_LT(cv::countNonZero(regions), image.total() / 10);
}

INSTANTIATE_TEST_SUITE_P(Labelled, Busi,
                         ::testing::Values("benign_134", "benign_240", "benign_277", "benign_3", "benign_407"));

struct Planted {
  std::string text;
  cv::Point at;
  double scale;
  int thickness;
};

// A BUSI image without a label, enlarged, with identifying text drawn at known places.
cv::Mat planted_image(const std::vector<Planted>& texts, cv::Mat* ink, bool rgb) {
  cv::Mat base = cv::imread(test::vendored_samples() + "/busi/benign_111.png", cv::IMREAD_GRAYSCALE);
  cv::resize(base, base, {512, 512}, 0, 0, cv::INTER_LINEAR);
  cv::Mat image = base.clone();
  for (const Planted& p : texts)
    cv::putText(image, p.text, p.at, cv::FONT_HERSHEY_SIMPLEX, p.scale, cv::Scalar(250), p.thickness, cv::LINE_AA);
  *ink = image != base;
  if (rgb) cv::cvtColor(image, image, cv::COLOR_GRAY2RGB);
  return image;
}

const std::vector<Planted> kPlanted = {
    {"JANE DOE", {24, 300}, 1.0, 2},
    {"MRN 4471932", {24, 490}, 0.9, 2},
    {"ST MARY CLINIC", {230, 390}, 0.8, 2},
    {"LEFT BREAST", {300, 470}, 0.7, 1},
};

class PlantedText : public ::testing::TestWithParam<bool> {};

TEST_P(PlantedText, IsBlankedWhereDrawnAndNowhereElse) {
  test::TempDir dir;
  cv::Mat ink;
  const cv::Mat image = planted_image(kPlanted, &ink, GetParam());
  const std::string before = squeeze(ocr(image, dir));
  for (const Planted& p : kPlanted) ASSERT_NE(before.find(squeeze(p.text)), std::string::npos) << p.text << " unread before: " << before;

  test_util::ImageSpec spec;
  if (GetParam()) {
    spec.sop_class = UID_SecondaryCaptureImageStorage;
    spec.modality = "OT";
    spec.burned_in_annotation = "";
  }
  write_dicom_image(image, dir.file("in.dcm"), spec);
  const Report report = clean(dir.file("in.dcm"), dir.file("out.dcm"));
  const InstanceReport& r = report.instances[0];
  const cv::Mat after = read_dicom_image(dir.file("out.dcm"));

  const std::string text = squeeze(ocr(after, dir));
  for (const Planted& p : kPlanted) {
    EXPECT_EQ(text.find(squeeze(p.text)), std::string::npos) << p.text << " still readable";
    for (const std::string& part : {p.text.substr(0, p.text.find(' ')), p.text.substr(p.text.rfind(' ') + 1)})
      EXPECT_EQ(text.find(squeeze(part)), std::string::npos) << part << " still readable";
  }
  // Every drawn pixel lies in a blanked region and is black now.
  const cv::Mat regions = region_mask(image, r);
  EXPECT_EQ(cv::countNonZero(ink & ~regions), 0) << "text pixels outside the blanked regions";
  cv::Mat grey = after;
  if (after.channels() == 3) cv::cvtColor(after, grey, cv::COLOR_RGB2GRAY);
  double black = 0;  // RGB: zero; grey: the image's minimum
  if (image.channels() == 1) cv::minMaxLoc(image, &black);
  EXPECT_EQ(cv::countNonZero((grey != black) & ink), 0) << "drawn pixels set to the image's black";
  // Away from the text (outside each line's box grown by 12 pixels) nothing changed.
  cv::Mat near_text = cv::Mat::zeros(image.rows, image.cols, CV_8U);
  for (const Planted& p : kPlanted) {
    int baseline = 0;
    const cv::Size size = cv::getTextSize(p.text, cv::FONT_HERSHEY_SIMPLEX, p.scale, p.thickness, &baseline);
    const cv::Rect box(p.at.x - 12, p.at.y - size.height - 12, size.width + 24, size.height + baseline + 24);
    near_text(box & cv::Rect(0, 0, image.cols, image.rows)).setTo(255);
  }
  EXPECT_EQ(cv::countNonZero(ink & ~near_text), 0) << "the boxes hold every drawn pixel";
  std::string where;
  for (const auto& b : r.blanked)
    where += " (" + std::to_string(b.x) + "," + std::to_string(b.y) + " " + std::to_string(b.width) + "x" + std::to_string(b.height) + ")";
  EXPECT_EQ(changed_outside(image, after, near_text), 0) << "regions:" << where;
  EXPECT_EQ(r.blanked.size(), kPlanted.size()) << "regions:" << where;
  EXPECT_EQ(r.counts.at('C'), 1) << "Pixel Data cleaned";
}

INSTANTIATE_TEST_SUITE_P(GreyAndRgb, PlantedText, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& i) { return i.param ? "rgb_sc" : "grey_us"; });

TEST(BurnedText, DetectorFindsNothingOnPlainAnatomy) {
  // No text: the lesion masks' source images without labels and a smooth gradient.
  for (const char* name : {"benign_111", "benign_120"}) {
    const cv::Mat image = cv::imread(test::vendored_samples() + "/busi/" + std::string(name) + ".png", cv::IMREAD_GRAYSCALE);
    ASSERT_FALSE(image.empty());
    EXPECT_TRUE(find_text_regions(image.data, image.rows, image.cols, image.step).empty()) << name;
  }
  cv::Mat gradient(128, 128, CV_8U);
  for (int y = 0; y < 128; ++y)
    for (int x = 0; x < 128; ++x) gradient.at<uint8_t>(y, x) = static_cast<uint8_t>(x + y);
  EXPECT_TRUE(find_text_regions(gradient.data, 128, 128, gradient.step).empty());
}

}  // namespace
}  // namespace medlens::deid
