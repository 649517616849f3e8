#include "transforms/ct_projection.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"

namespace medlens {
namespace {

constexpr double kPi = 3.14159265358979323846;

// Joseph's line integral through a slice seen as n lines of m pixels (line i starts at
// img + i * line_stride, its pixels pixel_stride apart): the ray y = y0 + slope * i crosses each
// line once, is interpolated linearly between the two nearest pixels of that line (zero outside:
// air), and each crossing weighs `length` mm.
inline double joseph(const float* img, int64_t n, int64_t m, int64_t line_stride, int64_t pixel_stride,
                     double y0, double slope, double length) {
  // Lines whose crossing lies within (-1, m), where at least one neighbour is inside.
  double first = 0, last = static_cast<double>(n - 1);
  if (std::abs(slope) > 1e-12) {
    double a = (-1 - y0) / slope, b = (static_cast<double>(m) - y0) / slope;
    if (a > b) std::swap(a, b);
    first = std::max(first, std::floor(a));
    last = std::min(last, std::ceil(b));
  } else if (y0 <= -1 || y0 >= static_cast<double>(m)) {
    return 0.0;
  }
  double sum = 0.0;
  for (auto i = static_cast<int64_t>(first); i <= static_cast<int64_t>(last); ++i) {
    // Only y > -1 reaches a pixel; there truncating y + 1 floors it (no libm call here).
    const double shifted = y0 + slope * static_cast<double>(i) + 1;
    if (!(shifted > 0)) continue;
    const auto j = static_cast<int64_t>(shifted) - 1;
    const double w = shifted - static_cast<double>(j + 1);
    const float* line = img + i * line_stride;
    if (j >= 0 && j < m) sum += (1 - w) * line[j * pixel_stride];
    if (j + 1 >= 0 && j + 1 < m) sum += w * line[(j + 1) * pixel_stride];
  }
  return sum * length;
}

void check_sizes(const at::Tensor& t, int64_t d1, int64_t d2, const char* what) {
  if (t.dim() != 3 || t.size(1) != d1 || t.size(2) != d2)
    throw UsageError(std::string("ct projection: ") + what + " must be (N, " + std::to_string(d1) + ", " +
                     std::to_string(d2) + ")");
}

}  // namespace

ParallelBeam ParallelBeam::for_slice(int64_t ny, int64_t nx, double sy, double sx, int64_t views) {
  ParallelBeam b;
  b.ny = ny;
  b.nx = nx;
  b.sy = sy;
  b.sx = sx;
  b.views = views;
  b.bin_mm = std::min(sx, sy) / 2;  // two bins per pixel: halves the round trip's blur
  const double diagonal = std::hypot(static_cast<double>(nx) * sx, static_cast<double>(ny) * sy);
  const auto half = static_cast<int64_t>(std::ceil(diagonal / 2 / b.bin_mm)) + 1;
  b.bins = 2 * half + 1;
  return b;
}

at::Tensor forward_project(const at::Tensor& mu_in, const ParallelBeam& beam) {
  check_sizes(mu_in, beam.ny, beam.nx, "attenuation");
  const at::Tensor mu = mu_in.to(at::kFloat).contiguous();
  const int64_t n = mu.size(0), views = beam.views, bins = beam.bins;
  at::Tensor out = at::zeros({n, views, bins}, at::kFloat);
  const float* src = mu.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  const double cx = (static_cast<double>(beam.nx) - 1) / 2, cy = (static_cast<double>(beam.ny) - 1) / 2;
  at::parallel_for(0, n * views, 1, [&](int64_t begin, int64_t end) {
    for (int64_t job = begin; job < end; ++job) {
      const int64_t slice = job / views, view = job % views;
      const float* img = src + slice * beam.ny * beam.nx;
      float* row = dst + job * bins;
      const double theta = kPi * static_cast<double>(view) / static_cast<double>(views);
      const double c = std::cos(theta), s = std::sin(theta);
      // The ray at detector offset u runs through u*(c, s) mm along (-s, c); in index units its
      // direction is (-s/sx, c/sy). Step along the index axis it follows more closely.
      const double ix = -s / beam.sx, iy = c / beam.sy;
      for (int64_t b = 0; b < bins; ++b) {
        const double u = beam.bin_position(b);
        const double ox = u * c / beam.sx + cx, oy = u * s / beam.sy + cy;  // a point on the ray
        double sum;
        if (std::abs(ix) >= std::abs(iy)) {  // one crossing per column x = i
          const double slope = iy / ix;
          sum = joseph(img, beam.nx, beam.ny, 1, beam.nx, oy - slope * ox, slope, std::abs(1 / ix));
        } else {  // one crossing per row y = j
          const double slope = ix / iy;
          sum = joseph(img, beam.ny, beam.nx, beam.nx, 1, ox - slope * oy, slope, std::abs(1 / iy));
        }
        row[b] = static_cast<float>(sum);
      }
    }
  });
  return out;
}

at::Tensor filtered_back_project(const at::Tensor& sinogram, const ParallelBeam& beam) {
  check_sizes(sinogram, beam.views, beam.bins, "sinogram");
  const int64_t n = sinogram.size(0), views = beam.views, bins = beam.bins;
  // Ramp filter as Kak & Slaney's spatial kernel (h0 = 1/(4d^2), h_odd = -1/(pi k d)^2), which
  // has no DC error, zero-padded to avoid wrap-around, and cut off at the pixels' Nyquist
  // frequency: detail finer than the slice can hold would alias into moire.
  int64_t padded = 2 * bins;  // even, and 5-smooth so the FFT is fast
  auto smooth = [](int64_t m) {
    for (const int64_t f : {2, 3, 5})
      while (m % f == 0) m /= f;
    return m == 1;
  };
  while (!smooth(padded)) padded += 2;
  const double d = beam.bin_mm;
  std::vector<double> kernel(static_cast<size_t>(padded), 0.0);
  kernel[0] = 1.0 / (4 * d * d);
  for (int64_t k = 1; k < padded / 2; k += 2) {
    const double v = -1.0 / (kPi * kPi * static_cast<double>(k * k) * d * d);
    kernel[static_cast<size_t>(k)] = v;
    kernel[static_cast<size_t>(padded - k)] = v;
  }
  const at::Tensor h = at::from_blob(kernel.data(), {padded}, at::kDouble).clone();
  const double cutoff = 1 / (2 * std::max(d, std::min(beam.sx, beam.sy)));  // cycles/mm
  const at::Tensor frequency = at::arange(padded / 2 + 1, at::kDouble) / (static_cast<double>(padded) * d);
  const at::Tensor response = at::real(at::fft_rfft(h)) * (frequency <= cutoff + 1e-12);
  const at::Tensor spectrum = at::fft_rfft(sinogram.to(at::kDouble), padded, -1) * response;
  const at::Tensor filtered =
      (at::fft_irfft(spectrum, padded, -1).narrow(-1, 0, bins) * d).to(at::kFloat).contiguous();

  at::Tensor out = at::zeros({n, beam.ny, beam.nx}, at::kFloat);
  const float* q = filtered.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  std::vector<double> cosines(static_cast<size_t>(views)), sines(static_cast<size_t>(views));
  for (int64_t v = 0; v < views; ++v) {
    const double theta = kPi * static_cast<double>(v) / static_cast<double>(views);
    cosines[static_cast<size_t>(v)] = std::cos(theta) / d;
    sines[static_cast<size_t>(v)] = std::sin(theta) / d;
  }
  const double cx = (beam.nx - 1) / 2.0, cy = (beam.ny - 1) / 2.0, mid = (bins - 1) / 2.0;
  const double weight = kPi / static_cast<double>(views);
  // Row by row, view by view: along a row the detector position is linear in the column.
  at::parallel_for(0, n * beam.ny, 1, [&](int64_t begin, int64_t end) {
    std::vector<double> sum(static_cast<size_t>(beam.nx));
    for (int64_t job = begin; job < end; ++job) {
      const int64_t slice = job / beam.ny, j = job % beam.ny;
      const float* sino = q + slice * views * bins;
      const double y = (static_cast<double>(j) - cy) * beam.sy;
      std::fill(sum.begin(), sum.end(), 0.0);
      for (int64_t v = 0; v < views; ++v) {
        const float* line = sino + v * bins;
        const double step = beam.sx * cosines[static_cast<size_t>(v)];
        const double start = -cx * step + y * sines[static_cast<size_t>(v)] + mid;
        for (int64_t i = 0; i < beam.nx; ++i) {
          const double pos = start + static_cast<double>(i) * step;
          if (!(pos >= 0)) continue;  // never, as the detector spans the diagonal
          const auto b = static_cast<int64_t>(pos);
          if (b + 1 >= bins) continue;
          sum[static_cast<size_t>(i)] += line[b] + (pos - static_cast<double>(b)) * (line[b + 1] - line[b]);
        }
      }
      float* row = dst + job * beam.nx;
      for (int64_t i = 0; i < beam.nx; ++i) row[i] = static_cast<float>(sum[static_cast<size_t>(i)] * weight);
    }
  });
  return out;
}

}  // namespace medlens
