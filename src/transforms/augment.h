// Augmentation: random transforms for training (each applied with probability p), their
// deterministic twins, and the one resampler every spatial augmentation goes through.
//
// Spatial parameters live in the image's own physical frame: axes along the index axes x, y, z
// (the direction columns), in mm, origin at the centre of the grid. For an orthonormal
// direction this is a rigid copy of LPS space, so anisotropic spacing is respected. A 2-D image
// (Z = 1) uses only the in-plane components (rotation about z; x/y scale, shear, translation).
// Warps keep the grid (shape, spacing, origin, direction) and metadata; crops change shape and
// origin so every voxel keeps its LPS position.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "transforms/transform.h"

namespace medlens {

/// How samples outside the image are filled: zeros, the image minimum (labels: 0), the
/// nearest edge voxel, or the mirror image about the edge voxels.
enum class Border { kZeros, kMin, kBorder, kReflection };
enum class Interp { kLinear, kNearest };

/// Resamples `image` at continuous input index positions `coords`, a float64 tensor
/// (3, Z, Y, X) holding (x, y, z) per output voxel; the output keeps the image's grid and
/// metadata. Positions within 1e-6 of a voxel centre are snapped, so integer positions copy
/// values exactly. Throws UsageError when coords has the wrong shape.
Image resample_at(const Image& image, const at::Tensor& coords, Interp interp, Border border);

/// The (3, Z, Y, X) float64 index positions of the image's own voxels (the identity warp).
at::Tensor identity_coords(const Shape& shape);

/// Separable Gaussian smoothing of a (C, Z, Y, X) float tensor with sigma given per axis
/// (x, y, z) in voxels; axes with sigma <= 0 are left alone; edges replicate.
at::Tensor gaussian_smooth_voxels(const at::Tensor& t, const Vec3& sigma_voxels);

/// A concrete affine draw, in the image's physical frame about the grid centre: content at
/// p moves to c + R*Sh*S*(p - c) + t. Rotations in degrees about x, y, z (applied x, then y,
/// then z); shear (xy, xz, yz) as the upper-triangular entries of Sh.
struct AffineParams {
  Vec3 rotate_deg{0, 0, 0};
  Vec3 scale{1, 1, 1};
  Vec3 shear{0, 0, 0};
  Vec3 translate_mm{0, 0, 0};
};
TransformPtr make_affine(const AffineParams& params, Interp interp = Interp::kLinear,
                         Border border = Border::kMin);

/// random-affine: with probability p, rotation uniform in [-rotate, rotate] degrees per axis,
/// scale uniform in [scale_lo, scale_hi] (one factor for all axes when isotropic), shear
/// uniform in [-shear, shear], translation uniform in [-translate, translate] mm per axis.
struct RandomAffineOptions {
  double p_ = 0.5;
  Vec3 rotate_deg_{10, 10, 10};
  double scale_lo_ = 0.9, scale_hi_ = 1.1;
  bool isotropic_ = true;
  double shear_ = 0.0;
  Vec3 translate_mm_{0, 0, 0};
  Interp interp_ = Interp::kLinear;
  Border border_ = Border::kMin;
  RandomAffineOptions& p(double v) { p_ = v; return *this; }
  RandomAffineOptions& rotate(Vec3 deg) { rotate_deg_ = deg; return *this; }
  RandomAffineOptions& scale(double lo, double hi, bool isotropic = true) {
    scale_lo_ = lo; scale_hi_ = hi; isotropic_ = isotropic; return *this;
  }
  RandomAffineOptions& shear(double v) { shear_ = v; return *this; }
  RandomAffineOptions& translate(Vec3 mm) { translate_mm_ = mm; return *this; }
  RandomAffineOptions& interp(Interp v) { interp_ = v; return *this; }
  RandomAffineOptions& border(Border v) { border_ = v; return *this; }
};
TransformPtr make_random_affine(const RandomAffineOptions& options);

/// random-elastic: with probability p, a smooth random displacement field: Gaussian noise on a
/// control grid spaced sigma/2 mm, smoothed with sigma mm, interpolated to every voxel and
/// scaled so its largest displacement is a magnitude drawn uniform in [magnitude_lo,
/// magnitude_hi] mm. No voxel moves further than magnitude_hi mm.
struct RandomElasticOptions {
  double p_ = 0.5;
  double magnitude_lo_mm_ = 0.0, magnitude_hi_mm_ = 4.0;
  double sigma_mm_ = 12.0;
  Interp interp_ = Interp::kLinear;
  Border border_ = Border::kBorder;
  RandomElasticOptions& p(double v) { p_ = v; return *this; }
  RandomElasticOptions& magnitude(double lo_mm, double hi_mm) {
    magnitude_lo_mm_ = lo_mm; magnitude_hi_mm_ = hi_mm; return *this;
  }
  RandomElasticOptions& sigma(double mm) { sigma_mm_ = mm; return *this; }
  RandomElasticOptions& interp(Interp v) { interp_ = v; return *this; }
  RandomElasticOptions& border(Border v) { border_ = v; return *this; }
};
TransformPtr make_random_elastic(const RandomElasticOptions& options);
/// The deterministic twin: the field is drawn from `seed` for each image's grid.
TransformPtr make_elastic(double magnitude_mm, double sigma_mm, uint64_t seed,
                          Interp interp = Interp::kLinear, Border border = Border::kBorder);

/// Gamma on values normalised to the image's range [lo, hi] (all channels together):
/// v -> lo + (hi - lo) * ((v - lo) / (hi - lo))^gamma. A constant image is unchanged.
TransformPtr make_gamma(double gamma);
/// random-gamma: gamma log-uniform in [lo, hi] with probability p.
TransformPtr make_random_gamma(double p = 0.5, double lo = 0.7, double hi = 1.5);

/// v -> mean + contrast * (v - mean) + brightness * (hi - lo), with mean and range of the image.
TransformPtr make_brightness_contrast(double brightness, double contrast);
/// random-brightness-contrast: brightness uniform in [-brightness, brightness] (fraction of the
/// range), contrast factor log-uniform in [contrast_lo, contrast_hi], with probability p.
TransformPtr make_random_brightness_contrast(double p = 0.5, double brightness = 0.1,
                                             double contrast_lo = 0.8, double contrast_hi = 1.25);

/// Gaussian blur with sigma in mm (per axis sigma / spacing voxels; 2-D images stay in plane).
TransformPtr make_blur(double sigma_mm);
/// random-blur: sigma uniform in [lo, hi] mm with probability p.
TransformPtr make_random_blur(double p = 0.5, double lo_mm = 0.5, double hi_mm = 1.5);

/// Adds Gaussian noise drawn from `seed`, of standard deviation `sigma` times the image's value
/// range (hi - lo over all channels).
TransformPtr make_add_noise(double sigma, uint64_t seed);
/// random-noise: sigma uniform in [lo, hi] as a fraction of the image's value range, with
/// probability p.
TransformPtr make_random_noise(double p = 0.5, double lo = 0.01, double hi = 0.05);

/// A crop (or pad, where the window leaves the grid) of `size` voxels (x, y, z) starting at
/// index `start`; the origin moves so voxels keep their LPS positions. Padding takes the image
/// minimum and 0 for labels.
TransformPtr make_crop_at(std::array<int64_t, 3> start, std::array<int64_t, 3> size);

/// random-crop: a window of `size` voxels (x, y, z; z is 1 on 2-D images) placed uniformly, or
/// with probability `foreground` centred on a voxel drawn uniformly from the label's non-zero
/// voxels (when the sample has a label with any). The window is then shifted to stay inside
/// the image along axes where the image is at least as large; along smaller axes it is centred
/// and padded. Always applied: the output always has `size` voxels.
TransformPtr make_random_crop(std::array<int64_t, 3> size, double foreground = 0.0);

}  // namespace medlens
