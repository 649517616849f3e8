// Base classes that give each kind of transform its Sample and label handling, so a concrete
// transform implements one function. Include <ATen/ATen.h> in the .cpp files that use these.
#pragma once

#include <nlohmann/json.hpp>

#include "transforms/transform.h"

namespace medlens {

/// Filters that visit a window around every voxel refuse one of more than 2^20 voxels (a radius
/// meant in millimetres given in voxels, or a typo): it would take hours or exhaust memory.
/// rx, ry, rz are the window's half-widths in voxels along x, y, z (NaN is refused too).
/// Throws UsageError naming `op`.
void check_window(const std::string& op, double rx, double ry, double rz);

/// Changes voxel values only: the label (if any) passes through untouched.
class IntensityTransform : public Transform {
 public:
  Sample apply(Sample sample, Rng&) const final {
    sample.image = transform_image(sample.image);
    return sample;
  }

 protected:
  virtual Image transform_image(const Image& image) const = 0;
};

/// Moves voxels: the same operation runs on the label with `is_label` true (nearest-neighbour
/// interpolation, no intensity changes), so masks keep their geometry exactly.
class SpatialTransform : public Transform {
 public:
  Sample apply(Sample sample, Rng&) const final {
    sample.image = transform_image(sample.image, false);
    if (sample.label) sample.label = transform_image(*sample.label, true);
    return sample;
  }

 protected:
  virtual Image transform_image(const Image& image, bool is_label) const = 0;
};

/// Draws its parameters, then delegates to a deterministic transform that applies them.
class RandomTransform : public Transform {
 public:
  bool random() const final { return true; }
  Sample apply(Sample sample, Rng& rng) const final {
    TransformPtr drawn = draw(rng);
    return drawn ? drawn->apply(std::move(sample), rng) : std::move(sample);
  }
  /// This call's deterministic transform, or nullptr to leave the sample unchanged (e.g. when
  /// the transform's probability says skip).
  virtual TransformPtr draw(Rng& rng) const = 0;
};

}  // namespace medlens
