#include "transforms/augment.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"
#include "transforms/base.h"
#include "transforms/params.h"
#include "transforms/registry.h"

namespace medlens {

// The shared resampler and smoothing.

namespace {

// Maps continuous positions along one axis of n voxels for the clamping/mirroring modes.
at::Tensor fold_axis(const at::Tensor& c, int64_t n, Border border) {
  if (border == Border::kBorder) return c.clamp(0.0, static_cast<double>(n - 1));
  if (border == Border::kReflection) {
    if (n == 1) return at::zeros_like(c);
    const double period = 2.0 * static_cast<double>(n - 1);
    at::Tensor m = at::fmod(c.abs(), period);
    return at::where(m > static_cast<double>(n - 1), period - m, m);
  }
  return c;
}

struct Taps {
  std::vector<at::Tensor> index, weight, valid;  // per tap along one axis
};

// Neighbour voxels along one axis: 2 (linear) or 1 (nearest), with weights and in-grid flags.
Taps axis_taps(const at::Tensor& c, int64_t n, Interp interp) {
  Taps t;
  auto add = [&](const at::Tensor& i, const at::Tensor& w) {
    t.valid.push_back((i >= 0) & (i < n));
    t.index.push_back(i.clamp(0, n - 1));
    t.weight.push_back(w);
  };
  if (interp == Interp::kNearest || n == 1) {
    // A single voxel along this axis needs no interpolation (2-D images along z).
    add(interp == Interp::kNearest ? at::floor(c + 0.5).to(at::kLong) : at::zeros_like(c, at::kLong),
        at::ones_like(c, at::kFloat));
    if (interp != Interp::kNearest) t.valid.back() = c.abs() < 0.5;
    return t;
  }
  const at::Tensor f = at::floor(c);
  const at::Tensor w1 = (c - f).to(at::kFloat);
  const at::Tensor i0 = f.to(at::kLong);
  add(i0, 1.0f - w1);
  add(i0 + 1, w1);
  return t;
}

// Values (C, M) of the flattened input (C, N) at the positions c (3, ...) of one block.
at::Tensor sample_block(const at::Tensor& in, const Shape& s, at::Tensor c, Interp interp, Border border, float fill) {
  const at::Tensor r = at::round(c);
  c = at::where((c - r).abs() < 1e-6, r, c);  // exact copies where the warp lands on voxels
  const std::array<int64_t, 3> n{s.x, s.y, s.z};
  std::array<Taps, 3> taps;
  for (int a = 0; a < 3; ++a) taps[a] = axis_taps(fold_axis(c[a], n[a], border), n[a], interp);
  const bool fill_outside = border == Border::kZeros || border == Border::kMin;
  at::Tensor out = at::zeros({s.c, c[0].numel()}, at::kFloat);
  for (size_t k = 0; k < taps[2].index.size(); ++k)
    for (size_t j = 0; j < taps[1].index.size(); ++j)
      for (size_t i = 0; i < taps[0].index.size(); ++i) {
        const at::Tensor idx = ((taps[2].index[k] * s.y + taps[1].index[j]) * s.x + taps[0].index[i]).reshape(-1);
        const at::Tensor w = (taps[2].weight[k] * taps[1].weight[j] * taps[0].weight[i]).reshape({1, -1});
        at::Tensor v = in.index_select(1, idx);
        if (fill_outside) {
          const at::Tensor ok = (taps[2].valid[k] & taps[1].valid[j] & taps[0].valid[i]).reshape({1, -1});
          v = at::where(ok, v, at::full({}, fill, at::kFloat));
        }
        out.add_(v * w);
      }
  return out;
}

}  // namespace

at::Tensor identity_coords(const Shape& s) {
  const auto opt = at::TensorOptions().dtype(at::kDouble);
  std::vector<at::Tensor> g = at::meshgrid({at::arange(s.z, opt), at::arange(s.y, opt), at::arange(s.x, opt)}, "ij");
  return at::stack({g[2], g[1], g[0]});
}

Image resample_at(const Image& image, const at::Tensor& coords, Interp interp, Border border) {
  const Shape s = image.shape();
  if (coords.dim() != 4 || coords.size(0) != 3 || coords.size(1) != s.z || coords.size(2) != s.y ||
      coords.size(3) != s.x)
    throw UsageError("resample_at: coordinates must be (3, Z, Y, X) matching the image grid");
  const float fill = border == Border::kMin ? value_range(image).first : 0.0f;
  const at::Tensor in = image.voxels().reshape({s.c, s.voxels()});
  at::Tensor out = at::empty({s.c, s.z, s.y, s.x}, at::kFloat);
  // Blocks of about 2^18 voxels along z bound the temporaries (indices, weights per tap).
  const int64_t step = std::max<int64_t>(1, (int64_t{1} << 18) / std::max<int64_t>(1, s.y * s.x));
  for (int64_t z0 = 0; z0 < s.z; z0 += step) {
    const int64_t nz = std::min(step, s.z - z0);
    const at::Tensor block = sample_block(in, s, coords.narrow(1, z0, nz).to(at::kDouble), interp, border, fill);
    out.narrow(1, z0, nz).copy_(block.view({s.c, nz, s.y, s.x}));
  }
  return image.with_voxels(out);
}

at::Tensor gaussian_smooth_voxels(const at::Tensor& t, const Vec3& sigma) {
  at::Tensor out = t.to(at::kFloat);
  for (int a = 0; a < 3; ++a) {
    if (!(sigma[a] > 0)) continue;
    const int64_t dim = 3 - a;  // (C, Z, Y, X): x is dim 3
    const int64_t radius = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(4.0 * sigma[a])));
    at::Tensor k = at::arange(-radius, radius + 1, at::kDouble);
    k = at::exp(-0.5 * (k / sigma[a]).pow(2));
    k = (k / k.sum()).to(at::kFloat).view({1, 1, -1});
    at::Tensor m = out.movedim(dim, -1).contiguous();
    const auto sizes = m.sizes().vec();
    at::Tensor x = at::replication_pad1d(m.reshape({-1, 1, sizes.back()}), {radius, radius});
    out = at::conv1d(x, k).reshape(sizes).movedim(-1, dim).contiguous();
  }
  return out;
}

namespace {

const char* border_name(Border b) {
  switch (b) {
    case Border::kZeros: return "zeros";
    case Border::kMin: return "min";
    case Border::kBorder: return "border";
    case Border::kReflection: return "reflection";
  }
  return "min";
}

const char* interp_name(Interp i) { return i == Interp::kNearest ? "nearest" : "linear"; }

Border parse_border(ParamReader& p, const std::string& fallback) {
  const std::string b = p.choice("border", fallback, {"zeros", "min", "border", "reflection"});
  if (b == "zeros") return Border::kZeros;
  if (b == "border") return Border::kBorder;
  if (b == "reflection") return Border::kReflection;
  return Border::kMin;
}

Interp parse_interp(ParamReader& p, const std::string& fallback) {
  return p.choice("interp", fallback, {"linear", "nearest"}) == "nearest" ? Interp::kNearest
                                                                          : Interp::kLinear;
}

nlohmann::json vec_json(const Vec3& v) { return {v[0], v[1], v[2]}; }

// A list of one number (all axes) or three (x, y, z).
Vec3 read_vec3(ParamReader& p, const std::string& op, const std::string& key, const Vec3& fallback) {
  const std::vector<double> v = p.numbers(key, {fallback[0], fallback[1], fallback[2]});
  if (v.size() == 1) return {v[0], v[0], v[0]};
  if (v.size() != 3) throw UsageError("'" + op + "': parameter '" + key + "' takes 1 or 3 numbers");
  return {v[0], v[1], v[2]};
}

// A range "lo;hi" (one number: a fixed value), with lo <= hi inside [min, max].
std::pair<double, double> read_range(ParamReader& p, const std::string& op, const std::string& key,
                                     std::pair<double, double> fallback, double min, double max) {
  const std::vector<double> v = p.numbers(key, {fallback.first, fallback.second});
  if (v.size() != 1 && v.size() != 2)
    throw UsageError("'" + op + "': parameter '" + key + "' takes a range lo;hi");
  const double lo = v.front(), hi = v.back();
  if (!(lo <= hi && lo >= min && hi <= max))
    throw UsageError("'" + op + "': parameter '" + key + "' needs " + std::to_string(min) +
                     " <= lo <= hi <= " + std::to_string(max));
  return {lo, hi};
}

double check_p(const std::string& op, double p) {
  if (!(p >= 0 && p <= 1)) throw UsageError("'" + op + "': p must lie in [0, 1]");
  return p;
}

// Warps resample image and label through the same positions: linear (or nearest) for the
// image, nearest for the label, which is filled with 0 where the image takes its minimum.
class WarpTransform : public Transform {
 public:
  WarpTransform(Interp interp, Border border) : interp_(interp), border_(border) {}
  Sample apply(Sample sample, Rng&) const final {
    const at::Tensor coords = sampling_coords(sample.image);
    if (sample.label) {
      const Shape a = sample.image.shape(), b = sample.label->shape();
      if (a.z != b.z || a.y != b.y || a.x != b.x)
        throw InputError(sample.label->metadata().source_path, "the label's grid differs from the image's");
      const Border lb = border_ == Border::kMin ? Border::kZeros : border_;
      sample.label = resample_at(*sample.label, coords, Interp::kNearest, lb);
    }
    sample.image = resample_at(sample.image, coords, interp_, border_);
    return sample;
  }

 protected:
  /// Input index positions (3, Z, Y, X) for each output voxel.
  virtual at::Tensor sampling_coords(const Image& image) const = 0;
  nlohmann::json warp_params() const { return {{"interp", interp_name(interp_)}, {"border", border_name(border_)}}; }
  Interp interp_;
  Border border_;
};

using Mat = std::array<std::array<double, 3>, 3>;

Mat mul(const Mat& a, const Mat& b) {
  Mat r{};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 3; ++k) r[i][j] += a[i][k] * b[k][j];
  return r;
}

Mat inverse(const Mat& m) {
  const double det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
                     m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
                     m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
  if (!(std::abs(det) > 1e-12)) throw UsageError("'affine': the transform is singular (a zero scale?)");
  Mat r{};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      const int a = (j + 1) % 3, b = (j + 2) % 3, c = (i + 1) % 3, d = (i + 2) % 3;
      r[i][j] = (m[a][c] * m[b][d] - m[a][d] * m[b][c]) / det;
    }
  return r;
}

Mat rotation(int axis, double deg) {
  const double t = deg * std::numbers::pi / 180.0, c = std::cos(t), s = std::sin(t);
  const int a = (axis + 1) % 3, b = (axis + 2) % 3;
  Mat r{};
  r[axis][axis] = 1;
  r[a][a] = c; r[a][b] = -s;
  r[b][a] = s; r[b][b] = c;
  return r;
}

class Affine final : public WarpTransform {
 public:
  Affine(AffineParams p, Interp interp, Border border) : WarpTransform(interp, border), p_(p) {
    for (double s : p_.scale)
      if (!(s > 0)) throw UsageError("'affine': scale factors must be positive");
  }
  std::string name() const override { return "affine"; }
  nlohmann::json params() const override {
    nlohmann::json j = warp_params();
    j["rotate"] = vec_json(p_.rotate_deg);
    j["scale"] = vec_json(p_.scale);
    j["shear"] = vec_json(p_.shear);
    j["translate"] = vec_json(p_.translate_mm);
    return j;
  }

 protected:
  at::Tensor sampling_coords(const Image& image) const override {
    const bool flat = image.depth() == 1;  // 2-D: in-plane parts only
    AffineParams p = p_;
    if (flat) {
      p.rotate_deg[0] = p.rotate_deg[1] = 0;
      p.scale[2] = 1;
      p.shear[1] = p.shear[2] = 0;
      p.translate_mm[2] = 0;
    }
    const Mat scale{{{p.scale[0], 0, 0}, {0, p.scale[1], 0}, {0, 0, p.scale[2]}}};
    const Mat shear{{{1, p.shear[0], p.shear[1]}, {0, 1, p.shear[2]}, {0, 0, 1}}};
    const Mat rot = mul(rotation(2, p.rotate_deg[2]), mul(rotation(1, p.rotate_deg[1]), rotation(0, p.rotate_deg[0])));
    const Mat inv = inverse(mul(rot, mul(shear, scale)));
    // Index to index: i_in = M i_out + b with M = S^-1 A^-1 S (S = diag(spacing)) about the
    // centre ic, and b carrying the translation.
    const Vec3& sp = image.geometry().spacing;
    const Shape s = image.shape();
    const Vec3 ic{(s.x - 1) / 2.0, (s.y - 1) / 2.0, (s.z - 1) / 2.0};
    Mat m{};
    Vec3 b{};
    for (int i = 0; i < 3; ++i) {
      b[i] = ic[i];
      for (int j = 0; j < 3; ++j) {
        m[i][j] = inv[i][j] * sp[j] / sp[i];
        b[i] -= m[i][j] * ic[j] + inv[i][j] * p.translate_mm[j] / sp[i];
      }
    }
    const auto opt = at::TensorOptions().dtype(at::kDouble);
    const at::Tensor x = at::arange(s.x, opt).view({1, 1, -1}), y = at::arange(s.y, opt).view({1, -1, 1}),
                     z = at::arange(s.z, opt).view({-1, 1, 1});
    at::Tensor coords = at::empty({3, s.z, s.y, s.x}, opt);
    for (int i = 0; i < 3; ++i) coords[i].copy_(x * m[i][0] + y * m[i][1] + z * m[i][2] + b[i]);
    return coords;
  }

 private:
  AffineParams p_;
};

class RandomAffine final : public RandomTransform {
 public:
  explicit RandomAffine(RandomAffineOptions o) : o_(o) {
    check_p("random-affine", o_.p_);
    if (!(o_.scale_lo_ > 0 && o_.scale_lo_ <= o_.scale_hi_))
      throw UsageError("'random-affine': scale needs 0 < lo <= hi");
    if (!(o_.shear_ >= 0)) throw UsageError("'random-affine': shear must be >= 0");
    for (int i = 0; i < 3; ++i)
      if (!(o_.rotate_deg_[i] >= 0 && o_.translate_mm_[i] >= 0))
        throw UsageError("'random-affine': rotate and translate are non-negative maxima");
  }
  std::string name() const override { return "random-affine"; }
  nlohmann::json params() const override {
    return {{"p", o_.p_}, {"rotate", vec_json(o_.rotate_deg_)}, {"scale", {o_.scale_lo_, o_.scale_hi_}},
            {"isotropic", o_.isotropic_}, {"shear", o_.shear_}, {"translate", vec_json(o_.translate_mm_)},
            {"interp", interp_name(o_.interp_)}, {"border", border_name(o_.border_)}};
  }
  TransformPtr draw(Rng& rng) const override {
    if (!rng.bernoulli(o_.p_)) return nullptr;
    AffineParams a;
    for (int i = 0; i < 3; ++i) a.rotate_deg[i] = rng.uniform(-o_.rotate_deg_[i], o_.rotate_deg_[i]);
    const double iso = rng.uniform(o_.scale_lo_, o_.scale_hi_);
    for (int i = 0; i < 3; ++i) a.scale[i] = o_.isotropic_ ? iso : rng.uniform(o_.scale_lo_, o_.scale_hi_);
    for (int i = 0; i < 3; ++i) a.shear[i] = rng.uniform(-o_.shear_, o_.shear_);
    for (int i = 0; i < 3; ++i) a.translate_mm[i] = rng.uniform(-o_.translate_mm_[i], o_.translate_mm_[i]);
    return make_affine(a, o_.interp_, o_.border_);
  }

 private:
  RandomAffineOptions o_;
};

// Smooth noise on a coarse control grid (spacing sigma/2), Gaussian-smoothed, interpolated to
// every voxel and scaled to the requested largest displacement. (3, Z, Y, X) in mm.
at::Tensor elastic_field_mm(const Image& image, double magnitude, double sigma_mm, uint64_t seed) {
  const Shape s = image.shape();
  const Vec3& sp = image.geometry().spacing;
  const bool flat = s.z == 1;
  const double step = sigma_mm / 2.0;
  auto control = [&](int64_t n, double spacing) {
    return n == 1 ? int64_t{1} : std::max<int64_t>(2, static_cast<int64_t>(std::ceil((n - 1) * spacing / step)) + 1);
  };
  const int64_t comps = flat ? 2 : 3;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  at::Tensor noise = at::randn({comps, control(s.z, sp[2]), control(s.y, sp[1]), control(s.x, sp[0])}, gen,
                               at::TensorOptions().dtype(at::kFloat));
  noise = gaussian_smooth_voxels(noise, {2.0, 2.0, flat ? 0.0 : 2.0});
  const at::Tensor smooth = at::upsample_trilinear3d(noise.unsqueeze(0), {s.z, s.y, s.x}, true).squeeze(0);
  const double largest = smooth.pow(2).sum(0).sqrt().max().item<double>();
  at::Tensor field = at::zeros({3, s.z, s.y, s.x}, at::kDouble);
  field.narrow(0, 0, comps).copy_(smooth);
  if (largest > 0) field.mul_(magnitude / largest);
  return field;
}

class Elastic final : public WarpTransform {
 public:
  Elastic(double magnitude, double sigma, uint64_t seed, Interp interp, Border border)
      : WarpTransform(interp, border), magnitude_(magnitude), sigma_(sigma), seed_(seed) {
    if (!(magnitude_ >= 0)) throw UsageError("'elastic': magnitude must be >= 0 mm");
    if (!(sigma_ > 0)) throw UsageError("'elastic': sigma must be > 0 mm");
  }
  std::string name() const override { return "elastic"; }
  nlohmann::json params() const override {
    nlohmann::json j = warp_params();
    j["magnitude"] = magnitude_;
    j["sigma"] = sigma_;
    j["seed"] = seed_;
    return j;
  }

 protected:
  at::Tensor sampling_coords(const Image& image) const override {
    // Index positions: each voxel's own index plus its displacement in voxels.
    at::Tensor coords = elastic_field_mm(image, magnitude_, sigma_, seed_);
    const Vec3& sp = image.geometry().spacing;
    const Shape s = image.shape();
    const std::array<std::vector<int64_t>, 3> view{{{1, 1, -1}, {1, -1, 1}, {-1, 1, 1}}};
    const std::array<int64_t, 3> n{s.x, s.y, s.z};
    for (int a = 0; a < 3; ++a) coords[a].div_(sp[a]).add_(at::arange(n[a], at::kDouble).view(view[a]));
    return coords;
  }

 private:
  double magnitude_, sigma_;
  uint64_t seed_;
};

class RandomElastic final : public RandomTransform {
 public:
  explicit RandomElastic(RandomElasticOptions o) : o_(o) {
    check_p("random-elastic", o_.p_);
    if (!(o_.magnitude_lo_mm_ >= 0 && o_.magnitude_lo_mm_ <= o_.magnitude_hi_mm_))
      throw UsageError("'random-elastic': magnitude needs 0 <= lo <= hi");
    if (!(o_.sigma_mm_ > 0)) throw UsageError("'random-elastic': sigma must be > 0 mm");
  }
  std::string name() const override { return "random-elastic"; }
  nlohmann::json params() const override {
    return {{"p", o_.p_}, {"magnitude", {o_.magnitude_lo_mm_, o_.magnitude_hi_mm_}}, {"sigma", o_.sigma_mm_},
            {"interp", interp_name(o_.interp_)}, {"border", border_name(o_.border_)}};
  }
  TransformPtr draw(Rng& rng) const override {
    if (!rng.bernoulli(o_.p_)) return nullptr;
    const double magnitude = rng.uniform(o_.magnitude_lo_mm_, o_.magnitude_hi_mm_);
    return make_elastic(magnitude, o_.sigma_mm_, rng.next_seed(), o_.interp_, o_.border_);
  }

 private:
  RandomElasticOptions o_;
};

// Intensity twins.

class Gamma final : public IntensityTransform {
 public:
  explicit Gamma(double g) : g_(g) {
    if (!(g_ > 0)) throw UsageError("'gamma': gamma must be positive");
  }
  std::string name() const override { return "gamma"; }
  nlohmann::json params() const override { return {{"gamma", g_}}; }

 protected:
  Image transform_image(const Image& image) const override {
    const auto [lo, hi] = value_range(image);
    if (!(hi > lo)) return image;
    const double range = static_cast<double>(hi) - lo;
    return image.with_voxels(((image.voxels() - lo) / range).clamp(0.0, 1.0).pow(g_) * range + lo);
  }

 private:
  double g_;
};

class BrightnessContrast final : public IntensityTransform {
 public:
  BrightnessContrast(double b, double c) : b_(b), c_(c) {
    if (!(c_ >= 0)) throw UsageError("'brightness-contrast': contrast must be >= 0");
  }
  std::string name() const override { return "brightness-contrast"; }
  nlohmann::json params() const override { return {{"brightness", b_}, {"contrast", c_}}; }

 protected:
  Image transform_image(const Image& image) const override {
    const auto [lo, hi] = value_range(image);
    const double mean = image.voxels().mean().item<double>();
    return image.with_voxels((image.voxels() - mean) * c_ + (mean + b_ * (static_cast<double>(hi) - lo)));
  }

 private:
  double b_, c_;
};

class Blur final : public IntensityTransform {
 public:
  explicit Blur(double sigma) : sigma_(sigma) {
    if (!(sigma_ >= 0)) throw UsageError("'blur': sigma must be >= 0 mm");
  }
  std::string name() const override { return "blur"; }
  nlohmann::json params() const override { return {{"sigma", sigma_}}; }

 protected:
  Image transform_image(const Image& image) const override {
    const Vec3& sp = image.geometry().spacing;
    const Vec3 sv{sigma_ / sp[0], sigma_ / sp[1], image.depth() > 1 ? sigma_ / sp[2] : 0.0};
    return image.with_voxels(gaussian_smooth_voxels(image.voxels(), sv));
  }

 private:
  double sigma_;
};

class AddNoise final : public IntensityTransform {
 public:
  AddNoise(double sigma, uint64_t seed) : sigma_(sigma), seed_(seed) {
    if (!(sigma_ >= 0)) throw UsageError("'add-noise': sigma must be >= 0");
  }
  std::string name() const override { return "add-noise"; }
  nlohmann::json params() const override { return {{"sigma", sigma_}, {"seed", seed_}}; }

 protected:
  Image transform_image(const Image& image) const override {
    const auto [lo, hi] = value_range(image);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed_);
    const at::Tensor n = at::randn(image.voxels().sizes(), gen, at::TensorOptions().dtype(at::kFloat));
    return image.with_voxels(image.voxels() + n * (sigma_ * (static_cast<double>(hi) - lo)));
  }

 private:
  double sigma_;
  uint64_t seed_;
};

// Draws one value from [lo, hi] (log-uniform when asked) and builds the twin.
class RandomScalar final : public RandomTransform {
 public:
  using Make = TransformPtr (*)(double);
  RandomScalar(std::string name, std::string key, double p, double lo, double hi, bool log, Make make)
      : name_(std::move(name)), key_(std::move(key)), p_(check_p(name_, p)), lo_(lo), hi_(hi), log_(log), make_(make) {
    if (!(lo_ <= hi_) || (log_ && !(lo_ > 0)))
      throw UsageError("'" + name_ + "': " + key_ + " needs " + (log_ ? "0 < " : "") + "lo <= hi");
  }
  std::string name() const override { return name_; }
  nlohmann::json params() const override { return {{"p", p_}, {key_, {lo_, hi_}}}; }
  TransformPtr draw(Rng& rng) const override {
    if (!rng.bernoulli(p_)) return nullptr;
    const double v = log_ ? std::exp(rng.uniform(std::log(lo_), std::log(hi_))) : rng.uniform(lo_, hi_);
    return make_(v);
  }

 private:
  std::string name_, key_;
  double p_, lo_, hi_;
  bool log_;
  Make make_;
};

class RandomBrightnessContrast final : public RandomTransform {
 public:
  RandomBrightnessContrast(double p, double b, double lo, double hi) : p_(check_p("random-brightness-contrast", p)), b_(b), lo_(lo), hi_(hi) {
    if (!(b_ >= 0 && lo_ > 0 && lo_ <= hi_))
      throw UsageError("'random-brightness-contrast': needs brightness >= 0 and 0 < contrast lo <= hi");
  }
  std::string name() const override { return "random-brightness-contrast"; }
  nlohmann::json params() const override { return {{"p", p_}, {"brightness", b_}, {"contrast", {lo_, hi_}}}; }
  TransformPtr draw(Rng& rng) const override {
    if (!rng.bernoulli(p_)) return nullptr;
    const double b = rng.uniform(-b_, b_);
    const double c = std::exp(rng.uniform(std::log(lo_), std::log(hi_)));
    return make_brightness_contrast(b, c);
  }

 private:
  double p_, b_, lo_, hi_;
};

class RandomNoise final : public RandomTransform {
 public:
  RandomNoise(double p, double lo, double hi) : p_(check_p("random-noise", p)), lo_(lo), hi_(hi) {
    if (!(lo_ >= 0 && lo_ <= hi_)) throw UsageError("'random-noise': sigma needs 0 <= lo <= hi");
  }
  std::string name() const override { return "random-noise"; }
  nlohmann::json params() const override { return {{"p", p_}, {"sigma", {lo_, hi_}}}; }
  TransformPtr draw(Rng& rng) const override {
    if (!rng.bernoulli(p_)) return nullptr;
    const double sigma = rng.uniform(lo_, hi_);
    return make_add_noise(sigma, rng.next_seed());
  }

 private:
  double p_, lo_, hi_;
};

// Crops.

std::array<int64_t, 3> effective_size(const std::array<int64_t, 3>& size, const Shape& s) {
  return {size[0], size[1], s.z == 1 ? 1 : size[2]};
}

class CropAt final : public SpatialTransform {
 public:
  CropAt(std::array<int64_t, 3> start, std::array<int64_t, 3> size) : start_(start), size_(size) {
    for (int64_t v : size_)
      if (v < 1) throw UsageError("'crop': size must be at least 1 voxel per axis");
  }
  std::string name() const override { return "crop"; }
  nlohmann::json params() const override {
    return {{"start", {start_[0], start_[1], start_[2]}}, {"size", {size_[0], size_[1], size_[2]}}};
  }

 protected:
  Image transform_image(const Image& image, bool is_label) const override {
    const Shape s = image.shape();
    const auto size = effective_size(size_, s);
    const std::array<int64_t, 3> start{start_[0], start_[1], s.z == 1 ? 0 : start_[2]};
    const std::array<int64_t, 3> n{s.x, s.y, s.z};
    const float fill = is_label ? 0.0f : value_range(image).first;
    at::Tensor out = at::full({s.c, size[2], size[1], size[0]}, fill, at::kFloat);
    // The overlap of the window with the grid, in source and destination indices.
    std::array<int64_t, 3> lo{}, hi{};
    for (int a = 0; a < 3; ++a) {
      lo[a] = std::max<int64_t>(0, start[a]);
      hi[a] = std::min<int64_t>(n[a], start[a] + size[a]);
    }
    if (lo[0] < hi[0] && lo[1] < hi[1] && lo[2] < hi[2]) {
      using at::indexing::Slice;
      out.index({Slice(), Slice(lo[2] - start[2], hi[2] - start[2]), Slice(lo[1] - start[1], hi[1] - start[1]),
                 Slice(lo[0] - start[0], hi[0] - start[0])})
          .copy_(image.voxels().index({Slice(), Slice(lo[2], hi[2]), Slice(lo[1], hi[1]), Slice(lo[0], hi[0])}));
    }
    Geometry g = image.geometry();
    g.origin = g.index_to_lps({static_cast<double>(start[0]), static_cast<double>(start[1]),
                               static_cast<double>(start[2])});
    return Image(out, g, image.metadata());
  }

 private:
  std::array<int64_t, 3> start_, size_;
};

class RandomCrop final : public Transform {
 public:
  RandomCrop(std::array<int64_t, 3> size, double foreground) : size_(size), fg_(foreground) {
    for (int64_t v : size_)
      if (v < 1) throw UsageError("'random-crop': size must be at least 1 voxel per axis");
    if (!(fg_ >= 0 && fg_ <= 1)) throw UsageError("'random-crop': foreground must lie in [0, 1]");
  }
  std::string name() const override { return "random-crop"; }
  nlohmann::json params() const override {
    return {{"size", {size_[0], size_[1], size_[2]}}, {"foreground", fg_}};
  }
  bool random() const override { return true; }
  Sample apply(Sample sample, Rng& rng) const override {
    const Shape s = sample.image.shape();
    const auto size = effective_size(size_, s);
    const std::array<int64_t, 3> n{s.x, s.y, s.z};
    std::array<int64_t, 3> start{};
    const bool on_label = rng.bernoulli(fg_);  // drawn always, so the stream does not depend on the label
    at::Tensor fg;
    if (on_label && sample.label) fg = at::nonzero((sample.label->voxels() != 0).any(0).reshape(-1));
    if (fg.defined() && fg.size(0) > 0) {
      const int64_t v = fg[rng.integer(0, fg.size(0) - 1)][0].item<int64_t>();
      const std::array<int64_t, 3> centre{v % s.x, (v / s.x) % s.y, v / (s.x * s.y)};
      for (int a = 0; a < 3; ++a) start[a] = centre[a] - size[a] / 2;
    } else {
      for (int a = 0; a < 3; ++a) start[a] = n[a] >= size[a] ? rng.integer(0, n[a] - size[a]) : 0;
    }
    for (int a = 0; a < 3; ++a)
      start[a] = n[a] >= size[a] ? std::clamp<int64_t>(start[a], 0, n[a] - size[a]) : -((size[a] - n[a]) / 2);
    return make_crop_at(start, size_)->apply(std::move(sample), rng);
  }

 private:
  std::array<int64_t, 3> size_;
  double fg_;
};

std::array<int64_t, 3> read_size(ParamReader& p, const std::string& op, std::array<int64_t, 3> fallback) {
  const std::vector<double> v = p.numbers("size", {double(fallback[0]), double(fallback[1]), double(fallback[2])});
  if (v.size() != 2 && v.size() != 3) throw UsageError("'" + op + "': size takes x;y or x;y;z voxels");
  std::array<int64_t, 3> out{1, 1, 1};
  for (size_t i = 0; i < v.size(); ++i) {
    if (!(v[i] >= 1 && v[i] == std::floor(v[i]))) throw UsageError("'" + op + "': size must be whole voxels >= 1");
    out[i] = static_cast<int64_t>(v[i]);
  }
  return out;
}

}  // namespace

TransformPtr make_affine(const AffineParams& params, Interp interp, Border border) {
  return std::make_shared<Affine>(params, interp, border);
}
TransformPtr make_random_affine(const RandomAffineOptions& o) { return std::make_shared<RandomAffine>(o); }
TransformPtr make_random_elastic(const RandomElasticOptions& o) { return std::make_shared<RandomElastic>(o); }
TransformPtr make_elastic(double magnitude_mm, double sigma_mm, uint64_t seed, Interp interp, Border border) {
  return std::make_shared<Elastic>(magnitude_mm, sigma_mm, seed, interp, border);
}
TransformPtr make_gamma(double gamma) { return std::make_shared<Gamma>(gamma); }
TransformPtr make_random_gamma(double p, double lo, double hi) {
  return std::make_shared<RandomScalar>("random-gamma", "gamma", p, lo, hi, true, &make_gamma);
}
TransformPtr make_brightness_contrast(double b, double c) { return std::make_shared<BrightnessContrast>(b, c); }
TransformPtr make_random_brightness_contrast(double p, double b, double lo, double hi) {
  return std::make_shared<RandomBrightnessContrast>(p, b, lo, hi);
}
TransformPtr make_blur(double sigma_mm) { return std::make_shared<Blur>(sigma_mm); }
TransformPtr make_random_blur(double p, double lo, double hi) {
  if (!(lo >= 0)) throw UsageError("'random-blur': sigma must be >= 0 mm");
  return std::make_shared<RandomScalar>("random-blur", "sigma", p, lo, hi, false, &make_blur);
}
TransformPtr make_add_noise(double sigma, uint64_t seed) { return std::make_shared<AddNoise>(sigma, seed); }
TransformPtr make_random_noise(double p, double lo, double hi) { return std::make_shared<RandomNoise>(p, lo, hi); }
TransformPtr make_crop_at(std::array<int64_t, 3> start, std::array<int64_t, 3> size) {
  return std::make_shared<CropAt>(start, size);
}
TransformPtr make_random_crop(std::array<int64_t, 3> size, double foreground) {
  return std::make_shared<RandomCrop>(size, foreground);
}

void register_augment(TransformRegistry& r) {
  r.add("random-affine", "augment",
        "rotate/scale/shear/translate about the centre: p=0.5, rotate=10 (deg, x;y;z), scale=0.9;1.1, "
        "isotropic=true, shear=0, translate=0 (mm, x;y;z), interp=linear|nearest, border=min|zeros|border|reflection",
        [](const nlohmann::json& j) {
          ParamReader p("random-affine", j);
          RandomAffineOptions o;
          o.p(p.number("p", o.p_));
          o.rotate(read_vec3(p, "random-affine", "rotate", o.rotate_deg_));
          const auto [lo, hi] = read_range(p, "random-affine", "scale", {o.scale_lo_, o.scale_hi_}, 1e-3, 1e3);
          o.scale(lo, hi, p.boolean("isotropic", true));
          o.shear(p.number_in("shear", 0, 0, 1));
          o.translate(read_vec3(p, "random-affine", "translate", o.translate_mm_));
          o.interp(parse_interp(p, "linear")).border(parse_border(p, "min"));
          p.finish();
          return make_random_affine(o);
        });
  r.add("random-elastic", "augment",
        "smooth random displacement: p=0.5, magnitude=0;4 (mm, largest displacement), sigma=12 (mm), "
        "interp=linear|nearest, border=border|min|zeros|reflection",
        [](const nlohmann::json& j) {
          ParamReader p("random-elastic", j);
          RandomElasticOptions o;
          o.p(p.number("p", o.p_));
          const auto [lo, hi] = read_range(p, "random-elastic", "magnitude", {0.0, 4.0}, 0, 1e4);
          o.magnitude(lo, hi).sigma(p.number("sigma", o.sigma_mm_));
          o.interp(parse_interp(p, "linear")).border(parse_border(p, "border"));
          p.finish();
          return make_random_elastic(o);
        });
  r.add("random-gamma", "augment", "gamma on range-normalised values: p=0.5, gamma=0.7;1.5 (log-uniform)",
        [](const nlohmann::json& j) {
          ParamReader p("random-gamma", j);
          const double prob = p.number("p", 0.5);
          const auto [lo, hi] = read_range(p, "random-gamma", "gamma", {0.7, 1.5}, 1e-3, 1e3);
          p.finish();
          return make_random_gamma(prob, lo, hi);
        });
  r.add("random-brightness-contrast", "augment",
        "v -> mean + c*(v-mean) + b*range: p=0.5, brightness=0.1 (+-fraction of range), contrast=0.8;1.25",
        [](const nlohmann::json& j) {
          ParamReader p("random-brightness-contrast", j);
          const double prob = p.number("p", 0.5), b = p.number_in("brightness", 0.1, 0, 10);
          const auto [lo, hi] = read_range(p, "random-brightness-contrast", "contrast", {0.8, 1.25}, 1e-3, 1e3);
          p.finish();
          return make_random_brightness_contrast(prob, b, lo, hi);
        });
  r.add("random-blur", "augment", "Gaussian blur: p=0.5, sigma=0.5;1.5 (mm)", [](const nlohmann::json& j) {
    ParamReader p("random-blur", j);
    const double prob = p.number("p", 0.5);
    const auto [lo, hi] = read_range(p, "random-blur", "sigma", {0.5, 1.5}, 0, 1e4);
    p.finish();
    return make_random_blur(prob, lo, hi);
  });
  r.add("random-crop", "augment",
        "fixed-size patch: size=64;64;64 (voxels x;y[;z]), foreground=0 (probability of centring on a label voxel)",
        [](const nlohmann::json& j) {
          ParamReader p("random-crop", j);
          const auto size = read_size(p, "random-crop", {64, 64, 64});
          const double fg = p.number_in("foreground", 0, 0, 1);
          p.finish();
          return make_random_crop(size, fg);
        });
  r.add("random-noise", "augment", "additive Gaussian noise: p=0.5, sigma=0.01;0.05 (fraction of the value range)",
        [](const nlohmann::json& j) {
          ParamReader p("random-noise", j);
          const double prob = p.number("p", 0.5);
          const auto [lo, hi] = read_range(p, "random-noise", "sigma", {0.01, 0.05}, 0, 10);
          p.finish();
          return make_random_noise(prob, lo, hi);
        });
}

}  // namespace medlens
