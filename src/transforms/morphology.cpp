#include "transforms/morphology.h"

#include <ATen/ATen.h>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>

#include "core/error.h"
#include "io/opencv_bridge.h"
#include "transforms/base.h"
#include "transforms/params.h"
#include "transforms/registry.h"

namespace medlens {
namespace {

// ---- connected components (union-find, two passes) ------------------------------------------
struct Grid {
  int64_t z, y, x;
  int64_t voxels() const { return z * y * x; }
};

struct Labelling {
  std::vector<int32_t> labels;  // 0 background, 1..count in raster order of the first voxel
  int32_t count = 0;
};

// Neighbours visited before a voxel in raster order, as (dz, dy, dx): through faces only or any
// contact, and only within the slice when `planar`.
std::vector<std::array<int64_t, 3>> backward_offsets(bool full, bool planar) {
  std::vector<std::array<int64_t, 3>> out;
  for (int64_t dz = -1; dz <= 0; ++dz)
    for (int64_t dy = -1; dy <= 1; ++dy)
      for (int64_t dx = -1; dx <= 1; ++dx) {
        const bool before = dz < 0 || (dz == 0 && (dy < 0 || (dy == 0 && dx < 0)));
        if (!before || (planar && dz != 0)) continue;
        if (!full && std::abs(dz) + std::abs(dy) + std::abs(dx) != 1) continue;
        out.push_back({dz, dy, dx});
      }
  return out;
}

Labelling label_mask(const std::vector<uint8_t>& mask, Grid g, bool full, bool planar) {
  const auto offsets = backward_offsets(full, planar);
  Labelling out;
  out.labels.assign(static_cast<size_t>(g.voxels()), 0);
  std::vector<int32_t> parent{0};
  auto find = [&](int32_t a) {
    while (parent[a] != a) a = parent[a] = parent[parent[a]];
    return a;
  };
  int64_t i = 0;
  for (int64_t z = 0; z < g.z; ++z)
    for (int64_t y = 0; y < g.y; ++y)
      for (int64_t x = 0; x < g.x; ++x, ++i) {
        if (!mask[i]) continue;
        int32_t l = 0;
        for (const auto& o : offsets) {
          const int64_t nz = z + o[0], ny = y + o[1], nx = x + o[2];
          if (nz < 0 || ny < 0 || ny >= g.y || nx < 0 || nx >= g.x) continue;
          int32_t m = out.labels[i + (o[0] * g.y + o[1]) * g.x + o[2]];
          if (!m) continue;
          m = find(m);
          if (!l) l = m;
          else if (m < l) parent[l] = m, l = m;
          else if (m > l) parent[m] = l;
        }
        if (!l) {
          l = static_cast<int32_t>(parent.size());
          parent.push_back(l);
        }
        out.labels[i] = l;
      }
  // Roots are the smallest provisional label of each set, so numbering roots in increasing order
  // numbers components by their first voxel.
  std::vector<int32_t> final_label(parent.size(), 0);
  for (size_t p = 1; p < parent.size(); ++p)
    if (find(static_cast<int32_t>(p)) == static_cast<int32_t>(p)) final_label[p] = ++out.count;
  for (auto& l : out.labels)
    if (l) l = final_label[find(l)];
  return out;
}

Grid grid_of(const Image& image) { return {image.depth(), image.height(), image.width()}; }

std::vector<uint8_t> bytes(const at::Tensor& mask) {
  const at::Tensor m = mask.to(at::kByte).contiguous();
  return std::vector<uint8_t>(m.data_ptr<uint8_t>(), m.data_ptr<uint8_t>() + m.numel());
}

// Components of one channel, largest first, and the label map (float, 0..N) in that order.
std::pair<std::vector<ComponentStats>, at::Tensor> components_of(const at::Tensor& channel, const Image& image,
                                                                  const ComponentOptions& o) {
  const Grid g = grid_of(image);
  const Labelling l = label_mask(bytes(channel > o.threshold), g, o.full_connectivity, false);
  std::vector<ComponentStats> stats(static_cast<size_t>(l.count));
  std::vector<Vec3> sums(static_cast<size_t>(l.count), Vec3{0, 0, 0});
  for (auto& s : stats) {
    s.min_index = {g.x, g.y, g.z};
    s.max_index = {-1, -1, -1};
  }
  int64_t i = 0;
  for (int64_t z = 0; z < g.z; ++z)
    for (int64_t y = 0; y < g.y; ++y)
      for (int64_t x = 0; x < g.x; ++x, ++i) {
        const int32_t lab = l.labels[static_cast<size_t>(i)];
        if (!lab) continue;
        ComponentStats& s = stats[static_cast<size_t>(lab - 1)];
        const std::array<int64_t, 3> p{x, y, z};
        ++s.voxels;
        for (int a = 0; a < 3; ++a) {
          s.min_index[a] = std::min(s.min_index[a], p[a]);
          s.max_index[a] = std::max(s.max_index[a], p[a]);
          sums[static_cast<size_t>(lab - 1)][a] += static_cast<double>(p[a]);
        }
      }
  const Geometry& geo = image.geometry();
  const double voxel_mm3 = geo.spacing[0] * geo.spacing[1] * geo.spacing[2];
  for (size_t k = 0; k < stats.size(); ++k) {
    ComponentStats& s = stats[k];
    s.label = static_cast<int64_t>(k) + 1;  // raster order, for now
    s.volume_mm3 = static_cast<double>(s.voxels) * voxel_mm3;
    const double n = static_cast<double>(s.voxels);
    s.centroid_lps = geo.index_to_lps({sums[k][0] / n, sums[k][1] / n, sums[k][2] / n});
  }
  std::stable_sort(stats.begin(), stats.end(),
                   [](const ComponentStats& a, const ComponentStats& b) { return a.voxels > b.voxels; });
  std::vector<float> rank(static_cast<size_t>(l.count) + 1, 0.0f);
  std::vector<ComponentStats> kept;
  for (auto& s : stats) {
    if (s.voxels < o.min_voxels || s.volume_mm3 < o.min_volume_mm3) continue;
    rank[static_cast<size_t>(s.label)] = static_cast<float>(kept.size() + 1);
    s.label = static_cast<int64_t>(kept.size()) + 1;
    kept.push_back(s);
  }
  at::Tensor map = at::empty({g.z, g.y, g.x}, at::kFloat);
  float* out = map.data_ptr<float>();
  for (size_t v = 0; v < l.labels.size(); ++v) out[v] = rank[static_cast<size_t>(l.labels[v])];
  return {std::move(kept), map};
}

// A label map, mask or edge map in the image's geometry: display settings of the source no
// longer apply.
Image as_map(const Image& like, const at::Tensor& voxels) {
  Image out = like.with_voxels(voxels);
  out.metadata().window.reset();
  out.metadata().units.clear();
  out.metadata().photometric = "MONOCHROME2";
  return out;
}

at::Tensor per_channel(const Image& image, const std::function<at::Tensor(const at::Tensor&)>& f) {
  std::vector<at::Tensor> out;
  for (int64_t c = 0; c < image.channels(); ++c) out.push_back(f(image.voxels()[c]));
  return at::stack(out, 0);
}

int64_t connectivity_number(bool full) { return full ? 26 : 6; }

class ConnectedComponents final : public IntensityTransform {
 public:
  explicit ConnectedComponents(ComponentOptions o) : o_(o) {}
  std::string name() const override { return "connected-components"; }
  nlohmann::json params() const override {
    return {{"threshold", o_.threshold},
            {"connectivity", connectivity_number(o_.full_connectivity)},
            {"min_size", o_.min_voxels},
            {"min_volume", o_.min_volume_mm3}};
  }

 protected:
  Image transform_image(const Image& image) const override {
    return as_map(image, per_channel(image, [&](const at::Tensor& ch) { return components_of(ch, image, o_).second; }));
  }

 private:
  ComponentOptions o_;
};

class LargestComponent final : public IntensityTransform {
 public:
  LargestComponent(double threshold, bool full) {
    o_.threshold = threshold;
    o_.full_connectivity = full;
  }
  std::string name() const override { return "largest-component"; }
  nlohmann::json params() const override {
    return {{"threshold", o_.threshold}, {"connectivity", connectivity_number(o_.full_connectivity)}};
  }

 protected:
  Image transform_image(const Image& image) const override {
    return as_map(image, per_channel(image, [&](const at::Tensor& ch) {
                    return (components_of(ch, image, o_).second == 1).to(at::kFloat);
                  }));
  }

 private:
  ComponentOptions o_;
};

class FillHoles final : public IntensityTransform {
 public:
  FillHoles(double threshold, bool per_slice) : threshold_(threshold), per_slice_(per_slice) {}
  std::string name() const override { return "fill-holes"; }
  nlohmann::json params() const override { return {{"threshold", threshold_}, {"per_slice", per_slice_}}; }

 protected:
  Image transform_image(const Image& image) const override {
    const Grid g = grid_of(image);
    const bool planar = per_slice_ || !image.is_3d();
    return as_map(image, per_channel(image, [&](const at::Tensor& ch) {
      // Holes: background components (face-connected) that touch no border of the slice/volume.
      const Labelling bg = label_mask(bytes(ch <= threshold_), g, false, planar);
      std::vector<uint8_t> open(static_cast<size_t>(bg.count) + 1, 0);
      int64_t i = 0;
      for (int64_t z = 0; z < g.z; ++z)
        for (int64_t y = 0; y < g.y; ++y)
          for (int64_t x = 0; x < g.x; ++x, ++i) {
            const bool border = x == 0 || y == 0 || x == g.x - 1 || y == g.y - 1 ||
                                (!planar && (z == 0 || z == g.z - 1));
            if (border) open[static_cast<size_t>(bg.labels[static_cast<size_t>(i)])] = 1;
          }
      at::Tensor out = at::empty({g.z, g.y, g.x}, at::kFloat);
      float* p = out.data_ptr<float>();
      for (size_t v = 0; v < bg.labels.size(); ++v) p[v] = bg.labels[v] && open[static_cast<size_t>(bg.labels[v])] ? 0.f : 1.f;
      return out;
    }));
  }

 private:
  double threshold_;
  bool per_slice_;
};

// ---- grey-scale morphology (OpenCV, slice by slice) -----------------------------------------
// The ball as one in-plane kernel per z offset: a 3-D flat erosion is the minimum over dz of
// the 2-D erosions of slice z + dz with that offset's disk.
struct Footprint {
  int rz = 0;
  std::vector<cv::Mat> kernels;  // CV_8U, index dz + rz
};

Footprint ball(const Vec3& spacing, double radius, bool volumetric) {
  const double r2 = radius * radius * (1 + 1e-9);  // a radius of exactly k voxels includes them
  auto reach = [&](double s) { return static_cast<int>(std::floor(radius / s * std::sqrt(1 + 1e-9))); };
  const int rx = reach(spacing[0]), ry = reach(spacing[1]);
  Footprint f;
  f.rz = volumetric ? reach(spacing[2]) : 0;
  for (int dz = -f.rz; dz <= f.rz; ++dz) {
    cv::Mat k = cv::Mat::zeros(2 * ry + 1, 2 * rx + 1, CV_8U);
    for (int dy = -ry; dy <= ry; ++dy)
      for (int dx = -rx; dx <= rx; ++dx) {
        const double d2 = std::pow(dx * spacing[0], 2) + std::pow(dy * spacing[1], 2) + std::pow(dz * spacing[2], 2);
        if (d2 <= r2) k.at<uint8_t>(dy + ry, dx + rx) = 1;
      }
    f.kernels.push_back(k);
  }
  return f;
}

// Flat erosion (or dilation) of every channel; voxels outside the image are ignored.
Image grey_morphology(const Image& image, const Footprint& f, bool dilate) {
  at::Tensor out = at::full(image.voxels().sizes(), dilate ? -INFINITY : INFINITY, at::kFloat);
  const Image result = image.with_voxels(out);
  cv::Mat tmp;
  for (int64_t c = 0; c < image.channels(); ++c)
    for (int64_t z = 0; z < image.depth(); ++z) {
      cv::Mat dst = plane_view(result, z, c);
      for (int dz = -f.rz; dz <= f.rz; ++dz) {
        if (z + dz < 0 || z + dz >= image.depth()) continue;
        const cv::Mat src = plane_view(image, z + dz, c);
        const cv::Mat& k = f.kernels[static_cast<size_t>(dz + f.rz)];
        if (dilate) {
          cv::dilate(src, tmp, k, cv::Point(-1, -1), 1, cv::BORDER_CONSTANT, cv::morphologyDefaultBorderValue());
          cv::max(dst, tmp, dst);
        } else {
          cv::erode(src, tmp, k, cv::Point(-1, -1), 1, cv::BORDER_CONSTANT, cv::morphologyDefaultBorderValue());
          cv::min(dst, tmp, dst);
        }
      }
    }
  return result;
}

const char* morphology_name(MorphologyOp op) {
  switch (op) {
    case MorphologyOp::kErode: return "erode";
    case MorphologyOp::kDilate: return "dilate";
    case MorphologyOp::kOpen: return "open";
    case MorphologyOp::kClose: return "close";
  }
  return "";
}

class Morphology final : public IntensityTransform {
 public:
  Morphology(MorphologyOp op, double radius) : op_(op), radius_(radius) {
    if (!(radius_ >= 0) || !std::isfinite(radius_))
      throw UsageError(std::string("'") + morphology_name(op_) + "': radius must be a non-negative number of mm");
  }
  std::string name() const override { return morphology_name(op_); }
  nlohmann::json params() const override { return {{"radius", radius_}}; }

 protected:
  Image transform_image(const Image& image) const override {
    const Vec3& sp = image.geometry().spacing;
    check_window(name(), radius_ / sp[0], radius_ / sp[1], image.is_3d() ? radius_ / sp[2] : 0.0);
    const Footprint f = ball(sp, radius_, image.is_3d());
    switch (op_) {
      case MorphologyOp::kErode: return grey_morphology(image, f, false);
      case MorphologyOp::kDilate: return grey_morphology(image, f, true);
      case MorphologyOp::kOpen: return grey_morphology(grey_morphology(image, f, false), f, true);
      case MorphologyOp::kClose: return grey_morphology(grey_morphology(image, f, true), f, false);
    }
    return image;
  }

 private:
  MorphologyOp op_;
  double radius_;
};

// ---- edges ---------------------------------------------------------------------------------
int64_t tensor_dim(int axis) { return 3 - axis; }  // (C,Z,Y,X): x is dim 3

// v with its border voxel repeated once on each side along dim: the views at offsets 0 and 2
// are v's neighbours at index - 1 and + 1.
at::Tensor edge_padded(const at::Tensor& v, int64_t dim) {
  const int64_t n = v.size(dim);
  return at::cat({v.narrow(dim, 0, 1), v, v.narrow(dim, n - 1, 1)}, dim);
}

// Sobel gradient per mm, one tensor per axis used (x, y and, in 3-D, z).
std::vector<at::Tensor> sobel_gradient(const at::Tensor& v, const Vec3& spacing, bool volumetric) {
  const int axes = volumetric ? 3 : 2;
  std::vector<at::Tensor> out;
  for (int a = 0; a < axes; ++a) {
    const int64_t d = tensor_dim(a), n = v.size(d);
    const at::Tensor p = edge_padded(v, d);
    at::Tensor g = at::sub(p.narrow(d, 2, n), p.narrow(d, 0, n)).mul_(0.5 / spacing[a]);
    for (int b = 0; b < axes; ++b) {
      if (b == a) continue;
      const int64_t e = tensor_dim(b), m = v.size(e);
      const at::Tensor q = edge_padded(g, e);
      g = at::add(q.narrow(e, 0, m), q.narrow(e, 2, m)).add_(q.narrow(e, 1, m), 2.0).mul_(0.25);
    }
    out.push_back(g);
  }
  return out;
}

at::Tensor magnitude(const std::vector<at::Tensor>& g) {
  at::Tensor m = g[0] * g[0];
  for (size_t i = 1; i < g.size(); ++i) m.addcmul_(g[i], g[i]);
  return m.sqrt_();
}

class Sobel final : public IntensityTransform {
 public:
  explicit Sobel(bool per_slice) : per_slice_(per_slice) {}
  std::string name() const override { return "sobel"; }
  nlohmann::json params() const override { return {{"per_slice", per_slice_}}; }

 protected:
  Image transform_image(const Image& image) const override {
    const auto g = sobel_gradient(image.voxels(), image.geometry().spacing, image.is_3d() && !per_slice_);
    Image out = as_map(image, magnitude(g));
    if (!image.metadata().units.empty()) out.metadata().units = image.metadata().units + "/mm";
    return out;
  }

 private:
  bool per_slice_;
};

// Gaussian smoothing along one axis (scipy's kernel, truncated at 4 sigma) with zero padding,
// divided by the kernel weight that fell inside the image (skimage's canny normalisation), so the
// border is not darkened. Shifted multiply-adds: no im2col buffer.
at::Tensor gaussian_axis(const at::Tensor& v, int64_t dim, double sigma) {
  if (!(sigma > 0)) return v;
  const int64_t r = static_cast<int64_t>(4.0 * sigma + 0.5), n = v.size(dim);
  std::vector<double> w(static_cast<size_t>(2 * r + 1));
  for (int64_t k = -r; k <= r; ++k) w[static_cast<size_t>(k + r)] = std::exp(-0.5 * double(k * k) / (sigma * sigma));
  const double total = std::accumulate(w.begin(), w.end(), 0.0);
  for (double& x : w) x /= total;
  std::vector<int64_t> pad(static_cast<size_t>(2 * v.dim()), 0);
  pad[static_cast<size_t>(2 * (v.dim() - 1 - dim))] = pad[static_cast<size_t>(2 * (v.dim() - 1 - dim) + 1)] = r;
  const at::Tensor padded = at::constant_pad_nd(v, pad, 0);
  at::Tensor out = padded.narrow(dim, 0, n) * w[0];
  for (int64_t k = 1; k <= 2 * r; ++k) out.add_(padded.narrow(dim, k, n), w[static_cast<size_t>(k)]);
  std::vector<float> inside(static_cast<size_t>(n), 0.0f);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = std::max<int64_t>(0, r - i); k <= std::min<int64_t>(2 * r, n - 1 - i + r); ++k)
      inside[static_cast<size_t>(i)] += static_cast<float>(w[static_cast<size_t>(k)]);
  std::vector<int64_t> shape(static_cast<size_t>(v.dim()), 1);
  shape[static_cast<size_t>(dim)] = n;
  return out.div_(at::tensor(inside, at::kFloat).view(shape));
}

// Linear-interpolated quantiles (numpy's default) of all values, by selection (no full sort).
std::pair<double, double> value_quantiles(const at::Tensor& values, double q1, double q2) {
  const at::Tensor flat = values.flatten();
  const int64_t n = flat.numel();
  auto at_q = [&](double q) {
    const double pos = q * static_cast<double>(n - 1);
    const int64_t i = static_cast<int64_t>(std::floor(pos));
    const double a = std::get<0>(flat.kthvalue(i + 1)).item<double>();
    const double b = i + 1 < n ? std::get<0>(flat.kthvalue(i + 2)).item<double>() : a;
    return a + (b - a) * (pos - static_cast<double>(i));
  };
  return {at_q(q1), at_q(q2)};
}

// Voxels with magnitude >= `low` that peak along the neighbour direction closest to the
// physical gradient (strictly above the voxel behind, at least the one ahead, so a two-voxel
// ridge keeps one). m and g are one channel (Z,Y,X); only the voxels above `low` are examined.
at::Tensor non_maximum(const at::Tensor& m, const std::vector<at::Tensor>& g, const Vec3& s, bool volumetric,
                       double low) {
  const int64_t nz = m.size(0), ny = m.size(1), nx = m.size(2);
  at::Tensor out = at::zeros({nz * ny * nx}, at::kBool);
  const at::Tensor cand = (m >= low).flatten().nonzero().squeeze(1);
  if (cand.numel() == 0) return out.view({nz, ny, nx});
  // Flat indices into m padded by one zero voxel on every side, so every neighbour exists.
  const at::Tensor padded = at::constant_pad_nd(m, {1, 1, 1, 1, 1, 1}).flatten();
  const at::Tensor z = cand.div(ny * nx, "floor"), y = cand.div(nx, "floor").remainder(ny), x = cand.remainder(nx);
  const at::Tensor at_pad = ((z + 1) * (ny + 2) + (y + 1)) * (nx + 2) + (x + 1);
  const at::Tensor mk = m.flatten().index_select(0, cand);
  std::vector<at::Tensor> gk;
  for (const auto& gi : g) gk.push_back(gi.flatten().index_select(0, cand));
  at::Tensor best = at::full_like(mk, -1.0), peak = at::zeros_like(mk, at::kBool);
  for (int64_t dz = 0; dz <= (volumetric ? 1 : 0); ++dz)
    for (int64_t dy = dz > 0 ? -1 : 0; dy <= 1; ++dy)
      for (int64_t dx = (dz > 0 || dy > 0) ? -1 : 1; dx <= 1; ++dx) {  // one of each +-d pair
        const Vec3 u{static_cast<double>(dx) * s[0], static_cast<double>(dy) * s[1], static_cast<double>(dz) * s[2]};
        const double len = norm(u);
        at::Tensor score = gk[0] * (u[0] / len) + gk[1] * (u[1] / len);
        if (volumetric) score.add_(gk[2] * (u[2] / len));
        score.abs_();
        const at::Tensor better = score > best;
        best = at::maximum(best, score);
        const int64_t offset = (dz * (ny + 2) + dy) * (nx + 2) + dx;
        const at::Tensor ok = (mk > padded.index_select(0, at_pad - offset)) & (mk >= padded.index_select(0, at_pad + offset));
        peak = at::where(better, ok, peak);
      }
  out.index_fill_(0, cand.masked_select(peak), true);
  return out.view({nz, ny, nx});
}

// Voxels of `weak` whose component (any contact) holds a voxel of `strong`.
at::Tensor hysteresis(const at::Tensor& weak, const at::Tensor& strong, Grid g, bool planar) {
  const Labelling l = label_mask(bytes(weak), g, true, planar);
  const std::vector<uint8_t> s = bytes(strong);
  std::vector<uint8_t> keep(static_cast<size_t>(l.count) + 1, 0);
  for (size_t v = 0; v < s.size(); ++v)
    if (s[v]) keep[static_cast<size_t>(l.labels[v])] = 1;
  at::Tensor out = at::empty({g.z, g.y, g.x}, at::kFloat);
  float* p = out.data_ptr<float>();
  for (size_t v = 0; v < l.labels.size(); ++v) p[v] = l.labels[v] && keep[static_cast<size_t>(l.labels[v])] ? 1.f : 0.f;
  return out;
}

class Canny final : public IntensityTransform {
 public:
  explicit Canny(CannyOptions o) : o_(o) {
    if (!(o_.sigma_mm >= 0)) throw UsageError("'canny': sigma must not be negative");
    if (!(o_.low <= o_.high)) throw UsageError("'canny': low must not exceed high");
    if (o_.quantiles && !(o_.low >= 0 && o_.high <= 1))
      throw UsageError("'canny': quantile thresholds lie in [0, 1]");
  }
  std::string name() const override { return "canny"; }
  nlohmann::json params() const override {
    return {{"sigma", o_.sigma_mm}, {"low", o_.low}, {"high", o_.high}, {"quantiles", o_.quantiles},
            {"per_slice", o_.per_slice}};
  }

 protected:
  Image transform_image(const Image& image) const override {
    const Vec3& s = image.geometry().spacing;
    const bool volumetric = image.is_3d() && !o_.per_slice;
    at::Tensor v = image.voxels();
    for (int a = 0; a < (volumetric ? 3 : 2); ++a) v = gaussian_axis(v, tensor_dim(a), o_.sigma_mm / s[a]);
    const auto g = sobel_gradient(v, s, volumetric);
    const at::Tensor m = magnitude(g);
    std::vector<at::Tensor> edges;
    for (int64_t c = 0; c < image.channels(); ++c) {
      const at::Tensor mc = m[c];
      const auto [lo, hi] = o_.quantiles ? value_quantiles(mc, o_.low, o_.high) : std::pair{o_.low, o_.high};
      std::vector<at::Tensor> gc;
      for (const auto& gi : g) gc.push_back(gi[c]);
      const at::Tensor weak = non_maximum(mc, gc, s, volumetric, lo);
      edges.push_back(hysteresis(weak, weak & (mc >= hi), grid_of(image), !volumetric));
    }
    return as_map(image, at::stack(edges, 0));
  }

 private:
  CannyOptions o_;
};

}  // namespace

std::vector<ComponentStats> connected_components(const Image& binary, const ComponentOptions& options, Image* labels) {
  if (options.channel < 0 || options.channel >= binary.channels())
    throw UsageError("connected_components: channel " + std::to_string(options.channel) + " is out of range (the image has " +
                     std::to_string(binary.channels()) + ")");
  auto [stats, map] = components_of(binary.voxels()[options.channel], binary, options);
  if (labels) *labels = as_map(binary, map.unsqueeze(0));
  return stats;
}

TransformPtr make_connected_components(const ComponentOptions& o) { return std::make_shared<ConnectedComponents>(o); }
TransformPtr make_largest_component(double threshold, bool full) {
  return std::make_shared<LargestComponent>(threshold, full);
}
TransformPtr make_fill_holes(double threshold, bool per_slice) { return std::make_shared<FillHoles>(threshold, per_slice); }
TransformPtr make_morphology(MorphologyOp op, double radius_mm) { return std::make_shared<Morphology>(op, radius_mm); }
TransformPtr make_sobel(bool per_slice) { return std::make_shared<Sobel>(per_slice); }
TransformPtr make_canny(const CannyOptions& o) { return std::make_shared<Canny>(o); }

namespace {

// connectivity: 4 or 6 -> through faces, 8 or 26 -> any contact (the same rule in 2-D and 3-D).
bool full_connectivity(ParamReader& p, const std::string& op) {
  const int64_t c = p.integer("connectivity", 6);
  if (c != 4 && c != 6 && c != 8 && c != 26)
    throw UsageError("'" + op + "': connectivity is 4 or 6 (faces) or 8 or 26 (any contact)");
  return c == 8 || c == 26;
}

}  // namespace

void register_morphology(TransformRegistry& r) {
  for (MorphologyOp op : {MorphologyOp::kErode, MorphologyOp::kDilate, MorphologyOp::kOpen, MorphologyOp::kClose}) {
    const std::string name = morphology_name(op);
    r.add(name, "filter", "grey-scale " + name + " with a ball (disk in 2-D) of radius=1 mm",
          [op, name](const nlohmann::json& j) {
            ParamReader p(name, j);
            const double radius = p.number("radius", 1.0);
            p.finish();
            return make_morphology(op, radius);
          });
  }
  r.add("fill-holes", "filter", "fill background enclosed by foreground (value > threshold=0.5), per_slice=false",
        [](const nlohmann::json& j) {
          ParamReader p("fill-holes", j);
          const double t = p.number("threshold", 0.5);
          const bool per_slice = p.boolean("per_slice", false);
          p.finish();
          return make_fill_holes(t, per_slice);
        });
  r.add("connected-components", "filter",
        "label map 1..N by size of value > threshold=0.5: connectivity=6 (4|6 faces, 8|26 any), min_size=0 voxels, "
        "min_volume=0 mm^3",
        [](const nlohmann::json& j) {
          ParamReader p("connected-components", j);
          ComponentOptions o;
          o.threshold = p.number("threshold", 0.5);
          o.full_connectivity = full_connectivity(p, "connected-components");
          o.min_voxels = p.integer("min_size", 0);
          o.min_volume_mm3 = p.number("min_volume", 0);
          p.finish();
          return make_connected_components(o);
        });
  r.add("largest-component", "filter", "mask of the largest component of value > threshold=0.5, connectivity=6",
        [](const nlohmann::json& j) {
          ParamReader p("largest-component", j);
          const double t = p.number("threshold", 0.5);
          const bool full = full_connectivity(p, "largest-component");
          p.finish();
          return make_largest_component(t, full);
        });
  r.add("sobel", "filter", "gradient magnitude per mm (Sobel), per_slice=false", [](const nlohmann::json& j) {
    ParamReader p("sobel", j);
    const bool per_slice = p.boolean("per_slice", false);
    p.finish();
    return make_sobel(per_slice);
  });
  r.add("canny", "filter",
        "Canny edges: sigma=1 mm, low=0.75, high=0.9 (quantiles=true; else units per mm), per_slice=false",
        [](const nlohmann::json& j) {
          ParamReader p("canny", j);
          CannyOptions o;
          o.sigma_mm = p.number("sigma", o.sigma_mm);
          o.low = p.number("low", o.low);
          o.high = p.number("high", o.high);
          o.quantiles = p.boolean("quantiles", o.quantiles);
          o.per_slice = p.boolean("per_slice", o.per_slice);
          p.finish();
          return make_canny(o);
        });
}

}  // namespace medlens
