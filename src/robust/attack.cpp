#include "robust/attack.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <limits>

#include "core/error.h"
#include "infer/evaluate.h"
#include "io/manifest.h"
#include "nn/network.h"

namespace medlens {
namespace {

// Per-image scalars (N) broadcast over the other axes of x.
at::Tensor per_image(const at::Tensor& v, const at::Tensor& x) {
  std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
  shape[0] = x.size(0);
  return v.view(shape);
}

at::Tensor l2_norm(const at::Tensor& t) { return t.flatten(1).norm(2, 1).clamp_min(1e-12); }

at::Tensor attack_batch(Network& net, const at::Tensor& x, const at::Tensor& y, const at::Tensor& radius,
                        const AttackOptions& o, at::Generator& gen) {
  const at::Tensor lo = per_image(std::get<0>(x.flatten(1).min(1)), x), hi = per_image(std::get<0>(x.flatten(1).max(1)), x);
  const at::Tensor r = per_image(radius, x);
  const bool linf = o.norm == "linf";
  auto project = [&](const at::Tensor& adv) {
    at::Tensor d = adv - x;
    if (linf) {
      d = at::max(at::min(d, r), -r);
    } else {
      const at::Tensor n = per_image(l2_norm(d), x);
      d = d * at::clamp_max(r / n, 1.0);
    }
    return at::max(at::min(x + d, hi), lo);
  };
  auto gradient = [&](const at::Tensor& adv) {
    at::Tensor a = adv.detach().requires_grad_(true);
    const at::Tensor loss = at::cross_entropy_loss(net.forward(a), y, {}, at::Reduction::Sum);
    return torch::autograd::grad({loss}, {a})[0].detach();
  };
  auto direction = [&](const at::Tensor& g) {
    return linf ? g.sign() : g / per_image(l2_norm(g), g);
  };
  if (o.method == "fgsm") return project(x + r * direction(gradient(x))).detach();
  at::Tensor adv = x;
  if (o.random_start) {
    at::Tensor noise = at::empty_like(x).uniform_(-1, 1, gen);
    if (!linf) noise = noise / per_image(l2_norm(noise), x) * per_image(at::rand({x.size(0)}, gen, x.options()), x);
    adv = project(x + noise * r);
  }
  const double step = (o.step_size > 0 ? o.step_size : 2.5 / std::max(1, o.steps));
  for (int s = 0; s < o.steps; ++s) adv = project(adv + step * r * direction(gradient(adv))).detach();
  return adv;
}

}  // namespace

void AttackOptions::validate() const {
  if (method != "fgsm" && method != "pgd") throw UsageError("attack method must be fgsm or pgd, not '" + method + "'");
  if (norm != "linf" && norm != "l2") throw UsageError("attack norm must be linf or l2, not '" + norm + "'");
  if (!(eps >= 0)) throw UsageError("attack eps must be >= 0");
  if (steps < 1) throw UsageError("attack steps must be >= 1");
}

at::Tensor intensity_range(const at::Tensor& x) {
  const at::Tensor f = x.detach().flatten(1);
  return (std::get<0>(f.max(1)) - std::get<0>(f.min(1))).clamp_min(1e-12);
}

at::Tensor attack_per_image(const Model& model, const at::Tensor& x, const at::Tensor& y, const at::Tensor& eps,
                            const AttackOptions& o) {
  o.validate();
  Network& net = *model.network();
  net.eval();
  at::Generator gen = at::detail::createCPUGenerator(o.seed);
  const at::Tensor radius = eps.to(x.dtype()) * intensity_range(x);
  std::vector<at::Tensor> out;
  for (int64_t s = 0; s < x.size(0); s += o.batch_size) {
    const int64_t e = std::min(x.size(0), s + o.batch_size);
    out.push_back(attack_batch(net, x.slice(0, s, e).detach(), y.slice(0, s, e), radius.slice(0, s, e), o, gen));
  }
  return at::cat(out);
}

at::Tensor adversarial_batch(Network& net, const at::Tensor& x, const at::Tensor& y, const AttackOptions& o) {
  o.validate();
  const bool was_training = net.is_training();
  net.eval();
  at::Generator gen = at::detail::createCPUGenerator(o.seed);
  const at::Tensor adv = attack_batch(net, x.detach(), y, o.eps * intensity_range(x), o, gen);
  net.train(was_training);
  return adv;
}

at::Tensor attack(const Model& model, const at::Tensor& x, const at::Tensor& y, const AttackOptions& o) {
  return attack_per_image(model, x, y, at::full({x.size(0)}, o.eps, x.options()), o);
}

at::Tensor predict_classes(const Model& model, const at::Tensor& x, int64_t batch_size) {
  Network& net = *model.network();
  torch::NoGradGuard no_grad;
  net.eval();
  std::vector<at::Tensor> out;
  for (int64_t s = 0; s < x.size(0); s += batch_size)
    out.push_back(net.forward(x.slice(0, s, std::min(x.size(0), s + batch_size))).argmax(1));
  return at::cat(out);
}

std::vector<double> minimal_perturbation(const Model& model, const at::Tensor& x, const at::Tensor& y,
                                         const AttackOptions& o, double max_eps, int iterations) {
  const int64_t n = x.size(0);
  const at::Tensor clean_ok = predict_classes(model, x, o.batch_size) == y;
  at::Tensor lo = at::zeros({n}, at::kDouble), hi = at::full({n}, max_eps, at::kDouble);
  const at::Tensor flipped_at_max = predict_classes(model, attack_per_image(model, x, y, hi, o), o.batch_size) != y;
  for (int it = 0; it < iterations; ++it) {
    const at::Tensor mid = (lo + hi) / 2;
    const at::Tensor flipped = predict_classes(model, attack_per_image(model, x, y, mid, o), o.batch_size) != y;
    hi = at::where(flipped, mid, hi);
    lo = at::where(flipped, lo, mid);
  }
  std::vector<double> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    out[static_cast<size_t>(i)] = !clean_ok[i].item<bool>()        ? 0.0
                                  : !flipped_at_max[i].item<bool>() ? std::numeric_limits<double>::infinity()
                                                                    : hi[i].item<double>();
  return out;
}

nlohmann::json robust_accuracy(const Model& model, const at::Tensor& x, const at::Tensor& y,
                               const std::vector<double>& ladder, const AttackOptions& o) {
  auto acc = [&](const at::Tensor& pred) { return (pred == y).to(at::kDouble).mean().item<double>(); };
  const double clean = acc(predict_classes(model, x, o.batch_size));
  nlohmann::json out = {{"method", o.method}, {"norm", o.norm}, {"steps", o.method == "pgd" ? o.steps : 1},
                        {"random_start", o.method == "pgd" && o.random_start}, {"clean_accuracy", clean},
                        {"n", x.size(0)}, {"eps", nlohmann::json::array()}, {"accuracy", nlohmann::json::array()}};
  for (double eps : ladder) {
    AttackOptions a = o;
    a.eps = eps;
    out["eps"].push_back(eps);
    out["accuracy"].push_back(eps == 0 ? clean : acc(predict_classes(model, attack(model, x, y, a), o.batch_size)));
  }
  return out;
}

void load_prepared(const Model& model, const std::string& manifest, const std::string& split, int64_t limit,
                   at::Tensor& x, at::Tensor& y, std::vector<std::string>* paths_out) {
  const Manifest m = load_manifest(manifest);
  std::vector<ManifestRow> rows = m.select(split);
  if (rows.empty()) throw InputError(manifest, split.empty() ? "no rows" : "no rows of split '" + split + "'");
  if (limit > 0 && static_cast<int64_t>(rows.size()) > limit) {
    std::vector<ManifestRow> picked;
    for (int64_t i = 0; i < limit; ++i)
      picked.push_back(rows[static_cast<size_t>(i * static_cast<int64_t>(rows.size()) / limit)]);
    rows = picked;
  }
  std::vector<std::string> paths;
  std::vector<int64_t> labels;
  const auto& cls = model.card().classes;
  for (const auto& r : rows) {
    const auto it = std::find(cls.begin(), cls.end(), r.label);
    if (it == cls.end()) throw InputError(manifest, r.path + ": label '" + r.label + "' is not one of the model's classes");
    paths.push_back(r.path);
    labels.push_back(it - cls.begin());
  }
  std::vector<at::Tensor> xs;
  for (const auto& im : read_images(paths)) xs.push_back(model.prepare(im));
  x = at::stack(xs);
  y = at::tensor(labels, at::kLong);
  if (paths_out) *paths_out = paths;
}

}  // namespace medlens
