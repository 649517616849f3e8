#include "transforms/histogram.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "transforms/base.h"
#include "transforms/denoise.h"
#include "transforms/params.h"
#include "transforms/registry.h"

namespace medlens {
namespace {

class HistogramEqualize final : public IntensityTransform {
 public:
  explicit HistogramEqualize(int bins) : bins_(bins) {
    if (bins_ < 2) throw UsageError("'histogram-equalize': bins must be >= 2");
  }
  std::string name() const override { return "histogram-equalize"; }
  nlohmann::json params() const override { return {{"bins", bins_}}; }

 protected:
  Image transform_image(const Image& image) const override {
    at::Tensor out = at::empty_like(image.voxels());
    const int64_t n = image.shape().voxels();
    for (int64_t c = 0; c < image.channels(); ++c) {
      const float* v = image.data() + c * n;
      float* o = out.data_ptr<float>() + c * n;
      const auto [lo_it, hi_it] = std::minmax_element(v, v + n);
      const double lo = *lo_it, hi = *hi_it;
      if (!(hi > lo)) {  // constant: every voxel is at or below the value, the cdf is 1
        std::fill(o, o + n, 1.0f);
        continue;
      }
      // numpy.histogram's equal bins (last one closed), then the normalised cumulative counts.
      const double width = (hi - lo) / bins_;
      std::vector<double> cdf(static_cast<size_t>(bins_), 0.0);
      for (int64_t i = 0; i < n; ++i) {
        const int64_t b = std::min<int64_t>(static_cast<int64_t>((v[i] - lo) / width), bins_ - 1);
        cdf[static_cast<size_t>(b)] += 1;
      }
      for (int b = 1; b < bins_; ++b) cdf[b] += cdf[b - 1];
      for (auto& x : cdf) x /= static_cast<double>(n);
      // numpy.interp at bin centres, constant beyond the first and last centre.
      parallel_for((n + 65535) / 65536, [&](int64_t chunk) {
        for (int64_t i = chunk * 65536; i < std::min(n, (chunk + 1) * 65536); ++i) {
          const double pos = (v[i] - lo) / width - 0.5;
          if (pos <= 0) { o[i] = static_cast<float>(cdf[0]); continue; }
          if (pos >= bins_ - 1) { o[i] = static_cast<float>(cdf[bins_ - 1]); continue; }
          const auto b = static_cast<size_t>(pos);
          const double f = pos - static_cast<double>(b);
          o[i] = static_cast<float>(cdf[b] + (cdf[b + 1] - cdf[b]) * f);
        }
      });
    }
    return image.with_voxels(out);
  }

 private:
  int bins_;
};

// ---------------------------------------------------------------------------------------------
// CLAHE: skimage.exposure._adapthist, line for line where it decides the numbers.

constexpr int kGrey = 1 << 14;  // skimage's NR_OF_GRAY

// skimage's clip_histogram: clip at `limit`, hand the excess out evenly, then one by one.
void clip_histogram(int64_t* hist, int bins, int64_t limit) {
  int64_t excess = 0;
  for (int b = 0; b < bins; ++b)
    if (hist[b] > limit) {
      excess += hist[b] - limit;
      hist[b] = limit;
    }
  const int64_t incr = excess / bins;
  const int64_t upper = limit - incr;
  for (int b = 0; b < bins; ++b)
    if (hist[b] < upper) {
      hist[b] += incr;
      excess -= incr;
    }
  for (int b = 0; b < bins; ++b)
    if (hist[b] >= upper && hist[b] < limit) {
      excess += hist[b] - limit;
      hist[b] = limit;
    }
  while (excess > 0) {
    const int64_t before = excess;
    for (int index = 0; index < bins; ++index) {
      int64_t under = 0;
      for (int b = 0; b < bins; ++b) under += hist[b] < limit;
      const int64_t step = std::max<int64_t>(1, under / excess);
      for (int64_t b = index; b < bins; b += step)
        if (hist[b] < limit) {
          ++hist[b];
          --excess;
        }
      if (excess <= 0) break;
    }
    if (excess == before) break;
  }
}

// One slice of grey codes in [0, kGrey) (rows ny, cols nx) -> equalised codes, as _clahe.
void clahe_slice(const uint16_t* in, float* out, int64_t ny, int64_t nx, int64_t ky, int64_t kx,
                 double clip_limit, int bins) {
  const int64_t sy = ky / 2, sx = kx / 2;
  const int64_t py = ny + sy + (ky - ny % ky) % ky + (ky + 1) / 2;
  const int64_t px = nx + sx + (kx - nx % kx) % kx + (kx + 1) / 2;
  const int bin_size = 1 + kGrey / bins;
  std::vector<uint16_t> img(static_cast<size_t>(py * px));  // padded, binned
  for (int64_t y = 0; y < py; ++y) {
    const uint16_t* line = in + reflect_index(y - sy, ny) * nx;
    for (int64_t x = 0; x < px; ++x)
      img[static_cast<size_t>(y * px + x)] = static_cast<uint16_t>(line[reflect_index(x - sx, nx)] / bin_size);
  }
  // Mappings of the contextual regions, with a copy of the edge ones all round.
  const int64_t hy = py / ky - 1, hx = px / kx - 1, region = ky * kx;
  const int64_t limit = clip_limit > 0 ? std::max<int64_t>(1, static_cast<int64_t>(clip_limit * region)) : region;
  const int64_t my = hy + 2, mx = hx + 2;
  std::vector<int64_t> maps(static_cast<size_t>(my * mx * bins)), hist(static_cast<size_t>(bins));
  for (int64_t ry = 0; ry < hy; ++ry)
    for (int64_t rx = 0; rx < hx; ++rx) {
      std::fill(hist.begin(), hist.end(), 0);
      for (int64_t y = sy + ry * ky; y < sy + (ry + 1) * ky; ++y)
        for (int64_t x = sx + rx * kx; x < sx + (rx + 1) * kx; ++x) ++hist[img[static_cast<size_t>(y * px + x)]];
      clip_histogram(hist.data(), bins, limit);
      int64_t* m = maps.data() + ((ry + 1) * mx + rx + 1) * bins;
      double sum = 0;
      for (int b = 0; b < bins; ++b) {
        sum += static_cast<double>(hist[b]);
        m[b] = static_cast<int64_t>(std::min(sum * ((kGrey - 1.0) / static_cast<double>(region)), kGrey - 1.0));
      }
    }
  for (int64_t ry = 0; ry < my; ++ry)
    for (int64_t rx = 0; rx < mx; ++rx) {
      const int64_t src = (std::clamp<int64_t>(ry, 1, hy) * mx + std::clamp<int64_t>(rx, 1, hx)) * bins;
      if (src != (ry * mx + rx) * bins)
        std::copy_n(maps.begin() + src, bins, maps.begin() + (ry * mx + rx) * bins);
    }
  // Each block of the padded image blends the mappings of its four surrounding regions.
  for (int64_t y = sy; y < sy + ny; ++y)
    for (int64_t x = sx; x < sx + nx; ++x) {
      const int64_t by = y / ky, bx = x / kx;
      const double fy = static_cast<double>(y % ky) / static_cast<double>(ky);
      const double fx = static_cast<double>(x % kx) / static_cast<double>(kx);
      const uint16_t g = img[static_cast<size_t>(y * px + x)];
      float acc = 0;
      for (int ey = 0; ey < 2; ++ey)
        for (int ex = 0; ex < 2; ++ex) {
          const double w = (ex ? fx : 1 - fx) * (ey ? fy : 1 - fy);
          const int64_t mapped = maps[static_cast<size_t>(((by + ey) * mx + bx + ex) * bins + g)];
          acc += static_cast<float>(static_cast<double>(mapped) * w);
        }
      out[(y - sy) * nx + (x - sx)] = std::trunc(acc);  // skimage casts back to uint16
    }
}

class Clahe final : public IntensityTransform {
 public:
  explicit Clahe(ClaheOptions o) : o_(o) {
    if (!(o_.clip_limit_ >= 0)) throw UsageError("'clahe': clip_limit must be >= 0");
    if (o_.kernel_size_[0] < 0 || o_.kernel_size_[1] < 0) throw UsageError("'clahe': kernel_size must be >= 0");
    if (o_.bins_ < 2 || o_.bins_ > kGrey) throw UsageError("'clahe': bins must lie in [2, 16384]");
  }
  std::string name() const override { return "clahe"; }
  nlohmann::json params() const override {
    return {{"clip_limit", o_.clip_limit_}, {"kernel_size", {o_.kernel_size_[0], o_.kernel_size_[1]}}, {"bins", o_.bins_}};
  }

 protected:
  Image transform_image(const Image& image) const override {
    const Shape& s = image.shape();
    const int64_t kx = o_.kernel_size_[0] > 0 ? o_.kernel_size_[0] : std::max<int64_t>(s.x / 8, 1);
    const int64_t ky = o_.kernel_size_[1] > 0 ? o_.kernel_size_[1] : std::max<int64_t>(s.y / 8, 1);
    const int64_t plane = s.y * s.x;
    at::Tensor out = at::empty_like(image.voxels());
    for (int64_t c = 0; c < s.c; ++c) {
      const float* v = image.data() + c * s.voxels();
      float* o = out.data_ptr<float>() + c * s.voxels();
      // The channel's range to grey codes, rounding half to even as numpy.round.
      const auto [lo_it, hi_it] = std::minmax_element(v, v + s.voxels());
      const double lo = *lo_it, scale = *hi_it > *lo_it ? (kGrey - 1.0) / (static_cast<double>(*hi_it) - lo) : 0.0;
      std::vector<uint16_t> codes(static_cast<size_t>(s.voxels()));
      for (int64_t i = 0; i < s.voxels(); ++i)
        codes[static_cast<size_t>(i)] = static_cast<uint16_t>(std::nearbyint((v[i] - lo) * scale));
      parallel_for(s.z, [&](int64_t z) {
        clahe_slice(codes.data() + z * plane, o + z * plane, s.y, s.x, ky, kx, o_.clip_limit_, o_.bins_);
      });
      const auto [rlo, rhi] = std::minmax_element(o, o + s.voxels());
      const double a = *rlo, span = *rhi - *rlo;
      for (int64_t i = 0; i < s.voxels(); ++i)
        o[i] = span > 0 ? static_cast<float>((o[i] - a) / span) : 0.f;
    }
    return image.with_voxels(out);
  }

 private:
  ClaheOptions o_;
};

}  // namespace

TransformPtr make_histogram_equalize(int bins) { return std::make_shared<HistogramEqualize>(bins); }
TransformPtr make_clahe(const ClaheOptions& o) { return std::make_shared<Clahe>(o); }

void register_histogram(TransformRegistry& r) {
  r.add("histogram-equalize", "intensity", "global histogram equalisation per channel to [0,1]: bins=256",
        [](const nlohmann::json& j) {
          ParamReader p("histogram-equalize", j);
          const int bins = p.count("bins", 256);
          p.finish();
          return make_histogram_equalize(bins);
        });
  r.add("clahe", "intensity",
        "CLAHE per slice as skimage equalize_adapthist, output [0,1]: clip_limit=0.01, kernel_size=0 "
        "(voxels, one value or x;y; 0 = 1/8 of the slice), bins=256",
        [](const nlohmann::json& j) {
          ParamReader p("clahe", j);
          ClaheOptions o;
          o.clip_limit(p.number("clip_limit", 0.01)).bins(p.count("bins", 256));
          const auto k = p.numbers("kernel_size", {0});
          p.finish();
          if (k.size() != 1 && k.size() != 2) throw UsageError("'clahe': kernel_size takes 1 or 2 values");
          for (double v : k)
            if (v != std::floor(v)) throw UsageError("'clahe': kernel_size must be whole voxels");
          o.kernel_size(static_cast<int>(k[0]), static_cast<int>(k.size() == 2 ? k[1] : k[0]));
          return make_clahe(o);
        });
}

}  // namespace medlens
