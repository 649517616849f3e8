#include "transforms/denoise.h"

#include <ATen/ATen.h>
// ITK 5.2's 2-D derivative operators trip a GCC -Warray-bounds false positive when inlined here.
#pragma GCC diagnostic ignored "-Warray-bounds"
#include <itkCurvatureAnisotropicDiffusionImageFilter.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "io/itk_bridge.h"
#include "transforms/base.h"
#include "transforms/params.h"
#include "transforms/registry.h"

namespace medlens {
namespace {

// Spatial extent of one channel, slowest axis first; a 2-D image has z = 1.
struct Dims {
  int64_t z, y, x;
  int64_t voxels() const { return z * y * x; }
};
Dims dims_of(const Image& image) { return {image.depth(), image.height(), image.width()}; }

// scipy.ndimage mode "reflect" (d c b a | a b c d | d c b a), any distance from the edge.
int64_t mirror_half(int64_t i, int64_t n) {
  const int64_t period = 2 * n;
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - 1 - i;
}

int64_t clamp_index(int64_t i, int64_t n) { return std::clamp<int64_t>(i, 0, n - 1); }

// Voxel radius for a physical radius on each axis (x, y, z); z is 0 for a 2-D image.
std::array<int64_t, 3> radius_voxels(const Image& image, double mm) {
  std::array<int64_t, 3> r{};
  for (int a = 0; a < 3; ++a)
    r[a] = static_cast<int64_t>(std::lround(mm / image.geometry().spacing[a]));
  if (!image.is_3d()) r[2] = 0;
  return r;
}

// A new contiguous copy of the voxels, filtered channel by channel by fn(in, out, dims).
template <typename Fn>
Image per_channel(const Image& image, Fn&& fn) {
  at::Tensor out = at::empty_like(image.voxels());
  const Dims d = dims_of(image);
  for (int64_t c = 0; c < image.channels(); ++c)
    fn(image.data() + c * d.voxels(), out.data_ptr<float>() + c * d.voxels(), d);
  return image.with_voxels(out);
}

// ---------------------------------------------------------------------------------------------
// Gaussian

std::vector<float> gaussian_kernel(double sigma) {
  const int64_t radius = static_cast<int64_t>(4.0 * sigma + 0.5);  // scipy's truncate=4
  std::vector<float> k(static_cast<size_t>(2 * radius + 1));
  double sum = 0;
  for (int64_t i = -radius; i <= radius; ++i) {
    const double w = std::exp(-0.5 * static_cast<double>(i * i) / (sigma * sigma));
    k[static_cast<size_t>(i + radius)] = static_cast<float>(w);
    sum += w;
  }
  for (auto& w : k) w = static_cast<float>(w / sum);
  return k;
}

// Convolves every line along `axis` (0 = x, 1 = y, 2 = z) of a (z, y, x) block in place.
void convolve_axis(float* v, Dims d, int axis, const std::vector<float>& k) {
  const int64_t n = axis == 0 ? d.x : axis == 1 ? d.y : d.z;
  const int64_t stride = axis == 0 ? 1 : axis == 1 ? d.x : d.x * d.y;
  const int64_t radius = static_cast<int64_t>(k.size() / 2);
  if (n == 1 || radius == 0) return;
  const int64_t lines = d.voxels() / n;
  parallel_for(lines, [&](int64_t line) {
    // Line start: decompose the line number over the two other axes.
    int64_t start;
    if (axis == 0) start = line * d.x;
    else if (axis == 1) start = (line / d.x) * d.x * d.y + line % d.x;
    else start = line;
    std::vector<float> buf(static_cast<size_t>(n + 2 * radius));
    for (int64_t i = -radius; i < n + radius; ++i)
      buf[static_cast<size_t>(i + radius)] = v[start + mirror_half(i, n) * stride];
    for (int64_t i = 0; i < n; ++i) {
      const float* b = buf.data() + i;
      float acc = 0;
      for (size_t j = 0; j < k.size(); ++j) acc += k[j] * b[j];
      v[start + i * stride] = acc;
    }
  });
}

class GaussianBlur final : public IntensityTransform {
 public:
  explicit GaussianBlur(std::array<double, 3> sigma) : sigma_(sigma) {
    for (double s : sigma_)
      if (!(s >= 0)) throw UsageError("'gaussian-blur': sigma must be >= 0 mm");
  }
  std::string name() const override { return "gaussian-blur"; }
  nlohmann::json params() const override { return {{"sigma", sigma_}}; }

 protected:
  Image transform_image(const Image& image) const override {
    Image out = image.clone();
    const Dims d = dims_of(image);
    for (int a = 0; a < 3; ++a) {
      const double s = sigma_[a] / image.geometry().spacing[a];
      if (s <= 0 || (a == 2 && !image.is_3d())) continue;
      const auto k = gaussian_kernel(s);
      for (int64_t c = 0; c < image.channels(); ++c)
        convolve_axis(out.mutable_data() + c * d.voxels(), d, a, k);
    }
    return out;
  }

 private:
  std::array<double, 3> sigma_;
};

// ---------------------------------------------------------------------------------------------
// Median

class Median final : public IntensityTransform {
 public:
  explicit Median(MedianOptions o) : o_(o) {
    if (o_.radius_ < 0 || o_.radius_mm_ < 0) throw UsageError("'median': radius must be >= 0");
  }
  std::string name() const override { return "median"; }
  nlohmann::json params() const override { return {{"radius", o_.radius_}, {"radius_mm", o_.radius_mm_}}; }

 protected:
  Image transform_image(const Image& image) const override {
    std::array<int64_t, 3> r{o_.radius_, o_.radius_, image.is_3d() ? o_.radius_ : 0};
    if (o_.radius_mm_ > 0) {
      // Checked before rounding to whole voxels: lround of a huge radius has no defined result.
      const Vec3& sp = image.geometry().spacing;
      check_window("median", o_.radius_mm_ / sp[0], o_.radius_mm_ / sp[1], image.is_3d() ? o_.radius_mm_ / sp[2] : 0.0);
      r = radius_voxels(image, o_.radius_mm_);
    } else {
      check_window("median", static_cast<double>(r[0]), static_cast<double>(r[1]), static_cast<double>(r[2]));
    }
    return per_channel(image, [&](const float* in, float* out, Dims d) {
      parallel_for(d.z * d.y, [&](int64_t row) {
        const int64_t z = row / d.y, y = row % d.y;
        std::vector<float> window;
        window.reserve(static_cast<size_t>((2 * r[0] + 1) * (2 * r[1] + 1) * (2 * r[2] + 1)));
        for (int64_t x = 0; x < d.x; ++x) {
          window.clear();
          for (int64_t dz = -r[2]; dz <= r[2]; ++dz)
            for (int64_t dy = -r[1]; dy <= r[1]; ++dy) {
              const float* line = in + (clamp_index(z + dz, d.z) * d.y + clamp_index(y + dy, d.y)) * d.x;
              for (int64_t dx = -r[0]; dx <= r[0]; ++dx) window.push_back(line[clamp_index(x + dx, d.x)]);
            }
          auto mid = window.begin() + static_cast<std::ptrdiff_t>(window.size() / 2);
          std::nth_element(window.begin(), mid, window.end());
          out[row * d.x + x] = *mid;
        }
      });
    });
  }

 private:
  MedianOptions o_;
};

// ---------------------------------------------------------------------------------------------
// Bilateral

class Bilateral final : public IntensityTransform {
 public:
  explicit Bilateral(BilateralOptions o) : o_(o) {
    if (!(o_.sigma_spatial_ > 0)) throw UsageError("'bilateral': sigma_spatial must be positive (mm)");
    if (!(o_.sigma_range_ >= 0)) throw UsageError("'bilateral': sigma_range must be >= 0");
  }
  std::string name() const override { return "bilateral"; }
  nlohmann::json params() const override {
    return {{"sigma_spatial", o_.sigma_spatial_}, {"sigma_range", o_.sigma_range_}};
  }

 protected:
  Image transform_image(const Image& image) const override {
    check_window("bilateral", 2.0 * o_.sigma_spatial_ / image.geometry().spacing[0],
                 2.0 * o_.sigma_spatial_ / image.geometry().spacing[1],
                 image.is_3d() ? 2.0 * o_.sigma_spatial_ / image.geometry().spacing[2] : 0.0);
    const double sr = o_.sigma_range_ > 0 ? o_.sigma_range_ : 2.0 * estimate_noise_sd(image);
    if (!(sr > 0)) return image;  // nothing to smooth: the image is noise-free
    const auto r = radius_voxels(image, 2.0 * o_.sigma_spatial_);
    struct Tap { int64_t dx, dy, dz; float w; };
    std::vector<Tap> taps;
    const Vec3& sp = image.geometry().spacing;
    for (int64_t dz = -r[2]; dz <= r[2]; ++dz)
      for (int64_t dy = -r[1]; dy <= r[1]; ++dy)
        for (int64_t dx = -r[0]; dx <= r[0]; ++dx) {
          const double mm2 = std::pow(dx * sp[0], 2) + std::pow(dy * sp[1], 2) + std::pow(dz * sp[2], 2);
          taps.push_back({dx, dy, dz, static_cast<float>(std::exp(-0.5 * mm2 / std::pow(o_.sigma_spatial_, 2)))});
        }
    const float inv_2sr2 = static_cast<float>(0.5 / (sr * sr));
    return per_channel(image, [&](const float* in, float* out, Dims d) {
      parallel_for(d.z * d.y, [&](int64_t row) {
        const int64_t z = row / d.y, y = row % d.y;
        for (int64_t x = 0; x < d.x; ++x) {
          const float v0 = in[row * d.x + x];
          float num = 0, den = 0;
          for (const Tap& t : taps) {
            const float v = in[(clamp_index(z + t.dz, d.z) * d.y + clamp_index(y + t.dy, d.y)) * d.x +
                               clamp_index(x + t.dx, d.x)];
            const float w = t.w * std::exp(-(v - v0) * (v - v0) * inv_2sr2);
            num += w * v;
            den += w;
          }
          out[row * d.x + x] = num / den;
        }
      });
    });
  }

 private:
  BilateralOptions o_;
};

// ---------------------------------------------------------------------------------------------
// Non-local means

constexpr float kNlmCutoff = 5.0f;  // skimage's DISTANCE_CUTOFF: weights below e^-5 are dropped

// exp(-t) for t in [0, 8]: 2^(-t log2 e) split into an integer part (exponent bits) and a
// fraction (degree-6 Taylor polynomial, relative error < 1e-5). This and the weight loop below
// avoid float comparisons (which GCC will not if-convert under -ftrapping-math), so the loop
// vectorises; std::exp would dominate the run time.
inline float exp_neg(float t) {
  const float y = -t * 1.44269504f;
  const int32_t n = static_cast<int32_t>(y + 16.f) - 16;  // floor(y): truncation of a positive
  const float f = y - static_cast<float>(n);
  const float p =
      1.f + f * (0.693147181f + f * (0.240226507f + f * (0.0555041087f + f * (0.00961812911f + f * (0.00133335581f + f * 0.000154035304f)))));
  const int32_t bits = (n + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// NLM weight of a normalised distance: exp(-max(dist, 0)), 0 from the cutoff on.
inline float nlm_weight(float dist) {
  const float pos = 0.5f * (dist + std::fabs(dist));                      // max(dist, 0)
  const float t = 0.5f * (pos + kNlmCutoff - std::fabs(pos - kNlmCutoff));  // min(pos, cutoff)
  const float weight = exp_neg(t);
  const float below = dist - kNlmCutoff;  // negative (sign bit set) where the weight counts
  int32_t wb, sign;
  std::memcpy(&wb, &weight, sizeof wb);
  std::memcpy(&sign, &below, sizeof sign);
  wb &= sign >> 31;
  float w;
  std::memcpy(&w, &wb, sizeof w);
  return w;
}

struct NlmPlan {
  Dims n;                          // image
  std::array<int64_t, 3> pr, sr;   // patch and search radius per axis (z, y, x)
  std::array<int64_t, 3> pad;      // pr + sr
  Dims p;                          // padded
  float inv_norm;                  // 1 / (channels * patch voxels)
  float two_sigma2, inv_h2;
};

// Denoises the tile z in [z0, z1), y in [y0, y1) (all x) of every channel. Each offset o of
// the search window is scored once for both directions: the patch distance D_o(q) =
// sum_p sum_c (I(q+p) - I(q+o+p))^2 also gives D_-o(x) = D_o(x-o), so D_o is computed on the
// tile united with the tile moved by -o. D is a box sum of the squared difference image (along
// x, then y, then z). Every loop over x is plain arithmetic on contiguous rows, which the
// compiler vectorises.
void nlm_tile(const NlmPlan& pl, const std::vector<std::vector<float>>& padded,
              const std::vector<float*>& out, int64_t z0, int64_t z1, int64_t y0, int64_t y1) {
  const int64_t tz = z1 - z0, ty = y1 - y0, nx = pl.n.x;
  const int64_t kx = 2 * pl.pr[2] + 1, ky = 2 * pl.pr[1] + 1, kz = 2 * pl.pr[0] + 1;
  const size_t channels = padded.size(), plane = static_cast<size_t>(tz * ty * nx);
  // Buffers sized for the largest region (tile + |o| + patch halo).
  const int64_t mz = tz + pl.sr[0] + 2 * pl.pr[0], my = ty + pl.sr[1] + 2 * pl.pr[1], mx = nx + pl.sr[2] + 2 * pl.pr[2];
  std::vector<float> xs(static_cast<size_t>(mz * my * mx)), ys(xs.size()), ws(xs.size()), e(static_cast<size_t>(mx));
  std::vector<float> num(channels * plane, 0.f), den(plane, 1.f);  // the centre counts with weight 1
  for (size_t c = 0; c < channels; ++c)
    for (int64_t z = 0; z < tz; ++z)
      for (int64_t y = 0; y < ty; ++y)
        std::copy_n(padded[c].data() + ((z0 + z + pl.pad[0]) * pl.p.y + y0 + y + pl.pad[1]) * pl.p.x + pl.pad[2], nx,
                    num.data() + c * plane + static_cast<size_t>((z * ty + y) * nx));

  for (int64_t oz = 0; oz <= pl.sr[0]; ++oz)
    for (int64_t oy = oz > 0 ? -pl.sr[1] : 0; oy <= pl.sr[1]; ++oy)
      for (int64_t ox = oz > 0 || oy > 0 ? -pl.sr[2] : 1; ox <= pl.sr[2]; ++ox) {
        // Region R = tile united with tile - o, as its first voxel (image coordinates) and size.
        const int64_t rz0 = z0 - oz, ry0 = y0 - std::max<int64_t>(oy, 0), rx0 = -std::max<int64_t>(ox, 0);
        const int64_t rz = tz + oz, ry = ty + std::abs(oy), rx = nx + std::abs(ox);
        const int64_t ez = rz + 2 * pl.pr[0], ey = ry + 2 * pl.pr[1], ex = rx + 2 * pl.pr[2];
        const int64_t shift = (oz * pl.p.y + oy) * pl.p.x + ox;
        // x sums of the squared differences over R plus the patch halo.
        for (int64_t zz = 0; zz < ez; ++zz)
          for (int64_t yy = 0; yy < ey; ++yy) {
            const int64_t base = ((rz0 + zz + pl.sr[0]) * pl.p.y + ry0 + yy + pl.sr[1]) * pl.p.x + rx0 + pl.sr[2];
            std::fill_n(e.begin(), ex, 0.f);
            for (const auto& ch : padded) {
              const float* a = ch.data() + base;
              const float* b = a + shift;
              for (int64_t x = 0; x < ex; ++x) e[x] += (a[x] - b[x]) * (a[x] - b[x]);
            }
            float* row = xs.data() + (zz * ey + yy) * rx;
            std::copy_n(e.begin(), rx, row);
            for (int64_t k = 1; k < kx; ++k)
              for (int64_t x = 0; x < rx; ++x) row[x] += e[x + k];
          }
        // y sums.
        for (int64_t zz = 0; zz < ez; ++zz)
          for (int64_t y = 0; y < ry; ++y) {
            float* dst = ys.data() + (zz * ry + y) * rx;
            const float* src = xs.data() + (zz * ey + y) * rx;
            std::copy_n(src, rx, dst);
            for (int64_t k = 1; k < ky; ++k)
              for (int64_t x = 0; x < rx; ++x) dst[x] += src[k * rx + x];
          }
        // z sums and weights over R.
        for (int64_t z = 0; z < rz; ++z)
          for (int64_t y = 0; y < ry; ++y) {
            float* w = ws.data() + (z * ry + y) * rx;
            const float* src = ys.data() + (z * ry + y) * rx;
            std::copy_n(src, rx, w);
            for (int64_t k = 1; k < kz; ++k)
              for (int64_t x = 0; x < rx; ++x) w[x] += src[k * ry * rx + x];
            for (int64_t x = 0; x < rx; ++x) w[x] = nlm_weight((w[x] * pl.inv_norm - pl.two_sigma2) * pl.inv_h2);
          }
        // Each tile voxel x takes I(x+o) with weight W(x) and I(x-o) with weight W(x-o).
        for (int64_t z = 0; z < tz; ++z)
          for (int64_t y = 0; y < ty; ++y) {
            const float* wf = ws.data() + ((z0 + z - rz0) * ry + (y0 + y - ry0)) * rx - rx0;
            const float* wb = ws.data() + ((z0 + z - oz - rz0) * ry + (y0 + y - oy - ry0)) * rx - rx0 - ox;
            const size_t o = static_cast<size_t>((z * ty + y) * nx);
            for (int64_t x = 0; x < nx; ++x) den[o + x] += wf[x] + wb[x];
            const int64_t q = ((z0 + z + pl.pad[0]) * pl.p.y + y0 + y + pl.pad[1]) * pl.p.x + pl.pad[2];
            for (size_t c = 0; c < channels; ++c) {
              float* acc = num.data() + c * plane + o;
              const float* fwd = padded[c].data() + q + shift;
              const float* bwd = padded[c].data() + q - shift;
              for (int64_t x = 0; x < nx; ++x) acc[x] += wf[x] * fwd[x] + wb[x] * bwd[x];
            }
          }
      }
  for (size_t c = 0; c < channels; ++c)
    for (int64_t z = 0; z < tz; ++z)
      for (int64_t y = 0; y < ty; ++y) {
        float* dst = out[c] + ((z0 + z) * pl.n.y + y0 + y) * nx;
        const size_t o = static_cast<size_t>((z * ty + y) * nx);
        for (int64_t x = 0; x < nx; ++x) dst[x] = num[c * plane + o + x] / den[o + x];
      }
}

class NonLocalMeans final : public IntensityTransform {
 public:
  explicit NonLocalMeans(NlmOptions o) : o_(o) {
    if (o_.patch_size_ < 1 || o_.patch_size_ % 2 == 0) throw UsageError("'nlm': patch_size must be odd and >= 1");
    if (o_.patch_distance_ < 0) throw UsageError("'nlm': patch_distance must be >= 0");
    if (!(o_.h_ >= 0) || !(o_.sigma_ >= 0)) throw UsageError("'nlm': h and sigma must be >= 0");
  }
  std::string name() const override { return "nlm"; }
  nlohmann::json params() const override {
    return {{"patch_size", o_.patch_size_}, {"patch_distance", o_.patch_distance_}, {"h", o_.h_}, {"sigma", o_.sigma_}};
  }

 protected:
  Image transform_image(const Image& image) const override {
    const double sigma = o_.sigma_ > 0 ? o_.sigma_ : estimate_noise_sd(image);
    const double h = o_.h_ > 0 ? o_.h_ : 0.8 * sigma;
    if (!(h > 0)) return image;  // noise-free
    NlmPlan pl;
    pl.n = dims_of(image);
    const Vec3& sp = image.geometry().spacing;
    const double finest = image.is_3d() ? std::min({sp[0], sp[1], sp[2]}) : std::min(sp[0], sp[1]);
    for (int a = 0; a < 3; ++a) {  // a: z, y, x
      const double scale = finest / sp[2 - a];
      const bool flat = a == 0 && !image.is_3d();
      pl.pr[a] = flat ? 0 : std::lround(o_.patch_size_ / 2 * scale);
      pl.sr[a] = flat ? 0 : std::lround(o_.patch_distance_ * scale);
      pl.pad[a] = pl.pr[a] + pl.sr[a];
    }
    pl.p = {pl.n.z + 2 * pl.pad[0], pl.n.y + 2 * pl.pad[1], pl.n.x + 2 * pl.pad[2]};
    const int64_t channels = image.channels();
    pl.inv_norm = static_cast<float>(1.0 / (channels * (2 * pl.pr[0] + 1) * (2 * pl.pr[1] + 1) * (2 * pl.pr[2] + 1)));
    pl.two_sigma2 = static_cast<float>(2 * sigma * sigma);
    pl.inv_h2 = static_cast<float>(1.0 / (h * h));

    std::vector<std::vector<float>> padded(static_cast<size_t>(channels));
    for (int64_t c = 0; c < channels; ++c) {
      auto& dst = padded[static_cast<size_t>(c)];
      dst.resize(static_cast<size_t>(pl.p.voxels()));
      const float* src = image.data() + c * pl.n.voxels();
      parallel_for(pl.p.z * pl.p.y, [&](int64_t row) {
        const int64_t z = reflect_index(row / pl.p.y - pl.pad[0], pl.n.z);
        const int64_t y = reflect_index(row % pl.p.y - pl.pad[1], pl.n.y);
        const float* line = src + (z * pl.n.y + y) * pl.n.x;
        for (int64_t x = 0; x < pl.p.x; ++x) dst[row * pl.p.x + x] = line[reflect_index(x - pl.pad[2], pl.n.x)];
      });
    }
    at::Tensor out = at::empty_like(image.voxels());
    std::vector<float*> outs;
    for (int64_t c = 0; c < channels; ++c) outs.push_back(out.data_ptr<float>() + c * pl.n.voxels());
    // Tiles of up to 16 slices x 32 rows keep the patch halo small; a 2-D image is cut finer so
    // every thread gets rows (at least 8 per tile).
    const int64_t tz = 16;
    const int64_t ty = image.is_3d() ? 32 : std::clamp<int64_t>(pl.n.y / (2 * thread_count()), 8, 32);
    const int64_t nz_tiles = (pl.n.z + tz - 1) / tz, ny_tiles = (pl.n.y + ty - 1) / ty;
    parallel_for(nz_tiles * ny_tiles, [&](int64_t t) {
      const int64_t z0 = (t / ny_tiles) * tz, y0 = (t % ny_tiles) * ty;
      nlm_tile(pl, padded, outs, z0, std::min(z0 + tz, pl.n.z), y0, std::min(y0 + ty, pl.n.y));
    });
    return image.with_voxels(out);
  }

 private:
  NlmOptions o_;
};

// ---------------------------------------------------------------------------------------------
// Curvature anisotropic diffusion (ITK)

template <typename ItkImage>
void diffuse(const typename ItkImage::Pointer& in, float* out, const DiffusionOptions& o) {
  constexpr unsigned kDim = ItkImage::ImageDimension;
  double finest = in->GetSpacing()[0];
  for (unsigned i = 1; i < kDim; ++i) finest = std::min(finest, in->GetSpacing()[i]);
  const double limit = finest / std::pow(2.0, kDim + 1);
  auto filter = itk::CurvatureAnisotropicDiffusionImageFilter<ItkImage, ItkImage>::New();
  filter->SetInput(in);
  filter->SetNumberOfIterations(static_cast<unsigned>(o.iterations_));
  filter->SetConductanceParameter(o.conductance_);
  filter->SetTimeStep(o.time_step_ > 0 ? std::min(o.time_step_, limit) : limit);
  filter->UseImageSpacingOn();
  filter->Update();
  const auto& result = filter->GetOutput();
  std::memcpy(out, result->GetBufferPointer(),
              result->GetBufferedRegion().GetNumberOfPixels() * sizeof(float));
}

class AnisotropicDiffusion final : public IntensityTransform {
 public:
  explicit AnisotropicDiffusion(DiffusionOptions o) : o_(o) {
    if (o_.iterations_ < 0 || o_.iterations_ > 10000) throw UsageError("'anisotropic-diffusion': iterations must be 0..10000");
    if (!(o_.conductance_ > 0)) throw UsageError("'anisotropic-diffusion': conductance must be positive");
    if (!(o_.time_step_ >= 0)) throw UsageError("'anisotropic-diffusion': time_step must be >= 0");
  }
  std::string name() const override { return "anisotropic-diffusion"; }
  nlohmann::json params() const override {
    return {{"iterations", o_.iterations_}, {"conductance", o_.conductance_}, {"time_step", o_.time_step_}};
  }

 protected:
  Image transform_image(const Image& image) const override {
    if (o_.iterations_ == 0) return image;
    at::Tensor out = at::empty_like(image.voxels());
    const int64_t n = image.shape().voxels();
    for (int64_t c = 0; c < image.channels(); ++c) {
      float* dst = out.data_ptr<float>() + c * n;
      if (image.is_3d()) diffuse<ItkImage3>(to_itk3(image, c), dst, o_);
      else diffuse<ItkImage2>(to_itk2(image, 0, c), dst, o_);
    }
    return image.with_voxels(out);
  }

 private:
  DiffusionOptions o_;
};

// ---------------------------------------------------------------------------------------------
// Anscombe pair

class Anscombe final : public IntensityTransform {
 public:
  Anscombe(double gain, bool inverse) : gain_(gain), inverse_(inverse) {
    if (!(gain_ > 0)) throw UsageError("'" + name() + "': gain must be positive");
  }
  std::string name() const override { return inverse_ ? "inverse-anscombe" : "anscombe"; }
  nlohmann::json params() const override { return {{"gain", gain_}}; }

 protected:
  Image transform_image(const Image& image) const override {
    const at::Tensor v = image.voxels().to(at::kDouble);
    if (!inverse_) return image.with_voxels((2.0 * (v / gain_ + 0.375).clamp_min(0).sqrt()).to(at::kFloat));
    const double r = std::sqrt(1.5);
    const at::Tensor d = v.clamp_min(r);  // below A(0) the inverse is 0, where it is at D = r
    const at::Tensor inv = 0.25 * d.pow(2) + 0.25 * r * d.pow(-1) - 11.0 / 8.0 * d.pow(-2) +
                           5.0 / 8.0 * r * d.pow(-3) - 0.125;
    return image.with_voxels((gain_ * inv.clamp_min(0)).to(at::kFloat));
  }

 private:
  double gain_;
  bool inverse_;
};

// ---------------------------------------------------------------------------------------------
// SRAD

// One channel. Differences to the 2N axis neighbours (replicated border: 0 at the edge), axis
// weights (finest spacing / spacing)^2 so the diffusion is isotropic in mm.
void srad(const float* in, float* out, Dims d, const Vec3& spacing, bool is_3d, const SpeckleOptions& o) {
  const int64_t n = d.voxels();
  const double finest = is_3d ? std::min({spacing[0], spacing[1], spacing[2]}) : std::min(spacing[0], spacing[1]);
  const float w[3] = {static_cast<float>(std::pow(finest / spacing[0], 2)),
                      static_cast<float>(std::pow(finest / spacing[1], 2)),
                      is_3d ? static_cast<float>(std::pow(finest / spacing[2], 2)) : 0.f};
  const float k = 2 * (w[0] + w[1] + w[2]);  // 4 for 2-D, 6 for 3-D at isotropic spacing
  const float dt = o.time_step_ > 0 ? std::min(static_cast<float>(o.time_step_), 1.f / k) : 0.5f / k;
  const int64_t stride[3] = {1, d.x, d.x * d.y};
  const int64_t size[3] = {d.x, d.y, d.z};

  // An offset keeps q defined where the image is 0 (anechoic regions) without changing it
  // where there is signal.
  float vmax = 0;
  for (int64_t i = 0; i < n; ++i) vmax = std::max(vmax, in[i]);
  const float offset = std::max(1e-3f * vmax, 1e-12f);
  std::vector<float> img(in, in + n), c(static_cast<size_t>(n)), q2(static_cast<size_t>(n)), scratch;
  for (auto& v : img) v += offset;

  auto neighbour_diffs = [&](int64_t i, int64_t x, int64_t y, int64_t z, float (&dm)[3], float (&dp)[3]) {
    const int64_t pos[3] = {x, y, z};
    for (int a = 0; a < 3; ++a) {
      dm[a] = pos[a] > 0 ? img[i - stride[a]] - img[i] : 0.f;
      dp[a] = pos[a] + 1 < size[a] ? img[i + stride[a]] - img[i] : 0.f;
    }
  };
  for (int it = 0; it < o.iterations_; ++it) {
    parallel_for(d.z * d.y, [&](int64_t row) {
      const int64_t z = row / d.y, y = row % d.y;
      for (int64_t x = 0; x < d.x; ++x) {
        const int64_t i = row * d.x + x;
        float dm[3], dp[3];
        neighbour_diffs(i, x, y, z, dm, dp);
        float g2 = 0, lap = 0;
        for (int a = 0; a < 3; ++a) {
          g2 += w[a] * (dm[a] * dm[a] + dp[a] * dp[a]);
          lap += w[a] * (dm[a] + dp[a]);
        }
        g2 /= img[i] * img[i];
        lap /= img[i];
        const float den = 1 + lap / k;
        q2[i] = std::max(0.f, (0.5f * g2 - lap * lap / (k * k)) / (den * den));
      }
    });
    scratch = q2;
    auto mid = scratch.begin() + static_cast<std::ptrdiff_t>(n / 2);
    std::nth_element(scratch.begin(), mid, scratch.end());
    const float q02 = std::max(*mid, 1e-12f);
    for (int64_t i = 0; i < n; ++i)
      c[i] = std::clamp(1.f / (1.f + (q2[i] - q02) / (q02 * (1 + q02))), 0.f, 1.f);
    parallel_for(d.z * d.y, [&](int64_t row) {
      const int64_t z = row / d.y, y = row % d.y;
      for (int64_t x = 0; x < d.x; ++x) {
        const int64_t i = row * d.x + x;
        float dm[3], dp[3];
        neighbour_diffs(i, x, y, z, dm, dp);
        const int64_t pos[3] = {x, y, z};
        float div = 0;
        for (int a = 0; a < 3; ++a) {
          if (pos[a] > 0) div += w[a] * 0.5f * (c[i] + c[i - stride[a]]) * dm[a];
          if (pos[a] + 1 < size[a]) div += w[a] * 0.5f * (c[i] + c[i + stride[a]]) * dp[a];
        }
        out[i] = img[i] + dt * div;
      }
    });
    std::copy(out, out + n, img.begin());
  }
  for (int64_t i = 0; i < n; ++i) out[i] = img[i] - offset;
}

class Speckle final : public IntensityTransform {
 public:
  explicit Speckle(SpeckleOptions o) : o_(o) {
    if (o_.iterations_ < 0 || o_.iterations_ > 10000) throw UsageError("'speckle': iterations must be 0..10000");
    if (!(o_.time_step_ >= 0)) throw UsageError("'speckle': time_step must be >= 0");
  }
  std::string name() const override { return "speckle"; }
  nlohmann::json params() const override { return {{"iterations", o_.iterations_}, {"time_step", o_.time_step_}}; }

 protected:
  Image transform_image(const Image& image) const override {
    if (value_range(image).first < 0)
      throw InputError(image.metadata().source_path,
                       "'speckle' (SRAD) needs non-negative intensities such as ultrasound B-mode; this image has negative values");
    return per_channel(image, [&](const float* in, float* out, Dims d) {
      srad(in, out, d, image.geometry().spacing, image.is_3d(), o_);
    });
  }

 private:
  SpeckleOptions o_;
};

}  // namespace

int64_t reflect_index(int64_t i, int64_t n) {
  if (n == 1) return 0;
  const int64_t period = 2 * (n - 1);
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - i;
}

double estimate_noise_sd(const Image& image) {
  const Dims d = dims_of(image);
  const bool vol = image.is_3d() && d.z >= 2;
  const int64_t bz = vol ? d.z / 2 : d.z, by = d.y / 2, bx = d.x / 2;
  if (by == 0 || bx == 0) return 0.0;
  std::vector<float> coef;
  coef.reserve(static_cast<size_t>(image.channels() * bz * by * bx));
  for (int64_t c = 0; c < image.channels(); ++c) {
    const float* v = image.data() + c * d.voxels();
    auto at = [&](int64_t z, int64_t y, int64_t x) { return static_cast<double>(v[(z * d.y + y) * d.x + x]); };
    for (int64_t k = 0; k < bz; ++k)
      for (int64_t j = 0; j < by; ++j)
        for (int64_t i = 0; i < bx; ++i) {
          const int64_t z = vol ? 2 * k : k, y = 2 * j, x = 2 * i;
          double s = at(z, y, x) - at(z, y, x + 1) - at(z, y + 1, x) + at(z, y + 1, x + 1);
          if (vol) {
            s -= at(z + 1, y, x) - at(z + 1, y, x + 1) - at(z + 1, y + 1, x) + at(z + 1, y + 1, x + 1);
            s /= std::sqrt(8.0);
          } else {
            s /= 2.0;
          }
          coef.push_back(static_cast<float>(std::abs(s)));
        }
  }
  auto mid = coef.begin() + static_cast<std::ptrdiff_t>(coef.size() / 2);
  std::nth_element(coef.begin(), mid, coef.end());
  return *mid / 0.6745;
}

TransformPtr make_gaussian_blur(std::array<double, 3> sigma_mm) { return std::make_shared<GaussianBlur>(sigma_mm); }
TransformPtr make_median(const MedianOptions& o) { return std::make_shared<Median>(o); }
TransformPtr make_bilateral(const BilateralOptions& o) { return std::make_shared<Bilateral>(o); }
TransformPtr make_nlm(const NlmOptions& o) { return std::make_shared<NonLocalMeans>(o); }
TransformPtr make_anisotropic_diffusion(const DiffusionOptions& o) {
  return std::make_shared<AnisotropicDiffusion>(o);
}
TransformPtr make_anscombe(double gain) { return std::make_shared<Anscombe>(gain, false); }
TransformPtr make_inverse_anscombe(double gain) { return std::make_shared<Anscombe>(gain, true); }
TransformPtr make_speckle(const SpeckleOptions& o) { return std::make_shared<Speckle>(o); }

void register_denoise(TransformRegistry& r) {
  r.add("gaussian-blur", "filter", "Gaussian smoothing: sigma=1 mm (one value or x;y;z)",
        [](const nlohmann::json& j) {
          ParamReader p("gaussian-blur", j);
          const auto s = p.numbers("sigma", {1.0});
          p.finish();
          if (s.size() != 1 && s.size() != 3) throw UsageError("'gaussian-blur': sigma takes 1 or 3 values");
          return make_gaussian_blur(s.size() == 1 ? std::array<double, 3>{s[0], s[0], s[0]}
                                                  : std::array<double, 3>{s[0], s[1], s[2]});
        });
  r.add("median", "filter", "median over a box: radius=1 voxel, or radius_mm=0 (> 0 overrides)",
        [](const nlohmann::json& j) {
          ParamReader p("median", j);
          MedianOptions o;
          o.radius(p.count("radius", 1)).radius_mm(p.number("radius_mm", 0));
          p.finish();
          return make_median(o);
        });
  r.add("bilateral", "filter",
        "edge-preserving bilateral: sigma_spatial=1 mm, sigma_range=0 (intensity units; 0 = 2x estimated noise sd)",
        [](const nlohmann::json& j) {
          ParamReader p("bilateral", j);
          BilateralOptions o;
          o.sigma_spatial(p.number("sigma_spatial", 1.0)).sigma_range(p.number("sigma_range", 0));
          p.finish();
          return make_bilateral(o);
        });
  r.add("nlm", "filter",
        "non-local means (blockwise, fast): patch_size=5, patch_distance=6 voxels, h=0 (0.8 sigma), sigma=0 (estimated)",
        [](const nlohmann::json& j) {
          ParamReader p("nlm", j);
          NlmOptions o;
          o.patch_size(p.count("patch_size", 5))
              .patch_distance(p.count("patch_distance", 6))
              .h(p.number("h", 0))
              .sigma(p.number("sigma", 0));
          p.finish();
          return make_nlm(o);
        });
  r.add("anisotropic-diffusion", "filter",
        "curvature anisotropic diffusion (ITK): iterations=5, conductance=1, time_step=0 (stability limit)",
        [](const nlohmann::json& j) {
          ParamReader p("anisotropic-diffusion", j);
          DiffusionOptions o;
          o.iterations(p.count("iterations", 5))
              .conductance(p.number("conductance", 1.0))
              .time_step(p.number("time_step", 0));
          p.finish();
          return make_anisotropic_diffusion(o);
        });
  r.add("anscombe", "filter", "Poisson variance stabilisation 2 sqrt(v/gain + 3/8): gain=1 (intensity per count)",
        [](const nlohmann::json& j) {
          ParamReader p("anscombe", j);
          const double gain = p.number("gain", 1.0);
          p.finish();
          return make_anscombe(gain);
        });
  r.add("inverse-anscombe", "filter", "exact unbiased inverse of anscombe (Makitalo-Foi closed form): gain=1",
        [](const nlohmann::json& j) {
          ParamReader p("inverse-anscombe", j);
          const double gain = p.number("gain", 1.0);
          p.finish();
          return make_inverse_anscombe(gain);
        });
  r.add("speckle", "filter", "speckle reducing anisotropic diffusion (SRAD): iterations=30, time_step=0 (auto)",
        [](const nlohmann::json& j) {
          ParamReader p("speckle", j);
          SpeckleOptions o;
          o.iterations(p.count("iterations", 30)).time_step(p.number("time_step", 0));
          p.finish();
          return make_speckle(o);
        });
}

}  // namespace medlens
