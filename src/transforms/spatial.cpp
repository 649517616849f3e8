#include "transforms/spatial.h"

#include <ATen/ATen.h>
#include <itkBSplineDecompositionImageFilter.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "core/voxel_buffer.h"
#include "io/itk_bridge.h"
#include "transforms/base.h"
#include "transforms/params.h"
#include "transforms/registry.h"

namespace medlens {
namespace {

// ---- resampling along one axis -------------------------------------------------------------
// Every grid change here is separable: output sample o along an axis is
//   sum_k weight[k][o] * input[index[k][o]],
// so resample, resize (all modes) and the B-spline evaluation share one routine, which runs as
// index_select + multiply-add (parallel inside ATen) instead of a per-voxel loop.
struct Taps {
  at::Tensor index;   // (K, n_out) int64
  at::Tensor weight;  // (K, n_out) float; undefined means one tap of weight 1 (exact copies)
};

class TapBuilder {
 public:
  TapBuilder(int64_t n_out, int64_t k) : n_(n_out), k_(k), index_(n_out * k, 0), weight_(n_out * k, 0.0f) {}
  void set(int64_t out, int64_t tap, int64_t index, double weight) {
    index_[tap * n_ + out] = index;
    weight_[tap * n_ + out] = static_cast<float>(weight);
  }
  Taps build(bool weighted = true) const {
    Taps t;
    t.index = at::tensor(index_, at::kLong).reshape({k_, n_});
    if (weighted) t.weight = at::tensor(weight_, at::kFloat).reshape({k_, n_});
    return t;
  }

 private:
  int64_t n_, k_;
  std::vector<int64_t> index_;
  std::vector<float> weight_;
};

at::Tensor apply_taps(const at::Tensor& v, int64_t dim, const Taps& taps) {
  // index_select along the innermost dimension is ~10x slower than along an outer one; a
  // transposed copy costs less than the difference.
  if (dim == v.dim() - 1 && v.dim() > 1)
    return apply_taps(v.transpose(dim, dim - 1).contiguous(), dim - 1, taps).transpose(dim, dim - 1);
  if (!taps.weight.defined()) return v.index_select(dim, taps.index[0]);
  std::vector<int64_t> shape(static_cast<size_t>(v.dim()), 1);
  shape[static_cast<size_t>(dim)] = taps.index.size(1);
  at::Tensor out;
  for (int64_t k = 0; k < taps.index.size(0); ++k) {
    at::Tensor term = v.index_select(dim, taps.index[k]).mul_(taps.weight[k].view(shape));
    out = k == 0 ? term : out.add_(term);
  }
  return out;
}

int64_t clamp_index(int64_t i, int64_t n) { return std::clamp<int64_t>(i, 0, n - 1); }

// numpy "reflect": mirror about the edge voxels without repeating them, periodic beyond.
int64_t mirror_index(int64_t i, int64_t n) {
  if (n == 1) return 0;
  const int64_t period = 2 * n - 2;
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - i;
}

// Ties (a position exactly between two voxels) go to the upper voxel, as ITK; the tolerance keeps
// rounding error in the positions from flipping them.
Taps nearest_taps(const std::vector<double>& pos, int64_t n) {
  TapBuilder b(static_cast<int64_t>(pos.size()), 1);
  for (size_t o = 0; o < pos.size(); ++o)
    b.set(static_cast<int64_t>(o), 0, clamp_index(static_cast<int64_t>(std::floor(pos[o] + 0.5 + 1e-9)), n), 1.0);
  return b.build(false);
}

Taps linear_taps(const std::vector<double>& pos, int64_t n) {
  TapBuilder b(static_cast<int64_t>(pos.size()), 2);
  for (size_t o = 0; o < pos.size(); ++o) {
    const double p = std::clamp(pos[o], 0.0, static_cast<double>(n - 1));
    const int64_t i0 = static_cast<int64_t>(std::floor(p));
    const double t = p - static_cast<double>(i0);
    b.set(static_cast<int64_t>(o), 0, i0, 1.0 - t);
    b.set(static_cast<int64_t>(o), 1, clamp_index(i0 + 1, n), t);
  }
  return b.build();
}

// Cubic B-spline basis at the four coefficients around each position; ITK's decomposition
// assumes mirror-symmetric data, so coefficients outside the axis are mirrored too.
Taps bspline_taps(const std::vector<double>& pos, int64_t n) {
  TapBuilder b(static_cast<int64_t>(pos.size()), 4);
  for (size_t o = 0; o < pos.size(); ++o) {
    const double f = std::floor(pos[o]), t = pos[o] - f, u = 1.0 - t;
    const double w[4] = {u * u * u / 6.0, (3 * t * t * t - 6 * t * t + 4) / 6.0,
                         (-3 * t * t * t + 3 * t * t + 3 * t + 1) / 6.0, t * t * t / 6.0};
    for (int k = 0; k < 4; ++k)
      b.set(static_cast<int64_t>(o), k, mirror_index(static_cast<int64_t>(f) - 1 + k, n), w[k]);
  }
  return b.build();
}

// Output voxel o covers input [o * f, (o + 1) * f) with f = n_in / n_out; each input voxel
// contributes its overlap. For an integer factor this is the plain k-voxel mean.
Taps area_taps(int64_t n_in, int64_t n_out) {
  const double f = static_cast<double>(n_in) / static_cast<double>(n_out);
  const int64_t k_max = static_cast<int64_t>(std::ceil(f)) + 1;
  TapBuilder b(n_out, k_max);
  for (int64_t o = 0; o < n_out; ++o) {
    const double lo = static_cast<double>(o) * f, hi = static_cast<double>(o + 1) * f;
    int64_t k = 0;
    for (int64_t i = static_cast<int64_t>(std::floor(lo)); i < n_in && static_cast<double>(i) < hi; ++i) {
      const double overlap = std::min(hi, static_cast<double>(i + 1)) - std::max(lo, static_cast<double>(i));
      if (overlap > 1e-12 && k < k_max) b.set(o, k++, i, overlap / f);
    }
  }
  return b.build();
}

int64_t tensor_dim(int axis) { return 3 - axis; }  // (C,Z,Y,X): x is dim 3, z dim 1
int64_t axis_size(const Shape& s, int axis) { return axis == 0 ? s.x : axis == 1 ? s.y : s.z; }

// A result larger than any reader would load is refused before it is allocated.
void check_voxel_budget(const std::string& op, int64_t channels, const std::array<int64_t, 3>& xyz) {
  double values = static_cast<double>(std::max<int64_t>(1, channels));
  for (int64_t n : xyz) values *= static_cast<double>(std::max<int64_t>(1, n));
  if (values > static_cast<double>(max_voxels()))
    throw UsageError("'" + op + "': the result would hold " + std::to_string(static_cast<long long>(std::min(values, 1e18))) +
                     " values, more than the limit of " + std::to_string(max_voxels()) + " (MEDLENS_MAX_VOXELS)");
}

// Slice identifiers survive only a crop along z; any other change along z invalidates them.
void keep_slice_ids(Metadata& m, int64_t old_depth, int64_t first, int64_t count) {
  if (static_cast<int64_t>(m.sop_uids.size()) != old_depth) return;
  if (first == 0 && count == old_depth) return;
  if (first < 0 || first + count > old_depth) {
    m.sop_uids.clear();
    return;
  }
  m.sop_uids = std::vector<std::string>(m.sop_uids.begin() + first, m.sop_uids.begin() + first + count);
}

// A new grid whose voxel 0 sits at continuous input index `first`, with the given spacing.
Image regridded(const Image& image, const at::Tensor& voxels, const Vec3& first, const Vec3& spacing) {
  Geometry g = image.geometry();
  g.origin = g.index_to_lps(first);
  g.spacing = spacing;
  Image out(voxels, g, image.metadata());
  if (out.depth() != image.depth() || first[2] != 0.0 || spacing[2] != image.geometry().spacing[2])
    out.metadata().sop_uids.clear();
  return out;
}

const char* interpolation_name(Interpolation i) {
  return i == Interpolation::kNearest ? "nearest" : i == Interpolation::kLinear ? "linear" : "bspline";
}

// One channel at a time through ITK's recursive B-spline prefilter (mirror boundary).
at::Tensor bspline_coefficients(const Image& image) {
  std::vector<at::Tensor> channels;
  for (int64_t c = 0; c < image.channels(); ++c) {
    auto filter = itk::BSplineDecompositionImageFilter<ItkImage3, ItkImage3>::New();
    filter->SetSplineOrder(3);
    filter->SetInput(to_itk3(image, c));
    filter->Update();
    channels.push_back(from_itk(ItkImage3::Pointer(filter->GetOutput())).voxels());
  }
  return at::cat(channels, 0);
}

class Resample final : public SpatialTransform {
 public:
  explicit Resample(ResampleOptions o) : o_(o) {
    for (double s : o_.spacing)
      if (!(s >= 0) || !std::isfinite(s)) throw UsageError("'resample': spacing must be positive (0 keeps an axis)");
  }
  std::string name() const override { return "resample"; }
  nlohmann::json params() const override {
    return {{"spacing", o_.spacing}, {"interpolation", interpolation_name(o_.interpolation)}};
  }

 protected:
  Image transform_image(const Image& image, bool is_label) const override {
    const Interpolation how = is_label ? Interpolation::kNearest : o_.interpolation;
    const Vec3& old_spacing = image.geometry().spacing;
    Vec3 spacing = old_spacing;
    std::array<int64_t, 3> size{};
    for (int a = 0; a < 3; ++a) {
      const int64_t n = axis_size(image.shape(), a);
      if (o_.spacing[a] > 0 && (a < 2 || image.is_3d())) spacing[a] = o_.spacing[a];
      size[a] = std::max<int64_t>(1, std::llround(static_cast<double>(n) * old_spacing[a] / spacing[a]));
    }
    at::Tensor v = how == Interpolation::kBSpline ? bspline_coefficients(image) : image.voxels();
    // Shrinking axes first keeps the intermediate tensors small.
    std::array<int, 3> order{0, 1, 2};
    std::sort(order.begin(), order.end(), [&](int a, int b) {
      return static_cast<double>(size[a]) / axis_size(image.shape(), a) <
             static_cast<double>(size[b]) / axis_size(image.shape(), b);
    });
    for (int a : order) {
      const int64_t n = axis_size(image.shape(), a);
      const double step = spacing[a] / old_spacing[a];
      if (how != Interpolation::kBSpline && size[a] == n && step == 1.0) continue;
      std::vector<double> pos(static_cast<size_t>(size[a]));
      for (int64_t i = 0; i < size[a]; ++i) pos[static_cast<size_t>(i)] = static_cast<double>(i) * step;
      const Taps taps = how == Interpolation::kNearest ? nearest_taps(pos, n)
                        : how == Interpolation::kLinear ? linear_taps(pos, n)
                                                        : bspline_taps(pos, n);
      v = apply_taps(v, tensor_dim(a), taps);
    }
    return regridded(image, v, {0, 0, 0}, spacing);
  }

 private:
  ResampleOptions o_;
};

const char* resize_mode_name(ResizeMode m) {
  return m == ResizeMode::kNearest ? "nearest" : m == ResizeMode::kLinear ? "linear" : "area";
}

class Resize final : public SpatialTransform {
 public:
  explicit Resize(ResizeOptions o) : o_(o) {}
  std::string name() const override { return "resize"; }
  nlohmann::json params() const override { return {{"size", o_.size}, {"mode", resize_mode_name(o_.mode)}}; }

 protected:
  Image transform_image(const Image& image, bool is_label) const override {
    const ResizeMode mode = is_label ? ResizeMode::kNearest : o_.mode;
    std::array<int64_t, 3> out{};
    for (int a = 0; a < 3; ++a)
      out[a] = (o_.size[a] > 0 && (a < 2 || image.is_3d())) ? o_.size[a] : axis_size(image.shape(), a);
    check_voxel_budget("resize", image.shape().c, out);
    at::Tensor v = image.voxels();
    Vec3 first{0, 0, 0}, spacing = image.geometry().spacing;
    for (int a = 0; a < 3; ++a) {
      const int64_t n = axis_size(image.shape(), a);
      const int64_t m = (o_.size[a] > 0 && (a < 2 || image.is_3d())) ? o_.size[a] : n;
      if (m == n) continue;
      const double f = static_cast<double>(n) / static_cast<double>(m);
      std::vector<double> pos(static_cast<size_t>(m));
      for (int64_t i = 0; i < m; ++i) pos[static_cast<size_t>(i)] = (static_cast<double>(i) + 0.5) * f - 0.5;
      const Taps taps = mode == ResizeMode::kNearest ? nearest_taps(pos, n)
                        : mode == ResizeMode::kLinear ? linear_taps(pos, n)
                                                      : area_taps(n, m);
      v = apply_taps(v, tensor_dim(a), taps);
      first[a] = 0.5 * f - 0.5;
      spacing[a] *= f;
    }
    return regridded(image, v, first, spacing);
  }

 private:
  ResizeOptions o_;
};

// ---- crops and pads ------------------------------------------------------------------------
struct Range {
  int64_t start, size;
};

// The crop box resolved against an image; InputError when it falls outside.
std::array<Range, 3> resolve_box(const CropBox& box, const Shape& shape) {
  std::array<Range, 3> r{};
  for (int a = 0; a < 3; ++a) {
    const int64_t n = axis_size(shape, a), start = box.start[a];
    const int64_t size = box.size[a] > 0 ? box.size[a] : n - start;
    if (start < 0 || size <= 0 || start + size > n)
      throw InputError("", std::string("crop box along ") + "xyz"[a] + " [" + std::to_string(start) + ", " +
                               std::to_string(start + size) + ") is not inside the image's " +
                               std::to_string(n) + " voxels");
    r[a] = {start, size};
  }
  return r;
}

Image crop_image(const Image& image, const std::array<Range, 3>& box) {
  at::Tensor v = image.voxels();
  for (int a = 0; a < 3; ++a) v = v.narrow(tensor_dim(a), box[a].start, box[a].size);
  Geometry g = image.geometry();
  g.origin = g.index_to_lps({static_cast<double>(box[0].start), static_cast<double>(box[1].start),
                             static_cast<double>(box[2].start)});
  Image out(v, g, image.metadata());
  keep_slice_ids(out.metadata(), image.depth(), box[2].start, box[2].size);
  return out;
}

nlohmann::json box_json(const std::array<int64_t, 3>& a) { return {a[0], a[1], a[2]}; }

class Crop final : public SpatialTransform {
 public:
  explicit Crop(CropBox box) : box_(box) {}
  std::string name() const override { return "crop"; }
  nlohmann::json params() const override { return {{"start", box_json(box_.start)}, {"size", box_json(box_.size)}}; }

 protected:
  Image transform_image(const Image& image, bool) const override {
    return crop_image(image, resolve_box(box_, image.shape()));
  }

 private:
  CropBox box_;
};

class CenterCrop final : public SpatialTransform {
 public:
  explicit CenterCrop(std::array<int64_t, 3> size) : size_(size) {}
  std::string name() const override { return "center-crop"; }
  nlohmann::json params() const override { return {{"size", box_json(size_)}}; }

 protected:
  Image transform_image(const Image& image, bool) const override {
    std::array<Range, 3> box{};
    for (int a = 0; a < 3; ++a) {
      const int64_t n = axis_size(image.shape(), a);
      const int64_t m = size_[a] > 0 ? std::min(size_[a], n) : n;
      box[a] = {(n - m) / 2, m};
    }
    return crop_image(image, box);
  }

 private:
  std::array<int64_t, 3> size_;
};

const char* pad_mode_name(PadMode m) {
  return m == PadMode::kConstant ? "constant" : m == PadMode::kEdge ? "edge" : "reflect";
}

class Pad final : public SpatialTransform {
 public:
  explicit Pad(PadOptions o) : o_(o) {
    const bool by_size = std::any_of(o_.size.begin(), o_.size.end(), [](int64_t s) { return s > 0; });
    const bool by_margin = std::any_of(o_.margins.begin(), o_.margins.end(), [](int64_t m) { return m != 0; });
    if (by_size && by_margin) throw UsageError("'pad': give either a size or margins, not both");
    if (std::any_of(o_.margins.begin(), o_.margins.end(), [](int64_t m) { return m < 0; }))
      throw UsageError("'pad': margins must not be negative (use crop)");
  }
  std::string name() const override { return "pad"; }
  nlohmann::json params() const override {
    return {{"size", box_json(o_.size)},
            {"margin", o_.margins},
            {"mode", pad_mode_name(o_.mode)},
            {"value", o_.value}};
  }

 protected:
  Image transform_image(const Image& image, bool is_label) const override {
    std::array<int64_t, 3> lo{}, hi{};
    for (int a = 0; a < (image.is_3d() ? 3 : 2); ++a) {
      const int64_t n = axis_size(image.shape(), a), extra = std::max<int64_t>(0, o_.size[a] - n);
      lo[a] = extra > 0 ? extra / 2 : o_.margins[2 * a];
      hi[a] = extra > 0 ? extra - extra / 2 : o_.margins[2 * a + 1];
    }
    check_voxel_budget("pad", image.shape().c,
                       {lo[0] + image.shape().x + hi[0], lo[1] + image.shape().y + hi[1], lo[2] + image.shape().z + hi[2]});
    at::Tensor v = image.voxels();
    if (o_.mode == PadMode::kConstant) {
      v = at::constant_pad_nd(v, {lo[0], hi[0], lo[1], hi[1], lo[2], hi[2]}, is_label ? 0.0 : o_.value);
    } else {
      for (int a = 0; a < 3; ++a) {
        if (lo[a] == 0 && hi[a] == 0) continue;
        const int64_t n = axis_size(image.shape(), a);
        std::vector<int64_t> index(static_cast<size_t>(lo[a] + n + hi[a]));
        for (int64_t i = 0; i < static_cast<int64_t>(index.size()); ++i)
          index[static_cast<size_t>(i)] = o_.mode == PadMode::kEdge ? clamp_index(i - lo[a], n) : mirror_index(i - lo[a], n);
        v = v.index_select(tensor_dim(a), at::tensor(index, at::kLong));
      }
    }
    return regridded(image, v,
                     {-static_cast<double>(lo[0]), -static_cast<double>(lo[1]), -static_cast<double>(lo[2])},
                     image.geometry().spacing);
  }

 private:
  PadOptions o_;
};

class ForegroundCrop final : public Transform {
 public:
  explicit ForegroundCrop(ForegroundCropOptions o) : o_(o) {
    for (double m : o_.margin_mm)
      if (!(m >= 0)) throw UsageError("'foreground-crop': margin must not be negative");
  }
  std::string name() const override { return "foreground-crop"; }
  nlohmann::json params() const override { return {{"threshold", o_.threshold}, {"margin", o_.margin_mm}}; }
  Sample apply(Sample sample, Rng&) const override {
    const Image& image = sample.image;
    if (sample.label && (sample.label->depth() != image.depth() || sample.label->height() != image.height() ||
                         sample.label->width() != image.width()))
      throw InputError("", "the label's grid differs from the image's");
    const at::Tensor fg = (image.voxels() > o_.threshold).any(0);  // (Z, Y, X)
    if (!fg.any().item<bool>()) return sample;
    std::array<Range, 3> box{};
    for (int a = 0; a < 3; ++a) {
      std::vector<int64_t> others;
      for (int d = 0; d < 3; ++d)
        if (d != 2 - a) others.push_back(d);
      const at::Tensor hits = fg.any(others[1]).any(others[0]).nonzero();
      const int64_t n = axis_size(image.shape(), a);
      const int64_t margin = static_cast<int64_t>(std::ceil(o_.margin_mm[a] / image.geometry().spacing[a] - 1e-9));
      const int64_t first = std::max<int64_t>(0, hits.min().item<int64_t>() - margin);
      const int64_t last = std::min<int64_t>(n - 1, hits.max().item<int64_t>() + margin);
      box[a] = {first, last - first + 1};
    }
    sample.image = crop_image(image, box);
    if (sample.label) sample.label = crop_image(*sample.label, box);
    return sample;
  }

 private:
  ForegroundCropOptions o_;
};

// ---- channels ------------------------------------------------------------------------------
class Grey final : public IntensityTransform {
 public:
  std::string name() const override { return "grey"; }
  nlohmann::json params() const override { return nlohmann::json::object(); }

 protected:
  Image transform_image(const Image& image) const override {
    if (image.channels() == 1) return image;
    if (image.channels() != 3 && image.channels() != 4)
      throw InputError(image.metadata().source_path,
                       "grey needs an RGB image, this one has " + std::to_string(image.channels()) + " channels");
    const at::Tensor& v = image.voxels();
    at::Tensor g = (v[0].to(at::kDouble) * 0.2125 + v[1].to(at::kDouble) * 0.7154 + v[2].to(at::kDouble) * 0.0721);
    Image out = image.with_voxels(g.to(at::kFloat).unsqueeze(0));
    out.metadata().photometric = "MONOCHROME2";
    return out;
  }
};

class RepeatChannels final : public IntensityTransform {
 public:
  explicit RepeatChannels(int64_t n) : n_(n) {
    if (n_ < 1 || n_ > 4096) throw UsageError("'repeat-channels': n must be 1..4096");
  }
  std::string name() const override { return "repeat-channels"; }
  nlohmann::json params() const override { return {{"n", n_}}; }

 protected:
  Image transform_image(const Image& image) const override {
    if (image.channels() == n_) return image;
    if (image.channels() != 1)
      throw InputError(image.metadata().source_path, "repeat-channels needs a one-channel image, this one has " +
                                                         std::to_string(image.channels()));
    Image out = image.with_voxels(image.voxels().expand({n_, -1, -1, -1}));
    if (n_ == 3) out.metadata().photometric = "RGB";
    return out;
  }

 private:
  int64_t n_;
};

// ---- flips ---------------------------------------------------------------------------------
nlohmann::json axes_json(const std::array<bool, 3>& a) {
  std::string s;
  for (int i = 0; i < 3; ++i)
    if (a[i]) s += "xyz"[i];
  return s;
}

std::array<bool, 3> parse_axes(const std::string& op, const std::string& text) {
  std::array<bool, 3> a{false, false, false};
  for (char c : text) {
    if (c == 'x') a[0] = true;
    else if (c == 'y') a[1] = true;
    else if (c == 'z') a[2] = true;
    else throw UsageError("'" + op + "': axes are letters from xyz, got '" + text + "'");
  }
  return a;
}

class Flip final : public SpatialTransform {
 public:
  explicit Flip(std::array<bool, 3> axes) : axes_(axes) {}
  std::string name() const override { return "flip"; }
  nlohmann::json params() const override { return {{"axes", axes_json(axes_)}}; }

 protected:
  Image transform_image(const Image& image, bool) const override {
    std::vector<int64_t> dims;
    for (int a = 0; a < 3; ++a)
      if (axes_[a]) dims.push_back(tensor_dim(a));
    if (dims.empty()) return image;
    return image.with_voxels(image.voxels().flip(dims));
  }

 private:
  std::array<bool, 3> axes_;
};

class RandomFlip final : public RandomTransform {
 public:
  RandomFlip(double p, std::array<bool, 3> axes) : p_(p), axes_(axes) {}
  std::string name() const override { return "random-flip"; }
  nlohmann::json params() const override { return {{"p", p_}, {"axes", axes_json(axes_)}}; }
  TransformPtr draw(Rng& rng) const override {
    std::array<bool, 3> chosen{false, false, false};
    bool any = false;
    for (int i = 0; i < 3; ++i) {
      const bool draw = rng.bernoulli(p_);  // always draw, so streams do not depend on axes
      chosen[i] = axes_[i] && draw;
      any |= chosen[i];
    }
    return any ? make_flip(chosen) : nullptr;
  }

 private:
  double p_;
  std::array<bool, 3> axes_;
};

// ---- parameter parsing ---------------------------------------------------------------------
// "x;y;z" lists: one value applies to every axis, two give x;y (z gets `z_fallback`).
std::vector<double> xyz_list(ParamReader& p, const std::string& op, const std::string& key,
                             std::vector<double> fallback, double z_fallback) {
  std::vector<double> v = p.numbers(key, std::move(fallback));
  if (v.size() == 1) v = {v[0], v[0], v[0]};
  else if (v.size() == 2) v.push_back(z_fallback);
  if (v.size() != 3) throw UsageError("'" + op + "': '" + key + "' takes x;y or x;y;z (or one value)");
  return v;
}

Vec3 xyz_mm(ParamReader& p, const std::string& op, const std::string& key, Vec3 fallback) {
  const auto v = xyz_list(p, op, key, {fallback[0], fallback[1], fallback[2]}, 0.0);
  for (double d : v)
    if (d < 0) throw UsageError("'" + op + "': '" + key + "' must not be negative");
  return {v[0], v[1], v[2]};
}

int64_t whole(const std::string& op, const std::string& key, double d) {
  if (d != std::floor(d)) throw UsageError("'" + op + "': '" + key + "' must be whole voxels");
  // Also keeps the cast below defined: no axis is longer than the reader's voxel limit.
  if (std::abs(d) > static_cast<double>(max_voxels()))
    throw UsageError("'" + op + "': '" + key + "' is larger than the voxel limit " + std::to_string(max_voxels()) +
                     " (MEDLENS_MAX_VOXELS)");
  return static_cast<int64_t>(d);
}

std::array<int64_t, 3> xyz_voxels(ParamReader& p, const std::string& op, const std::string& key,
                                  std::array<int64_t, 3> fallback) {
  const auto v = xyz_list(p, op, key, {static_cast<double>(fallback[0]), static_cast<double>(fallback[1]),
                                       static_cast<double>(fallback[2])}, 0.0);
  return {whole(op, key, v[0]), whole(op, key, v[1]), whole(op, key, v[2])};
}

// Margins: one value (every side), x;y / x;y;z (both sides of each axis) or 4/6 values lo;hi.
std::array<int64_t, 6> pad_margins(ParamReader& p) {
  const std::vector<double> v = p.numbers("margin", {0});
  std::array<int64_t, 6> m{};
  if (v.size() == 4 || v.size() == 6) {
    for (size_t i = 0; i < v.size(); ++i) m[i] = whole("pad", "margin", v[i]);
    return m;
  }
  if (v.size() > 3) throw UsageError("'pad': 'margin' takes 1, 2, 3, 4 or 6 values");
  for (int a = 0; a < 3; ++a) {
    const double d = v.size() == 1 ? v[0] : a < static_cast<int>(v.size()) ? v[static_cast<size_t>(a)] : 0.0;
    m[2 * a] = m[2 * a + 1] = whole("pad", "margin", d);
  }
  return m;
}

}  // namespace

TransformPtr make_flip(std::array<bool, 3> axes) { return std::make_shared<Flip>(axes); }
TransformPtr make_random_flip(double p, std::array<bool, 3> axes) {
  return std::make_shared<RandomFlip>(p, axes);
}
TransformPtr make_resample(const ResampleOptions& o) { return std::make_shared<Resample>(o); }
TransformPtr make_resize(const ResizeOptions& o) { return std::make_shared<Resize>(o); }
TransformPtr make_crop(const CropBox& box) { return std::make_shared<Crop>(box); }
TransformPtr make_center_crop(std::array<int64_t, 3> size) { return std::make_shared<CenterCrop>(size); }
TransformPtr make_pad(const PadOptions& o) { return std::make_shared<Pad>(o); }
TransformPtr make_foreground_crop(const ForegroundCropOptions& o) { return std::make_shared<ForegroundCrop>(o); }
TransformPtr make_grey() { return std::make_shared<Grey>(); }
TransformPtr make_repeat_channels(int64_t n) { return std::make_shared<RepeatChannels>(n); }

void register_spatial(TransformRegistry& r) {
  r.add("flip", "spatial", "mirror along index axes: axes=x|y|z|xy|...", [](const nlohmann::json& j) {
    ParamReader p("flip", j);
    const auto axes = parse_axes("flip", p.text("axes", "x"));
    p.finish();
    return make_flip(axes);
  });
  r.add("random-flip", "augment", "flip each of axes=x with probability p=0.5", [](const nlohmann::json& j) {
    ParamReader p("random-flip", j);
    const double prob = p.number_in("p", 0.5, 0, 1);
    const auto axes = parse_axes("random-flip", p.text("axes", "x"));
    p.finish();
    return make_random_flip(prob, axes);
  });
  r.add("resample", "spatial",
        "to a voxel spacing in mm, same extent: spacing=1 (x;y;z, 0 keeps an axis), "
        "interpolation=linear|bspline|nearest",
        [](const nlohmann::json& j) {
          ParamReader p("resample", j);
          ResampleOptions o;
          o.spacing = xyz_mm(p, "resample", "spacing", o.spacing);
          const std::string how = p.choice("interpolation", "linear", {"linear", "bspline", "nearest"});
          o.interpolation = how == "nearest" ? Interpolation::kNearest
                            : how == "linear" ? Interpolation::kLinear
                                              : Interpolation::kBSpline;
          p.finish();
          return make_resample(o);
        });
  r.add("resize", "spatial", "to a voxel shape, same extent: size=224;224 (x;y[;z]), mode=linear|area|nearest",
        [](const nlohmann::json& j) {
          ParamReader p("resize", j);
          ResizeOptions o;
          o.size = xyz_voxels(p, "resize", "size", o.size);
          const std::string mode = p.choice("mode", "linear", {"linear", "area", "nearest"});
          o.mode = mode == "nearest" ? ResizeMode::kNearest : mode == "linear" ? ResizeMode::kLinear : ResizeMode::kArea;
          p.finish();
          return make_resize(o);
        });
  r.add("crop", "spatial", "a box of voxels: start=0;0;0 (x;y;z), size=0;0;0 (0: to the end)",
        [](const nlohmann::json& j) {
          ParamReader p("crop", j);
          CropBox box;
          box.start = xyz_voxels(p, "crop", "start", box.start);
          box.size = xyz_voxels(p, "crop", "size", box.size);
          p.finish();
          return make_crop(box);
        });
  r.add("center-crop", "spatial", "the central size=224;224 (x;y[;z]) voxels; smaller axes kept",
        [](const nlohmann::json& j) {
          ParamReader p("center-crop", j);
          const auto size = xyz_voxels(p, "center-crop", "size", {224, 224, 0});
          p.finish();
          return make_center_crop(size);
        });
  r.add("pad", "spatial",
        "to size=x;y[;z] or by margin=0 (n | x;y;z | x_lo;x_hi;y_lo;y_hi;z_lo;z_hi voxels), "
        "mode=constant|edge|reflect, value=0",
        [](const nlohmann::json& j) {
          ParamReader p("pad", j);
          PadOptions o;
          o.size = xyz_voxels(p, "pad", "size", o.size);
          o.margins = pad_margins(p);
          const std::string mode = p.choice("mode", "constant", {"constant", "edge", "reflect"});
          o.mode = mode == "constant" ? PadMode::kConstant : mode == "edge" ? PadMode::kEdge : PadMode::kReflect;
          o.value = p.number("value", 0);
          p.finish();
          return make_pad(o);
        });
  r.add("foreground-crop", "spatial", "bounding box of voxels above threshold=0, plus margin=0 mm (x;y;z)",
        [](const nlohmann::json& j) {
          ParamReader p("foreground-crop", j);
          ForegroundCropOptions o;
          o.threshold = p.number("threshold", 0);
          o.margin_mm = xyz_mm(p, "foreground-crop", "margin", o.margin_mm);
          p.finish();
          return make_foreground_crop(o);
        });
  r.add("grey", "intensity", "RGB to one channel, 0.2125 R + 0.7154 G + 0.0721 B (skimage rgb2gray)",
        [](const nlohmann::json& j) {
          ParamReader p("grey", j);
          p.finish();
          return make_grey();
        });
  r.add("repeat-channels", "intensity", "one channel repeated n=3 times", [](const nlohmann::json& j) {
    ParamReader p("repeat-channels", j);
    const int64_t n = p.integer("n", 3);
    p.finish();
    return make_repeat_channels(n);
  });
}

Image resample_onto(const Image& image, const Shape& shape, const Geometry& geometry, bool nearest) {
  // Index positions in `image` of every output voxel centre: idx = M^-1 (p - o), where the
  // output's p = o' + D' S' i'. Both maps are affine, so compose them once.
  const Geometry& g = image.geometry();
  auto to_index = [&](const Vec3& i) { return g.lps_to_index(geometry.index_to_lps(i)); };
  const Vec3 base = to_index({0, 0, 0});
  Vec3 step[3];
  for (int a = 0; a < 3; ++a) {
    Vec3 e{0, 0, 0};
    e[a] = 1;
    const Vec3 p = to_index(e);
    step[a] = {p[0] - base[0], p[1] - base[1], p[2] - base[2]};
  }
  const bool flat = image.depth() == 1 && shape.z == 1;
  const auto opts = at::TensorOptions().dtype(at::kDouble);
  const at::Tensor zi = at::arange(shape.z, opts).view({shape.z, 1, 1});
  const at::Tensor yi = at::arange(shape.y, opts).view({1, shape.y, 1});
  const at::Tensor xi = at::arange(shape.x, opts).view({1, 1, shape.x});
  std::vector<at::Tensor> comps;
  const int64_t sizes[3] = {image.width(), image.height(), image.depth()};
  for (int c = 0; c < (flat ? 2 : 3); ++c) {
    // Normalised grid_sample coordinates (align_corners=true): -1 + 2 idx / (n - 1); an axis of
    // one voxel is either on it (0) or outside (2).
    at::Tensor idx = base[c] + xi * step[0][c] + yi * step[1][c] + zi * step[2][c];
    if (sizes[c] > 1) comps.push_back(-1.0 + 2.0 * idx / static_cast<double>(sizes[c] - 1));
    else comps.push_back(at::where(idx.abs() < 0.5, at::zeros_like(idx), at::full_like(idx, 2.0)));
  }
  const int64_t mode = nearest ? 1 : 0;  // grid_sampler: 0 bilinear, 1 nearest
  at::Tensor out;
  if (flat) {
    at::Tensor grid = at::stack({comps[0], comps[1]}, -1).select(0, 0).unsqueeze(0).to(at::kFloat);  // (1,H,W,2)
    out = at::grid_sampler(image.voxels().select(1, 0).unsqueeze(0), grid, mode, 0, true)
              .squeeze(0).unsqueeze(1);
  } else {
    at::Tensor grid = at::stack(comps, -1).unsqueeze(0).to(at::kFloat);  // (1,D,H,W,3)
    out = at::grid_sampler(image.voxels().unsqueeze(0), grid, mode, 0, true).squeeze(0);
  }
  return Image(out.contiguous(), geometry, image.metadata());
}

}  // namespace medlens
