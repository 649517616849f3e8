#include "findings/findings.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "core/error.h"
#include "core/image.h"
#include "transforms/morphology.h"

namespace medlens {
namespace {

// In-slice physical coordinates (mm) in an orthonormal frame whose first axis is the image's x
// axis: exact distances even when x and y are not at right angles.
struct Plane {
  double sx, sy, cos_xy, sin_xy;
  std::array<double, 2> at(double x, double y) const { return {x * sx + y * sy * cos_xy, y * sy * sin_xy}; }
  // In-plane voxel size along unit direction u: the spacing ellipse's width, so exactly the pixel
  // spacing in every direction when it is isotropic.
  double voxel_along(const std::array<double, 2>& u) const { return std::hypot(u[0] * sx, u[1] * sy); }
};

using P2 = std::array<double, 2>;

double cross(const P2& o, const P2& a, const P2& b) {
  return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
}

// Andrew's monotone chain; collinear points dropped. Returns 1 or 2 points for degenerate input.
std::vector<P2> convex_hull(std::vector<P2> p) {
  std::sort(p.begin(), p.end());
  p.erase(std::unique(p.begin(), p.end()), p.end());
  if (p.size() < 3) return p;
  std::vector<P2> h(2 * p.size());
  size_t k = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    while (k >= 2 && cross(h[k - 2], h[k - 1], p[i]) <= 0) --k;
    h[k++] = p[i];
  }
  for (size_t i = p.size() - 1, t = k + 1; i-- > 0;) {
    while (k >= t && cross(h[k - 2], h[k - 1], p[i]) <= 0) --k;
    h[k++] = p[i];
  }
  h.resize(k - 1);
  return h;
}

struct Diameters {
  double longest = 0, perpendicular = 0;
};

// RECIST-style diameters of one cross-section from the centres of its voxels (only those at
// the ends of each row are needed: every hull vertex is one). The longest diameter joins the two
// furthest centres and adds one voxel size along that line, so n voxels in a row measure
// n x spacing and a single voxel one spacing; the perpendicular one is the extent of the centres
// at right angles to it plus one voxel size along that direction.
Diameters axial_diameters(const std::vector<P2>& centres, const Plane& plane) {
  const std::vector<P2> h = convex_hull(centres);
  auto measure_along = [&](const P2& u, double centre_distance) {
    const P2 v{-u[1], u[0]};
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (const P2& q : h) lo = std::min(lo, q[0] * v[0] + q[1] * v[1]), hi = std::max(hi, q[0] * v[0] + q[1] * v[1]);
    return Diameters{centre_distance + plane.voxel_along(u), hi - lo + plane.voxel_along(v)};
  };
  if (h.size() == 1) return measure_along({1, 0}, 0);
  Diameters best;
  double best_distance = -1;
  for (size_t a = 0; a < h.size(); ++a)
    for (size_t b = a + 1; b < h.size(); ++b) {
      const double dx = h[b][0] - h[a][0], dy = h[b][1] - h[a][1], d = std::hypot(dx, dy);
      if (d < best_distance - 1e-9) continue;
      // Equally long pairs (a square's two diagonals) keep the larger perpendicular, so the
      // result does not depend on the hull's order.
      const Diameters m = measure_along({dx / d, dy / d}, d);
      if (d > best_distance + 1e-9 || m.perpendicular > best.perpendicular) best = m, best_distance = std::max(d, best_distance);
    }
  return best;
}

struct Grid {
  int64_t x, y, z;
};

// Everything about one component from its voxels' flat indices (ascending, so grouped by slice,
// then row).
Finding measure(const std::vector<int64_t>& idx, const Grid g, const Image& prob, const Image* intensity) {
  const Geometry& geo = prob.geometry();
  const Vec3 ax = geo.axis(0), ay = geo.axis(1);
  const double c = dot(ax, ay);
  const Plane plane{geo.spacing[0], geo.spacing[1], c, std::sqrt(std::max(0.0, 1 - c * c))};
  const int64_t plane_voxels = g.x * g.y, grid_voxels = plane_voxels * g.z;
  const float* p = prob.data();
  const int64_t channels = intensity ? intensity->channels() : 0;
  const float* in = intensity ? intensity->data() : nullptr;

  Finding f;
  f.planar = g.z == 1;
  f.voxels = static_cast<int64_t>(idx.size());
  f.mean_intensity.assign(static_cast<size_t>(channels), 0.0);
  f.max_intensity.assign(static_cast<size_t>(channels), -std::numeric_limits<double>::infinity());
  std::array<int64_t, 6> box{g.x, g.y, g.z, -1, -1, -1};
  Vec3 sum{0, 0, 0};
  double prob_sum = 0, prob_max = -std::numeric_limits<double>::infinity();
  std::vector<std::pair<int64_t, int64_t>> slice_area;  // (z, voxels)
  double best_diameter = -1;
  for (size_t s = 0; s < idx.size();) {
    // One slice: [s, e).
    const int64_t z = idx[s] / plane_voxels;
    size_t e = s;
    std::vector<P2> row_ends;
    while (e < idx.size() && idx[e] / plane_voxels == z) {
      const int64_t y = (idx[e] % plane_voxels) / g.x;
      const size_t row = e;
      while (e < idx.size() && idx[e] / plane_voxels == z && (idx[e] % plane_voxels) / g.x == y) ++e;
      const int64_t x0 = idx[row] % g.x, x1 = idx[e - 1] % g.x;
      row_ends.push_back(plane.at(static_cast<double>(x0), static_cast<double>(y)));
      if (x1 != x0) row_ends.push_back(plane.at(static_cast<double>(x1), static_cast<double>(y)));
    }
    for (size_t k = s; k < e; ++k) {
      const int64_t i = idx[k], x = i % g.x, y = (i % plane_voxels) / g.x;
      const std::array<int64_t, 3> pos{x, y, z};
      for (int a = 0; a < 3; ++a) {
        box[a] = std::min(box[a], pos[a]);
        box[3 + a] = std::max(box[3 + a], pos[a]);
        sum[a] += static_cast<double>(pos[a]);
      }
      prob_sum += p[i];
      prob_max = std::max(prob_max, static_cast<double>(p[i]));
      for (int64_t ch = 0; ch < channels; ++ch) {
        const double v = in[ch * grid_voxels + i];
        f.mean_intensity[static_cast<size_t>(ch)] += v;
        f.max_intensity[static_cast<size_t>(ch)] = std::max(f.max_intensity[static_cast<size_t>(ch)], v);
      }
    }
    slice_area.emplace_back(z, static_cast<int64_t>(e - s));
    const Diameters d = axial_diameters(row_ends, plane);
    if (d.longest > best_diameter + 1e-9 ||
        (d.longest > best_diameter - 1e-9 && d.perpendicular > f.perpendicular_diameter_mm)) {
      best_diameter = d.longest;
      f.longest_axial_diameter_mm = d.longest;
      f.perpendicular_diameter_mm = d.perpendicular;
      f.diameter_slice = z;
    }
    s = e;
  }
  const double n = static_cast<double>(f.voxels);
  f.probability = prob_max;
  f.mean_probability = prob_sum / n;
  for (auto& m : f.mean_intensity) m /= n;
  f.centroid_voxel = {sum[0] / n, sum[1] / n, sum[2] / n};
  f.centroid_lps = geo.index_to_lps(f.centroid_voxel);
  f.bbox_voxel = box;
  // Among equally large cross-sections, the one nearest the centroid is the one to show.
  auto nearer = [&](const std::pair<int64_t, int64_t>& a, const std::pair<int64_t, int64_t>& b) {
    if (a.second != b.second) return a.second > b.second;
    return std::abs(static_cast<double>(a.first) - f.centroid_voxel[2]) < std::abs(static_cast<double>(b.first) - f.centroid_voxel[2]);
  };
  f.best_slice = std::min_element(slice_area.begin(), slice_area.end(), nearer)->first;
  const double voxel_size = geo.spacing[0] * geo.spacing[1] * (f.planar ? 1.0 : geo.spacing[2]);
  f.volume_mm3 = n * voxel_size;
  // The LPS box holds the footprints (index +-0.5) of the eight corner voxels.
  for (int a = 0; a < 3; ++a) f.bbox_lps_min[a] = std::numeric_limits<double>::infinity(), f.bbox_lps_max[a] = -f.bbox_lps_min[a];
  for (int corner = 0; corner < 8; ++corner) {
    Vec3 index{};
    for (int a = 0; a < 3; ++a)
      index[a] = static_cast<double>((corner >> a) & 1 ? box[3 + a] : box[a]) + ((corner >> a) & 1 ? 0.5 : -0.5);
    const Vec3 q = geo.index_to_lps(index);
    for (int a = 0; a < 3; ++a)
      f.bbox_lps_min[a] = std::min(f.bbox_lps_min[a], q[a]), f.bbox_lps_max[a] = std::max(f.bbox_lps_max[a], q[a]);
  }
  return f;
}

void check(const Image& prob, const Image* intensity, const FindingOptions& o) {
  if (prob.channels() != 1)
    throw UsageError("extract_findings: the probability map has " + std::to_string(prob.channels()) +
                     " channels; pass one channel (select the lesion class first)");
  if (intensity && (intensity->depth() != prob.depth() || intensity->height() != prob.height() ||
                    intensity->width() != prob.width()))
    throw UsageError("extract_findings: the intensity image (" + std::to_string(intensity->width()) + "x" +
                     std::to_string(intensity->height()) + "x" + std::to_string(intensity->depth()) +
                     ") is not on the probability map's grid (" + std::to_string(prob.width()) + "x" +
                     std::to_string(prob.height()) + "x" + std::to_string(prob.depth()) + "); resample it first");
  if (std::isnan(o.threshold)) throw UsageError("extract_findings: the threshold is NaN");
  if (o.min_voxels < 0 || !(o.min_volume_mm3 >= 0))
    throw UsageError("extract_findings: min_voxels and min_volume_mm3 must be >= 0");
}

}  // namespace

std::vector<Finding> extract_findings(const Image& prob, const Image* intensity, const FindingOptions& o, Image* labels) {
  check(prob, intensity, o);
  const Grid g{prob.width(), prob.height(), prob.depth()};
  // Filling first (in 3-D, or in the plane of a 2-D image) also swallows a component lying in
  // another's cavity: it is part of that lesion.
  const Image mask = o.fill_holes ? (*make_fill_holes(o.threshold, false))(prob) : prob;
  ComponentOptions co;
  co.threshold = o.fill_holes ? 0.5 : o.threshold;
  co.full_connectivity = true;
  Image label_map;
  const size_t count = connected_components(mask, co, &label_map).size();

  std::vector<std::vector<int64_t>> members(count);
  const float* l = label_map.data();
  for (int64_t i = 0; i < g.x * g.y * g.z; ++i)
    if (l[i] > 0) members[static_cast<size_t>(l[i]) - 1].push_back(i);

  std::vector<Finding> found;
  std::vector<size_t> source;  // component index of each finding
  for (size_t k = 0; k < count; ++k) {
    if (static_cast<int64_t>(members[k].size()) < o.min_voxels) continue;
    Finding f = measure(members[k], g, prob, intensity);
    if (f.volume_mm3 < o.min_volume_mm3) continue;
    found.push_back(std::move(f));
    source.push_back(k);
  }
  std::vector<size_t> order(found.size());
  for (size_t k = 0; k < order.size(); ++k) order[k] = k;
  if (o.largest_only && !order.empty()) {
    // Components come largest first; among equal sizes the more probable one wins.
    size_t best = 0;
    for (size_t k = 1; k < found.size(); ++k)
      if (found[k].voxels == found[best].voxels && found[k].probability > found[best].probability) best = k;
    order = {best};
  }
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (found[a].probability != found[b].probability) return found[a].probability > found[b].probability;
    return found[a].voxels > found[b].voxels;
  });

  std::vector<Finding> out;
  std::vector<float> id_of(count + 1, 0.0f);
  for (size_t k : order) {
    out.push_back(std::move(found[k]));
    out.back().id = static_cast<int>(out.size());
    id_of[source[k] + 1] = static_cast<float>(out.size());
  }
  if (labels) {
    at::Tensor map = at::zeros({1, g.z, g.y, g.x}, at::kFloat);
    float* m = map.data_ptr<float>();
    for (int64_t i = 0; i < g.x * g.y * g.z; ++i) m[i] = id_of[static_cast<size_t>(l[i])];
    *labels = label_map.with_voxels(map);
  }
  return out;
}

nlohmann::json to_json(const Finding& f) {
  nlohmann::json j = {
      {"id", f.id},
      {"probability", f.probability},
      {"mean_probability", f.mean_probability},
      {"centroid_voxel", f.centroid_voxel},
      {"centroid_lps", f.centroid_lps},
      {"bbox_voxel", f.bbox_voxel},
      {"bbox_lps", {{"min", f.bbox_lps_min}, {"max", f.bbox_lps_max}}},
      {"voxels", f.voxels},
      {f.planar ? "area_mm2" : "volume_mm3", f.volume_mm3},
      {"longest_axial_diameter_mm", f.longest_axial_diameter_mm},
      {"perpendicular_diameter_mm", f.perpendicular_diameter_mm},
      {"diameter_slice", f.diameter_slice},
      {"best_slice", f.best_slice},
      {"mean_intensity", f.mean_intensity},
      {"max_intensity", f.max_intensity},
  };
  return j;
}

}  // namespace medlens
