#include "transforms/transform.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <new>
#include <string>

#include "core/error.h"
#include "transforms/base.h"

namespace medlens {

double Rng::uniform(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(engine_); }
int64_t Rng::integer(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(engine_); }
bool Rng::bernoulli(double p) { return std::uniform_real_distribution<double>(0, 1)(engine_) < p; }
double Rng::normal(double mean, double sd) { return std::normal_distribution<double>(mean, sd)(engine_); }

Image Transform::operator()(const Image& image, Rng& rng) const {
  return apply(Sample{image, std::nullopt}, rng).image;
}

Image Transform::operator()(const Image& image) const {
  Rng rng(0);
  return (*this)(image, rng);
}

void check_window(const std::string& op, double rx, double ry, double rz) {
  const double voxels = (2 * rx + 1) * (2 * ry + 1) * (2 * rz + 1);
  if (voxels <= double(1 << 20)) return;
  // Printed as whole numbers, clamped so the conversion stays defined for any double.
  auto whole = [](double v) { return std::to_string(static_cast<long long>(v >= 0 ? std::min(v, 1e18) : 0.0)); };
  throw UsageError("'" + op + "': a window of " + whole(voxels) + " voxels is too large (at most 2^20; half-widths " +
                   whole(rx) + ", " + whole(ry) + ", " + whole(rz) + " voxels)");
}

nlohmann::json Compose::params() const {
  nlohmann::json steps = nlohmann::json::array();
  for (const auto& t : steps_) {
    nlohmann::json entry = t->params();
    entry["op"] = t->name();
    steps.push_back(entry);
  }
  return {{"transforms", steps}};
}

Sample Compose::apply(Sample sample, Rng& rng) const {
  for (const auto& t : steps_) {
    const Shape in = sample.image.shape();
    try {
      sample = t->apply(std::move(sample), rng);
    } catch (const std::bad_alloc&) {
      // Most often a size or radius far too large for this image: name the step.
      throw UsageError("'" + t->name() + "': out of memory on a " + std::to_string(in.x) + "x" + std::to_string(in.y) +
                       "x" + std::to_string(in.z) + " image (are its size or radius parameters too large?)");
    }
  }
  return sample;
}

bool Compose::random() const {
  for (const auto& t : steps_)
    if (t->random()) return true;
  return false;
}

Compose Compose::deterministic() const {
  std::vector<TransformPtr> kept;
  for (const auto& t : steps_)
    if (!t->random()) kept.push_back(t);
  return Compose(kept);
}

}  // namespace medlens
