// Gradient-based attributions: Grad-CAM, Grad-CAM++, vanilla gradients, SmoothGrad,
// Integrated Gradients and input x gradient.
#include <ATen/CPUGeneratorImpl.h>

#include "core/error.h"
#include "explain/methods.h"

namespace medlens::explain_detail {
namespace {

// Activation of the CAM layer and d score / d activation for the single input.
std::pair<at::Tensor, at::Tensor> activation_and_gradient(Context& ctx) {
  torch::AutoGradMode grad(true);
  at::Tensor act;
  const at::Tensor out = ctx.net->forward_capture(ctx.x, ctx.layer, act);
  if (!act.defined()) throw UsageError("layer '" + ctx.layer + "' produced no activation");
  const at::Tensor score = ctx.score(out).sum();
  const at::Tensor g = torch::autograd::grad({score}, {act})[0];
  return {act.detach(), g.detach()};
}

std::vector<int64_t> spatial_dims(const at::Tensor& t) {
  std::vector<int64_t> d;
  for (int64_t a = 2; a < t.dim(); ++a) d.push_back(a);
  return d;
}

at::Tensor gradcam(Context& ctx) {
  check_params(ctx, "gradcam", {});
  auto [act, g] = activation_and_gradient(ctx);
  const at::Tensor w = g.mean(spatial_dims(g), /*keepdim=*/true);  // (1, K, 1, 1)
  const at::Tensor cam = at::relu((w * act).sum(1))[0];
  return upsample_to_input(cam, ctx);
}

// Chattopadhay et al. 2018: pixel-wise weights alpha = g^2 / (2 g^2 + sum(A) g^3).
at::Tensor gradcam_plus_plus(Context& ctx) {
  check_params(ctx, "gradcam++", {});
  auto [act, g] = activation_and_gradient(ctx);
  const auto dims = spatial_dims(g);
  const at::Tensor g2 = g.pow(2), g3 = g.pow(3);
  const at::Tensor sum_a = act.sum(dims, true);
  const at::Tensor denom = 2 * g2 + sum_a * g3;
  const at::Tensor alpha = g2 / at::where(denom != 0, denom, at::ones_like(denom));
  const at::Tensor w = (alpha * at::relu(g)).sum(dims, true);
  const at::Tensor cam = at::relu((w * act).sum(1))[0];
  return upsample_to_input(cam, ctx);
}

at::Tensor saliency(Context& ctx) {
  check_params(ctx, "saliency", {});
  // Simonyan et al. 2014: |d score / d x|, the largest over channels.
  return std::get<0>(input_gradients(ctx, ctx.x).abs().max(1))[0];
}

at::Tensor input_x_gradient(Context& ctx) {
  check_params(ctx, "input-x-gradient", {});
  return (input_gradients(ctx, ctx.x) * ctx.x).sum(1)[0];
}

at::Tensor smoothgrad(Context& ctx) {
  // Smilkov et al. 2017: average gradient over inputs with Gaussian noise of std
  // `noise` times the input's value range.
  check_params(ctx, "smoothgrad", {"samples", "noise", "squared"});
  const int64_t n = param<int64_t>(ctx, "smoothgrad", "samples", 32);
  const double level = param<double>(ctx, "smoothgrad", "noise", 0.15);
  if (n < 1 || n > 10000 || !(level >= 0)) throw UsageError("smoothgrad: samples must be 1..10000 and noise >= 0");
  const bool squared = param<bool>(ctx, "smoothgrad", "squared", false);
  const double range = (ctx.x.max() - ctx.x.min()).item<double>();
  auto gen = at::make_generator<at::CPUGeneratorImpl>(ctx.seed);
  at::Tensor sum = at::zeros_like(ctx.x[0]);
  // Noisy copies are made a batch at a time, so memory stays bounded by the batch size.
  for (int64_t s = 0; s < n; s += ctx.batch_size) {
    std::vector<int64_t> rep(static_cast<size_t>(ctx.x.dim()), 1);
    rep[0] = std::min<int64_t>(ctx.batch_size, n - s);
    at::Tensor noisy = ctx.x.repeat(rep);
    noisy = noisy + at::normal(0.0, level * range, noisy.sizes(), gen);
    const at::Tensor g = input_gradients(ctx, noisy);
    sum += (squared ? g.pow(2) : g.abs()).sum(0);
  }
  return (sum / static_cast<double>(n)).sum(0);
}

// Sundararajan et al. 2017: (x - b) * mean over the path of d score / d x, Riemann midpoint
// rule with `steps` points; completeness: the map sums to f(x) - f(b).
at::Tensor integrated_gradients(Context& ctx) {
  check_params(ctx, "integrated-gradients", {"steps", "baseline"});
  const int64_t steps = param<int64_t>(ctx, "integrated-gradients", "steps", 64);
  if (steps < 1 || steps > 10000) throw UsageError("integrated-gradients: steps must be 1..10000");
  const at::Tensor baseline =
      baseline_input(ctx.x, ctx.params.value("baseline", nlohmann::json("zeros")), "integrated-gradients");
  // Points along the path are made a batch at a time (bounded memory).
  const at::Tensor diff = ctx.x - baseline;
  at::Tensor sum = at::zeros_like(ctx.x);
  for (int64_t s = 0; s < steps; s += ctx.batch_size) {
    const int64_t k = std::min<int64_t>(ctx.batch_size, steps - s);
    const at::Tensor alphas = (at::arange(s, s + k, at::kFloat) + 0.5) / static_cast<double>(steps);
    std::vector<int64_t> shape(static_cast<size_t>(ctx.x.dim()), 1);
    shape[0] = k;
    sum += input_gradients(ctx, baseline + alphas.view(shape) * diff).sum(0, true);
  }
  return (diff * sum / static_cast<double>(steps)).sum(1)[0];
}

}  // namespace

void add_gradient_methods(std::vector<std::pair<std::string, Method>>& t) {
  t.emplace_back("gradcam", gradcam);
  t.emplace_back("gradcam++", gradcam_plus_plus);
  t.emplace_back("saliency", saliency);
  t.emplace_back("smoothgrad", smoothgrad);
  t.emplace_back("integrated-gradients", integrated_gradients);
  t.emplace_back("input-x-gradient", input_x_gradient);
}

}  // namespace medlens::explain_detail
