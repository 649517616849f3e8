#include "transforms/transform.h"

#include <nlohmann/json.hpp>

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
  for (const auto& t : steps_) sample = t->apply(std::move(sample), rng);
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
