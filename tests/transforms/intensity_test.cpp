// Intensity preprocessing on real images, checked against numpy where it defines the answer.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "io/read.h"
#include "transforms/intensity.h"
#include "transforms/registry.h"
#include "tools/test_util.h"

namespace medlens {
namespace {

Image ct() { return read_image(test::pydicom_files() + "/CT_small.dcm"); }

TEST(Window, ClipsAndMapsToTheOutputRange) {
  const Image img = ct();
  const Image w = (*make_window(WindowOptions(40, 400)))(img);
  EXPECT_GE(w.voxels().min().item<float>(), 0.f);
  EXPECT_LE(w.voxels().max().item<float>(), 1.f);
  // -160 HU (lower edge) -> 0, 240 HU (upper edge) -> 1, 40 HU -> 0.5.
  const Image probe(at::tensor({-500.f, -160.f, 40.f, 240.f, 900.f}).reshape({1, 5}), Geometry{}, Metadata{});
  const at::Tensor v = (*make_window(WindowOptions(40, 400)))(probe).voxels().flatten();
  EXPECT_TRUE(at::allclose(v, at::tensor({0.f, 0.f, 0.5f, 1.f, 1.f})));
  EXPECT_EQ(w.geometry(), img.geometry());
}

TEST(ZScore, ZeroMeanUnitStdOverTheSelectedVoxels) {
  const Image img = ct();
  const at::Tensor z = (*make_zscore())(img).voxels();
  EXPECT_NEAR(z.mean().item<double>(), 0.0, 1e-4);
  EXPECT_NEAR(z.std().item<double>(), 1.0, 1e-4);
  // With a threshold, statistics come from the voxels above it only.
  const at::Tensor v = img.voxels();
  const at::Tensor zt = (*make_zscore(-500))(img).voxels();
  const at::Tensor sel = zt.masked_select(v > -500);
  EXPECT_NEAR(sel.mean().item<double>(), 0.0, 1e-4);
}

TEST(ScalePercentile, MatchesNumpyPercentiles) {
  const Image img = ct();
  const auto r = test::run({"/usr/bin/python3", "-c",
                            "import pydicom,numpy as np,sys; d=pydicom.dcmread(sys.argv[1]); "
                            "a=d.pixel_array*float(d.RescaleSlope)+float(d.RescaleIntercept); "
                            "print(np.percentile(a,2), np.percentile(a,98))",
                            test::pydicom_files() + "/CT_small.dcm"});
  ASSERT_EQ(r.status, 0) << r.error;
  double p2 = 0, p98 = 0;
  ASSERT_EQ(std::sscanf(r.output.c_str(), "%lf %lf", &p2, &p98), 2);
  // Unclipped, every value v maps to (v - p2) / (p98 - p2) with numpy's percentiles.
  const at::Tensor s = (*make_scale_percentile(2, 98, false))(img).voxels();
  const at::Tensor expect = (img.voxels().to(at::kDouble) - p2) / (p98 - p2);
  EXPECT_LT((s.to(at::kDouble) - expect).abs().max().item<double>(), 1e-4);
  const at::Tensor c = (*make_scale_percentile(2, 98, true))(img).voxels();
  EXPECT_GE(c.min().item<float>(), 0.f);
  EXPECT_LE(c.max().item<float>(), 1.f);
}

}  // namespace
}  // namespace medlens
