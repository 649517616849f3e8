// The shortcut check: how much of an attribution falls on burned-in text and calipers (the
// detector itself is tested in tests/transforms/marks_test.cpp).
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <opencv2/imgproc.hpp>

#include "explain/explain.h"
#include "io/opencv_bridge.h"
#include "io/read.h"
#include "tools/test_util.h"

namespace medlens {
namespace {

// The one-channel sample as a Mat to draw on (a copy), and back.
cv::Mat grey_of(const Image& image) { return plane_view(image, 0, 0).clone(); }
Image image_of(const cv::Mat& m, const Image& like) { return image_from_mat(m, like.geometry(), like.metadata()); }

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
