#include "metrics/classification.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

namespace medlens {

double roc_auc(const std::vector<double>& scores, const std::vector<bool>& positive) {
  const size_t n = scores.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  // Average ranks with ties, then U = R_pos - n_pos (n_pos + 1) / 2.
  std::vector<double> rank(n);
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j + 1 < n && scores[order[j + 1]] == scores[order[i]]) ++j;
    const double r = (static_cast<double>(i) + static_cast<double>(j)) / 2.0 + 1.0;
    for (size_t k = i; k <= j; ++k) rank[order[k]] = r;
    i = j + 1;
  }
  double rank_sum = 0, n_pos = 0;
  for (size_t i = 0; i < n; ++i)
    if (positive[i]) rank_sum += rank[i], ++n_pos;
  const double n_neg = static_cast<double>(n) - n_pos;
  if (n_pos == 0 || n_neg == 0) return NAN;
  return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg);
}

double auc_ovr_macro(const ProbRows& probs, const std::vector<int>& labels, int classes) {
  double sum = 0;
  int used = 0;
  for (int k = 0; k < classes; ++k) {
    std::vector<double> s;
    std::vector<bool> pos;
    for (size_t i = 0; i < probs.size(); ++i) s.push_back(probs[i][k]), pos.push_back(labels[i] == k);
    const double a = roc_auc(s, pos);
    if (!std::isnan(a)) sum += a, ++used;
  }
  return used ? sum / used : NAN;
}

double accuracy(const std::vector<int>& labels, const std::vector<int>& predicted) {
  if (labels.empty()) return NAN;
  size_t ok = 0;
  for (size_t i = 0; i < labels.size(); ++i) ok += labels[i] == predicted[i];
  return static_cast<double>(ok) / static_cast<double>(labels.size());
}

std::vector<std::vector<int64_t>> confusion_matrix(const std::vector<int>& labels,
                                                   const std::vector<int>& predicted, int classes) {
  std::vector<std::vector<int64_t>> m(classes, std::vector<int64_t>(classes, 0));
  for (size_t i = 0; i < labels.size(); ++i) ++m[labels[i]][predicted[i]];
  return m;
}

double balanced_accuracy(const std::vector<int>& labels, const std::vector<int>& predicted, int classes) {
  const auto m = confusion_matrix(labels, predicted, classes);
  double sum = 0;
  int used = 0;
  for (int k = 0; k < classes; ++k) {
    const int64_t row = std::accumulate(m[k].begin(), m[k].end(), int64_t{0});
    if (row > 0) sum += static_cast<double>(m[k][k]) / static_cast<double>(row), ++used;
  }
  return used ? sum / used : NAN;
}

double macro_f1(const std::vector<int>& labels, const std::vector<int>& predicted, int classes) {
  const auto m = confusion_matrix(labels, predicted, classes);
  double sum = 0;
  int used = 0;
  for (int k = 0; k < classes; ++k) {
    int64_t tp = m[k][k], fn = 0, fp = 0;
    for (int j = 0; j < classes; ++j)
      if (j != k) fn += m[k][j], fp += m[j][k];
    if (tp + fn == 0) continue;  // class absent from the labels
    const double denom = 2.0 * tp + fp + fn;
    sum += denom > 0 ? 2.0 * tp / denom : 0.0;
    ++used;
  }
  return used ? sum / used : NAN;
}

namespace {
// The binary decision at a threshold on P(positive): positive when P >= threshold.
struct BinaryCounts {
  int64_t tp = 0, fn = 0, tn = 0, fp = 0;
};
BinaryCounts counts_at(const ProbRows& probs, const std::vector<int>& labels, int positive,
                       double threshold) {
  BinaryCounts c;
  for (size_t i = 0; i < probs.size(); ++i) {
    const bool predicted = probs[i][static_cast<size_t>(positive)] >= threshold;
    if (labels[i] == positive) (predicted ? c.tp : c.fn)++;
    else (predicted ? c.fp : c.tn)++;
  }
  return c;
}
}  // namespace

double choose_operating_point(const ProbRows& probs, const std::vector<int>& labels, int positive,
                              double target_sensitivity) {
  std::vector<double> cands;
  for (const auto& r : probs) cands.push_back(r[static_cast<size_t>(positive)]);
  std::sort(cands.begin(), cands.end());
  cands.erase(std::unique(cands.begin(), cands.end()), cands.end());
  if (cands.empty()) return 0.5;
  size_t best = 0;
  double best_score = -INFINITY;
  for (size_t k = 0; k < cands.size(); ++k) {
    const BinaryCounts c = counts_at(probs, labels, positive, cands[k]);
    const double sens = c.tp + c.fn ? double(c.tp) / double(c.tp + c.fn) : 0;
    const double spec = c.tn + c.fp ? double(c.tn) / double(c.tn + c.fp) : 0;
    const double score = target_sensitivity >= 0 ? (sens >= target_sensitivity ? cands[k] : -INFINITY) : sens + spec - 1;
    if (score > best_score) best_score = score, best = k;
  }
  if (best_score == -INFINITY) return 0.5;  // no threshold reaches the target (no positive case)
  return best > 0 ? (cands[best] + cands[best - 1]) / 2 : cands[0] / 2;
}

double brier(const ProbRows& probs, const std::vector<int>& labels) {
  if (probs.empty()) return NAN;
  double s = 0;
  for (size_t i = 0; i < probs.size(); ++i)
    for (size_t k = 0; k < probs[i].size(); ++k) {
      const double d = probs[i][k] - (labels[i] == static_cast<int>(k) ? 1.0 : 0.0);
      s += d * d;
    }
  return s / static_cast<double>(probs.size());
}

Calibration calibration(const ProbRows& probs, const std::vector<int>& labels, int bins) {
  Calibration c;
  c.bin_confidence.assign(bins, 0);
  c.bin_accuracy.assign(bins, 0);
  c.bin_count.assign(bins, 0);
  for (size_t i = 0; i < probs.size(); ++i) {
    const auto it = std::max_element(probs[i].begin(), probs[i].end());
    const double conf = *it;
    const int pred = static_cast<int>(it - probs[i].begin());
    const int b = std::min(bins - 1, static_cast<int>(conf * bins));
    c.bin_confidence[b] += conf;
    c.bin_accuracy[b] += pred == labels[i];
    ++c.bin_count[b];
  }
  const double n = static_cast<double>(probs.size());
  for (int b = 0; b < bins; ++b) {
    if (c.bin_count[b] == 0) continue;
    c.bin_confidence[b] /= static_cast<double>(c.bin_count[b]);
    c.bin_accuracy[b] /= static_cast<double>(c.bin_count[b]);
    const double gap = std::abs(c.bin_accuracy[b] - c.bin_confidence[b]);
    c.ece += gap * static_cast<double>(c.bin_count[b]) / n;
    c.mce = std::max(c.mce, gap);
  }
  return c;
}

EceFloor ece_floor(const ProbRows& probs, int bins, int rounds, uint64_t seed) {
  EceFloor f;
  if (probs.empty() || rounds < 1 || bins < 1) return f;
  std::vector<double> conf;
  std::vector<int> bin;
  std::vector<double> bin_conf(static_cast<size_t>(bins), 0), bin_n(static_cast<size_t>(bins), 0);
  for (const auto& p : probs) {
    conf.push_back(*std::max_element(p.begin(), p.end()));
    bin.push_back(std::min(bins - 1, static_cast<int>(conf.back() * bins)));
    bin_conf[bin.back()] += conf.back();
    bin_n[bin.back()] += 1;
  }
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> unit(0, 1);
  const double n = static_cast<double>(probs.size());
  std::vector<double> eces, hits(static_cast<size_t>(bins));
  for (int r = 0; r < rounds; ++r) {
    std::fill(hits.begin(), hits.end(), 0.0);
    for (size_t i = 0; i < conf.size(); ++i) hits[bin[i]] += unit(rng) < conf[i];
    double e = 0;
    for (int b = 0; b < bins; ++b)
      if (bin_n[b] > 0) e += std::abs(hits[b] - bin_conf[b]) / n;  // = n_b / n * |acc_b - conf_b|
    eces.push_back(e);
  }
  std::sort(eces.begin(), eces.end());
  f.mean = std::accumulate(eces.begin(), eces.end(), 0.0) / static_cast<double>(rounds);
  f.q95 = eces[std::min(eces.size() - 1, static_cast<size_t>(0.95 * static_cast<double>(rounds)))];
  return f;
}

Interval bootstrap(const std::function<double(const std::vector<size_t>&)>& stat, size_t n, int rounds, uint64_t seed) {
  Interval out;
  std::vector<size_t> all(n);
  std::iota(all.begin(), all.end(), 0);
  out.value = stat(all);
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<size_t> pick(0, n - 1);
  std::vector<double> values;
  std::vector<size_t> idx(n);
  for (int r = 0; r < rounds && n > 0; ++r) {
    for (auto& i : idx) i = pick(rng);
    const double v = stat(idx);
    if (!std::isnan(v)) values.push_back(v);
  }
  if (values.empty()) {
    out.lo = out.hi = out.value;
    return out;
  }
  std::sort(values.begin(), values.end());
  auto q = [&](double p) {
    const double pos = p * static_cast<double>(values.size() - 1);
    const size_t i = static_cast<size_t>(std::floor(pos));
    const double f = pos - static_cast<double>(i);
    return values[i] + (values[std::min(i + 1, values.size() - 1)] - values[i]) * f;
  };
  out.lo = q(0.025);
  out.hi = q(0.975);
  return out;
}

nlohmann::json classification_report(const ProbRows& probs, const std::vector<int>& labels,
                                     const ClassificationReportOptions& o) {
  const int K = static_cast<int>(o.classes.size());
  int pos = K - 1;
  for (int k = 0; k < K; ++k)
    if (o.classes[k] == o.positive_class) pos = k;
  auto subset = [&](const std::vector<size_t>& idx, ProbRows& p, std::vector<int>& y) {
    p.clear();
    y.clear();
    for (size_t i : idx) p.push_back(probs[i]), y.push_back(labels[i]);
  };
  auto argmax = [](const ProbRows& p) {
    std::vector<int> out;
    for (const auto& row : p) out.push_back(static_cast<int>(std::max_element(row.begin(), row.end()) - row.begin()));
    return out;
  };
  // Binary decision at the operating point.
  auto sens_spec = [&](const ProbRows& p, const std::vector<int>& y, bool sens) {
    const BinaryCounts c = counts_at(p, y, pos, o.threshold);
    if (sens) return c.tp + c.fn ? static_cast<double>(c.tp) / static_cast<double>(c.tp + c.fn) : NAN;
    return c.tn + c.fp ? static_cast<double>(c.tn) / static_cast<double>(c.tn + c.fp) : NAN;
  };
  using Stat = std::function<double(const ProbRows&, const std::vector<int>&)>;
  const std::vector<std::pair<std::string, Stat>> stats = {
      {"accuracy", [&](const ProbRows& p, const std::vector<int>& y) { return accuracy(y, argmax(p)); }},
      {"balanced_accuracy", [&](const ProbRows& p, const std::vector<int>& y) { return balanced_accuracy(y, argmax(p), K); }},
      {"auc", [&](const ProbRows& p, const std::vector<int>& y) {
         std::vector<double> s;
         std::vector<bool> t;
         for (size_t i = 0; i < p.size(); ++i) s.push_back(p[i][pos]), t.push_back(y[i] == pos);
         return roc_auc(s, t);
       }},
      {"auc_ovr_macro", [&](const ProbRows& p, const std::vector<int>& y) { return auc_ovr_macro(p, y, K); }},
      {"sensitivity", [&](const ProbRows& p, const std::vector<int>& y) { return sens_spec(p, y, true); }},
      {"specificity", [&](const ProbRows& p, const std::vector<int>& y) { return sens_spec(p, y, false); }},
      {"macro_f1", [&](const ProbRows& p, const std::vector<int>& y) { return macro_f1(y, argmax(p), K); }},
      {"brier", [&](const ProbRows& p, const std::vector<int>& y) { return brier(p, y); }},
      {"ece", [&](const ProbRows& p, const std::vector<int>& y) { return calibration(p, y).ece; }},
  };
  nlohmann::json j;
  for (const auto& [name, fn] : stats) {
    const Interval ci = bootstrap(
        [&](const std::vector<size_t>& idx) {
          ProbRows p;
          std::vector<int> y;
          subset(idx, p, y);
          return fn(p, y);
        },
        probs.size(), o.bootstrap_rounds, o.seed);
    j[name] = {{"value", ci.value}, {"ci95", {ci.lo, ci.hi}}};
  }
  j["confusion_matrix"] = confusion_matrix(labels, argmax(probs), K);
  j["n"] = probs.size();
  nlohmann::json counts;
  for (int k = 0; k < K; ++k) counts[o.classes[k]] = std::count(labels.begin(), labels.end(), k);
  j["class_counts"] = counts;
  j["positive_class"] = o.classes[pos];
  j["threshold"] = o.threshold;
  return j;
}

}  // namespace medlens
