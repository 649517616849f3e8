#include "quality/trust.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "core/error.h"
#include "core/hash.h"
#include "infer/calibrate.h"
#include "infer/evaluate.h"
#include "io/file_util.h"
#include "io/manifest.h"
#include "nn/network.h"
#include "plot/plot.h"
#include "quality/ood.h"
#include "quality/quality.h"

namespace fs = std::filesystem;

namespace medlens {
namespace {

ProbRows rows_of(const at::Tensor& probs) {
  const at::Tensor p = probs.to(at::kDouble).contiguous();
  ProbRows out(static_cast<size_t>(p.size(0)));
  for (int64_t i = 0; i < p.size(0); ++i)
    out[static_cast<size_t>(i)].assign(p[i].data_ptr<double>(), p[i].data_ptr<double>() + p.size(1));
  return out;
}

// The value below which `q` of the data lie (nearest rank, upper).
double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const long rank = static_cast<long>(std::ceil(q * static_cast<double>(v.size()))) - 1;
  return v[static_cast<size_t>(std::clamp<long>(rank, 0, static_cast<long>(v.size()) - 1))];
}

nlohmann::json calibration_json(const Calibration& c) {
  return {{"ece", c.ece}, {"mce", c.mce}, {"bin_confidence", c.bin_confidence}, {"bin_accuracy", c.bin_accuracy},
          {"bin_count", c.bin_count}};
}

// Smallest calibrated confidence whose answered val cases meet the targets, within the coverage
// limit; the most selective threshold the limit allows when none does.
nlohmann::json choose_abstention(const ProbRows& probs, const std::vector<int>& labels, int positive, double op,
                                 const TrustOptions& o) {
  const size_t n = probs.size();
  std::vector<double> conf(n);
  for (size_t i = 0; i < n; ++i) conf[i] = *std::max_element(probs[i].begin(), probs[i].end());
  std::vector<double> candidates = conf;
  candidates.push_back(0.0);
  std::sort(candidates.begin(), candidates.end());
  candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
  struct Point {
    double threshold, coverage, sensitivity, accuracy;
  };
  auto evaluate = [&](double c) {
    size_t answered = 0, correct = 0, tp = 0, fn = 0;
    for (size_t i = 0; i < n; ++i) {
      if (conf[i] < c) continue;
      ++answered;
      const auto& p = probs[i];
      correct += static_cast<int>(std::max_element(p.begin(), p.end()) - p.begin()) == labels[i];
      if (labels[i] == positive) (p[static_cast<size_t>(positive)] >= op ? tp : fn)++;
    }
    return Point{c, static_cast<double>(answered) / static_cast<double>(n),
                 tp + fn ? static_cast<double>(tp) / static_cast<double>(tp + fn) : 1.0,
                 answered ? static_cast<double>(correct) / static_cast<double>(answered) : 1.0};
  };
  const Point all = evaluate(0.0);
  Point chosen = all, limit = all;
  bool met = false;
  for (double c : candidates) {
    const Point p = evaluate(c);
    if (p.coverage < o.min_coverage) break;
    limit = p;
    if (p.sensitivity >= o.target_sensitivity && p.accuracy >= o.target_accuracy) {
      chosen = p;
      met = true;
      break;
    }
  }
  if (!met) chosen = limit;
  return {{"min_confidence", chosen.threshold},
          {"target_sensitivity", o.target_sensitivity},
          {"target_accuracy", o.target_accuracy},
          {"min_coverage", o.min_coverage},
          {"target_met", met},
          {"val_coverage", chosen.coverage},
          {"val_sensitivity_answered", chosen.sensitivity},
          {"val_accuracy_answered", chosen.accuracy},
          {"val_sensitivity_all", all.sensitivity},
          {"val_accuracy_all", all.accuracy}};
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f << bytes;
  if (!f) throw InputError(path, "cannot write");
}

}  // namespace

double risk_coverage(const std::vector<double>& confidence, const std::vector<bool>& correct,
                     std::vector<double>* coverage, std::vector<double>* risk) {
  const size_t n = confidence.size();
  if (n == 0 || correct.size() != n) throw UsageError("risk-coverage needs one correctness flag per confidence");
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return confidence[a] > confidence[b]; });
  double errors = 0, area = 0;
  if (coverage) coverage->clear();
  if (risk) risk->clear();
  for (size_t k = 0; k < n; ++k) {
    errors += correct[order[k]] ? 0 : 1;
    const double r = errors / static_cast<double>(k + 1);
    area += r;
    if (coverage) coverage->push_back(static_cast<double>(k + 1) / static_cast<double>(n));
    if (risk) risk->push_back(r);
  }
  return area / static_cast<double>(n);
}

TrustFit fit_trust(const Model& model, const at::Tensor& train_x, const at::Tensor& train_y, const at::Tensor& val_x,
                   const at::Tensor& val_y, const TrustOptions& o) {
  const ModelCard& in = model.card();
  if (in.task != "classify") throw UsageError("the trust fit is for classifiers; " + in.id() + " is a segmenter");
  if (train_x.size(0) == 0 || val_x.size(0) == 0) throw UsageError("the trust fit needs train and val cases");
  TrustFit fit;
  fit.card = in;
  ModelCard& card = fit.card;
  const int K = static_cast<int>(card.classes.size());
  const int positive = static_cast<int>(card.class_index(card.positive_class));

  at::Tensor train_f, train_logits, val_f, val_logits;
  features_and_logits(model, train_x, train_f, train_logits, o.batch_size);
  features_and_logits(model, val_x, val_f, val_logits, o.batch_size);

  // 1. Temperature.
  const double old_t = card.temperature;
  const double t = fit_temperature(val_logits, val_y);
  card.temperature = t;
  std::vector<int> labels(static_cast<size_t>(val_y.size(0)));
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int>(val_y[static_cast<int64_t>(i)].item<int64_t>());
  const ProbRows raw = rows_of(at::softmax(val_logits.to(at::kDouble), 1));
  const ProbRows probs = rows_of(at::softmax(val_logits.to(at::kDouble) / t, 1));
  fit.before = calibration(raw, labels);
  fit.after = calibration(probs, labels);
  // A card without an operating point (a freshly trained one) gets it chosen here, on the
  // calibrated val probabilities, by its `thresholds.rule`: for three or more classes the
  // point on P(positive) depends on the temperature. An existing point stays the same decision
  // rule: for two classes P(pos) >= op is a threshold on the logit difference, which a new
  // temperature rescales.
  double op = card.thresholds.value("operating_point", 0.5);
  if (!card.thresholds.contains("operating_point")) {
    const nlohmann::json rule = card.thresholds.value("rule", nlohmann::json("youden"));
    op = choose_operating_point(probs, labels, positive, rule.is_object() ? rule.value("sensitivity", -1.0) : -1.0);
    card.thresholds["operating_point"] = op;
    card.thresholds["rule"] = rule;
  } else if (!o.keep_operating_point && K == 2 && std::abs(old_t - t) > 1e-12 && op > 0 && op < 1) {
    const double logit = std::log(op / (1 - op)) * old_t / t;
    op = 1 / (1 + std::exp(-logit));
    card.thresholds["operating_point"] = op;
  }

  // 2. Metrics with the new temperature, risk-coverage and abstention.
  ClassificationReportOptions ro;
  ro.classes = card.classes;
  ro.positive_class = card.positive_class;
  ro.threshold = op;
  ro.bootstrap_rounds = o.bootstrap_rounds;
  ro.seed = o.seed;
  nlohmann::json report = classification_report(probs, labels, ro);
  std::vector<double> conf;
  std::vector<bool> correct;
  for (size_t i = 0; i < probs.size(); ++i) {
    const auto& p = probs[i];
    conf.push_back(*std::max_element(p.begin(), p.end()));
    correct.push_back(static_cast<int>(std::max_element(p.begin(), p.end()) - p.begin()) == labels[i]);
  }
  const double aurc = risk_coverage(conf, correct, &fit.coverage, &fit.risk);
  const double acc = std::count(correct.begin(), correct.end(), true) / static_cast<double>(correct.size());
  double accuracy_raw = 0;
  for (size_t i = 0; i < raw.size(); ++i)
    accuracy_raw += static_cast<int>(std::max_element(raw[i].begin(), raw[i].end()) - raw[i].begin()) == labels[i];
  accuracy_raw /= static_cast<double>(raw.size());
  // Excess AURC: above the best possible ordering for this accuracy (Geifman et al. 2019).
  const double err = 1 - acc;
  const double optimal = err > 0 ? err + (1 - err) * std::log(1 - err) : 0.0;
  std::vector<double> cov_pts, risk_pts;
  for (int s = 1; s <= 20; ++s) {
    const size_t k = std::max<size_t>(1, static_cast<size_t>(std::lround(s / 20.0 * static_cast<double>(conf.size())))) - 1;
    cov_pts.push_back(fit.coverage[k]);
    risk_pts.push_back(fit.risk[k]);
  }
  nlohmann::json abstain = choose_abstention(probs, labels, positive, op, o);
  card.thresholds["abstain"] = abstain;

  // What a perfectly calibrated model would score on this many cases: small val sets cannot
  // show an ECE much below it, however good the calibration.
  const EceFloor floor = ece_floor(probs, 15, 2000, o.seed);
  report["calibration"] = {{"temperature", t},
                           {"ece_before", fit.before.ece},
                           {"ece_after", fit.after.ece},
                           {"ece_floor", {{"mean", floor.mean}, {"q95", floor.q95}}},
                           {"mce_before", fit.before.mce},
                           {"mce_after", fit.after.mce},
                           {"brier_before", brier(raw, labels)},
                           {"brier_after", brier(probs, labels)},
                           {"reliability_before", calibration_json(fit.before)},
                           {"reliability_after", calibration_json(fit.after)},
                           {"plot", "reliability.png"}};
  report["risk_coverage"] = {{"aurc", aurc}, {"excess_aurc", aurc - optimal}, {"coverage", cov_pts},
                             {"risk", risk_pts}, {"plot", "risk_coverage.png"}};
  card.metrics["val"] = report;

  // 3. Feature-space OOD reference on train, thresholds on val.
  const FeatureOod ood = FeatureOod::fit(train_f, train_y, K, o.components);
  fit.ood_bytes = ood.serialize();
  const std::vector<double> val_maha = ood.mahalanobis(val_f), train_maha = ood.mahalanobis(train_f);
  const std::vector<double> val_energy = energy_scores(val_logits), train_energy = energy_scores(train_logits);
  const double maha_t = quantile(val_maha, o.ood_pass), energy_t = quantile(val_energy, o.ood_pass);
  size_t both = 0;
  for (size_t i = 0; i < val_maha.size(); ++i) both += val_maha[i] <= maha_t && (!o.judge_energy || val_energy[i] <= energy_t);
  nlohmann::json features = ood.describe("ood.pt", sha256_hex(fit.ood_bytes));
  features["pass_quantile"] = o.ood_pass;
  features["mahalanobis"] = {{"threshold", maha_t}, {"val_median", quantile(val_maha, 0.5)},
                             {"train_median", quantile(train_maha, 0.5)}, {"train_q99", quantile(train_maha, 0.99)}};
  features["energy"] = {{"threshold", energy_t}, {"val_median", quantile(val_energy, 0.5)},
                        {"train_median", quantile(train_energy, 0.5)}, {"train_q99", quantile(train_energy, 0.99)},
                        {"judged", o.judge_energy}};
  features["val_pass_rate"] = static_cast<double>(both) / static_cast<double>(val_maha.size());
  features["fitted_on"] = {{"train_cases", train_x.size(0)}, {"val_cases", val_x.size(0)}};
  card.ood["features"] = features;

  fit.summary = {{"model", card.id()},
                 {"temperature", t},
                 {"temperature_before", old_t},
                 {"ece_before", fit.before.ece},
                 {"ece_after", fit.after.ece},
                 {"ece_floor", floor.mean},
                 {"ece_floor_q95", floor.q95},
                 {"accuracy", acc},
                 {"accuracy_uncalibrated", accuracy_raw},
                 {"aurc", aurc},
                 {"abstain", abstain},
                 {"operating_point", op},
                 {"ood", {{"mahalanobis_threshold", maha_t}, {"energy_threshold", energy_t},
                          {"val_pass_rate", features["val_pass_rate"]}, {"components", features["components"]},
                          {"features", features["features"]}}},
                 {"train_cases", train_x.size(0)},
                 {"val_cases", val_x.size(0)}};
  return fit;
}

void save_trust(const TrustFit& fit, const std::string& dir, bool with_card) {
  std::vector<Series> rel;
  auto bins = [](const Calibration& c, const std::string& name, bool dashed) {
    Series s{name, {}, {}, dashed, true};
    for (size_t b = 0; b < c.bin_count.size(); ++b)
      if (c.bin_count[b] > 0) s.x.push_back(c.bin_confidence[b]), s.y.push_back(c.bin_accuracy[b]);
    return s;
  };
  char title[160];
  std::snprintf(title, sizeof title, "Reliability on val: ECE %.3f before, %.3f after (T = %.3f)", fit.before.ece,
                fit.after.ece, fit.card.temperature);
  PlotOptions po;
  po.title = title;
  po.x_label = "confidence";
  po.y_label = "accuracy";
  po.x_min = 0, po.x_max = 1, po.y_min = 0, po.y_max = 1;
  po.diagonal = true;
  write_line_plot((fs::path(dir) / "reliability.png").string(),
                  {bins(fit.before, "before (T = 1)", true), bins(fit.after, "after temperature scaling", false)}, po);
  PlotOptions rc;
  std::snprintf(title, sizeof title, "Risk-coverage on val (AURC %.4f)",
                fit.card.metrics["val"]["risk_coverage"]["aurc"].get<double>());
  rc.title = title;
  rc.x_label = "coverage (fraction answered, most confident first)";
  rc.y_label = "risk (error rate of answered)";
  rc.x_min = 0, rc.x_max = 1, rc.y_min = 0;
  write_line_plot((fs::path(dir) / "risk_coverage.png").string(), {Series{"calibrated confidence", fit.coverage, fit.risk}}, rc);

  AtomicOutput ood((fs::path(dir) / "ood.pt").string());
  write_bytes(ood.temp_path(), fit.ood_bytes);
  if (with_card) {
    AtomicOutput card((fs::path(dir) / "card.json").string());
    {
      std::ofstream f(card.temp_path());
      f << fit.card.to_json().dump(2) << "\n";
      if (!f) throw InputError(dir, "cannot write card.json");
    }
    ood.commit();
    card.commit();
  } else {
    ood.commit();
  }
}

nlohmann::json calibrate_bundle(const std::string& bundle_dir, const std::string& manifest,
                                const CalibrateOptions& o) {
  const Model model = Model::load(bundle_dir);
  if (model.card().task != "classify")
    throw UsageError("calibrate is for classifiers; " + model.card().id() + " is a segmenter");
  const Manifest m = load_manifest(manifest);
  auto load = [&](const std::string& split, at::Tensor& x, at::Tensor& y, std::vector<double>* sizes) {
    const std::vector<ManifestRow> rows = m.select(split);
    if (rows.empty()) throw InputError(manifest, "no rows of split '" + split + "' (calibrate needs train and val rows)");
    std::vector<std::string> paths;
    std::vector<int64_t> labels;
    for (const auto& r : rows) {
      paths.push_back(r.path);
      const auto& cls = model.card().classes;
      const auto it = std::find(cls.begin(), cls.end(), r.label);
      if (it == cls.end()) throw InputError(manifest, r.path + ": label '" + r.label + "' is not one of the model's classes");
      labels.push_back(it - cls.begin());
    }
    const std::vector<Image> images = read_images(paths);
    std::vector<at::Tensor> xs;
    for (const auto& im : images) {
      xs.push_back(model.prepare(im));
      if (sizes) sizes->push_back(in_plane_size(im));
    }
    x = at::stack(xs);
    y = at::tensor(labels, at::kLong);
  };
  at::Tensor tx, ty, vx, vy;
  std::vector<double> train_sizes;
  load(o.train_split, tx, ty, &train_sizes);
  load(o.val_split, vx, vy, nullptr);
  TrustFit fit = fit_trust(model, tx, ty, vx, vy, o.trust);
  // The size reference needs the images as read, which only calibrate and the trainer see.
  fit.card.ood["quality"]["size"] = size_reference(train_sizes);
  save_trust(fit, bundle_dir);
  nlohmann::json s = fit.summary;
  s["bundle"] = bundle_dir;
  s["manifest"] = manifest;
  return s;
}

}  // namespace medlens
