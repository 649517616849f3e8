// The shortcut check's two halves: finding burned-in text and calipers, and measuring how much
// of an attribution falls on them.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <opencv2/imgproc.hpp>

#include "explain/explain.h"
#include "io/read.h"
#include "tools/test_util.h"

namespace medlens {
namespace {

cv::Mat grey_of(const Image& image) {
  const at::Tensor g = image.voxels().to(at::kFloat).mean(0)[0].contiguous();
  return cv::Mat(static_cast<int>(g.size(0)), static_cast<int>(g.size(1)), CV_32F, g.data_ptr<float>()).clone();
}

Image image_of(const cv::Mat& m, const Image& like) {
  const at::Tensor t = at::from_blob(m.data, {1, 1, m.rows, m.cols}, at::kFloat).clone();
  return like.with_voxels(t);
}

TEST(BurnedInMarks, FindsTextAndCalipersDrawnOnARealUltrasoundImage) {
  // A real normal breast ultrasound image (BUSI), with text and caliper crosses drawn at known
  // places; the scanner's own marks, found in the untouched image, do not count either way.
  const Image us = read_image(test::vendored_samples() + "/busi/normal_100.png");
  const cv::Mat base = grey_of(us);
  cv::Mat drawn = base.clone();
  cv::Mat truth = cv::Mat::zeros(base.size(), CV_8U);
  auto text = [&](const std::string& s, cv::Point at, double scale) {
    cv::putText(drawn, s, at, cv::FONT_HERSHEY_SIMPLEX, scale, cv::Scalar(255), 1, cv::LINE_8);
    cv::putText(truth, s, at, cv::FONT_HERSHEY_SIMPLEX, scale, cv::Scalar(1), 1, cv::LINE_8);
  };
  auto cross = [&](cv::Point c) {
    for (cv::Mat* m : {&drawn, &truth}) {
      const double v = m == &drawn ? 255 : 1;
      cv::line(*m, c - cv::Point(3, 0), c + cv::Point(3, 0), cv::Scalar(v), 1);
      cv::line(*m, c - cv::Point(0, 3), c + cv::Point(0, 3), cv::Scalar(v), 1);
    }
  };
  text("LT BREAST 3:00", {150, 200}, 0.35);
  text("2.1cm", {40, 120}, 0.35);
  cross({90, 150});
  cross({140, 170});
  const Image before = detect_burned_in_marks(us);
  const Image after = detect_burned_in_marks(image_of(drawn, us));
  const at::Tensor found = after.voxels()[0][0] > 0.5;
  const at::Tensor old = before.voxels()[0][0] > 0.5;
  const at::Tensor t = at::from_blob(truth.data, {truth.rows, truth.cols}, at::kByte).clone() > 0;
  // Recall: drawn stroke pixels covered by the mask.
  const double recall = (found & t).sum().item<double>() / t.sum().item<double>();
  EXPECT_GE(recall, 0.85);
  // Precision: new detections away from the drawn marks (3 voxels of slack for the grown mask).
  cv::Mat near;
  cv::dilate(truth, near, cv::getStructuringElement(cv::MORPH_RECT, {7, 7}));
  const at::Tensor zone = at::from_blob(near.data, {near.rows, near.cols}, at::kByte).clone() > 0;
  const double stray = (found & ~zone & ~old).sum().item<double>();
  EXPECT_LE(stray, 0.002 * static_cast<double>(found.numel())) << "detections outside the drawn marks";
  std::printf("recall %.3f, stray voxels %.0f, scanner's own marks %.0f voxels\n", recall, stray,
              old.sum().item<double>());
}

TEST(BurnedInMarks, SmoothAnatomyHasNoMarks) {
  // ch2's brain slice: bright tissue but no text.
  const Image t1 = read_image(test::mricron_templates() + "/ch2.nii.gz");
  const Image slice = t1.with_voxels(t1.voxels().narrow(1, 90, 1).contiguous());
  const Image m = detect_burned_in_marks(slice);
  EXPECT_LT(m.voxels().sum().item<double>(), 0.001 * static_cast<double>(m.voxels().numel()));
}

TEST(AttributionShare, IsThePositiveMassInsideTheMask) {
  Geometry g;
  Image a(at::tensor({1.0f, 2.0f, -5.0f, 3.0f, 0.0f, 4.0f}).view({1, 1, 2, 3}), g, Metadata{});
  Image mask(at::tensor({1.0f, 0.0f, 1.0f, 0.0f, 0.0f, 1.0f}).view({1, 1, 2, 3}), g, Metadata{});
  // Positive mass 1 + 2 + 3 + 4 = 10; inside: 1 + 4 (the -5 does not count) = 5.
  EXPECT_DOUBLE_EQ(attribution_share_in(a, mask), 0.5);
  EXPECT_DOUBLE_EQ(attribution_share_in(a, a.with_voxels(at::zeros({1, 1, 2, 3}))), 0.0);
  EXPECT_DOUBLE_EQ(attribution_share_in(a.with_voxels(-a.voxels().abs()), mask), 0.0) << "no positive mass";
  // A mask on a coarser grid covering the same extent is resampled (nearest).
  Geometry coarse;
  coarse.spacing = {3.0, 2.0, 1.0};
  coarse.origin = {1.0, 0.5, 0.0};
  Image one(at::ones({1, 1, 1, 1}), coarse, Metadata{});
  EXPECT_DOUBLE_EQ(attribution_share_in(a, one), 1.0);
}

}  // namespace
}  // namespace medlens

namespace medlens {
namespace {

TEST(ShortcutCheck, FlagsAMapOnTheMarksAndPassesOneOnTheAnatomy) {
  const Image us = read_image(test::vendored_samples() + "/busi/normal_100.png");
  cv::Mat g = grey_of(us);
  cv::putText(g, "LT BREAST 3:00 2.1CM", {40, 40}, cv::FONT_HERSHEY_SIMPLEX, 0.4, cv::Scalar(255), 1, cv::LINE_8);
  const Image drawn = image_of(g, us);
  const Image marks = detect_burned_in_marks(drawn);
  Explanation on_marks, on_tissue;
  on_marks.attribution = marks;
  at::Tensor blob = at::zeros({1, 1, drawn.height(), drawn.width()});
  blob.narrow(2, 120, 40).narrow(3, 100, 40).fill_(1.0);  // a lesion-sized blob in the tissue
  on_tissue.attribution = drawn.with_voxels(blob);
  const ShortcutCheck bad = shortcut_check(drawn, on_marks);
  const ShortcutCheck good = shortcut_check(drawn, on_tissue);
  EXPECT_TRUE(bad.applicable);
  EXPECT_NEAR(bad.marks_share, 1.0, 1e-9);
  EXPECT_GT(bad.marks_area_share, 0.0);
  EXPECT_TRUE(bad.flag) << bad.summary;
  EXPECT_NE(bad.summary.find("FLAGGED"), std::string::npos);
  EXPECT_NEAR(good.marks_share, 0.0, 1e-9);
  EXPECT_FALSE(good.flag) << good.summary;
  // Uniform attribution: its share on the marks is their area share, which is not a shortcut.
  Explanation uniform;
  uniform.attribution = drawn.with_voxels(at::ones({1, 1, drawn.height(), drawn.width()}));
  const ShortcutCheck even = shortcut_check(drawn, uniform);
  EXPECT_NEAR(even.marks_share, even.marks_area_share, 1e-9);
  EXPECT_FALSE(even.flag);
  // Volumes: not applicable.
  const Image vol = drawn.with_voxels(at::zeros({1, 3, 8, 8}));
  uniform.attribution = vol;
  EXPECT_FALSE(shortcut_check(vol, uniform).applicable);
}

}  // namespace
}  // namespace medlens
