// The shortcut check: burned-in text and calipers on ultrasound images, and how much of an
// explanation falls on them.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "core/error.h"
#include "explain/explain.h"
#include "transforms/spatial.h"

namespace medlens {

double attribution_share_in(const Image& attribution, const Image& mask) {
  if (attribution.empty() || mask.empty()) throw UsageError("attribution_share_in: empty attribution or mask");
  const Shape& a = attribution.shape();
  const Shape& m = mask.shape();
  const Image on_grid = (a.z == m.z && a.y == m.y && a.x == m.x && attribution.geometry() == mask.geometry())
                            ? mask
                            : resample_onto(mask, a, attribution.geometry(), true);
  const at::Tensor pos = attribution.voxels().select(0, 0).clamp_min(0).to(at::kDouble);
  const double total = pos.sum().item<double>();
  if (total <= 0) return 0.0;
  const at::Tensor inside = on_grid.voxels().select(0, 0) > 0.5;
  return std::clamp(pos.masked_select(inside).sum().item<double>() / total, 0.0, 1.0);
}

namespace {

// Marks on one slice: g is H x W in [0, 1], row-major; returns the 0/1 mask.
std::vector<uint8_t> marks_in_slice(const std::vector<float>& g, int64_t H, int64_t W, const MarkOptions& o) {
  const int64_t n = H * W;
  const int64_t side = std::min(H, W);
  const int64_t r = std::max<int64_t>(2, std::llround(3.0 * static_cast<double>(side) / 256.0));
  std::vector<std::pair<int64_t, int64_t>> disk;
  for (int64_t dy = -r; dy <= r; ++dy)
    for (int64_t dx = -r; dx <= r; ++dx)
      if (dy * dy + dx * dx <= r * r) disk.emplace_back(dy, dx);
  // Grey opening (erosion then dilation with the disk); voxels outside take no part.
  auto filter = [&](const std::vector<float>& in, bool take_min) {
    std::vector<float> out(static_cast<size_t>(n));
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) {
        float best = take_min ? 2.0f : -1.0f;
        for (const auto& [dy, dx] : disk) {
          const int64_t yy = y + dy, xx = x + dx;
          if (yy < 0 || yy >= H || xx < 0 || xx >= W) continue;
          const float v = in[static_cast<size_t>(yy * W + xx)];
          best = take_min ? std::min(best, v) : std::max(best, v);
        }
        out[static_cast<size_t>(y * W + x)] = best;
      }
    return out;
  };
  const std::vector<float> opened = filter(filter(g, true), false);
  std::vector<uint8_t> cand(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) cand[static_cast<size_t>(i)] = g[static_cast<size_t>(i)] - opened[static_cast<size_t>(i)] > o.tophat;

  std::vector<int32_t> label(static_cast<size_t>(n), 0);
  std::vector<uint8_t> keep(static_cast<size_t>(n), 0);
  std::vector<int64_t> comp, stack;
  int32_t next = 0;
  for (int64_t start = 0; start < n; ++start) {
    if (!cand[static_cast<size_t>(start)] || label[static_cast<size_t>(start)]) continue;
    ++next;
    comp.clear();
    stack.assign(1, start);
    label[static_cast<size_t>(start)] = next;
    int64_t y0 = H, y1 = -1, x0 = W, x1 = -1;
    while (!stack.empty()) {
      const int64_t v = stack.back();
      stack.pop_back();
      comp.push_back(v);
      const int64_t y = v / W, x = v % W;
      y0 = std::min(y0, y), y1 = std::max(y1, y), x0 = std::min(x0, x), x1 = std::max(x1, x);
      for (int64_t dy = -1; dy <= 1; ++dy)
        for (int64_t dx = -1; dx <= 1; ++dx) {
          const int64_t yy = y + dy, xx = x + dx;
          if (yy < 0 || yy >= H || xx < 0 || xx >= W) continue;
          const int64_t u = yy * W + xx;
          if (cand[static_cast<size_t>(u)] && !label[static_cast<size_t>(u)]) {
            label[static_cast<size_t>(u)] = next;
            stack.push_back(u);
          }
        }
    }
    const int64_t h = y1 - y0 + 1, w = x1 - x0 + 1;
    if (comp.size() < 3 || static_cast<double>(h) > o.max_height * static_cast<double>(side) ||
        static_cast<double>(w) > o.max_width * static_cast<double>(side))
      continue;
    // Local contrast: the component's mean against the median of a ring within 2 voxels
    // (city-block) around it; and the gradients within 1 voxel of it.
    double mean = 0;
    for (int64_t v : comp) mean += g[static_cast<size_t>(v)];
    mean /= static_cast<double>(comp.size());
    std::vector<float> ring;
    double gx = 0, gy = 0;
    for (int64_t y = std::max<int64_t>(0, y0 - 2); y <= std::min(H - 1, y1 + 2); ++y)
      for (int64_t x = std::max<int64_t>(0, x0 - 2); x <= std::min(W - 1, x1 + 2); ++x) {
        const int64_t v = y * W + x;
        if (label[static_cast<size_t>(v)] == next) continue;
        int64_t d = 3;  // city-block distance to the component, capped
        for (int64_t dy = -2; dy <= 2 && d > 1; ++dy)
          for (int64_t dx = -2; dx <= 2; ++dx) {
            const int64_t yy = y + dy, xx = x + dx, dist = std::abs(dy) + std::abs(dx);
            if (dist > 2 || dist >= d || yy < 0 || yy >= H || xx < 0 || xx >= W) continue;
            if (label[static_cast<size_t>(yy * W + xx)] == next) d = dist;
          }
        if (d <= 2) ring.push_back(g[static_cast<size_t>(v)]);
      }
    for (int64_t y = std::max<int64_t>(0, y0 - 1); y <= std::min(H - 1, y1 + 1); ++y)
      for (int64_t x = std::max<int64_t>(0, x0 - 1); x <= std::min(W - 1, x1 + 1); ++x) {
        const int64_t v = y * W + x;
        const bool in = label[static_cast<size_t>(v)] == next ||
                        (x > 0 && label[static_cast<size_t>(v - 1)] == next) ||
                        (x + 1 < W && label[static_cast<size_t>(v + 1)] == next) ||
                        (y > 0 && label[static_cast<size_t>(v - W)] == next) ||
                        (y + 1 < H && label[static_cast<size_t>(v + W)] == next);
        if (!in) continue;
        if (x + 1 < W) gx += std::abs(g[static_cast<size_t>(v + 1)] - g[static_cast<size_t>(v)]);
        if (y + 1 < H) gy += std::abs(g[static_cast<size_t>(v + W)] - g[static_cast<size_t>(v)]);
      }
    if (ring.empty()) continue;
    std::nth_element(ring.begin(), ring.begin() + static_cast<long>(ring.size() / 2), ring.end());
    double median = ring[ring.size() / 2];
    if (ring.size() % 2 == 0) {
      const float below = *std::max_element(ring.begin(), ring.begin() + static_cast<long>(ring.size() / 2));
      median = 0.5 * (median + below);
    }
    if (mean - median < o.contrast || gx < o.min_vertical * gy) continue;
    for (int64_t v : comp) keep[static_cast<size_t>(v)] = 1;
  }
  if (o.grow <= 0) return keep;
  std::vector<uint8_t> grown(static_cast<size_t>(n), 0);
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x) {
      if (!keep[static_cast<size_t>(y * W + x)]) continue;
      for (int64_t yy = std::max<int64_t>(0, y - o.grow); yy <= std::min(H - 1, y + o.grow); ++yy)
        for (int64_t xx = std::max<int64_t>(0, x - o.grow); xx <= std::min(W - 1, x + o.grow); ++xx)
          grown[static_cast<size_t>(yy * W + xx)] = 1;
    }
  return grown;
}

}  // namespace

Image detect_burned_in_marks(const Image& image, const MarkOptions& o) {
  if (image.empty()) throw InputError(image.metadata().source_path, "empty image");
  if (!(o.tophat >= 0 && o.contrast >= 0 && o.max_height > 0 && o.max_width > 0 && o.min_vertical >= 0 && o.grow >= 0))
    throw UsageError("detect_burned_in_marks: thresholds must be non-negative and box limits positive");
  const at::Tensor grey = image.voxels().to(at::kFloat).mean(0);  // (Z, Y, X)
  const float lo = grey.min().item<float>(), hi = grey.max().item<float>();
  const at::Tensor g = (hi > lo ? (grey - lo) / (hi - lo) : at::zeros_like(grey)).contiguous();
  const int64_t Z = g.size(0), H = g.size(1), W = g.size(2);
  at::Tensor out = at::zeros({1, Z, H, W}, at::kFloat);
  for (int64_t z = 0; z < Z; ++z) {
    const float* p = g[z].data_ptr<float>();
    const std::vector<float> slice(p, p + H * W);
    const std::vector<uint8_t> m = marks_in_slice(slice, H, W, o);
    float* q = out[0][z].data_ptr<float>();
    for (int64_t i = 0; i < H * W; ++i) q[i] = m[static_cast<size_t>(i)];
  }
  return image.with_voxels(out);
}

ShortcutCheck shortcut_check(const Image& image, const Explanation& e, const MarkOptions& options, Image* marks_out) {
  ShortcutCheck c;
  if (image.is_3d()) {
    c.summary = "not applicable to volumes (burned-in marks are checked on 2-D images)";
    return c;
  }
  c.applicable = true;
  const Image marks = detect_burned_in_marks(image, options);
  const at::Tensor m = marks.voxels()[0] > 0.5;
  c.marks_voxels = m.sum().item<int64_t>();
  c.marks_area_share = static_cast<double>(c.marks_voxels) / static_cast<double>(m.numel());
  c.marks_share = c.marks_voxels > 0 ? attribution_share_in(e.attribution, marks) : 0.0;
  c.flag = c.marks_share >= kShortcutMinShare && c.marks_share >= kShortcutMinRatio * c.marks_area_share;
  char line[256];
  if (c.marks_voxels == 0) {
    std::snprintf(line, sizeof line, "no burned-in text or calipers found");
  } else {
    std::snprintf(line, sizeof line, "%s: %.1f%% of the attribution lies on burned-in text or calipers, which cover %.1f%% of the image",
                  c.flag ? "FLAGGED" : "ok", 100 * c.marks_share, 100 * c.marks_area_share);
  }
  c.summary = line;
  if (marks_out) *marks_out = marks;
  return c;
}

nlohmann::json shortcut_check_json(const ShortcutCheck& c) {
  if (!c.applicable) return {{"applicable", false}, {"summary", c.summary}};
  char rule[128];
  std::snprintf(rule, sizeof rule, "flag when marks_share >= %.2f and >= %.0f x marks_area_share", kShortcutMinShare,
                kShortcutMinRatio);
  return {{"applicable", true},
          {"marks_share", c.marks_share},
          {"marks_area_share", c.marks_area_share},
          {"marks_voxels", c.marks_voxels},
          {"flag", c.flag},
          {"rule", rule},
          {"summary", c.summary}};
}

}  // namespace medlens
