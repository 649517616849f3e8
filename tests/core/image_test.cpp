#include "core/image.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "core/error.h"

namespace medlens {
namespace {

TEST(Image, FromBufferAdoptsVoxelsInCZYXOrder) {
  VoxelBuffer b;
  b.shape = {2, 3, 4, 5};
  b.data.resize(2 * 3 * 4 * 5);
  for (size_t i = 0; i < b.data.size(); ++i) b.data[i] = static_cast<float>(i);
  const float* before = b.data.data();
  b.geometry.spacing = {0.5, 0.6, 2.0};
  Image img = Image::from_buffer(std::move(b));
  EXPECT_EQ(img.data(), before) << "from_buffer must not copy voxels";
  EXPECT_EQ(img.channels(), 2);
  EXPECT_EQ(img.depth(), 3);
  EXPECT_EQ(img.height(), 4);
  EXPECT_EQ(img.width(), 5);
  EXPECT_TRUE(img.is_3d());
  // Element (c=1, z=2, y=3, x=4) is the last one.
  EXPECT_FLOAT_EQ(img.voxels().index({1, 2, 3, 4}).item<float>(), 119.f);
  EXPECT_DOUBLE_EQ(img.geometry().spacing[2], 2.0);
}

TEST(Image, AcceptsRank2And3AndConvertsToFloat) {
  Image a(at::ones({4, 5}, at::kDouble), Geometry{}, Metadata{});
  EXPECT_EQ(a.shape(), (Shape{1, 1, 4, 5}));
  EXPECT_FALSE(a.is_3d());
  Image b(at::ones({3, 4, 5}), Geometry{}, Metadata{});
  EXPECT_EQ(b.shape(), (Shape{1, 3, 4, 5}));
  EXPECT_EQ(b.voxels().scalar_type(), at::kFloat);
}

TEST(Image, RejectsIntegerTensorsAndBadGeometry) {
  EXPECT_THROW(Image(at::ones({4, 5}, at::kInt), Geometry{}, Metadata{}), Error);
  Geometry g;
  g.spacing[0] = 0;
  EXPECT_THROW(Image(at::ones({4, 5}), g, Metadata{}), Error);
}

TEST(Image, CopiesShareVoxelsCloneDoesNot) {
  Image a(at::zeros({2, 2}), Geometry{}, Metadata{});
  Image shared = a;
  Image deep = a.clone();
  a.mutable_data()[0] = 7.f;
  EXPECT_FLOAT_EQ(shared.data()[0], 7.f);
  EXPECT_FLOAT_EQ(deep.data()[0], 0.f);
}

TEST(Image, ValueRangeIgnoresNonFinite) {
  Image a(at::tensor({1.f, NAN, -3.f, INFINITY, 2.f}).reshape({1, 5}), Geometry{}, Metadata{});
  auto [lo, hi] = value_range(a);
  EXPECT_FLOAT_EQ(lo, -3.f);
  EXPECT_FLOAT_EQ(hi, 2.f);
}

}  // namespace
}  // namespace medlens
