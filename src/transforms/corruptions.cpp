#include "transforms/corruptions.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <opencv2/imgcodecs.hpp>
#include <optional>

#include "core/error.h"
#include "transforms/base.h"
#include "transforms/ct_projection.h"
#include "transforms/params.h"
#include "transforms/registry.h"

namespace medlens {
namespace {

constexpr double kPi = 3.14159265358979323846;
using Params = nlohmann::json;

double num(const Params& p, const char* key) { return p.at(key).get<double>(); }

at::Generator generator(Rng& rng) { return at::make_generator<at::CPUGeneratorImpl>(rng.next_seed()); }

// The image's intensity scale, robust to outliers: the 0.5th and 99.5th percentiles over all
// voxels and channels. Noise and shifts are fractions of width(), so one table serves HU, MR
// units and 0..255 images alike.
struct Range {
  double lo = 0, hi = 1;
  double width() const { return hi > lo ? hi - lo : 1.0; }
};

Range robust_range(const at::Tensor& v) {
  const at::Tensor flat = v.flatten();
  const int64_t n = flat.numel();
  auto kth = [&](double q) {
    const int64_t k =
        std::clamp<int64_t>(static_cast<int64_t>(std::llround(q * static_cast<double>(n - 1))) + 1, 1, n);
    return std::get<0>(at::kthvalue(flat, k)).item<double>();
  };
  Range r{kth(0.005), kth(0.995)};
  if (!(r.hi > r.lo)) r = {flat.min().item<double>(), flat.max().item<double>()};
  return r;
}

// v scaled by `factor` about the range's low end; voxels below it are left alone. Multiplicative
// physics (speckle, bias fields) acts on signal above the background level.
at::Tensor multiply_above(const at::Tensor& v, double lo, const at::Tensor& factor) {
  return v + (v - lo).clamp_min(0) * (factor - 1);
}

// (C,Z,Y,X) as a batch of in-plane slices (C*Z, 1, Y, X).
at::Tensor as_slices(const at::Tensor& v) { return v.reshape({-1, 1, v.size(2), v.size(3)}); }

// ---- noise -----------------------------------------------------------------------------------

Image gaussian(const Image& img, const Params& p, Rng& rng) {
  const double sigma = num(p, "sigma_of_range") * robust_range(img.voxels()).width();
  return img.with_voxels(img.voxels() + at::randn(img.voxels().sizes(), generator(rng), at::kFloat) * sigma);
}

// Photon counting: the range maps to 0..peak photons, counts are Poisson-drawn, and the count
// error is mapped back, so bright voxels get more absolute (less relative) noise.
Image poisson(const Image& img, const Params& p, Rng& rng) {
  const Range r = robust_range(img.voxels());
  const double peak = num(p, "peak_photons");
  const at::Tensor v = img.voxels();
  const at::Tensor expected = ((v - r.lo) * (peak / r.width())).clamp_min(0).to(at::kDouble);
  const at::Tensor counts = at::poisson(expected, generator(rng));
  return img.with_voxels(v + ((counts - expected) * (r.width() / peak)).to(at::kFloat));
}

// Multiplicative speckle: L-look intensity statistics, a Gamma(L, 1/L) factor of mean 1.
Image speckle(const Image& img, const Params& p, Rng& rng) {
  const double looks = num(p, "looks");
  const at::Tensor v = img.voxels();
  const at::Tensor factor =
      at::_standard_gamma(at::full(v.sizes(), looks, at::kDouble), generator(rng)) / looks;
  return img.with_voxels(multiply_above(v, robust_range(v).lo, factor.to(at::kFloat)));
}

// Magnitude MRI: complex Gaussian noise on both channels, then the magnitude, which biases dark
// regions upwards (the Rician floor).
Image rician(const Image& img, const Params& p, Rng& rng) {
  const at::Tensor v = img.voxels();
  const Range r = robust_range(v);
  const double sigma = num(p, "sigma_of_range") * r.width();
  at::Generator gen = generator(rng);
  const at::Tensor re = at::randn(v.sizes(), gen, at::kFloat) * sigma;
  const at::Tensor im = at::randn(v.sizes(), gen, at::kFloat) * sigma;
  const at::Tensor signal = (v - r.lo).clamp_min(0);
  return img.with_voxels(v + (at::sqrt((signal + re).square() + im.square()) - signal));
}

Image salt_pepper(const Image& img, const Params& p, Rng& rng) {
  const double fraction = num(p, "fraction");
  const auto [lo, hi] = value_range(img);
  const at::Tensor u = at::rand(img.voxels().sizes(), generator(rng), at::kFloat);
  at::Tensor out = img.voxels().clone();
  out.masked_fill_(u < fraction / 2, hi);
  out.masked_fill_((u >= fraction / 2) & (u < fraction), lo);
  return img.with_voxels(out);
}

// ---- blur ------------------------------------------------------------------------------------

// Convolves every in-plane slice with a (kh, kw) kernel of odd sizes, edges replicated.
at::Tensor convolve_in_plane(const at::Tensor& v, const at::Tensor& kernel) {
  const int64_t kh = kernel.size(0), kw = kernel.size(1);
  const at::Tensor padded = at::replication_pad2d(as_slices(v), {kw / 2, kw / 2, kh / 2, kh / 2});
  return at::conv2d(padded, kernel.to(at::kFloat).view({1, 1, kh, kw})).reshape(v.sizes());
}

// A disk of radius r mm on the pixel grid, each tap weighted by the area it covers (8x8
// sub-samples) so that growing radii blur smoothly.
Image defocus_blur(const Image& img, const Params& p, Rng&) {
  const double r = num(p, "radius_mm"), sx = img.geometry().spacing[0], sy = img.geometry().spacing[1];
  const int64_t hx = static_cast<int64_t>(std::ceil(r / sx)), hy = static_cast<int64_t>(std::ceil(r / sy));
  at::Tensor k = at::zeros({2 * hy + 1, 2 * hx + 1}, at::kDouble);
  auto acc = k.accessor<double, 2>();
  constexpr int kSub = 8;
  for (int64_t j = -hy; j <= hy; ++j)
    for (int64_t i = -hx; i <= hx; ++i)
      for (int a = 0; a < kSub; ++a)
        for (int b = 0; b < kSub; ++b) {
          const double x = (i + (b + 0.5) / kSub - 0.5) * sx, y = (j + (a + 0.5) / kSub - 0.5) * sy;
          if (x * x + y * y <= r * r) acc[j + hy][i + hx] += 1;
        }
  return img.with_voxels(convolve_in_plane(img.voxels(), k / k.sum()));
}

// A straight path of length L mm through the centre at a random in-plane angle, splatted
// bilinearly onto the pixel grid: the exposure of a camera moving uniformly.
Image motion_blur(const Image& img, const Params& p, Rng& rng) {
  const double length = num(p, "length_mm"), angle = rng.uniform(0, kPi);
  const double sx = img.geometry().spacing[0], sy = img.geometry().spacing[1];
  const double c = std::cos(angle), s = std::sin(angle);
  const int64_t hx = static_cast<int64_t>(std::ceil(length / 2 * std::abs(c) / sx)) + 1;
  const int64_t hy = static_cast<int64_t>(std::ceil(length / 2 * std::abs(s) / sy)) + 1;
  at::Tensor k = at::zeros({2 * hy + 1, 2 * hx + 1}, at::kDouble);
  auto acc = k.accessor<double, 2>();
  const int64_t samples = 16 * (hx + hy) + 1;
  for (int64_t n = 0; n < samples; ++n) {
    const double t = length * (static_cast<double>(n) / static_cast<double>(samples - 1) - 0.5);
    const double x = t * c / sx + hx, y = t * s / sy + hy;
    const int64_t x0 = static_cast<int64_t>(std::floor(x)), y0 = static_cast<int64_t>(std::floor(y));
    const double fx = x - x0, fy = y - y0;
    acc[y0][x0] += (1 - fx) * (1 - fy);
    acc[y0][x0 + 1] += fx * (1 - fy);
    acc[y0 + 1][x0] += (1 - fx) * fy;
    acc[y0 + 1][x0 + 1] += fx * fy;
  }
  return img.with_voxels(convolve_in_plane(img.voxels(), k / k.sum()));
}

// ---- MRI: k-space ----------------------------------------------------------------------------
// Each slice is a 2-D acquisition: readout along x (columns), phase encoding along y (rows).

// Signed k-space index of each FFT row/column: 0, 1, ..., -2, -1.
at::Tensor frequencies(int64_t n) {
  at::Tensor k = at::arange(n, at::kDouble);
  return at::where(k < (n + 1) / 2, k, k - static_cast<double>(n));
}

// Transforms every slice to k-space, lets `edit` change it (a complex (C*Z, Y, X) tensor, FFT
// order), and reconstructs the magnitude image as a scanner does (the real part when the image
// has negative values, which magnitude images never do).
at::Tensor through_kspace(const at::Tensor& v, const std::function<at::Tensor(const at::Tensor&)>& edit) {
  const at::Tensor slices = v.to(at::kDouble).reshape({-1, v.size(2), v.size(3)});
  const at::Tensor image = at::fft_ifft2(edit(at::fft_fft2(slices)));
  const at::Tensor out = v.min().item<double>() >= 0 ? at::abs(image) : at::real(image);
  return out.to(at::kFloat).reshape(v.sizes());
}

// Phase-encode lines away from the centre of k-space (which sets contrast and position), in a
// random order drawn from rng.
std::vector<int64_t> shuffled_outer_lines(int64_t ny, Rng& rng) {
  const int64_t band = std::max<int64_t>(1, std::llround(0.04 * static_cast<double>(ny)));
  std::vector<int64_t> lines;
  for (int64_t r = 0; r < ny; ++r)
    if (std::abs(r < (ny + 1) / 2 ? r : r - ny) > band) lines.push_back(r);
  for (int64_t i = static_cast<int64_t>(lines.size()) - 1; i > 0; --i)
    std::swap(lines[static_cast<size_t>(i)], lines[static_cast<size_t>(rng.integer(0, i))]);
  return lines;
}

// Rigid patient motion between phase-encode lines: a fraction of lines is acquired with the
// object translated, i.e. with the Fourier phase ramp of a random shift up to max_shift_mm.
Image mri_motion(const Image& img, const Params& p, Rng& rng) {
  const int64_t ny = img.height(), nx = img.width();
  const std::vector<int64_t> lines = shuffled_outer_lines(ny, rng);
  const double max_shift = num(p, "max_shift_mm");
  const auto moved = static_cast<size_t>(std::llround(num(p, "lines_fraction") * static_cast<double>(ny)));
  std::vector<double> dx(static_cast<size_t>(ny), 0.0), dy(static_cast<size_t>(ny), 0.0);  // pixels
  for (size_t i = 0; i < lines.size(); ++i) {
    const double ux = rng.uniform(-1, 1), uy = rng.uniform(-1, 1);  // drawn for every line
    if (i >= moved) continue;
    dx[static_cast<size_t>(lines[i])] = ux * max_shift / img.geometry().spacing[0];
    dy[static_cast<size_t>(lines[i])] = uy * max_shift / img.geometry().spacing[1];
  }
  const at::Tensor fx = frequencies(nx).view({1, nx}) / static_cast<double>(nx);
  const at::Tensor fy = frequencies(ny).view({ny, 1}) / static_cast<double>(ny);
  const at::Tensor shift_x = at::tensor(dx, at::kDouble).view({ny, 1});
  const at::Tensor shift_y = at::tensor(dy, at::kDouble).view({ny, 1});
  const at::Tensor phase = (fx * shift_x + fy * shift_y) * (-2 * kPi);
  const at::Tensor ramp = at::polar(at::ones_like(phase), phase);
  return img.with_voxels(through_kspace(img.voxels(), [&](const at::Tensor& k) { return k * ramp; }));
}

// Odd phase-encode lines differ in amplitude and phase from even ones (e.g. eddy currents in
// interleaved or EPI readouts): a ghost shifted by half the field of view along y.
Image mri_ghosting(const Image& img, const Params& p, Rng&) {
  const int64_t ny = img.height();
  const at::Tensor odd = at::remainder(frequencies(ny).abs(), 2).view({ny, 1}) > 0.5;
  const double amplitude = 1 - num(p, "amplitude_error"), phase = num(p, "phase_error_deg") * kPi / 180;
  const at::Tensor gain = at::where(
      odd, at::polar(at::full({ny, 1}, amplitude, at::kDouble), at::full({ny, 1}, phase, at::kDouble)),
      at::ones({ny, 1}, at::kComplexDouble));
  return img.with_voxels(through_kspace(img.voxels(), [&](const at::Tensor& k) { return k * gain; }));
}

// RF spikes: single corrupted k-space samples, each a plane wave over the whole slice
// (herringbone stripes) whose amplitude is a fraction of the range.
Image mri_spike(const Image& img, const Params& p, Rng& rng) {
  const int64_t ny = img.height(), nx = img.width();
  const auto spikes = static_cast<int64_t>(num(p, "spikes"));
  const double amplitude = num(p, "amplitude_of_range") * robust_range(img.voxels()).width() *
                           static_cast<double>(ny * nx);  // the inverse FFT divides by ny*nx
  at::Tensor add = at::zeros({ny, nx}, at::kComplexDouble);
  for (int64_t i = 0; i < 3; ++i) {  // always draw three, so severities share their spikes
    const double radius = rng.uniform(0.08, 0.35), angle = rng.uniform(0, 2 * kPi),
                 phase = rng.uniform(0, 2 * kPi);
    if (i >= spikes) continue;
    const int64_t kx = ((std::llround(radius * std::cos(angle) * nx) % nx) + nx) % nx;
    const int64_t ky = ((std::llround(radius * std::sin(angle) * ny) % ny) + ny) % ny;
    add[ky][kx] += c10::complex<double>(amplitude * std::cos(phase), amplitude * std::sin(phase));
  }
  return img.with_voxels(through_kspace(img.voxels(), [&](const at::Tensor& k) { return k + add; }));
}

// Receive-coil inhomogeneity: exp of a random cubic polynomial over the field of view, scaled
// so its log spans +-max_log_gain about its mean.
Image mri_bias(const Image& img, const Params& p, Rng& rng) {
  const Shape s = img.shape();
  auto axis = [](int64_t n, std::vector<int64_t> view) {
    at::Tensor t = n > 1 ? at::linspace(-1, 1, n, at::kDouble) : at::zeros({1}, at::kDouble);
    return t.view(view);
  };
  const at::Tensor x = axis(s.x, {1, 1, s.x}), y = axis(s.y, {1, s.y, 1}), z = axis(s.z, {s.z, 1, 1});
  at::Tensor log_field = at::zeros({s.z, s.y, s.x}, at::kDouble);
  for (int a = 0; a <= 3; ++a)
    for (int b = 0; a + b <= 3; ++b)
      for (int c = 0; a + b + c <= 3; ++c) {
        if (a + b + c == 0) continue;
        const double coefficient = rng.uniform(-1, 1);  // drawn for 2-D too: same stream
        if (c > 0 && s.z == 1) continue;
        log_field = log_field + coefficient * x.pow(a) * y.pow(b) * z.pow(c);
      }
  log_field = log_field - log_field.mean();
  const double peak = log_field.abs().max().item<double>();
  const at::Tensor field = at::exp(log_field * (num(p, "max_log_gain") / (peak > 0 ? peak : 1.0)));
  const at::Tensor v = img.voxels();
  return img.with_voxels(multiply_above(v, robust_range(v).lo, field.to(at::kFloat).unsqueeze(0)));
}

// ---- CT: the sinogram ------------------------------------------------------------------------

constexpr int64_t kCtViews = 360;

// How image values relate to attenuation: mu = (v - air) / per_mu, in 1/mm. Images in HU use
// mu = mu_water (1 + HU/1000); other images are read as if the robust range spanned -1000 ..
// +1000 HU.
struct AttenuationScale {
  double air = -1000;
  double per_mu = 1000 / kMuWater;
};

AttenuationScale attenuation_scale(const Image& img) {
  if (img.metadata().units == "HU") return {};
  const Range r = robust_range(img.voxels());
  return {r.lo, r.width() / (2 * kMuWater)};
}

ParallelBeam beam_for(const Image& img) {
  return ParallelBeam::for_slice(img.height(), img.width(), img.geometry().spacing[1],
                                 img.geometry().spacing[0], kCtViews);
}

// Slices go through the scanner in groups this large, which bounds the sinograms' memory.
constexpr int64_t kSlicesPerGroup = 8;

// Line integrals (N, views, bins) of slices first..first+N-1, corrupted into measured ones.
using SinogramCorruption = std::function<at::Tensor(const at::Tensor& p, int64_t first)>;

// Projects every axial slice of v, lets `corrupt` turn the line integrals into measured ones,
// and adds the reconstruction of the change to the slice. FBP is linear, so this equals
// reconstructing the corrupted sinogram, minus FBP's own blur of unchanged content.
at::Tensor through_sinogram(const at::Tensor& v, const AttenuationScale& scale, const ParallelBeam& beam,
                            const SinogramCorruption& corrupt) {
  const at::Tensor mu = ((v - scale.air) / scale.per_mu).clamp_min(0).reshape({-1, v.size(2), v.size(3)});
  at::Tensor change = at::empty_like(mu);
  for (int64_t first = 0; first < mu.size(0); first += kSlicesPerGroup) {
    const int64_t n = std::min(kSlicesPerGroup, mu.size(0) - first);
    const at::Tensor p = forward_project(mu.narrow(0, first, n), beam);
    change.narrow(0, first, n).copy_(filtered_back_project(corrupt(p, first) - p, beam));
  }
  return v + change.reshape(v.sizes()) * scale.per_mu;
}

// Measured line integrals after photon counting: I = Poisson(I0 exp(-p)), p = -ln(I / I0), with
// at least one count per reading (the detector's floor).
at::Tensor counted(const at::Tensor& p, double photons, Rng& rng) {
  const at::Tensor expected = at::exp(-p.to(at::kDouble)) * photons;
  const at::Tensor counts = at::poisson(expected, generator(rng)).clamp_min(1);
  return (-at::log(counts / photons)).to(at::kFloat);
}

Image ct_lowdose(const Image& img, const Params& p, Rng& rng) {
  const double photons = num(p, "photons_per_ray");
  return img.with_voxels(
      through_sinogram(img.voxels(), attenuation_scale(img), beam_for(img),
                       [&](const at::Tensor& line, int64_t) { return counted(line, photons, rng); }));
}

// Miscalibrated detector channels: a gain error g scales every reading of the channel, so its
// line integrals are off by ln(1 + g) (sign drawn) at every view. A channel is one pixel wide
// (two bins), and as the gantry turns a full circle it samples offset u and, half a turn later,
// -u: in the 180-degree parallel sinogram both. FBP turns that into a ring about the rotation
// centre.
Image ct_ring(const Image& img, const Params& p, Rng& rng) {
  const ParallelBeam beam = beam_for(img);
  const double offset = std::log(1 + num(p, "gain_error_percent") / 100);
  const auto channels = static_cast<int64_t>(num(p, "channels"));
  // Channels that see the middle of the slice (within 35% of its half diagonal).
  const int64_t mid = (beam.bins - 1) / 2, reach = std::max<int64_t>(2, static_cast<int64_t>(0.35 * mid));
  at::Tensor error = at::zeros({beam.bins}, at::kFloat);
  for (int64_t i = 0; i < 5; ++i) {  // always draw five, so severities share their channels
    const int64_t d = rng.integer(1, reach);
    const double sign = rng.bernoulli(0.5) ? 1.0 : -1.0;
    if (i >= channels) continue;
    for (const int64_t bin : {mid + d, mid + d + 1, mid - d, mid - d - 1}) error[bin] = sign * offset;
  }
  return img.with_voxels(through_sinogram(img.voxels(), attenuation_scale(img), beam,
                                          [&](const at::Tensor& line, int64_t) { return line + error; }));
}

// The detected spectrum hardens along long paths, so measured line integrals fall below the
// true ones: p' = p - alpha p^2 (water-equivalent). Large objects reconstruct darker inside
// (cupping) with dark bands between dense structures.
Image ct_beam_hardening(const Image& img, const Params& p, Rng&) {
  const double alpha = num(p, "alpha");
  return img.with_voxels(
      through_sinogram(img.voxels(), attenuation_scale(img), beam_for(img),
                       [&](const at::Tensor& line, int64_t) { return line - alpha * line.square(); }));
}

// Photons per ray and the metal's own hardening coefficient, shared by every ct-metal severity.
constexpr double kMetalPhotons = 1e6;
constexpr double kMetalHardening = 0.03;

// A metal sphere placed in soft tissue: each voxel's share of it (4x4x4 sub-samples), (Z,Y,X).
at::Tensor metal_coverage(const Image& img, const Vec3& centre, double radius) {
  const Shape s = img.shape();
  const Vec3& sp = img.geometry().spacing;
  at::Tensor cover = at::zeros({s.z, s.y, s.x}, at::kFloat);
  auto acc = cover.accessor<float, 3>();
  constexpr int kSub = 4;
  auto span = [&](int axis, int64_t n) {
    const double h = radius / sp[static_cast<size_t>(axis)] + 1;
    return std::pair<int64_t, int64_t>{
        std::max<int64_t>(0, static_cast<int64_t>(std::floor(centre[static_cast<size_t>(axis)] - h))),
        std::min<int64_t>(n - 1, static_cast<int64_t>(std::ceil(centre[static_cast<size_t>(axis)] + h)))};
  };
  const auto [x0, x1] = span(0, s.x);
  const auto [y0, y1] = span(1, s.y);
  const auto [z0, z1] = span(2, s.z);
  for (int64_t k = z0; k <= z1; ++k)
    for (int64_t j = y0; j <= y1; ++j)
      for (int64_t i = x0; i <= x1; ++i) {
        int inside = 0;
        for (int a = 0; a < kSub; ++a)
          for (int b = 0; b < kSub; ++b)
            for (int c = 0; c < kSub; ++c) {
              // A 2-D image is the slice through the sphere's centre.
              const double dz = s.z == 1 ? 0 : (k + (a + 0.5) / kSub - 0.5 - centre[2]) * sp[2];
              const double dy = (j + (b + 0.5) / kSub - 0.5 - centre[1]) * sp[1];
              const double dx = (i + (c + 0.5) / kSub - 0.5 - centre[0]) * sp[0];
              inside += dx * dx + dy * dy + dz * dz <= radius * radius;
            }
        acc[k][j][i] = static_cast<float>(inside) / (kSub * kSub * kSub);
      }
  return cover;
}

// Where the metal goes: a random voxel of soft tissue (-100..300 HU) in the middle half of the
// slice (and of the stack), else the centre. Returns a continuous index (x, y, z).
Vec3 metal_position(const Image& img, const AttenuationScale& scale, Rng& rng) {
  const Shape s = img.shape();
  const at::Tensor hu = (img.voxels()[0] - scale.air) / scale.per_mu / kMuWater * 1000 - 1000;
  at::Tensor middle = at::zeros({s.z, s.y, s.x}, at::kBool);
  auto quarter = [](int64_t n) {
    return std::pair<int64_t, int64_t>{n / 4, std::max<int64_t>(1, n - 2 * (n / 4))};
  };
  const auto [zs, zn] = quarter(s.z);
  const auto [ys, yn] = quarter(s.y);
  const auto [xs, xn] = quarter(s.x);
  middle.narrow(0, zs, zn).narrow(1, ys, yn).narrow(2, xs, xn).fill_(true);
  const at::Tensor candidates = at::nonzero(middle & (hu >= -100) & (hu <= 300));
  const int64_t pick = rng.integer(0, std::max<int64_t>(0, candidates.size(0) - 1));
  if (candidates.size(0) == 0) return {(s.x - 1) / 2.0, (s.y - 1) / 2.0, (s.z - 1) / 2.0};
  const at::Tensor at_pick = candidates[pick];
  return {at_pick[2].item<double>(), at_pick[1].item<double>(), at_pick[0].item<double>()};
}

// A dense metal sphere (radius, attenuation by severity) is inserted, the slices are projected,
// and the rays through it suffer beam hardening in the metal (p_m - 0.03 p_m^2) and photon
// starvation (Poisson counts from 1e6 photons per ray): streaks radiate from the metal.
Image ct_metal(const Image& img, const Params& p, Rng& rng) {
  const AttenuationScale scale = attenuation_scale(img);
  const ParallelBeam beam = beam_for(img);
  const double radius = num(p, "radius_mm"), mu_metal = num(p, "mu_per_mm");
  const Vec3 centre = metal_position(img, scale, rng);
  const at::Tensor cover = metal_coverage(img, centre, radius).unsqueeze(0);
  const at::Tensor v = img.voxels();
  const at::Tensor with_metal = v + cover * (scale.air + mu_metal * scale.per_mu - v);
  const at::Tensor metal_mu = (cover.expand(v.sizes()) * mu_metal).reshape({-1, v.size(2), v.size(3)});
  Image out =
      img.with_voxels(through_sinogram(with_metal, scale, beam, [&](const at::Tensor& line, int64_t first) {
        // Beam hardening acts on the metal's own line integrals, where a group of slices holds metal.
        const at::Tensor metal = metal_mu.narrow(0, first, line.size(0));
        const at::Tensor hardened = metal.max().item<float>() > 0
                                        ? line - kMetalHardening * forward_project(metal, beam).square()
                                        : line;
        return counted(hardened, kMetalPhotons, rng);
      }));
  const Vec3 lps = img.geometry().index_to_lps(centre);
  char text[96];
  std::snprintf(text, sizeof text, "%.2f\\%.2f\\%.2f", lps[0], lps[1], lps[2]);
  out.metadata().tags["CorruptionMetalLPS"] = text;
  std::snprintf(text, sizeof text, "%.0f\\%.0f\\%.0f", centre[0], centre[1], centre[2]);
  out.metadata().tags["CorruptionMetalIndex"] = text;
  std::snprintf(text, sizeof text, "%g", radius);
  out.metadata().tags["CorruptionMetalRadiusMM"] = text;
  return out;
}

// ---- display and export ----------------------------------------------------------------------

// The image exported through an 8-bit JPEG at the given quality: values min..max map to 0..255,
// each slice is encoded and decoded (three channels as one colour picture), and mapped back.
Image jpeg(const Image& img, const Params& p, Rng&) {
  const auto [lo, hi] = value_range(img);
  const double scale = hi > lo ? 255.0 / (hi - lo) : 1.0;
  const at::Tensor bytes = ((img.voxels() - lo) * scale).round().clamp(0, 255).to(at::kByte);
  const bool colour = img.channels() == 3;
  // (Z, C', Y, X) with C' = 3 for colour (a BGR picture per slice), else 1 per channel and slice.
  const at::Tensor pictures =
      (colour ? bytes.flip({0}).permute({1, 2, 3, 0}) : bytes.reshape({-1, img.height(), img.width(), 1}))
          .contiguous();
  at::Tensor decoded = at::empty_like(pictures);
  const int type = colour ? CV_8UC3 : CV_8UC1;
  const std::vector<int> quality{cv::IMWRITE_JPEG_QUALITY, static_cast<int>(num(p, "quality"))};
  for (int64_t i = 0; i < pictures.size(0); ++i) {
    const cv::Mat mat(static_cast<int>(img.height()), static_cast<int>(img.width()), type,
                      pictures[i].data_ptr());
    std::vector<uchar> encoded;
    const cv::Mat back = cv::imencode(".jpg", mat, encoded, quality)
                             ? cv::imdecode(encoded, colour ? cv::IMREAD_COLOR : cv::IMREAD_GRAYSCALE)
                             : cv::Mat();
    if (back.total() != mat.total() || back.elemSize() != mat.elemSize())
      throw InputError(img.metadata().source_path, "JPEG cannot code a slice of " +
                                                       std::to_string(img.width()) + "x" +
                                                       std::to_string(img.height()) + " pixels");
    std::memcpy(decoded[i].data_ptr(), back.data, static_cast<size_t>(back.total() * back.elemSize()));
  }
  const at::Tensor values =
      colour ? decoded.permute({3, 0, 1, 2}).flip({0}) : decoded.reshape(img.voxels().sizes());
  return img.with_voxels(values.to(at::kFloat) / scale + lo);
}

Image contrast(const Image& img, const Params& p, Rng&) {
  const at::Tensor v = img.voxels();
  const at::Tensor mean = v.mean({1, 2, 3}, true);
  return img.with_voxels(mean + (v - mean) * num(p, "factor"));
}

Image brightness(const Image& img, const Params& p, Rng&) {
  return img.with_voxels(img.voxels() + num(p, "shift_of_range") * robust_range(img.voxels()).width());
}

// Each in-plane block of factor x factor pixels replaced by its mean (edge blocks by the mean of
// the pixels they hold).
Image pixelate(const Image& img, const Params& p, Rng&) {
  const auto f = static_cast<int64_t>(num(p, "factor"));
  const at::Tensor v = img.voxels();
  const at::Tensor small = at::avg_pool2d(as_slices(v), {f, f}, {f, f}, {0, 0}, true, false);
  const at::Tensor big = small.repeat_interleave(f, 2).repeat_interleave(f, 3);
  return img.with_voxels(big.narrow(2, 0, v.size(2)).narrow(3, 0, v.size(3)).reshape(v.sizes()));
}

// ---- the table -------------------------------------------------------------------------------

using Column = std::pair<const char*, std::array<double, 5>>;

// Parameters per severity from one column of values per parameter; whole numbers stay integers.
std::array<Params, 5> levels(std::initializer_list<Column> columns) {
  std::array<Params, 5> out;
  for (auto& level : out) level = Params::object();
  for (const auto& [name, values] : columns)
    for (size_t i = 0; i < 5; ++i) {
      const double v = values[i];
      if (v == std::floor(v) && std::abs(v) < 1e15)
        out[i][name] = static_cast<int64_t>(v);
      else
        out[i][name] = v;
    }
  return out;
}

struct Kind {
  std::string name;
  bool random;
  std::string how;
  std::array<Params, 5> levels;
  Image (*apply)(const Image&, const Params&, Rng&);
};

const std::vector<Kind>& kinds() {
  static const std::vector<Kind> table = {
      {"gaussian", true, "additive white Gaussian noise, sigma a fraction of the range",
       levels({{"sigma_of_range", {0.02, 0.04, 0.07, 0.11, 0.16}}}), gaussian},
      {"poisson", true,
       "photon counting: the range maps to 0..peak_photons per voxel, counts are Poisson-drawn and "
       "mapped back",
       levels({{"peak_photons", {1000, 300, 100, 30, 10}}}), poisson},
      {"speckle", true,
       "multiplicative speckle: intensity times Gamma(looks, 1/looks), mean 1, std 1/sqrt(looks)",
       levels({{"looks", {50, 20, 10, 5, 2}}}), speckle},
      {"rician", true,
       "magnitude of the signal plus complex Gaussian noise (sigma, a fraction of the range, on each "
       "of re and im)",
       levels({{"sigma_of_range", {0.02, 0.04, 0.07, 0.11, 0.16}}}), rician},
      {"salt-pepper", true, "a fraction of voxels set to the image's minimum or maximum (half each)",
       levels({{"fraction", {0.002, 0.005, 0.01, 0.02, 0.05}}}), salt_pepper},
      {"defocus-blur", false, "in-plane convolution with a disk of the given radius (mm), area-weighted",
       levels({{"radius_mm", {0.75, 1.25, 2, 3, 4.5}}}), defocus_blur},
      {"motion-blur", true,
       "in-plane convolution with a straight path of the given length (mm) at a random angle",
       levels({{"length_mm", {2, 4, 6, 9, 13}}}), motion_blur},
      {"mri-motion", true,
       "a fraction of the outer phase-encode (y) lines, chosen at random, acquired with the object "
       "shifted by up to max_shift_mm (k-space phase ramps); magnitude reconstruction",
       levels({{"lines_fraction", {0.05, 0.1, 0.2, 0.3, 0.4}}, {"max_shift_mm", {1, 2, 3, 4, 6}}}),
       mri_motion},
      {"mri-ghosting", false,
       "odd phase-encode (y) lines scaled by 1 - amplitude_error and phase-shifted: a ghost at half "
       "the field of view",
       levels({{"amplitude_error", {0.05, 0.1, 0.2, 0.3, 0.45}}, {"phase_error_deg", {3, 6, 10, 15, 25}}}),
       mri_ghosting},
      {"mri-spike", true,
       "k-space spikes at random positions (0.08..0.35 cycles/pixel): stripes of amplitude_of_range "
       "times the range",
       levels({{"spikes", {1, 1, 2, 2, 3}}, {"amplitude_of_range", {0.03, 0.06, 0.1, 0.15, 0.25}}}),
       mri_spike},
      {"mri-bias", true,
       "smooth multiplicative field exp(random cubic polynomial over the field of view), log "
       "spanning +-max_log_gain",
       levels({{"max_log_gain", {0.1, 0.2, 0.3, 0.45, 0.6}}}), mri_bias},
      {"ct-lowdose", true,
       "per axial slice: parallel-beam projection (360 views), Poisson counts from photons_per_ray, "
       "-log, FBP",
       levels({{"photons_per_ray", {1e6, 3e5, 1e5, 3e4, 1e4}}}), ct_lowdose},
      {"ct-ring", true,
       "per axial slice: random detector channels (one pixel wide) with a gain error at every view "
       "of a full turn, FBP: rings about the rotation centre",
       levels({{"channels", {1, 2, 3, 4, 5}}, {"gain_error_percent", {1, 2, 3, 4, 6}}}), ct_ring},
      {"ct-metal", true,
       "a metal sphere in soft tissue; rays through it get beam hardening (p_m - 0.03 p_m^2) and photon "
       "starvation (1e6 photons per ray), FBP: streaks; position in tags CorruptionMetalLPS/Index",
       levels({{"radius_mm", {1.5, 2, 2.5, 3, 4}}, {"mu_per_mm", {0.25, 0.4, 0.6, 0.8, 1.0}}}), ct_metal},
      {"ct-beam-hardening", false,
       "per axial slice: line integrals p become p - alpha p^2 (water-equivalent), FBP: cupping and "
       "dark bands",
       levels({{"alpha", {0.01, 0.02, 0.03, 0.045, 0.06}}}), ct_beam_hardening},
      {"jpeg", false,
       "each slice exported as 8-bit JPEG (value range to 0..255) at the given quality and read back",
       levels({{"quality", {75, 50, 30, 15, 7}}}), jpeg},
      {"contrast", false, "values compressed towards the channel mean by factor",
       levels({{"factor", {0.8, 0.65, 0.5, 0.35, 0.2}}}), contrast},
      {"brightness", false, "every value shifted by a fraction of the range",
       levels({{"shift_of_range", {0.05, 0.1, 0.2, 0.3, 0.45}}}), brightness},
      {"pixelate", false, "in-plane blocks of factor x factor pixels averaged, shown at the original size",
       levels({{"factor", {2, 3, 4, 6, 8}}}), pixelate},
  };
  return table;
}

const Kind& find_kind(const std::string& name) {
  std::string known;
  for (const auto& k : kinds()) {
    if (k.name == name) return k;
    known += (known.empty() ? "" : ", ") + k.name;
  }
  throw UsageError("unknown corruption kind '" + name + "' (known: " + known + ")");
}

int checked_severity(int64_t severity) {
  if (severity < 1 || severity > 5)
    throw UsageError("corruption severity must be 1..5, got " + std::to_string(severity));
  return static_cast<int>(severity);
}

// The corruption with its random numbers fixed by `seed` (unused by deterministic kinds).
class Corruption final : public IntensityTransform {
 public:
  Corruption(const Kind& kind, int severity, std::optional<uint64_t> seed)
      : kind_(kind), severity_(severity), seed_(seed) {}
  std::string name() const override { return "corrupt"; }
  nlohmann::json params() const override {
    nlohmann::json j = {{"kind", kind_.name}, {"severity", severity_}};
    if (seed_) j["seed"] = *seed_;
    return j;
  }

 protected:
  Image transform_image(const Image& image) const override {
    if (image.empty()) throw InputError(image.metadata().source_path, "cannot corrupt an empty image");
    Rng rng(seed_.value_or(0));
    Image out = kind_.apply(image, kind_.levels[static_cast<size_t>(severity_ - 1)], rng);
    out.metadata().tags["Corruption"] = kind_.name + ":" + std::to_string(severity_);
    return out;
  }

 private:
  const Kind& kind_;
  int severity_;
  std::optional<uint64_t> seed_;
};

// Draws a seed, then applies the seeded corruption (MONAI's randomize / apply split).
class RandomCorruption final : public RandomTransform {
 public:
  RandomCorruption(const Kind& kind, int severity) : kind_(kind), severity_(severity) {}
  std::string name() const override { return "corrupt"; }
  nlohmann::json params() const override { return {{"kind", kind_.name}, {"severity", severity_}}; }
  TransformPtr draw(Rng& rng) const override {
    return std::make_shared<Corruption>(kind_, severity_, rng.next_seed() >> 11);  // exact in JSON
  }

 private:
  const Kind& kind_;
  int severity_;
};

// Corruption-augmented training (as AugMix / MedMNIST-C training): with probability p, one
// kind drawn from `kinds` at a severity drawn from [lo, hi], its noise seeded from the stream.
class RandomCorruptionMix final : public RandomTransform {
 public:
  RandomCorruptionMix(std::vector<const Kind*> kinds, int lo, int hi, double p)
      : kinds_(std::move(kinds)), lo_(lo), hi_(hi), p_(p) {
    if (kinds_.empty()) throw UsageError("'random-corruption': kinds must name at least one corruption");
    if (lo_ > hi_) throw UsageError("'random-corruption': severity needs lo <= hi");
    if (!(p_ >= 0 && p_ <= 1)) throw UsageError("'random-corruption': p must lie in [0, 1]");
  }
  std::string name() const override { return "random-corruption"; }
  nlohmann::json params() const override {
    nlohmann::json names = nlohmann::json::array();
    for (const Kind* k : kinds_) names.push_back(k->name);
    return {{"p", p_}, {"kinds", names}, {"severity", {lo_, hi_}}};
  }
  TransformPtr draw(Rng& rng) const override {
    if (!rng.bernoulli(p_)) return nullptr;
    const auto pick = [&](int64_t n) { return std::min<int64_t>(n - 1, static_cast<int64_t>(rng.uniform(0, static_cast<double>(n)))); };
    const Kind& kind = *kinds_[static_cast<size_t>(pick(static_cast<int64_t>(kinds_.size())))];
    const int severity = lo_ + static_cast<int>(pick(hi_ - lo_ + 1));
    return std::make_shared<Corruption>(kind, severity, rng.next_seed() >> 11);
  }

 private:
  std::vector<const Kind*> kinds_;
  int lo_, hi_;
  double p_;
};

// Kinds that make sense on any modality: no k-space or sinogram physics.
const char* const kGenericKinds = "gaussian;poisson;speckle;salt-pepper;defocus-blur;motion-blur;jpeg;contrast;brightness;pixelate";

}  // namespace

std::vector<std::string> corruption_kinds() {
  std::vector<std::string> names;
  for (const auto& k : kinds()) names.push_back(k.name);
  return names;
}

std::vector<CorruptionLevel> corruption_table() {
  std::vector<CorruptionLevel> rows;
  for (const auto& k : kinds())
    for (int s = 1; s <= 5; ++s) rows.push_back({k.name, s, k.levels[static_cast<size_t>(s - 1)]});
  return rows;
}

std::string corruption_description(const std::string& kind) { return find_kind(kind).how; }

bool corruption_is_random(const std::string& kind) { return find_kind(kind).random; }

TransformPtr make_corruption(const std::string& kind, int severity) {
  const Kind& k = find_kind(kind);
  const int s = checked_severity(severity);
  if (k.random) return std::make_shared<RandomCorruption>(k, s);
  return std::make_shared<Corruption>(k, s, std::nullopt);
}

void register_corruptions(TransformRegistry& r) {
  r.add("random-corruption", "augment",
        "corruption-augmented training: p=0.5, kinds=" + std::string(kGenericKinds) +
            " (any of medlens corrupt --list), severity=1;3",
        [](const nlohmann::json& j) -> TransformPtr {
          ParamReader p("random-corruption", j);
          const double prob = p.number("p", 0.5);
          const std::vector<std::string> names = p.texts("kinds", split_list(kGenericKinds));
          const std::vector<double> sev = p.numbers("severity", {1, 3});
          p.finish();
          if (sev.empty() || sev.size() > 2) throw UsageError("'random-corruption': severity must be S or LO;HI");
          std::vector<const Kind*> chosen;
          for (const auto& n : names) chosen.push_back(&find_kind(n));
          const int lo = checked_severity(static_cast<int64_t>(sev.front()));
          const int hi = checked_severity(static_cast<int64_t>(sev.back()));
          return std::make_shared<RandomCorruptionMix>(chosen, lo, hi, prob);
        });
  r.add("corrupt", "corrupt",
        "simulated noise/artefact: kind=gaussian (see medlens corrupt --list), severity=3 (1..5), "
        "seed (optional: fixes the random draw)",
        [](const nlohmann::json& j) -> TransformPtr {
          ParamReader p("corrupt", j);
          const std::string kind = p.text("kind", "gaussian");
          const int64_t severity = p.integer("severity", 3);
          const bool seeded = j.is_object() && j.contains("seed");
          const int64_t seed = p.integer("seed", 0);
          p.finish();
          if (seed < 0) throw UsageError("'corrupt': parameter 'seed' must not be negative");
          const Kind& k = find_kind(kind);
          const int s = checked_severity(severity);
          if (seeded && k.random) return std::make_shared<Corruption>(k, s, static_cast<uint64_t>(seed));
          return make_corruption(kind, s);
        });
}

}  // namespace medlens
