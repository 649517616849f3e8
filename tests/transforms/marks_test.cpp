// Burned-in text and calipers on ultrasound: the detector, and the inpaint-marks step that paints
// them out before a model sees the image.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <opencv2/imgproc.hpp>

#include "core/error.h"
#include "io/opencv_bridge.h"
#include "io/read.h"
#include "tools/test_util.h"
#include "transforms/marks.h"
#include "transforms/registry.h"

namespace medlens {
namespace {

// The one-channel sample as a Mat to draw on (a copy), and back.
cv::Mat grey_of(const Image& image) { return plane_view(image, 0, 0).clone(); }
Image image_of(const cv::Mat& m, const Image& like) { return image_from_mat(m, like.geometry(), like.metadata()); }

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

// A real ultrasound image with text and caliper crosses drawn where we know: `truth` marks the
// drawn strokes.
struct Drawn {
  Image base, drawn;
  at::Tensor truth;  // (H, W) bool
};
Drawn drawn_marks() {
  const Image us = read_image(test::vendored_samples() + "/busi/normal_100.png");
  const cv::Mat base = grey_of(us);
  cv::Mat drawn = base.clone();
  cv::Mat truth = cv::Mat::zeros(base.size(), CV_8U);
  for (auto [m, v] : {std::pair{&drawn, 255.0}, std::pair{&truth, 1.0}}) {
    cv::putText(*m, "LT BREAST 3:00", {150, 200}, cv::FONT_HERSHEY_SIMPLEX, 0.35, cv::Scalar(v), 1, cv::LINE_8);
    for (cv::Point c : {cv::Point(90, 150), cv::Point(140, 170)}) {
      cv::line(*m, c - cv::Point(3, 0), c + cv::Point(3, 0), cv::Scalar(v), 1);
      cv::line(*m, c - cv::Point(0, 3), c + cv::Point(0, 3), cv::Scalar(v), 1);
    }
  }
  return {us, image_of(drawn, us), at::from_blob(truth.data, {truth.rows, truth.cols}, at::kByte).clone() > 0};
}

TEST(InpaintMarks, PaintsDrawnMarksOutAndLeavesEverythingElseAlone) {
  const Drawn d = drawn_marks();
  const TransformPtr step = make_transform("inpaint-marks", nlohmann::json::object());
  const Image out = (*step)(d.drawn);
  const at::Tensor before = d.drawn.voxels()[0][0], after = out.voxels()[0][0], base = d.base.voxels()[0][0];
  const at::Tensor mask = detect_burned_in_marks(d.drawn).voxels()[0][0] > 0.5;
  // Only the detected marks change; the drawn strokes are among them.
  EXPECT_TRUE(at::equal(after.masked_select(~mask), before.masked_select(~mask)));
  EXPECT_GT((before != after).logical_and(d.truth).sum().item<double>(), 0.85 * d.truth.sum().item<double>());
  // On the strokes, the painted values are close to the tissue that was under them: the error
  // against the unmarked image falls to a fraction of what the marks put there.
  const double err_marked = (before - base).abs().masked_select(d.truth).mean().item<double>();
  const double err_painted = (after - base).abs().masked_select(d.truth).mean().item<double>();
  EXPECT_LT(err_painted, 0.25 * err_marked) << err_marked << " -> " << err_painted;
  // The detector no longer finds the drawn marks, and 8-bit grey levels stay whole numbers.
  const at::Tensor again = detect_burned_in_marks(out).voxels()[0][0] > 0.5;
  EXPECT_LT(again.logical_and(d.truth).sum().item<double>(), 0.1 * d.truth.sum().item<double>());
  EXPECT_TRUE(at::equal(after, after.round()));
  // Deterministic, and the spec round-trips through the registry.
  EXPECT_TRUE(at::equal((*step)(d.drawn).voxels(), out.voxels()));
  const TransformPtr rebuilt = make_transform("inpaint-marks", step->params());
  EXPECT_TRUE(at::equal((*rebuilt)(d.drawn).voxels(), out.voxels()));
  std::printf("stroke error against the unmarked image: %.1f drawn, %.1f painted\n", err_marked, err_painted);
}

TEST(InpaintMarks, AnImageWithoutMarksPassesThroughUnchanged) {
  const Image t1 = read_image(test::mricron_templates() + "/ch2.nii.gz");
  const Image slice = t1.with_voxels(t1.voxels().narrow(1, 90, 1).contiguous());
  ASSERT_EQ(detect_burned_in_marks(slice).voxels().sum().item<double>(), 0.0);
  EXPECT_TRUE(at::equal((*make_inpaint_marks())(slice).voxels(), slice.voxels()));
}

TEST(InpaintMarks, RefusesBadParameters) {
  EXPECT_THROW(make_transform("inpaint-marks", {{"radius", 0}}), UsageError);
  EXPECT_THROW(make_transform("inpaint-marks", {{"contrast", -1}}), UsageError);
  EXPECT_THROW(make_transform("inpaint-marks", {{"colour", 1}}), UsageError);
}

}  // namespace
}  // namespace medlens
