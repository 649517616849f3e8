#include "infer/sliding_window.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>
#include <string>

#include "core/error.h"
#include "nn/ensemble.h"
#include "nn/network.h"
#include "nn/unet.h"

namespace medlens {
namespace {

constexpr double kMinWeight = 1e-3;  // Gaussian floor, relative to its maximum of 1

std::string sizes_text(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "x" : "") + std::to_string(v[i]);
  return s;
}

void check_options(const SlidingWindowOptions& o, int64_t dims) {
  const auto& p = o.patch();
  if (static_cast<int64_t>(p.size()) != dims)
    throw UsageError("sliding window: patch has " + std::to_string(p.size()) + " size(s), the network is " +
                     std::to_string(dims) + "-D; give one size per spatial axis");
  for (int64_t s : p)
    if (s < 1) throw UsageError("sliding window: patch sizes must be >= 1, got " + sizes_text(p));
  if (!(o.overlap() >= 0 && o.overlap() < 1))
    throw UsageError("sliding window: overlap must be in [0, 1), got " + std::to_string(o.overlap()));
  if (o.batch_size() < 1) throw UsageError("sliding window: batch_size must be >= 1");
  if (!(o.sigma_scale() > 0)) throw UsageError("sliding window: sigma_scale must be > 0");
  if (o.size_multiple() < 0) throw UsageError("sliding window: size_multiple must be >= 0 (0: ask the network)");
  std::set<int64_t> seen;
  for (int64_t a : o.mirror_axes())
    if (a < 0 || a >= dims || !seen.insert(a).second)
      throw UsageError("sliding window: mirror axes must be distinct spatial axes in [0, " + std::to_string(dims) +
                       "), got " + sizes_text(o.mirror_axes()));
}

// Sizes `net` accepts are multiples of this: 2^depth for a U-Net, the least common multiple
// of the members' for an ensemble, 1 for anything else.
int64_t network_multiple(const Network& net) {
  if (const auto* unet = dynamic_cast<const UNet*>(&net)) return int64_t{1} << unet->options().depth();
  int64_t m = 1;
  if (const auto* ensemble = dynamic_cast<const Ensemble*>(&net))
    for (const auto& member : ensemble->members()) m = std::lcm(m, network_multiple(*member));
  return m;
}

// Indices of `size` voxels padded by `before` and `after` with mirroring about the edge voxels.
at::Tensor reflect_indices(int64_t size, int64_t before, int64_t after) {
  at::Tensor idx = at::arange(-before, size + after, at::kLong);
  if (size == 1) return at::zeros_like(idx);
  const int64_t period = 2 * (size - 1);
  idx = at::remainder(idx, period);
  return at::where(idx >= size, period - idx, idx);
}

// x (C, spatial...) padded to `padded` sizes, `before` voxels before the data on each axis.
at::Tensor pad_volume(const at::Tensor& x, const std::vector<int64_t>& before, const std::vector<int64_t>& padded,
                      WindowPadding mode) {
  const int64_t dims = static_cast<int64_t>(before.size());
  if (mode == WindowPadding::kReflect) {
    at::Tensor y = x;
    for (int64_t a = 0; a < dims; ++a) {
      const int64_t size = x.size(a + 1);
      if (padded[a] != size) y = y.index_select(a + 1, reflect_indices(size, before[a], padded[a] - size - before[a]));
    }
    return y.contiguous();
  }
  std::vector<int64_t> shape{x.size(0)};
  shape.insert(shape.end(), padded.begin(), padded.end());
  std::vector<int64_t> per_channel(static_cast<size_t>(dims + 1), 1);
  per_channel[0] = x.size(0);
  at::Tensor y = x.flatten(1).amin(1).view(per_channel).expand(shape).contiguous();
  at::Tensor inner = y;
  for (int64_t a = 0; a < dims; ++a) inner = inner.narrow(a + 1, before[a], x.size(a + 1));
  inner.copy_(x);
  return y;
}

// One axis of the importance map: a Gaussian over `window` voxels centred on the window,
// maximum 1, floored at kMinWeight; all ones when `gaussian` is off.
at::Tensor importance_axis(int64_t window, bool gaussian, double sigma_scale) {
  if (!gaussian) return at::ones({window});
  const double w = static_cast<double>(window), sigma = w * sigma_scale;
  const at::Tensor offset = at::arange(window, at::kDouble) - (w - 1) / 2;
  at::Tensor g = at::exp(-offset * offset / (2 * sigma * sigma));
  return (g / g.max()).clamp_min(kMinWeight).to(at::kFloat);
}

// The outer product of per-axis vectors, shaped (1, n0, n1, ...).
at::Tensor outer(const std::vector<at::Tensor>& axes) {
  at::Tensor map = at::ones({1});
  std::vector<int64_t> shape{1};
  for (const auto& v : axes) {
    map = (map.unsqueeze(-1) * v).flatten();
    shape.push_back(v.size(0));
  }
  return map.view(shape);
}

// The summed weight along one axis of `padded` voxels: every window's importance added at its
// starts. With separable importance and a Cartesian grid of windows, the total weight of a
// voxel is the product of these sums over its axes, so no weight volume is kept.
at::Tensor axis_weight_sum(const at::Tensor& importance, const std::vector<int64_t>& starts, int64_t padded) {
  at::Tensor sum = at::zeros({padded});
  for (int64_t s : starts) sum.narrow(0, s, importance.size(0)).add_(importance);
  return sum;
}

// The flips of a batch (N,C,spatial...) over every subset of `axes` (spatial, 0-based), as
// tensor dimension lists (the empty subset first).
std::vector<std::vector<int64_t>> flip_combinations(const std::vector<int64_t>& axes) {
  std::vector<std::vector<int64_t>> combos;
  for (uint64_t mask = 0; mask < (uint64_t{1} << axes.size()); ++mask) {
    std::vector<int64_t> dims;
    for (size_t i = 0; i < axes.size(); ++i)
      if (mask & (uint64_t{1} << i)) dims.push_back(axes[i] + 2);
    combos.push_back(dims);
  }
  return combos;
}

// Restores a module's training flag on scope exit.
class EvalScope {
 public:
  explicit EvalScope(Network& net) : net_(net), was_training_(net.is_training()) { net_.eval(); }
  ~EvalScope() {
    if (was_training_) net_.train(true);
  }
  EvalScope(const EvalScope&) = delete;
  EvalScope& operator=(const EvalScope&) = delete;

 private:
  Network& net_;
  bool was_training_;
};

}  // namespace

std::vector<int64_t> sliding_window_starts(int64_t size, int64_t window, double overlap) {
  if (window < 1 || size < window)
    throw UsageError("sliding window: a window of " + std::to_string(window) + " voxels does not fit " +
                     std::to_string(size));
  if (!(overlap >= 0 && overlap < 1)) throw UsageError("sliding window: overlap must be in [0, 1)");
  const int64_t span = size - window;
  if (span == 0) return {0};
  const double step = std::max(1.0, static_cast<double>(window) * (1 - overlap));
  const int64_t n = static_cast<int64_t>(std::ceil(static_cast<double>(span) / step - 1e-9)) + 1;
  const double actual = static_cast<double>(span) / static_cast<double>(n - 1);
  std::vector<int64_t> starts(static_cast<size_t>(n));
  for (int64_t i = 0; 2 * i < n; ++i) {
    starts[static_cast<size_t>(i)] = std::llround(static_cast<double>(i) * actual);
    starts[static_cast<size_t>(n - 1 - i)] = span - starts[static_cast<size_t>(i)];
  }
  if (n % 2 == 1) starts[static_cast<size_t>(n / 2)] = span / 2;
  return starts;
}

at::Tensor sliding_window_inference(Network& network, const at::Tensor& input, const SlidingWindowOptions& o) {
  const int64_t dims = network.dims();
  check_options(o, dims);
  if (input.dim() != dims + 1)
    throw InputError("", "sliding window: a " + std::to_string(dims) + "-D network needs a (C," +
                             (dims == 3 ? "D,H,W" : "H,W") + ") volume, got rank " + std::to_string(input.dim()));
  if (input.numel() == 0) throw InputError("", "sliding window: the volume is empty");
  const int64_t multiple = o.size_multiple() > 0 ? o.size_multiple() : network_multiple(network);

  std::vector<int64_t> size, window, padded, before;
  for (int64_t a = 0; a < dims; ++a) {
    size.push_back(input.size(a + 1));
    window.push_back((o.patch()[a] + multiple - 1) / multiple * multiple);
    padded.push_back(std::max(size[a], window[a]));
    before.push_back((padded[a] - size[a]) / 2);
  }
  std::vector<std::vector<int64_t>> starts;
  int64_t total = 1;
  for (int64_t a = 0; a < dims; ++a) {
    starts.push_back(sliding_window_starts(padded[a], window[a], o.overlap()));
    total *= static_cast<int64_t>(starts.back().size());
  }
  const auto combos = flip_combinations(o.mirror_axes());

  EvalScope eval(network);
  at::Tensor acc;  // a normal (not inference) tensor, so callers may modify the result
  {
    c10::InferenceMode inference;
    at::Tensor x = input.detach().to(at::kFloat);
    if (padded != size) x = pad_volume(x, before, padded, o.padding());
    std::vector<at::Tensor> importance_axes;
    for (int64_t a = 0; a < dims; ++a) importance_axes.push_back(importance_axis(window[a], o.gaussian(), o.sigma_scale()));
    // Per window: importance over the number of flips averaged, shaped (1, 1, window...).
    const at::Tensor importance = outer(importance_axes).unsqueeze(0) / static_cast<double>(combos.size());
    // Window `w` in row-major order over the start grids; its view into a tensor whose
    // spatial axes begin at dimension 1.
    auto view_of = [&](const at::Tensor& t, int64_t w) {
      at::Tensor v = t;
      for (int64_t a = dims - 1; a >= 0; --a) {
        const auto& s = starts[static_cast<size_t>(a)];
        const int64_t n = static_cast<int64_t>(s.size());
        v = v.narrow(a + 1, s[static_cast<size_t>(w % n)], window[a]);
        w /= n;
      }
      return v;
    };
    for (int64_t lo = 0; lo < total; lo += o.batch_size()) {
      const int64_t hi = std::min(total, lo + o.batch_size());
      std::vector<at::Tensor> cut;
      for (int64_t w = lo; w < hi; ++w) cut.push_back(view_of(x, w));
      const at::Tensor batch = at::stack(cut);
      at::Tensor probs;
      for (const auto& flip : combos) {
        const at::Tensor logits = network.forward(flip.empty() ? batch : batch.flip(flip));
        if (logits.dim() != dims + 2 || logits.size(0) != batch.size(0) ||
            !std::equal(window.begin(), window.end(), logits.sizes().begin() + 2))
          throw InputError("", "sliding window: the network maps a " + sizes_text(batch.sizes().vec()) +
                                   " batch to " + sizes_text(logits.sizes().vec()) +
                                   ", not to per-voxel logits of the window (is it a segmenter?)");
        at::Tensor p = at::softmax(logits, 1);
        if (!flip.empty()) p = p.flip(flip);
        probs = probs.defined() ? probs.add_(p) : p;
      }
      probs.mul_(importance);
      if (!acc.defined()) {
        std::vector<int64_t> shape{probs.size(1)};
        shape.insert(shape.end(), padded.begin(), padded.end());
        c10::InferenceMode off(false);
        acc = at::zeros(shape);
      }
      for (int64_t w = lo; w < hi; ++w) view_of(acc, w).add_(probs[w - lo]);
      if (o.progress()) o.progress()(hi, total);
    }
    for (int64_t a = 0; a < dims; ++a) {
      std::vector<int64_t> shape(static_cast<size_t>(dims + 1), 1);
      shape[static_cast<size_t>(a + 1)] = padded[a];
      acc.div_(axis_weight_sum(importance_axes[a], starts[a], padded[a]).view(shape));
    }
  }
  if (padded == size) return acc;
  for (int64_t a = 0; a < dims; ++a) acc = acc.narrow(a + 1, before[a], size[a]);
  return acc.contiguous();
}

}  // namespace medlens
