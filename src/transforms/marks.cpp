// The burned-in mark detector (moved from explain/ so preprocessing can use it) and the
// inpaint-marks transform.
#include "transforms/marks.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>
#include <opencv2/photo.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/opencv_bridge.h"
#include "transforms/params.h"
#include "transforms/registry.h"

namespace medlens {

namespace {

void check(const MarkOptions& o, const char* who) {
  if (!(o.tophat >= 0 && o.contrast >= 0 && o.max_height > 0 && o.max_width > 0 && o.min_vertical >= 0 && o.grow >= 0))
    throw UsageError(std::string(who) + ": mark thresholds must be non-negative and box limits positive");
}

// Running minimum (or maximum) along each row of an H x W image over [x - w, x + w], voxels
// outside the row taking no part (van Herk / Gil-Werman: three comparisons per voxel for any w).
void row_extreme(const std::vector<float>& in, std::vector<float>& out, int64_t H, int64_t W, int64_t w, bool take_min) {
  const float pad = take_min ? std::numeric_limits<float>::infinity() : -std::numeric_limits<float>::infinity();
  const auto pick = [take_min](float a, float b) { return take_min ? std::min(a, b) : std::max(a, b); };
  const int64_t k = 2 * w + 1, n = W + 2 * w;
  std::vector<float> row(static_cast<size_t>(n)), fwd(row.size()), bwd(row.size());
  for (int64_t y = 0; y < H; ++y) {
    std::fill(row.begin(), row.end(), pad);
    std::copy_n(in.begin() + y * W, W, row.begin() + w);
    for (int64_t i = 0; i < n; ++i) fwd[static_cast<size_t>(i)] = i % k == 0 ? row[static_cast<size_t>(i)] : pick(fwd[static_cast<size_t>(i - 1)], row[static_cast<size_t>(i)]);
    for (int64_t i = n - 1; i >= 0; --i)
      bwd[static_cast<size_t>(i)] = (i + 1) % k == 0 || i == n - 1 ? row[static_cast<size_t>(i)] : pick(bwd[static_cast<size_t>(i + 1)], row[static_cast<size_t>(i)]);
    // Window of x in padded coordinates: [x, x + 2w]; it spans at most one block boundary.
    for (int64_t x = 0; x < W; ++x)
      out[static_cast<size_t>(y * W + x)] = pick(bwd[static_cast<size_t>(x)], fwd[static_cast<size_t>(x + 2 * w)]);
  }
}

// Grey erosion or dilation with the disk dy^2 + dx^2 <= r^2, voxels outside the image taking no
// part. The disk is a stack of horizontal runs, so this is a running extreme along rows per run
// width, combined across rows: O(r) per voxel instead of O(r^2) (a 2048^2 radiograph has r = 24).
std::vector<float> disk_filter(const std::vector<float>& in, int64_t H, int64_t W, int64_t r, bool take_min) {
  const auto pick = [take_min](float a, float b) { return take_min ? std::min(a, b) : std::max(a, b); };
  std::vector<float> out(in.size(), take_min ? std::numeric_limits<float>::infinity() : -std::numeric_limits<float>::infinity());
  std::vector<float> runs(in.size());
  int64_t last_w = -1;
  for (int64_t d = 0; d <= r; ++d) {
    const auto w = static_cast<int64_t>(std::floor(std::sqrt(static_cast<double>(r * r - d * d))));
    if (w != last_w) row_extreme(in, runs, H, W, w, take_min), last_w = w;
    for (const int64_t dy : {-d, d}) {
      for (int64_t y = std::max<int64_t>(0, -dy); y < std::min(H, H - dy); ++y) {
        float* o = out.data() + y * W;
        const float* q = runs.data() + (y + dy) * W;
        for (int64_t x = 0; x < W; ++x) o[x] = pick(o[x], q[x]);
      }
      if (d == 0) break;  // the centre row once
    }
  }
  return out;
}

// Marks on one slice: g is H x W in [0, 1], row-major; returns the 0/1 mask.
std::vector<uint8_t> marks_in_slice(const std::vector<float>& g, int64_t H, int64_t W, const MarkOptions& o) {
  const int64_t n = H * W;
  const int64_t side = std::min(H, W);
  const int64_t r = std::max<int64_t>(2, std::llround(3.0 * static_cast<double>(side) / 256.0));
  // White top-hat: the image minus its grey opening (erosion then dilation with the disk).
  const std::vector<float> opened = disk_filter(disk_filter(g, H, W, r, true), H, W, r, false);
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
  check(o, "detect_burned_in_marks");
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

namespace {

class InpaintMarks final : public Transform {
 public:
  explicit InpaintMarks(const InpaintMarksOptions& o) : o_(o) {
    if (!(o.radius > 0)) throw UsageError("'inpaint-marks': radius must be positive");
    check(o.marks, "'inpaint-marks'");
  }
  std::string name() const override { return "inpaint-marks"; }
  nlohmann::json params() const override {
    return {{"radius", o_.radius}, {"tophat", o_.marks.tophat}, {"contrast", o_.marks.contrast},
            {"max_height", o_.marks.max_height}, {"max_width", o_.marks.max_width},
            {"min_vertical", o_.marks.min_vertical}, {"grow", o_.marks.grow}};
  }
  Sample apply(Sample s, Rng&) const override {
    const Image marks = detect_burned_in_marks(s.image, o_.marks);
    const at::Tensor m = marks.voxels()[0];  // (Z, Y, X), 0/1
    if (!(m > 0.5).any().item<bool>()) return s;
    at::Tensor out = s.image.voxels().clone();  // Image voxels are contiguous float32
    // An integer-valued image (8-bit ultrasound) stays integer-valued, so writing it back to
    // PNG keeps its grey levels instead of stretching the range.
    const bool integers = at::equal(out, out.round());
    const Image result = s.image.with_voxels(out);
    for (int64_t z = 0; z < result.depth(); ++z) {
      cv::Mat mask;
      plane_view(marks, z, 0).convertTo(mask, CV_8U);  // 0/1
      if (cv::countNonZero(mask) == 0) continue;
      for (int64_t c = 0; c < result.channels(); ++c) {
        cv::Mat slice = plane_view(result, z, c);  // writes go to `out`
        cv::Mat painted;
        cv::inpaint(slice, mask, painted, o_.radius, cv::INPAINT_TELEA);
        painted.copyTo(slice, mask);  // only the marks change
      }
    }
    if (integers) out.round_();  // only the painted voxels can be fractional
    s.image = result;
    return s;
  }

 private:
  InpaintMarksOptions o_;
};

}  // namespace

TransformPtr make_inpaint_marks(const InpaintMarksOptions& options) {
  return std::make_shared<InpaintMarks>(options);
}

void register_marks(TransformRegistry& r) {
  r.add("inpaint-marks", "filter",
        "paint out burned-in text and caliper marks (2-D ultrasound; Telea inpainting): radius=3 voxels; "
        "detector tophat=0.15, contrast=0.3, max_height=0.08, max_width=0.3, min_vertical=0.5, grow=1",
        [](const nlohmann::json& j) {
          ParamReader p("inpaint-marks", j);
          InpaintMarksOptions o;
          o.radius = p.number("radius", o.radius);
          o.marks.tophat = p.number("tophat", o.marks.tophat);
          o.marks.contrast = p.number("contrast", o.marks.contrast);
          o.marks.max_height = p.number("max_height", o.marks.max_height);
          o.marks.max_width = p.number("max_width", o.marks.max_width);
          o.marks.min_vertical = p.number("min_vertical", o.marks.min_vertical);
          o.marks.grow = p.integer("grow", o.marks.grow);
          p.finish();
          return make_inpaint_marks(o);
        });
}

}  // namespace medlens
