#include "metrics/subgroup.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <set>

namespace medlens {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct Cases {
  const ProbRows& probs;
  const std::vector<int>& labels;
  const SubgroupOptions& o;

  double accuracy(const std::vector<size_t>& idx) const {
    if (idx.empty()) return kNaN;
    double ok = 0;
    for (size_t i : idx) {
      const auto& p = probs[i];
      ok += static_cast<int>(std::max_element(p.begin(), p.end()) - p.begin()) == labels[i];
    }
    return ok / static_cast<double>(idx.size());
  }
  // Recall of the positive class (sensitivity) or of the rest (specificity) at the threshold.
  double recall(const std::vector<size_t>& idx, bool of_positive) const {
    double hit = 0, n = 0;
    for (size_t i : idx) {
      const bool pos = labels[i] == o.positive;
      if (pos != of_positive) continue;
      ++n;
      hit += (probs[i][static_cast<size_t>(o.positive)] >= o.threshold) == of_positive;
    }
    return n > 0 ? hit / n : kNaN;
  }
  double auc(const std::vector<size_t>& idx) const {
    std::vector<double> s;
    std::vector<bool> pos;
    for (size_t i : idx) s.push_back(probs[i][static_cast<size_t>(o.positive)]), pos.push_back(labels[i] == o.positive);
    return roc_auc(s, pos);
  }
};

nlohmann::json interval_json(const Interval& v) {
  if (std::isnan(v.value)) return nullptr;
  return {{"value", v.value}, {"ci95", {v.lo, v.hi}}};
}

}  // namespace

nlohmann::json subgroup_audit(const ProbRows& probs, const std::vector<int>& labels,
                              const std::map<std::string, std::vector<std::string>>& columns, const SubgroupOptions& o) {
  const Cases c{probs, labels, o};
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [column, values] : columns) {
    std::set<std::string> distinct(values.begin(), values.end());
    nlohmann::json groups = nlohmann::json::array(), flagged = nlohmann::json::array();
    nlohmann::json largest = {{"metric", nullptr}, {"group", nullptr}, {"value", 0.0}};
    uint64_t seed = o.seed;
    for (const auto& value : distinct) {
      std::vector<size_t> in, rest;
      for (size_t i = 0; i < values.size(); ++i) (values[i] == value ? in : rest).push_back(i);
      // Resample within the group (and the rest) so each interval reflects that group's size.
      auto sub = [&](const std::vector<size_t>& members, auto metric) {
        return bootstrap([&](const std::vector<size_t>& idx) {
          std::vector<size_t> picked;
          for (size_t k : idx) picked.push_back(members[k]);
          return metric(picked);
        }, members.size(), o.bootstrap_rounds, ++seed);
      };
      auto gap = [&](auto metric) {
        // Independent resamples of the group and the rest: percentile CI of the difference.
        const Interval a = sub(in, metric);
        std::vector<double> diffs;
        std::mt19937_64 rng(++seed);
        std::uniform_int_distribution<size_t> pick_in(0, in.size() - 1), pick_rest(0, rest.size() - 1);
        for (int r = 0; r < o.bootstrap_rounds; ++r) {
          std::vector<size_t> gi(in.size()), ri(rest.size());
          for (auto& i : gi) i = in[pick_in(rng)];
          for (auto& i : ri) i = rest[pick_rest(rng)];
          const double d = metric(gi) - metric(ri);
          if (!std::isnan(d)) diffs.push_back(d);
        }
        Interval g{a.value - metric(rest), kNaN, kNaN};
        if (!diffs.empty()) {
          std::sort(diffs.begin(), diffs.end());
          g.lo = diffs[static_cast<size_t>(0.025 * static_cast<double>(diffs.size() - 1))];
          g.hi = diffs[static_cast<size_t>(std::ceil(0.975 * static_cast<double>(diffs.size() - 1)))];
        }
        return g;
      };
      auto acc = [&](const std::vector<size_t>& idx) { return c.accuracy(idx); };
      auto sens = [&](const std::vector<size_t>& idx) { return c.recall(idx, true); };
      auto spec = [&](const std::vector<size_t>& idx) { return c.recall(idx, false); };
      auto auc = [&](const std::vector<size_t>& idx) { return c.auc(idx); };
      nlohmann::json g = {{"value", value}, {"n", in.size()},
                          {"accuracy", interval_json(sub(in, acc))}, {"sensitivity", interval_json(sub(in, sens))},
                          {"specificity", interval_json(sub(in, spec))}, {"auc", interval_json(sub(in, auc))}};
      bool flag = false;
      if (static_cast<int>(in.size()) >= o.min_cases && !rest.empty()) {
        for (const auto& [name, metric] : std::vector<std::pair<std::string, std::function<double(const std::vector<size_t>&)>>>{
                 {"accuracy", acc}, {"sensitivity", sens}}) {
          const Interval d = gap(metric);
          if (std::isnan(d.value)) {
            g["gap_" + name] = nullptr;
            continue;
          }
          g["gap_" + name] = {{"value", d.value}, {"ci95", {d.lo, d.hi}}};
          const bool excludes = !std::isnan(d.lo) && (d.lo > 0 || d.hi < 0);
          flag = flag || excludes;
          if (std::abs(d.value) > std::abs(largest["value"].get<double>()))
            largest = {{"metric", name}, {"group", value}, {"value", d.value}, {"excludes_parity", excludes}};
        }
      }
      g["flagged"] = flag;
      if (flag) flagged.push_back(value);
      groups.push_back(g);
    }
    out[column] = {{"groups", groups}, {"largest_gap", largest}, {"flagged", flagged}};
  }
  return out;
}

}  // namespace medlens
