#include "metrics/detection.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>

#include "core/error.h"
#include "core/image.h"

namespace medlens {
namespace {

bool same_grid(const Image& a, const Image& b) {
  return a.depth() == b.depth() && a.height() == b.height() && a.width() == b.width();
}

std::string grid_text(const Image& a) {
  return std::to_string(a.width()) + "x" + std::to_string(a.height()) + "x" + std::to_string(a.depth());
}

nlohmann::json number_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

double ratio(int64_t a, int64_t b) { return b > 0 ? static_cast<double>(a) / static_cast<double>(b) : NAN; }

}  // namespace

Froc froc(const std::vector<Candidate>& candidates, int64_t lesions, int64_t images) {
  if (images < 1) throw UsageError("froc: needs at least one image (got " + std::to_string(images) + ")");
  if (lesions < 0) throw UsageError("froc: the number of truth lesions is negative");
  // A lesion counts once, with its best score (LUNA16); the other marks on it are ignored.
  std::map<std::pair<int64_t, int64_t>, double> best;
  std::vector<std::pair<double, bool>> marks;  // (score, true positive)
  for (const Candidate& c : candidates) {
    if (c.hit < 0) {
      marks.emplace_back(c.score, false);
      continue;
    }
    auto [it, fresh] = best.try_emplace({c.image, c.hit}, c.score);
    if (!fresh) it->second = std::max(it->second, c.score);
  }
  if (static_cast<int64_t>(best.size()) > lesions)
    throw UsageError("froc: candidates hit " + std::to_string(best.size()) + " distinct lesions but only " +
                     std::to_string(lesions) + " were given");
  for (const auto& [key, score] : best) marks.emplace_back(score, true);
  std::sort(marks.begin(), marks.end(), [](const auto& a, const auto& b) { return a.first > b.first; });

  Froc f;
  f.lesions = lesions;
  f.images = images;
  f.detected = static_cast<int64_t>(best.size());
  f.false_positives = static_cast<int64_t>(marks.size()) - f.detected;
  const double n_images = static_cast<double>(images);
  auto sensitivity = [&](int64_t tp) { return ratio(tp, lesions); };
  f.thresholds.push_back(std::numeric_limits<double>::infinity());
  f.fps_per_image.push_back(0);
  f.sensitivity.push_back(sensitivity(0));
  std::vector<int64_t> fp_counts{0};
  int64_t tp = 0, fp = 0;
  for (size_t i = 0; i < marks.size();) {
    const double score = marks[i].first;
    for (; i < marks.size() && marks[i].first == score; ++i) (marks[i].second ? tp : fp) += 1;
    f.thresholds.push_back(score);
    f.fps_per_image.push_back(static_cast<double>(fp) / n_images);
    f.sensitivity.push_back(sensitivity(tp));
    fp_counts.push_back(fp);
  }
  // Sensitivity grows along the curve, so the last point within the rate is the best one. Counts
  // are compared (fp <= rate x images) so 1 FP in 8 images is exactly 1/8 per image.
  for (size_t r = 0; r < kFrocRates.size(); ++r) {
    size_t last = 0;
    for (size_t k = 0; k < fp_counts.size(); ++k)
      if (static_cast<double>(fp_counts[k]) <= kFrocRates[r] * n_images * (1 + 1e-12)) last = k;
    f.sensitivity_at[r] = f.sensitivity[last];
  }
  f.cpm = std::accumulate(f.sensitivity_at.begin(), f.sensitivity_at.end(), 0.0) / static_cast<double>(kFrocRates.size());
  return f;
}

nlohmann::json to_json(const Froc& f) {
  nlohmann::json thresholds = nlohmann::json::array(), sens = nlohmann::json::array(), at = nlohmann::json::array();
  for (double t : f.thresholds) thresholds.push_back(number_or_null(t));
  for (double s : f.sensitivity) sens.push_back(number_or_null(s));
  for (double s : f.sensitivity_at) at.push_back(number_or_null(s));
  return {{"rates", kFrocRates},
          {"sensitivity_at", at},
          {"cpm", number_or_null(f.cpm)},
          {"lesions", f.lesions},
          {"images", f.images},
          {"detected", f.detected},
          {"false_positives", f.false_positives},
          {"curve", {{"threshold", thresholds}, {"fps_per_image", f.fps_per_image}, {"sensitivity", sens}}}};
}

MatchRule parse_match_rule(const std::string& name) {
  if (name == "centre-in-mask" || name == "center-in-mask") return MatchRule::kCentreInMask;
  if (name == "iou") return MatchRule::kIou;
  throw UsageError("unknown matching rule '" + name + "'; use centre-in-mask or iou");
}

std::string to_string(MatchRule rule) { return rule == MatchRule::kIou ? "iou" : "centre-in-mask"; }

LesionMatch match_lesions(const Image& predicted, const std::vector<double>& scores, const Image& truth,
                          const MatchOptions& o) {
  if (!same_grid(predicted, truth))
    throw UsageError("match_lesions: the predicted labels (" + grid_text(predicted) + ") and the truth labels (" +
                     grid_text(truth) + ") are on different grids");
  const int64_t n = predicted.depth() * predicted.height() * predicted.width();
  const float* p = predicted.data();
  const float* t = truth.data();
  const auto n_pred = static_cast<int64_t>(scores.size());
  int64_t n_truth = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (p[i] < 0 || p[i] > static_cast<float>(n_pred) || p[i] != std::floor(p[i]))
      throw UsageError("match_lesions: predicted label " + std::to_string(p[i]) + " is not in 0.." +
                       std::to_string(n_pred) + " (one score per predicted lesion)");
    if (t[i] < 0 || t[i] != std::floor(t[i]))
      throw UsageError("match_lesions: truth label " + std::to_string(t[i]) + " is not a non-negative integer");
    n_truth = std::max(n_truth, static_cast<int64_t>(t[i]));
  }

  std::vector<int64_t> pred_size(static_cast<size_t>(n_pred), 0), truth_size(static_cast<size_t>(n_truth), 0);
  std::vector<Vec3> sums(static_cast<size_t>(n_pred), Vec3{0, 0, 0});
  std::map<std::pair<int64_t, int64_t>, int64_t> overlap;  // (pred, truth) -> shared voxels
  const int64_t X = predicted.width(), Y = predicted.height();
  for (int64_t i = 0; i < n; ++i) {
    const auto a = static_cast<int64_t>(p[i]) - 1, b = static_cast<int64_t>(t[i]) - 1;
    if (b >= 0) ++truth_size[static_cast<size_t>(b)];
    if (a < 0) continue;
    ++pred_size[static_cast<size_t>(a)];
    Vec3& s = sums[static_cast<size_t>(a)];
    s[0] += static_cast<double>(i % X), s[1] += static_cast<double>((i / X) % Y), s[2] += static_cast<double>(i / (X * Y));
    if (b >= 0 && o.rule == MatchRule::kIou) ++overlap[{a, b}];
  }

  LesionMatch m;
  m.matched.assign(static_cast<size_t>(n_pred), -1);
  m.duplicate_of.assign(static_cast<size_t>(n_pred), -1);
  m.detected_by.assign(static_cast<size_t>(n_truth), -1);
  std::vector<size_t> order(static_cast<size_t>(n_pred));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  for (size_t k : order) {
    if (pred_size[k] == 0) continue;
    int64_t take = -1, taken = -1;
    if (o.rule == MatchRule::kCentreInMask) {
      const double count = static_cast<double>(pred_size[k]);
      const int64_t x = std::llround(sums[k][0] / count), y = std::llround(sums[k][1] / count),
                    z = std::llround(sums[k][2] / count);
      const int64_t b = static_cast<int64_t>(t[(z * Y + y) * X + x]) - 1;
      if (b >= 0) (m.detected_by[static_cast<size_t>(b)] < 0 ? take : taken) = b;
    } else {
      double best_free = -1, best_any = -1;
      for (auto it = overlap.lower_bound({static_cast<int64_t>(k), 0});
           it != overlap.end() && it->first.first == static_cast<int64_t>(k); ++it) {
        const int64_t b = it->first.second;
        const double inter = static_cast<double>(it->second);
        const double iou = inter / (static_cast<double>(pred_size[k] + truth_size[static_cast<size_t>(b)]) - inter);
        if (iou < o.min_iou) continue;
        if (m.detected_by[static_cast<size_t>(b)] < 0) {
          if (iou > best_free) best_free = iou, take = b;
        } else if (iou > best_any) {
          best_any = iou, taken = b;
        }
      }
    }
    if (take >= 0) {
      m.matched[k] = take;
      m.detected_by[static_cast<size_t>(take)] = static_cast<int64_t>(k);
    } else {
      m.duplicate_of[k] = taken;
    }
  }
  return m;
}

std::vector<Candidate> froc_candidates(const LesionMatch& m, const std::vector<double>& scores, int64_t image,
                                       const MatchOptions& o) {
  std::vector<Candidate> out;
  for (size_t k = 0; k < m.matched.size(); ++k) {
    int64_t hit = m.matched[k];
    if (hit < 0 && !o.duplicates_are_fp) hit = m.duplicate_of[k];
    out.push_back({image, scores[k], hit});
  }
  return out;
}

nlohmann::json detection_report(const std::vector<Image>& probability, const std::vector<Image>& truth,
                                const DetectionOptions& o) {
  if (probability.size() != truth.size())
    throw UsageError("detection_report: " + std::to_string(probability.size()) + " probability maps but " +
                     std::to_string(truth.size()) + " truth maps");
  if (probability.empty()) throw UsageError("detection_report: no images");
  // Truth: every non-zero voxel is lesion, labelled as the findings stage labels predictions.
  FindingOptions truth_options;
  truth_options.threshold = 0;
  truth_options.fill_holes = false;

  std::vector<Candidate> candidates;
  nlohmann::json per_image = nlohmann::json::array(), lesions = nlohmann::json::array();
  int64_t n_truth = 0, n_pred = 0, tp = 0, fp = 0, duplicates = 0;
  for (size_t i = 0; i < probability.size(); ++i) {
    if (!same_grid(probability[i], truth[i]))
      throw UsageError("detection_report: case " + std::to_string(i) + ": the probability map (" +
                       grid_text(probability[i]) + ") and the truth (" + grid_text(truth[i]) + ") are on different grids");
    Image pred_labels, truth_labels;
    const std::vector<Finding> pred = extract_findings(probability[i], nullptr, o.candidates, &pred_labels);
    const std::vector<Finding> real = extract_findings(truth[i], nullptr, truth_options, &truth_labels);
    std::vector<double> scores;
    for (const Finding& f : pred) scores.push_back(f.probability);
    const LesionMatch m = match_lesions(pred_labels, scores, truth_labels, o.match);
    const std::vector<Candidate> c = froc_candidates(m, scores, static_cast<int64_t>(i), o.match);
    candidates.insert(candidates.end(), c.begin(), c.end());

    int64_t hits = 0, dups = 0;
    for (size_t k = 0; k < pred.size(); ++k) {
      hits += m.matched[k] >= 0;
      dups += m.matched[k] < 0 && m.duplicate_of[k] >= 0;
    }
    const int64_t misses = static_cast<int64_t>(pred.size()) - hits - (o.match.duplicates_are_fp ? 0 : dups);
    per_image.push_back({{"truth_lesions", real.size()},
                         {"predicted_lesions", pred.size()},
                         {"true_positives", hits},
                         {"false_positives", misses},
                         {"false_negatives", static_cast<int64_t>(real.size()) - hits}});
    for (size_t b = 0; b < real.size(); ++b) {
      const int64_t by = m.detected_by[b];
      lesions.push_back({{"image", i},
                         {"id", real[b].id},
                         {"voxels", real[b].voxels},
                         {real[b].planar ? "area_mm2" : "volume_mm3", real[b].volume_mm3},
                         {"longest_axial_diameter_mm", real[b].longest_axial_diameter_mm},
                         {"detected", by >= 0},
                         {"score", by >= 0 ? nlohmann::json(scores[static_cast<size_t>(by)]) : nlohmann::json(nullptr)}});
    }
    n_truth += static_cast<int64_t>(real.size());
    n_pred += static_cast<int64_t>(pred.size());
    tp += hits;
    fp += misses;
    duplicates += dups;
  }
  const double sensitivity = ratio(tp, n_truth), precision = ratio(tp, tp + fp);
  const double f1 = sensitivity + precision > 0 ? 2 * sensitivity * precision / (sensitivity + precision) : NAN;
  return {{"rule", to_string(o.match.rule)},
          {"min_iou", o.match.min_iou},
          {"duplicates_are_fp", o.match.duplicates_are_fp},
          {"threshold", o.candidates.threshold},
          {"images", probability.size()},
          {"truth_lesions", n_truth},
          {"predicted_lesions", n_pred},
          {"true_positives", tp},
          {"false_positives", fp},
          {"duplicates", duplicates},
          {"false_negatives", n_truth - tp},
          {"sensitivity", number_or_null(sensitivity)},
          {"precision", number_or_null(precision)},
          {"f1", number_or_null(f1)},
          {"froc", to_json(froc(candidates, n_truth, static_cast<int64_t>(probability.size())))},
          {"per_image", per_image},
          {"lesions", lesions}};
}

nlohmann::json detection_report(const at::Tensor& probability, const at::Tensor& truth,
                                const std::vector<Geometry>& geometry, const DetectionOptions& o) {
  if (probability.dim() < 3 || probability.dim() > 4 || truth.sizes() != probability.sizes())
    throw UsageError("detection_report: probability and truth must both be (N,[D,]H,W) of the same shape");
  const int64_t n = probability.size(0);
  if (!geometry.empty() && static_cast<int64_t>(geometry.size()) != n)
    throw UsageError("detection_report: " + std::to_string(geometry.size()) + " geometries for " + std::to_string(n) +
                     " cases");
  std::vector<Image> prob, real;
  for (int64_t i = 0; i < n; ++i) {
    const Geometry g = geometry.empty() ? Geometry{} : geometry[static_cast<size_t>(i)];
    prob.emplace_back(probability[i].to(at::kFloat).contiguous(), g, Metadata{});
    real.emplace_back(truth[i].to(at::kFloat).contiguous(), g, Metadata{});
  }
  return detection_report(prob, real, o);
}

nlohmann::json detection_summary(const at::Tensor& probability, const at::Tensor& truth,
                                 const std::vector<Geometry>& geometry, const DetectionOptions& options) {
  nlohmann::json j = detection_report(probability, truth, geometry, options);
  j.erase("per_image");
  j.erase("lesions");
  return j;
}

}  // namespace medlens
