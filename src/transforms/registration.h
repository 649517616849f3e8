// Intensity-based registration of two images, possibly of different modalities (MRI to CT,
// T1 to T2): Mattes mutual information, rigid or affine, multi-resolution (ITK v4 framework).
// Not a Transform: it takes two images and returns a transform and the moved image.
#pragma once

#include <cstdint>
#include <vector>

#include "core/geometry.h"
#include "core/image.h"

namespace medlens {

struct RegistrationOptions {
  enum Kind { kRigid, kAffine };
  Kind kind = kRigid;
  int histogram_bins = 32;        ///< Mattes MI joint histogram bins
  double sampling = 0.2;          ///< fraction of fixed voxels sampled (random, fixed seed)
  int iterations = 200;           ///< optimiser iterations per level at most
  std::vector<int> shrink{4, 2, 1};  ///< pyramid, coarse to fine; smoothing sigma shrink/2 voxels
  double learning_rate = 1.0;     ///< first step, in mm of the largest physical shift
  double min_step = 1e-3;         ///< stop when the step (halved at each reversal) is this small
  /// Seed of the metric's sampling: equal inputs give equal results, bit-identical with one ITK
  /// thread, else to ~1e-15 (ITK's threads add into the joint histogram in varying order).
  uint32_t seed = 121212;

  RegistrationOptions& rigid() { kind = kRigid; return *this; }
  RegistrationOptions& affine() { kind = kAffine; return *this; }
  RegistrationOptions& bins(int v) { histogram_bins = v; return *this; }
  RegistrationOptions& sampling_fraction(double v) { sampling = v; return *this; }
  RegistrationOptions& max_iterations(int v) { iterations = v; return *this; }
  RegistrationOptions& pyramid(std::vector<int> v) { shrink = std::move(v); return *this; }
  RegistrationOptions& step(double first, double min) { learning_rate = first; min_step = min; return *this; }
  RegistrationOptions& sampling_seed(uint32_t v) { seed = v; return *this; }
};

struct RegistrationResult {
  /// Maps a fixed-image point (LPS mm) to the matching moving-image point:
  /// moving = matrix * fixed + offset. Rigid: matrix is a rotation.
  Mat3 matrix{1, 0, 0, 0, 1, 0, 0, 0, 1};
  Vec3 offset{0, 0, 0};
  /// The moving image resampled onto the fixed grid (linear; 0 outside), every channel, with the
  /// fixed image's geometry and the moving image's metadata.
  Image resampled_moving;
  double final_metric = 0;  ///< Mattes MI at the end (negative: lower is better)
  int iterations = 0;       ///< optimiser iterations over all levels

  /// The fixed-to-moving mapping of one point.
  Vec3 map(const Vec3& fixed_point) const;
};

/// Registers `moving` to `fixed` (channel 0 of each; 2-D with 2-D, 3-D with 3-D). The
/// transform starts at the identity about the fixed image's centre, plus the translation that
/// aligns the two images' geometric centres. Throws InputError when the images cannot be
/// registered (dimensions differ, a pyramid level would be empty, a constant image), UsageError
/// for bad options.
RegistrationResult register_images(const Image& fixed, const Image& moving,
                                   const RegistrationOptions& options = {});

}  // namespace medlens
