// Transforms: small immutable objects with one `apply`. Parameters are fixed at construction
// (options structs with defaults); randomness comes only from the Rng passed in, so a pipeline
// run with the same seed gives bit-identical output. Random transforms draw their parameters
// and then delegate to a deterministic twin (MONAI's randomize / apply split).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "core/image.h"

namespace medlens {

/// Randomness for transforms. One seed drives scalar draws and, through derived seeds, torch
/// tensor draws (noise fields), so results do not depend on thread timing.
class Rng {
 public:
  explicit Rng(uint64_t seed = 0) : engine_(seed) {}
  double uniform(double lo, double hi);
  /// Integer in [lo, hi], both inclusive.
  int64_t integer(int64_t lo, int64_t hi);
  bool bernoulli(double p);
  double normal(double mean, double sd);
  /// A fresh 64-bit seed for a child generator (e.g. at::make_generator<CPUGeneratorImpl>).
  uint64_t next_seed() { return engine_(); }

 private:
  std::mt19937_64 engine_;
};

/// What flows through a pipeline: the image and, optionally, a label map in the same geometry.
/// Spatial transforms move the label with nearest-neighbour interpolation; intensity transforms
/// leave it alone.
struct Sample {
  Image image;
  std::optional<Image> label;
};

class Transform {
 public:
  virtual ~Transform() = default;
  /// Stable name used in pipeline specs and on the command line (e.g. "window", "random-flip").
  virtual std::string name() const = 0;
  /// Parameters as a JSON object (the spec entry without "op"); make_transform(name(), params())
  /// rebuilds an equal transform.
  virtual nlohmann::json params() const = 0;
  /// Applies the transform; deterministic transforms ignore rng. Throws InputError when the
  /// image does not suit the transform (e.g. a 3-D-only filter on a 2-D image) or UsageError.
  virtual Sample apply(Sample sample, Rng& rng) const = 0;
  /// True when apply draws from rng. Inference pipelines drop random steps.
  virtual bool random() const { return false; }

  /// Image-only conveniences.
  Image operator()(const Image& image, Rng& rng) const;
  Image operator()(const Image& image) const;
};

using TransformPtr = std::shared_ptr<const Transform>;

/// A chain of transforms applied in order.
class Compose final : public Transform {
 public:
  Compose() = default;
  explicit Compose(std::vector<TransformPtr> steps) : steps_(std::move(steps)) {}
  std::string name() const override { return "compose"; }
  nlohmann::json params() const override;
  Sample apply(Sample sample, Rng& rng) const override;
  bool random() const override;
  const std::vector<TransformPtr>& steps() const { return steps_; }
  /// The same chain without random steps: what inference runs after training augmentation.
  Compose deterministic() const;

 private:
  std::vector<TransformPtr> steps_;
};

}  // namespace medlens
