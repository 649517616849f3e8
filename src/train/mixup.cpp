#include "train/mixup.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "core/error.h"

namespace medlens {

MixupOptions MixupOptions::from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw UsageError("mixup must be an object such as {\"alpha\": 0.4, \"cutmix\": 0.5}");
  for (auto it = j.begin(); it != j.end(); ++it)
    if (it.key() != "alpha" && it.key() != "p" && it.key() != "cutmix")
      throw UsageError("mixup has no key '" + it.key() + "' (known: alpha, p, cutmix)");
  MixupOptions o;
  try {
    o.alpha = j.value("alpha", o.alpha);
    o.p = j.value("p", o.p);
    o.cutmix = j.value("cutmix", o.cutmix);
  } catch (const nlohmann::json::exception&) {
    throw UsageError("mixup has a value of the wrong type (alpha, p and cutmix are numbers)");
  }
  if (!(o.alpha > 0)) throw UsageError("mixup alpha must be > 0");
  if (!(o.p > 0 && o.p <= 1)) throw UsageError("mixup p must lie in (0, 1]");
  if (!(o.cutmix >= 0 && o.cutmix <= 1)) throw UsageError("mixup cutmix must lie in [0, 1]");
  return o;
}

double mix_batch(at::Tensor& x, at::Tensor& partner, const MixupOptions& o, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> unit(0, 1);
  partner = at::Tensor();
  if (x.size(0) < 2 || unit(rng) >= o.p) return 1.0;
  std::gamma_distribution<double> gamma(o.alpha, 1.0);
  const double ga = gamma(rng), gb = gamma(rng);
  double lambda = ga + gb > 0 ? ga / (ga + gb) : 1.0;
  std::vector<int64_t> perm(static_cast<size_t>(x.size(0)));
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  partner = at::tensor(perm, at::kLong);
  const at::Tensor other = x.index_select(0, partner);
  if (unit(rng) < o.cutmix) {
    // A box of about (1 - lambda) of the image, centred anywhere and clipped at the border;
    // lambda becomes the share of the image left untouched.
    const int64_t dims = x.dim() - 2;
    x = x.clone();
    at::Tensor region = x, source = other;
    double box = 1;
    for (int64_t axis = 2; axis < x.dim(); ++axis) {
      const int64_t size = x.size(axis);
      const double side = static_cast<double>(size) * std::pow(1 - lambda, 1.0 / static_cast<double>(dims));
      const double centre = unit(rng) * static_cast<double>(size);
      const int64_t lo = std::clamp<int64_t>(std::llround(centre - side / 2), 0, size);
      const int64_t hi = std::clamp<int64_t>(std::llround(centre + side / 2), 0, size);
      region = region.slice(axis, lo, hi);
      source = source.slice(axis, lo, hi);
      box *= static_cast<double>(hi - lo) / static_cast<double>(size);
    }
    if (region.numel() > 0) region.copy_(source);
    lambda = 1 - box;
  } else {
    x = x * lambda + other * (1 - lambda);
  }
  return lambda;
}

}  // namespace medlens
