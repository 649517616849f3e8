// Mutual-information registration on real anatomy: ch2 at 2 mm moved by a known rigid or
// affine transform and turned into a second "modality" by contrast inversion must be brought
// back: the recovered transform is compared with the true one over the brain.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "io/read.h"
#include "transforms/registration.h"
#include "tools/test_util.h"

namespace medlens {
namespace {

constexpr double kPi = 3.14159265358979323846;

// ch2 and its brain mask (ch2bet > 0), both as means of 2x2x2 blocks: 90 x 108 x 90 at 2 mm.
struct Brain {
  Image t1;
  at::Tensor mask;  // (Z, Y, X) bool
};
const Brain& brain_2mm() {
  static const Brain b = [] {
    const Image ch2 = read_image(test::mricron_templates() + "/ch2.nii.gz");
    const Image bet = read_image(test::mricron_templates() + "/ch2bet.nii.gz");
    auto down = [](const at::Tensor& v) { return at::avg_pool3d(v.slice(1, 0, 180).slice(2, 0, 216).slice(3, 0, 180), 2); };
    Geometry g = ch2.geometry();
    g.origin = g.index_to_lps({0.5, 0.5, 0.5});
    for (auto& s : g.spacing) s *= 2;
    return Brain{Image(down(ch2.voxels()), g, ch2.metadata()), down(bet.voxels())[0] > 0};
  }();
  return b;
}

// p -> A (p - c) + c + t in LPS mm.
struct Affine {
  Mat3 a;
  Vec3 c, t;
  Vec3 operator()(const Vec3& p) const {
    Vec3 q{};
    for (int i = 0; i < 3; ++i) {
      q[i] = c[i] + t[i];
      for (int j = 0; j < 3; ++j) q[i] += a[i * 3 + j] * (p[j] - c[j]);
    }
    return q;
  }
};

Mat3 mul(const Mat3& x, const Mat3& y) {
  Mat3 r{};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 3; ++k) r[i * 3 + j] += x[i * 3 + k] * y[k * 3 + j];
  return r;
}
Mat3 rotation_z(double deg) {
  const double r = deg * kPi / 180, c = std::cos(r), s = std::sin(r);
  return {c, -s, 0, s, c, 0, 0, 0, 1};
}
Mat3 rotation_x(double deg) {
  const double r = deg * kPi / 180, c = std::cos(r), s = std::sin(r);
  return {1, 0, 0, 0, c, -s, 0, s, c};
}
Mat3 inverse(const Mat3& m) {
  const double det = m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6]) +
                     m[2] * (m[3] * m[7] - m[4] * m[6]);
  return {(m[4] * m[8] - m[5] * m[7]) / det, (m[2] * m[7] - m[1] * m[8]) / det, (m[1] * m[5] - m[2] * m[4]) / det,
          (m[5] * m[6] - m[3] * m[8]) / det, (m[0] * m[8] - m[2] * m[6]) / det, (m[2] * m[3] - m[0] * m[5]) / det,
          (m[3] * m[7] - m[4] * m[6]) / det, (m[1] * m[6] - m[0] * m[7]) / det, (m[0] * m[4] - m[1] * m[3]) / det};
}

// The moving image: fixed content carried by T (moving(T p) = fixed(p)), sampled on the fixed
// grid with torch's trilinear grid_sampler (zeros outside), then contrast-inverted.
Image moved_and_inverted(const Image& fixed, const Affine& t) {
  const Shape& s = fixed.shape();
  const Geometry& g = fixed.geometry();
  const Mat3 inv = inverse(t.a);
  at::Tensor grid = at::empty({1, s.z, s.y, s.x, 3}, at::kFloat);
  float* p = grid.data_ptr<float>();
  for (int64_t k = 0; k < s.z; ++k)
    for (int64_t j = 0; j < s.y; ++j)
      for (int64_t i = 0; i < s.x; ++i) {
        const Vec3 q = g.index_to_lps({double(i), double(j), double(k)});
        Vec3 d{}, src{};
        for (int a = 0; a < 3; ++a) d[a] = q[a] - t.c[a] - t.t[a];
        for (int a = 0; a < 3; ++a) src[a] = t.c[a] + inv[a * 3] * d[0] + inv[a * 3 + 1] * d[1] + inv[a * 3 + 2] * d[2];
        const Vec3 idx = g.lps_to_index(src);
        *p++ = static_cast<float>(2 * idx[0] / (s.x - 1) - 1);
        *p++ = static_cast<float>(2 * idx[1] / (s.y - 1) - 1);
        *p++ = static_cast<float>(2 * idx[2] / (s.z - 1) - 1);
      }
  const at::Tensor v = at::grid_sampler(fixed.voxels().unsqueeze(0), grid, 0, 0, true)[0];
  return fixed.with_voxels(v.max() - v);
}

// Mean and largest distance between the true and recovered images of the brain voxels.
std::pair<double, double> displacement_error(const Affine& truth, const RegistrationResult& r) {
  const Brain& b = brain_2mm();
  const at::Tensor idx = b.mask.nonzero();
  const auto acc = idx.accessor<int64_t, 2>();
  double sum = 0, worst = 0;
  for (int64_t n = 0; n < idx.size(0); ++n) {
    const Vec3 p = b.t1.geometry().index_to_lps({double(acc[n][2]), double(acc[n][1]), double(acc[n][0])});
    const Vec3 a = truth(p), e = r.map(p);
    const double d = std::sqrt(std::pow(a[0] - e[0], 2) + std::pow(a[1] - e[1], 2) + std::pow(a[2] - e[2], 2));
    sum += d;
    worst = std::max(worst, d);
  }
  return {sum / static_cast<double>(idx.size(0)), worst};
}

Vec3 centre(const Image& image) {
  const Shape& s = image.shape();
  return image.geometry().index_to_lps({(s.x - 1) / 2.0, (s.y - 1) / 2.0, (s.z - 1) / 2.0});
}

double correlation(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor x = a.flatten().to(at::kDouble) - a.mean().item<double>();
  const at::Tensor y = b.flatten().to(at::kDouble) - b.mean().item<double>();
  return ((x * y).sum() / (x.norm() * y.norm())).item<double>();
}

TEST(Registration, RecoversARigidTransformAcrossContrasts) {
  const Image& fixed = brain_2mm().t1;
  const Affine truth{mul(rotation_z(6), rotation_x(4)), centre(fixed), {5, -3, 4}};
  const Image moving = moved_and_inverted(fixed, truth);
  const RegistrationResult r = register_images(fixed, moving, RegistrationOptions().rigid().sampling_fraction(0.1));
  const auto [mean, worst] = displacement_error(truth, r);
  // Angle of the residual rotation R_est * R_true^T.
  const Mat3 resid = mul(r.matrix, inverse(truth.a));
  const double angle = std::acos(std::clamp((resid[0] + resid[4] + resid[8] - 1) / 2, -1.0, 1.0)) * 180 / kPi;
  std::printf("rigid: mean error %.3f mm, max %.3f mm, residual rotation %.3f deg, MI %.4f, %d iterations\n",
              mean, worst, angle, r.final_metric, r.iterations);
  EXPECT_LT(mean, 1.0);
  EXPECT_LT(angle, 1.0);
  EXPECT_LT(r.final_metric, 0.0);
  EXPECT_GT(r.iterations, 0);
  // The resampled moving image lies on the fixed grid and, inverted back, matches the fixed
  // image over the brain far better than the moving image did.
  EXPECT_EQ(r.resampled_moving.geometry(), fixed.geometry());
  const at::Tensor m = brain_2mm().mask;
  const double before = correlation(fixed.voxels()[0].masked_select(m), -moving.voxels()[0].masked_select(m));
  const double after = correlation(fixed.voxels()[0].masked_select(m), -r.resampled_moving.voxels()[0].masked_select(m));
  std::printf("correlation with the fixed image over the brain: before %.3f, after %.3f\n", before, after);
  EXPECT_GT(after, 0.95);
  EXPECT_GT(after, before + 0.1);
}

TEST(Registration, RecoversAnAffineTransformApproximately) {
  const Image& fixed = brain_2mm().t1;
  const Mat3 scale_shear{1.06, 0.03, 0, 0, 0.95, 0, 0.02, 0, 1.03};
  const Affine truth{mul(rotation_z(-5), scale_shear), centre(fixed), {-4, 2, 3}};
  const Image moving = moved_and_inverted(fixed, truth);
  const RegistrationResult r = register_images(fixed, moving, RegistrationOptions().affine().sampling_fraction(0.1));
  const auto [mean, worst] = displacement_error(truth, r);
  std::printf("affine: mean error %.3f mm, max %.3f mm, MI %.4f, %d iterations\n", mean, worst, r.final_metric,
              r.iterations);
  EXPECT_LT(mean, 1.5);
  EXPECT_LT(worst, 4.0);
}

TEST(Registration, AlignsTwoDimensionalImages) {
  // An axial slice rotated by 8 degrees and shifted (6, -4) mm in plane.
  const Image& vol = brain_2mm().t1;
  Geometry g = vol.geometry();
  g.origin = g.index_to_lps({0, 0, 45});
  const Image fixed(vol.voxels().slice(1, 45, 46), g, vol.metadata());
  const Affine truth{rotation_z(8), centre(fixed), {6, -4, 0}};
  const Image moving = [&] {
    // A 2-D grid_sampler pass with the same mapping as moved_and_inverted, in plane.
    const Shape& s = fixed.shape();
    const Mat3 inv = inverse(truth.a);
    at::Tensor grid = at::empty({1, s.y, s.x, 2}, at::kFloat);
    float* p = grid.data_ptr<float>();
    for (int64_t j = 0; j < s.y; ++j)
      for (int64_t i = 0; i < s.x; ++i) {
        const Vec3 q = g.index_to_lps({double(i), double(j), 0});
        Vec3 d{}, src{};
        for (int a = 0; a < 3; ++a) d[a] = q[a] - truth.c[a] - truth.t[a];
        for (int a = 0; a < 3; ++a) src[a] = truth.c[a] + inv[a * 3] * d[0] + inv[a * 3 + 1] * d[1] + inv[a * 3 + 2] * d[2];
        const Vec3 idx = g.lps_to_index(src);
        *p++ = static_cast<float>(2 * idx[0] / (s.x - 1) - 1);
        *p++ = static_cast<float>(2 * idx[1] / (s.y - 1) - 1);
      }
    const at::Tensor v = at::grid_sampler(fixed.voxels(), grid, 0, 0, true);
    return fixed.with_voxels(v.max() - v);
  }();
  const RegistrationResult r = register_images(fixed, moving, RegistrationOptions().sampling_fraction(0.5).pyramid({2, 1}));
  const Vec3 probe = g.index_to_lps({30, 70, 0});
  const Vec3 a = truth(probe), e = r.map(probe);
  const double err = std::hypot(a[0] - e[0], a[1] - e[1]);
  const double angle = std::atan2(r.matrix[3], r.matrix[0]) * 180 / kPi;
  std::printf("2-D: rotation %.3f deg (true 8), error at a probe %.3f mm\n", angle, err);
  EXPECT_NEAR(std::abs(angle), 8.0, 1.0);
  EXPECT_LT(err, 1.0);
  EXPECT_EQ(r.resampled_moving.depth(), 1);
  // The metric's sampling is seeded: the same inputs give the same transform (up to the order
  // in which ITK's threads add into the joint histogram).
  const RegistrationResult again = register_images(fixed, moving, RegistrationOptions().sampling_fraction(0.5).pyramid({2, 1}));
  for (int i = 0; i < 9; ++i) EXPECT_NEAR(again.matrix[i], r.matrix[i], 1e-9);
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(again.offset[i], r.offset[i], 1e-6);
}

TEST(Registration, RefusesMismatchedOrDegenerateInputs) {
  const Image& vol = brain_2mm().t1;
  const Image slice(vol.voxels().slice(1, 45, 46), vol.geometry(), vol.metadata());
  EXPECT_THROW(register_images(vol, slice), InputError);
  EXPECT_THROW(register_images(vol, vol.with_voxels(at::zeros_like(vol.voxels()))), InputError);
  EXPECT_THROW(register_images(vol, vol, RegistrationOptions().pyramid({32})), InputError);
  EXPECT_THROW(register_images(vol, vol, RegistrationOptions().sampling_fraction(0)), UsageError);
}

}  // namespace
}  // namespace medlens
