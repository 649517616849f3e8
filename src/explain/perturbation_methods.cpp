// Perturbation-based attributions: Score-CAM, occlusion sensitivity, RISE, LIME and Kernel SHAP.
// Each builds perturbed copies of the input a batch (ctx.batch_size) at a time, so memory stays
// bounded whatever the number of samples; all work on 2-D and 3-D inputs alike. Randomness comes
// from ctx.seed only.
#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>

#include "explain/methods.h"
#include "transforms/transform.h"

namespace medlens::explain_detail {
namespace {

// Spatial sizes as JSON gives them: one number for every axis, or a list in x, y[, z] order
// (as the card's input size); returned in tensor order ([D,] H, W).
std::vector<int64_t> axis_values(const Context& ctx, const std::string& method, const char* key,
                                 const std::vector<int64_t>& fallback) {
  if (!ctx.params.contains(key)) return fallback;
  const nlohmann::json& j = ctx.params.at(key);
  const size_t d = static_cast<size_t>(ctx.dims());
  std::vector<int64_t> out(d);
  if (j.is_number_integer()) {
    std::fill(out.begin(), out.end(), j.get<int64_t>());
  } else if (j.is_array() && j.size() == d && std::all_of(j.begin(), j.end(), [](const auto& e) { return e.is_number_integer(); })) {
    for (size_t a = 0; a < d; ++a) out[d - 1 - a] = j[a].get<int64_t>();
  } else {
    throw UsageError(method + ": '" + key + "' takes a whole number or one per axis (x, y" + (d == 3 ? ", z" : "") + ")");
  }
  for (int64_t v : out)
    if (v < 1) throw UsageError(method + ": '" + key + "' must be at least 1");
  return out;
}

// The score a perturbation method measures: "score" (the explained logit or summed logits) or
// "confidence" (the calibrated probability).
const ScoreFn& output_fn(const Context& ctx, const std::string& method, const std::string& fallback) {
  const std::string which = param<std::string>(ctx, method, "output", fallback);
  if (which == "score") return ctx.score;
  if (which == "confidence") return ctx.confidence;
  throw UsageError(method + ": output must be score or confidence");
}

at::Tensor upsample(const at::Tensor& maps, const std::vector<int64_t>& size) {
  return size.size() == 2 ? at::upsample_bilinear2d(maps, size, false) : at::upsample_trilinear3d(maps, size, false);
}

// Wang et al. 2020, "Score-CAM: score-weighted visual explanations for CNNs". Each activation
// map of the layer, upsampled to the input and scaled to [0, 1], masks the input; its weight is
// the softmax over channels of the increase of the (mean) logit over a zero input; the map is
// ReLU(sum_k w_k A_k), upsampled.
at::Tensor scorecam(Context& ctx) {
  check_params(ctx, "scorecam", {"channels"});
  const int64_t cap = param<int64_t>(ctx, "scorecam", "channels", 0);
  if (cap < 0) throw UsageError("scorecam: channels must be >= 0 (0: all)");
  torch::NoGradGuard no_grad;
  at::Tensor act;
  ctx.net->forward_capture(ctx.x, ctx.layer, act);
  if (!act.defined()) throw UsageError("layer '" + ctx.layer + "' produced no activation");
  act = act[0].detach();  // (K, [d,] h, w)
  at::Tensor channels = at::arange(act.size(0), at::kLong);
  if (cap > 0 && cap < act.size(0))  // the most active channels only
    channels = std::get<0>(std::get<1>(act.flatten(1).mean(1).topk(cap)).sort());
  const std::vector<int64_t> size = ctx.spatial();
  const double base = ctx.score(ctx.net->forward(at::zeros_like(ctx.x)))[0].item<double>() * ctx.score_scale;
  std::vector<at::Tensor> increase;
  for (int64_t s = 0; s < channels.numel(); s += ctx.batch_size) {
    const at::Tensor idx = channels.slice(0, s, std::min(channels.numel(), s + ctx.batch_size));
    at::Tensor m = upsample_aligned(act.index_select(0, idx).unsqueeze(1), size);  // (B, 1, ...)
    const at::Tensor flat = m.flatten(1);
    const at::Tensor lo = std::get<0>(flat.min(1)), hi = std::get<0>(flat.max(1));
    const at::Tensor span = hi - lo;
    std::vector<int64_t> shape(static_cast<size_t>(m.dim()), 1);
    shape[0] = m.size(0);
    m = at::where(span.view(shape) > 0, (m - lo.view(shape)) / span.clamp_min(1e-12).view(shape), at::zeros_like(m));
    increase.push_back(ctx.score(ctx.net->forward(ctx.x * m)) * ctx.score_scale - base);
  }
  const at::Tensor w = at::softmax(at::cat(increase).to(at::kDouble), 0).to(at::kFloat);
  const at::Tensor selected = act.index_select(0, channels);
  std::vector<int64_t> wshape(static_cast<size_t>(selected.dim()), 1);
  wshape[0] = w.numel();
  return upsample_to_input(at::relu((w.view(wshape) * selected).sum(0)), ctx);
}

// Positions of a window of `patch` moved by `stride` along an axis of `size`; the last one is
// added so the far border is covered.
std::vector<int64_t> window_starts(int64_t size, int64_t patch, int64_t stride) {
  std::vector<int64_t> out;
  if (patch >= size) return {0};
  for (int64_t s = 0; s + patch <= size; s += stride) out.push_back(s);
  if (out.back() + patch < size) out.push_back(size - patch);
  return out;
}

// Zeiler & Fergus 2014: the drop of the score when a patch is replaced by the baseline,
// averaged over the patches covering each voxel. Defaults: 2-D patch = size / 8, stride =
// patch / 2; 3-D patch = size / 6, stride = patch (about 200 forward passes either way).
at::Tensor occlusion(Context& ctx) {
  check_params(ctx, "occlusion", {"patch", "stride", "baseline", "output"});
  const std::vector<int64_t> size = ctx.spatial();
  const bool vol = size.size() == 3;
  std::vector<int64_t> dp, ds;
  for (int64_t s : size) {
    const int64_t p = std::max<int64_t>(1, (s + (vol ? 5 : 7)) / (vol ? 6 : 8));
    dp.push_back(p);
    ds.push_back(vol ? p : std::max<int64_t>(1, p / 2));
  }
  const std::vector<int64_t> patch = axis_values(ctx, "occlusion", "patch", dp);
  const std::vector<int64_t> stride = axis_values(ctx, "occlusion", "stride", ds);
  const at::Tensor base = baseline_input(ctx.x, ctx.params.value("baseline", nlohmann::json("mean")), "occlusion");
  const ScoreFn& fn = output_fn(ctx, "occlusion", "score");
  torch::NoGradGuard no_grad;
  const double s0 = fn(ctx.net->forward(ctx.x))[0].item<double>();

  std::vector<std::vector<int64_t>> starts;
  for (size_t a = 0; a < size.size(); ++a) starts.push_back(window_starts(size[a], std::min(patch[a], size[a]), stride[a]));
  std::vector<std::vector<int64_t>> positions(1);
  for (const auto& axis : starts) {
    std::vector<std::vector<int64_t>> next;
    for (const auto& p : positions)
      for (int64_t s : axis) {
        next.push_back(p);
        next.back().push_back(s);
      }
    positions.swap(next);
  }
  at::Tensor sum = at::zeros(size, at::kDouble), count = at::zeros(size, at::kDouble);
  auto window = [&](at::Tensor t, const std::vector<int64_t>& at_pos, int64_t first_axis) {
    for (size_t a = 0; a < size.size(); ++a)
      t = t.narrow(first_axis + static_cast<int64_t>(a), at_pos[a], std::min(patch[a], size[a]));
    return t;
  };
  for (size_t s = 0; s < positions.size(); s += static_cast<size_t>(ctx.batch_size)) {
    const size_t e = std::min(positions.size(), s + static_cast<size_t>(ctx.batch_size));
    std::vector<int64_t> rep(static_cast<size_t>(ctx.x.dim()), 1);
    rep[0] = static_cast<int64_t>(e - s);
    at::Tensor batch = ctx.x.repeat(rep);
    for (size_t i = s; i < e; ++i) window(batch[static_cast<int64_t>(i - s)], positions[i], 1).copy_(window(base[0], positions[i], 1));
    const at::Tensor drop = s0 - fn(ctx.net->forward(batch)).to(at::kDouble);
    for (size_t i = s; i < e; ++i) {
      window(sum, positions[i], 0).add_(drop[static_cast<int64_t>(i - s)]);
      window(count, positions[i], 0).add_(1.0);
    }
  }
  return (sum / count.clamp_min(1.0)).to(at::kFloat);
}

// Petsiuk et al. 2018, "RISE: randomized input sampling for explanation of black-box models":
// `masks` random binary grids of `cells` per axis (each cell kept with probability p),
// upsampled (linear) to (cells + 1) cells of ceil(size / cells) voxels and cropped at a random
// shift; the map is sum_i score_i M_i / (masks p), with the confidence as score by default.
at::Tensor rise(Context& ctx) {
  check_params(ctx, "rise", {"masks", "cells", "p", "output"});
  const bool vol = ctx.dims() == 3;
  const int64_t n = param<int64_t>(ctx, "rise", "masks", vol ? 500 : 1000);
  const int64_t cells = param<int64_t>(ctx, "rise", "cells", vol ? 6 : 8);
  const double p = param<double>(ctx, "rise", "p", 0.5);
  if (n < 1 || n > 100000 || cells < 1 || cells > 1024 || !(p > 0 && p <= 1))
    throw UsageError("rise: masks 1..100000, cells 1..1024 and 0 < p <= 1");
  const ScoreFn& fn = output_fn(ctx, "rise", "confidence");
  const std::vector<int64_t> size = ctx.spatial();
  std::vector<int64_t> cell, up, grid_shape{0, 1};
  for (int64_t s : size) {
    cell.push_back((s + cells - 1) / cells);
    up.push_back((cells + 1) * cell.back());
    grid_shape.push_back(cells);
  }
  Rng rng(ctx.seed);
  torch::NoGradGuard no_grad;
  at::Tensor saliency = at::zeros(size, at::kDouble);
  for (int64_t s = 0; s < n; s += ctx.batch_size) {
    const int64_t b = std::min<int64_t>(ctx.batch_size, n - s);
    grid_shape[0] = b;
    at::Tensor grid = at::empty(grid_shape, at::kFloat);
    float* g = grid.data_ptr<float>();
    for (int64_t i = 0; i < grid.numel(); ++i) g[i] = rng.bernoulli(p) ? 1.0f : 0.0f;
    const at::Tensor big = upsample(grid, up);
    std::vector<at::Tensor> masks;
    for (int64_t i = 0; i < b; ++i) {
      at::Tensor m = big[i];
      for (size_t a = 0; a < size.size(); ++a)
        m = m.narrow(static_cast<int64_t>(a) + 1, rng.integer(0, cell[a] - 1), size[a]);
      masks.push_back(m);
    }
    const at::Tensor mask = at::stack(masks);  // (b, 1, ...)
    const at::Tensor scores = fn(ctx.net->forward(ctx.x * mask)).to(at::kDouble);
    std::vector<int64_t> shape(static_cast<size_t>(mask.dim()), 1);
    shape[0] = b;
    saliency += (scores.view(shape) * mask.to(at::kDouble)).sum(0)[0];
  }
  return (saliency / (static_cast<double>(n) * p)).to(at::kFloat);
}

// Superpixels and the model's response to switching them off, shared by LIME and Kernel SHAP.
struct Segments {
  at::Tensor labels;   // int64 ([D,] H, W), 0..count-1
  int64_t count = 0;
  at::Tensor sizes;    // voxels per segment (double)
  at::Tensor base;     // (1, C, ...) what a switched-off segment shows
};

Segments segments_of(Context& ctx, const std::string& method) {
  const int64_t k = param<int64_t>(ctx, method, "segments", 50);
  const double compactness = param<double>(ctx, method, "compactness", 0.25);
  if (k < 1 || !(compactness > 0)) throw UsageError(method + ": segments must be >= 1 and compactness > 0");
  Segments s;
  s.labels = slic(ctx.x[0], k, compactness);
  s.count = s.labels.max().item<int64_t>() + 1;
  s.sizes = at::bincount(s.labels.flatten(), {}, s.count).to(at::kDouble);
  const nlohmann::json kind = ctx.params.value("baseline", nlohmann::json("mean"));
  if (kind == "segment-mean") {
    // Each segment shows its own mean (per channel): LIME's default for images.
    const at::Tensor flat = ctx.x[0].flatten(1);  // (C, N)
    const at::Tensor idx = s.labels.flatten();
    at::Tensor sums = at::zeros({flat.size(0), s.count}, at::kFloat).index_add_(1, idx, flat);
    const at::Tensor means = sums / s.sizes.to(at::kFloat).unsqueeze(0);
    s.base = means.index_select(1, idx).view(ctx.x.sizes());
  } else {
    s.base = baseline_input(ctx.x, kind, method);
  }
  return s;
}

// f(input with the segments where z = 0 switched off), for rows z of (n, count) 0/1 values.
at::Tensor coalition_scores(Context& ctx, const Segments& seg, const at::Tensor& z, const ScoreFn& fn) {
  torch::NoGradGuard no_grad;
  const at::Tensor idx = seg.labels.flatten();
  std::vector<at::Tensor> parts;
  std::vector<int64_t> shape(ctx.x.sizes().begin(), ctx.x.sizes().end());
  shape[1] = 1;
  for (int64_t s = 0; s < z.size(0); s += ctx.batch_size) {
    const at::Tensor rows = z.slice(0, s, std::min(z.size(0), s + ctx.batch_size)).to(at::kFloat);
    shape[0] = rows.size(0);
    const at::Tensor mask = rows.index_select(1, idx).view(shape);
    parts.push_back(fn(ctx.net->forward(seg.base + (ctx.x - seg.base) * mask)).to(at::kDouble));
  }
  return at::cat(parts);
}

// A segment's value spread over its voxels (attribution per voxel), so a map's sum over a region
// is the region's share and Kernel SHAP's map sums to f(x) - f(baseline).
at::Tensor per_voxel(const Segments& seg, const at::Tensor& values) {
  return (values / seg.sizes).index_select(0, seg.labels.flatten()).view(seg.labels.sizes()).to(at::kFloat);
}

// Ribeiro et al. 2016, "Why should I trust you?", as the lime package does it for images:
// `samples` random on/off vectors over the superpixels (the first all on), weights
// sqrt(exp(-d^2 / width^2)) with d the cosine distance to all-on, ridge regression (alpha 1,
// intercept) of the score on the vectors; a segment's coefficient is its attribution.
at::Tensor lime(Context& ctx) {
  check_params(ctx, "lime", {"samples", "segments", "compactness", "baseline", "kernel_width", "alpha", "output"});
  const int64_t n = param<int64_t>(ctx, "lime", "samples", 500);
  const double width = param<double>(ctx, "lime", "kernel_width", 0.25);
  const double alpha = param<double>(ctx, "lime", "alpha", 1.0);
  if (n < 2 || n > 100000 || !(width > 0) || !(alpha >= 0))
    throw UsageError("lime: samples 2..100000, kernel_width > 0, alpha >= 0");
  const ScoreFn& fn = output_fn(ctx, "lime", "score");
  const Segments seg = segments_of(ctx, "lime");
  const int64_t m = seg.count;
  Rng rng(ctx.seed);
  at::Tensor z = at::ones({n, m}, at::kDouble);
  double* zp = z.data_ptr<double>();
  for (int64_t i = m; i < n * m; ++i) zp[i] = rng.bernoulli(0.5) ? 1.0 : 0.0;
  const at::Tensor y = coalition_scores(ctx, seg, z, fn);
  const at::Tensor on = z.sum(1);
  const at::Tensor cosine = at::where(on > 0, on / (on.sqrt() * std::sqrt(static_cast<double>(m))), at::zeros_like(on));
  const at::Tensor d = 1 - cosine;
  const at::Tensor w = at::exp(-d.pow(2) / (width * width)).sqrt();
  // Weighted ridge with an unpenalised intercept: centre by the weighted means.
  const double wsum = w.sum().item<double>();
  const at::Tensor zm = (w.unsqueeze(1) * z).sum(0) / wsum, ym = (w * y).sum() / wsum;
  const at::Tensor zc = z - zm, yc = y - ym;
  const at::Tensor a = zc.t().mm(w.unsqueeze(1) * zc) + alpha * at::eye(m, at::kDouble);
  const at::Tensor coef = at::linalg_solve(a, zc.t().mv(w * yc));
  return per_voxel(seg, coef);
}

bool is_complement(const std::vector<char>& a, const std::vector<char>& b) {
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i] == b[i]) return false;
  return true;
}

// n choose k as a double (may be huge).
double choose(int64_t n, int64_t k) {
  double r = 1;
  for (int64_t i = 1; i <= k; ++i) r = r * static_cast<double>(n - k + i) / static_cast<double>(i);
  return r;
}

// Lundberg & Lee 2017, Kernel SHAP, with the sampling of the shap package: coalition sizes are
// enumerated completely, smallest (and their complements) first, while the budget allows a size's
// share of the Shapley kernel; the rest are drawn at random by kernel weight. The Shapley values
// solve the weighted least squares problem with the efficiency constraint
// sum(phi) = f(x) - f(baseline) eliminated exactly.
at::Tensor kernel_shap(Context& ctx) {
  check_params(ctx, "kernel-shap", {"samples", "segments", "compactness", "baseline", "output"});
  const int64_t budget = param<int64_t>(ctx, "kernel-shap", "samples", 500);
  if (budget < 1 || budget > 100000) throw UsageError("kernel-shap: samples must be 1..100000");
  const ScoreFn& fn = output_fn(ctx, "kernel-shap", "score");
  const Segments seg = segments_of(ctx, "kernel-shap");
  const int64_t M = seg.count;
  const at::Tensor ends = coalition_scores(ctx, seg, at::stack({at::ones({M}, at::kDouble), at::zeros({M}, at::kDouble)}), fn);
  const double fx = ends[0].item<double>(), f0 = ends[1].item<double>();
  if (M == 1) return per_voxel(seg, at::full({1}, fx - f0, at::kDouble));

  std::vector<std::vector<char>> rows;
  std::vector<double> weights;
  const int64_t sizes = (M - 1 + 1) / 2, paired = (M - 1) / 2;  // ceil, floor of (M-1)/2
  std::vector<double> kernel(static_cast<size_t>(sizes));
  for (int64_t s = 1; s <= sizes; ++s)
    kernel[static_cast<size_t>(s - 1)] = (M - 1.0) / (static_cast<double>(s) * static_cast<double>(M - s)) * (s <= paired ? 2 : 1);
  const double ksum = std::accumulate(kernel.begin(), kernel.end(), 0.0);
  for (double& k : kernel) k /= ksum;
  std::vector<double> remaining = kernel;
  double left = static_cast<double>(budget);
  int64_t full = 0;
  for (int64_t s = 1; s <= sizes; ++s) {
    double subsets = choose(M, s) * (s <= paired ? 2 : 1);
    if (left * remaining[static_cast<size_t>(s - 1)] / subsets < 1.0 - 1e-8) break;
    ++full;
    left -= subsets;
    if (remaining[static_cast<size_t>(s - 1)] < 1.0) {
      const double r = remaining[static_cast<size_t>(s - 1)];
      for (double& x : remaining) x /= 1.0 - r;
    }
    const double w = kernel[static_cast<size_t>(s - 1)] / subsets;
    std::vector<char> pick(static_cast<size_t>(M), 0);
    std::fill(pick.end() - s, pick.end(), 1);
    do {  // every subset of size s, and its complement
      rows.push_back(pick);
      weights.push_back(w);
      if (s <= paired) {
        std::vector<char> comp(pick);
        for (char& c : comp) c = static_cast<char>(1 - c);
        rows.push_back(comp);
        weights.push_back(w);
      }
    } while (std::next_permutation(pick.begin(), pick.end()));
  }
  const size_t fixed = rows.size();
  int64_t samples_left = budget - static_cast<int64_t>(fixed);
  if (full < sizes && samples_left > 0) {
    std::vector<double> p;
    for (int64_t s = full + 1; s <= sizes; ++s) p.push_back(kernel[static_cast<size_t>(s - 1)] / (s <= paired ? 2 : 1));
    std::discrete_distribution<int64_t> pick_size(p.begin(), p.end());
    std::mt19937_64 engine(ctx.seed);
    std::map<std::vector<char>, size_t> seen;
    std::vector<int64_t> order(static_cast<size_t>(M));
    for (int64_t tries = 0; samples_left > 0 && tries < 4 * budget; ++tries) {
      const int64_t s = pick_size(engine) + full + 1;
      std::iota(order.begin(), order.end(), 0);
      std::shuffle(order.begin(), order.end(), engine);
      std::vector<char> row(static_cast<size_t>(M), 0);
      for (int64_t i = 0; i < s; ++i) row[static_cast<size_t>(order[static_cast<size_t>(i)])] = 1;
      const auto it = seen.find(row);
      const bool fresh = it == seen.end();
      size_t at_index = fresh ? rows.size() : it->second;
      if (fresh) {
        seen.emplace(row, rows.size());
        rows.push_back(row);
        weights.push_back(1.0);
        --samples_left;
      } else {
        weights[at_index] += 1.0;
      }
      if (s <= paired && (samples_left > 0 || !fresh)) {
        if (fresh) {
          std::vector<char> comp(row);
          for (char& c : comp) c = static_cast<char>(1 - c);
          rows.push_back(comp);
          weights.push_back(1.0);
          --samples_left;
        } else if (at_index + 1 < rows.size() && is_complement(rows[at_index], rows[at_index + 1])) {
          weights[at_index + 1] += 1.0;
        }
      }
    }
    double weight_left = 0, drawn = 0;
    for (int64_t s = full + 1; s <= sizes; ++s) weight_left += kernel[static_cast<size_t>(s - 1)];
    for (size_t i = fixed; i < weights.size(); ++i) drawn += weights[i];
    for (size_t i = fixed; i < weights.size(); ++i) weights[i] *= weight_left / drawn;
  }
  if (rows.empty()) throw UsageError("kernel-shap: too few samples for " + std::to_string(M) + " segments");

  const int64_t n = static_cast<int64_t>(rows.size());
  at::Tensor z = at::empty({n, M}, at::kDouble);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < M; ++j) z[i][j] = static_cast<double>(rows[static_cast<size_t>(i)][static_cast<size_t>(j)]);
  const at::Tensor w = at::tensor(weights, at::kDouble);
  const double delta = fx - f0;
  const at::Tensor y = coalition_scores(ctx, seg, z, fn) - f0;
  // phi_M = delta - sum(phi_1..M-1): regress y - z_M delta on z_j - z_M.
  const at::Tensor last = z.select(1, M - 1);
  const at::Tensor ya = y - last * delta;
  const at::Tensor xa = z.slice(1, 0, M - 1) - last.unsqueeze(1);
  const at::Tensor sw = w.sqrt();
  const at::Tensor sol = std::get<0>(at::linalg_lstsq(xa * sw.unsqueeze(1), (ya * sw).unsqueeze(1), c10::nullopt, "gelsd"));
  const at::Tensor head = sol.squeeze(1);
  const at::Tensor phi = at::cat({head, (delta - head.sum()).unsqueeze(0)});
  return per_voxel(seg, phi);
}

}  // namespace

void add_perturbation_methods(std::vector<std::pair<std::string, Method>>& table) {
  table.emplace_back("scorecam", scorecam);
  table.emplace_back("occlusion", occlusion);
  table.emplace_back("rise", rise);
  table.emplace_back("lime", lime);
  table.emplace_back("kernel-shap", kernel_shap);
}

}  // namespace medlens::explain_detail
