// Multi-modal inputs: series of one study stacked as channels on the first one's grid, trusting
// the scanner geometry or registering by mutual information, and refusing what cannot be one
// study. Real anatomy: the ch2 T1 template at 2 mm and a synthetic second contrast of it.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "core/error.h"
#include "io/read.h"
#include "tools/test_util.h"
#include "transforms/channels.h"
#include "transforms/registry.h"
#include "transforms/synth_lesions.h"

namespace medlens {
namespace {

Image resampled(const Image& image, double mm) {
  Rng rng(0);
  return (*make_transform("resample", {{"spacing", mm}}))(image, rng);
}

const Image& t1() {
  static const Image image = resampled(read_image(test::mricron_templates() + "/ch2.nii.gz"), 2.0);
  return image;
}

double correlation(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor x = a.flatten().to(at::kDouble) - a.mean().item<double>();
  const at::Tensor y = b.flatten().to(at::kDouble) - b.mean().item<double>();
  return ((x * y).sum() / (x.norm() * y.norm())).item<double>();
}

TEST(StackChannels, SeriesOnOneGridAreStackedAsTheyAre) {
  const Image second = synthetic_contrast(t1(), "t2-like");
  const Image both = stack_channels({t1(), second}, {"T1", "contrast2"});
  ASSERT_EQ(both.channels(), 2);
  EXPECT_EQ(both.geometry(), t1().geometry());
  EXPECT_TRUE(at::equal(both.voxels()[0], t1().voxels()[0]));
  EXPECT_TRUE(at::equal(both.voxels()[1], second.voxels()[0]));
}

TEST(StackChannels, ASeriesOnAnotherGridIsResampledOntoTheFirst) {
  const Image coarse = resampled(t1(), 3.0);  // the same anatomy at 3 mm
  const Image both = stack_channels({t1(), coarse}, {"T1", "coarse"});
  ASSERT_EQ(both.channels(), 2);
  EXPECT_EQ(both.depth(), t1().depth());
  EXPECT_EQ(both.geometry(), t1().geometry());
  const double r = correlation(both.voxels()[0], both.voxels()[1]);
  std::printf("T1 vs its 3 mm copy on the 2 mm grid: r = %.4f\n", r);
  EXPECT_GT(r, 0.95);
}

TEST(StackChannels, RegistrationAlignsASeriesWhoseHeaderIsOff) {
  // Inverted contrast (MI is needed) and the header's origin 8 mm off: the scanner coordinates
  // disagree with the anatomy, as when two series come from separate sessions.
  Image moved = t1().with_voxels(t1().voxels().max() - t1().voxels());
  moved.geometry().origin[0] += 8.0;
  const Image trusted = stack_channels({t1(), moved}, {"T1", "moved"});
  ChannelOptions reg;
  reg.register_series = true;
  const Image registered = stack_channels({t1(), moved}, {"T1", "moved"}, reg);
  const at::Tensor brain = t1().voxels()[0] > 20;
  auto fit = [&](const Image& im) {
    return -correlation(im.voxels()[0].masked_select(brain), im.voxels()[1].masked_select(brain));
  };
  std::printf("anti-correlation inside the brain: trusting the header %.3f, registered %.3f\n", fit(trusted), fit(registered));
  EXPECT_GT(fit(registered), 0.9);
  EXPECT_GT(fit(registered), fit(trusted) + 0.1);
}

TEST(StackChannels, RefusesSeriesThatCannotBeOneStudy) {
  const Image slice(t1().voxels().narrow(1, 40, 1).contiguous(), t1().geometry(), t1().metadata());
  try {
    stack_channels({t1(), slice}, {"T1", "slice.png"});
    FAIL() << "a 2-D series with a volume";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("slice.png"), std::string::npos) << e.what();
  }
  Image far = t1();
  far.geometry().origin[2] += 1000.0;  // a metre away: no overlap at all
  EXPECT_THROW(stack_channels({t1(), far}, {"T1", "far"}), InputError);
}

}  // namespace
}  // namespace medlens
