#include "metrics/segmentation.h"

#include <ATen/ATen.h>
#include <itkImage.h>
#include <itkImageRegionConstIterator.h>
#include <itkImportImageFilter.h>
#include <itkSignedMaurerDistanceMapImageFilter.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

#include "metrics/classification.h"

namespace medlens {
namespace {

using Mask3 = itk::Image<uint8_t, 3>;
using Dist3 = itk::Image<float, 3>;

// (Z,Y,X) uint8 contiguous tensor -> ITK image over the same memory (tensor must outlive it).
Mask3::Pointer as_itk(const at::Tensor& m, const Vec3& spacing) {
  auto importer = itk::ImportImageFilter<uint8_t, 3>::New();
  Mask3::SizeType size;
  size[0] = static_cast<itk::SizeValueType>(m.size(2));
  size[1] = static_cast<itk::SizeValueType>(m.size(1));
  size[2] = static_cast<itk::SizeValueType>(m.size(0));
  Mask3::IndexType start;
  start.Fill(0);
  importer->SetRegion(Mask3::RegionType(start, size));
  const double sp[3] = {spacing[0], spacing[1], spacing[2]};
  importer->SetSpacing(sp);
  importer->SetImportPointer(m.data_ptr<uint8_t>(), static_cast<itk::SizeValueType>(m.numel()), false);
  importer->Update();
  return importer->GetOutput();
}

// Voxels inside with a face neighbour outside (borders count as outside; z only when Z > 1).
at::Tensor surface(const at::Tensor& m) {
  const at::Tensor p = at::constant_pad_nd(m, {1, 1, 1, 1, 1, 1}, 0);
  const int64_t Z = m.size(0), Y = m.size(1), X = m.size(2);
  auto shifted = [&](int64_t dz, int64_t dy, int64_t dx) {
    return p.narrow(0, 1 + dz, Z).narrow(1, 1 + dy, Y).narrow(2, 1 + dx, X);
  };
  at::Tensor eroded = m & shifted(0, -1, 0) & shifted(0, 1, 0) & shifted(0, 0, -1) & shifted(0, 0, 1);
  if (Z > 1) eroded = eroded & shifted(-1, 0, 0) & shifted(1, 0, 0);
  return m & ~eroded;
}

// |distance| (mm) from each surface voxel of `from` to the surface of `to`.
std::vector<float> surface_distances(const at::Tensor& from, const at::Tensor& to, const Vec3& spacing) {
  const at::Tensor to_c = to.to(at::kByte).contiguous();
  auto dist = itk::SignedMaurerDistanceMapImageFilter<Mask3, Dist3>::New();
  dist->SetInput(as_itk(to_c, spacing));
  dist->SetUseImageSpacing(true);
  dist->SetSquaredDistance(false);
  dist->SetInsideIsPositive(false);
  dist->Update();
  const float* d = dist->GetOutput()->GetBufferPointer();
  const at::Tensor s = surface(from.to(at::kBool)).contiguous();
  const bool* sp = s.data_ptr<bool>();
  std::vector<float> out;
  for (int64_t i = 0; i < s.numel(); ++i)
    if (sp[i]) out.push_back(std::abs(d[i]));
  return out;
}

double percentile(std::vector<float> v, double q) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const size_t i = static_cast<size_t>(pos);
  return v[i] + (v[std::min(i + 1, v.size() - 1)] - v[i]) * (pos - static_cast<double>(i));
}

at::Tensor as_zyx(const at::Tensor& t) { return t.dim() == 2 ? t.unsqueeze(0) : t; }

}  // namespace

OverlapScores overlap_scores(const at::Tensor& pred_in, const at::Tensor& truth_in, const Vec3& spacing,
                             bool surface_dist) {
  const at::Tensor pred = as_zyx(pred_in) != 0, truth = as_zyx(truth_in) != 0;
  OverlapScores s;
  const double a = pred.sum().item<double>(), b = truth.sum().item<double>();
  const double inter = (pred & truth).sum().item<double>();
  if (a + b == 0) {
    s.dice = s.iou = 1.0;
    return s;
  }
  s.dice = 2 * inter / (a + b);
  s.iou = inter / (a + b - inter);
  if (surface_dist && a > 0 && b > 0) {
    const std::vector<float> ab = surface_distances(pred, truth, spacing), ba = surface_distances(truth, pred, spacing);
    s.hd95 = std::max(percentile(ab, 0.95), percentile(ba, 0.95));
    double sum = 0;
    for (float v : ab) sum += v;
    for (float v : ba) sum += v;
    s.asd = sum / static_cast<double>(ab.size() + ba.size());
  }
  return s;
}

double mean_dice(const at::Tensor& pred, const at::Tensor& truth, int classes) {
  double sum = 0;
  int n = 0;
  for (int64_t i = 0; i < pred.size(0); ++i)
    for (int k = 1; k < classes; ++k) {
      sum += overlap_scores(pred[i] == k, truth[i] == k, {1, 1, 1}, false).dice;
      ++n;
    }
  return n ? sum / n : NAN;
}

nlohmann::json segmentation_report(const at::Tensor& pred, const at::Tensor& truth, int classes,
                                   const std::vector<Geometry>& geometry, int rounds, uint64_t seed) {
  nlohmann::json out;
  for (int k = 1; k < classes; ++k) {
    std::vector<OverlapScores> cases;
    for (int64_t i = 0; i < pred.size(0); ++i)
      cases.push_back(overlap_scores(pred[i] == k, truth[i] == k, geometry[static_cast<size_t>(i)].spacing));
    nlohmann::json cls;
    for (const char* name : {"dice", "iou", "hd95", "asd"}) {
      auto value = [&](const OverlapScores& s) {
        const std::string n(name);
        return n == "dice" ? s.dice : n == "iou" ? s.iou : n == "hd95" ? s.hd95 : s.asd;
      };
      const Interval ci = bootstrap(
          [&](const std::vector<size_t>& idx) {
            double sum = 0;
            int used = 0;
            for (size_t i : idx) {
              const double v = value(cases[i]);
              if (!std::isnan(v)) sum += v, ++used;
            }
            return used ? sum / used : NAN;
          },
          cases.size(), rounds, seed);
      cls[name] = {{"value", ci.value}, {"ci95", {ci.lo, ci.hi}}};
    }
    cls["n"] = cases.size();
    out["class_" + std::to_string(k)] = cls;
  }
  return out;
}

}  // namespace medlens
