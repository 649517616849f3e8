#include "robust/audit.h"

#include <ATen/ATen.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>

#include "core/error.h"
#include "core/version.h"
#include "infer/evaluate.h"
#include "infer/model.h"
#include "infer/predict.h"
#include "io/file_util.h"
#include "io/manifest.h"
#include "metrics/classification.h"
#include "metrics/subgroup.h"
#include "plot/plot.h"
#include "quality/quality.h"
#include "quality/trust.h"
#include "report/html.h"
#include "robust/attack.h"
#include "robust/corruption_bench.h"

namespace fs = std::filesystem;

namespace medlens {
namespace {

std::string fixed(double v, int digits = 3) {
  if (std::isnan(v)) return "n/a";
  char b[32];
  std::snprintf(b, sizeof b, "%.*f", digits, v);
  return b;
}

std::string pct(double v) { return std::isnan(v) ? "n/a" : fixed(100 * v, 1) + "%"; }

double value_or_nan(const nlohmann::json& j) { return j.is_number() ? j.get<double>() : NAN; }

std::string ci(const nlohmann::json& m) {
  if (m.is_null()) return "n/a";
  return fixed(m["value"].get<double>()) + " (" + fixed(m["ci95"][0].get<double>()) + "-" + fixed(m["ci95"][1].get<double>()) + ")";
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

Series bins(const Calibration& c, const std::string& name, bool dashed) {
  Series s{name, {}, {}, dashed, true};
  for (size_t b = 0; b < c.bin_count.size(); ++b)
    if (c.bin_count[b] > 0) s.x.push_back(c.bin_confidence[b]), s.y.push_back(c.bin_accuracy[b]);
  return s;
}

}  // namespace

nlohmann::json audit(const std::string& bundle, const std::string& manifest, const std::string& out,
                     const AuditOptions& o) {
  if (out.empty()) throw UsageError("audit needs --out");
  const Model model = Model::load(bundle);
  const ModelCard& card = model.card();
  if (card.task != "classify") throw UsageError("audit is for classifiers; " + card.id() + " is a segmenter");
  const Manifest m = load_manifest(manifest);
  std::vector<ManifestRow> rows = m.select(o.split);
  if (rows.empty()) throw InputError(manifest, o.split.empty() ? "no rows" : "no rows of split '" + o.split + "'");
  if (o.limit > 0 && static_cast<int64_t>(rows.size()) > o.limit) {
    std::vector<ManifestRow> picked;
    for (int64_t i = 0; i < o.limit; ++i) picked.push_back(rows[static_cast<size_t>(i * static_cast<int64_t>(rows.size()) / o.limit)]);
    rows = picked;
  }
  std::vector<std::string> paths;
  std::vector<int> labels;
  for (const auto& r : rows) {
    const auto it = std::find(card.classes.begin(), card.classes.end(), r.label);
    if (it == card.classes.end()) throw InputError(manifest, r.path + ": label '" + r.label + "' is not one of the model's classes");
    paths.push_back(r.path);
    labels.push_back(static_cast<int>(it - card.classes.begin()));
  }
  const std::vector<Image> images = read_images(paths);
  const int positive = static_cast<int>(card.class_index(card.positive_class));
  const double op = card.thresholds.value("operating_point", 0.5);
  const size_t n = images.size();

  // Predictions, calibration, abstention and the input/OOD checks.
  std::vector<QualityReport> quality;
  const std::vector<Prediction> preds = predict_checked({model}, images, {}, &quality);
  ProbRows raw, probs;
  std::vector<double> conf;
  std::vector<bool> correct;
  std::map<std::string, int> failed_checks;
  int answered = 0, answered_correct = 0, answered_pos = 0, answered_tp = 0, refused_by_checks = 0;
  for (size_t i = 0; i < n; ++i) {
    const Prediction& p = preds[i];
    const at::Tensor s = at::softmax(at::tensor(p.raw_logits, at::kDouble), 0).contiguous();
    raw.emplace_back(s.data_ptr<double>(), s.data_ptr<double>() + s.numel());
    probs.push_back(p.probabilities);
    const int arg = static_cast<int>(std::max_element(p.probabilities.begin(), p.probabilities.end()) - p.probabilities.begin());
    conf.push_back(p.probabilities[static_cast<size_t>(arg)]);
    correct.push_back(arg == labels[i]);
    const QualityReport& q = quality[i];
    for (const auto& c : q.checks) failed_checks[c.name] += !c.passed;
    refused_by_checks += !q.ok();
    if (p.status != "ok") continue;
    ++answered;
    answered_correct += arg == labels[i];
    if (labels[i] == positive) ++answered_pos, answered_tp += p.probabilities[static_cast<size_t>(positive)] >= op;
  }
  ClassificationReportOptions ro;
  ro.classes = card.classes;
  ro.positive_class = card.positive_class;
  ro.threshold = op;
  ro.bootstrap_rounds = o.bootstrap_rounds;
  ro.seed = o.seed;
  const nlohmann::json metrics = classification_report(probs, labels, ro);
  const Calibration before = calibration(raw, labels), after = calibration(probs, labels);
  const EceFloor floor = ece_floor(probs, 15, 2000, o.seed);
  std::vector<double> cov, risk;
  const double aurc = risk_coverage(conf, correct, &cov, &risk);
  nlohmann::json checks = nlohmann::json::object();
  for (const auto& [name, count] : failed_checks) checks[name] = {{"failed", count}, {"pass_rate", 1 - count / static_cast<double>(n)}};

  // Corruptions and attacks.
  CorruptionBenchOptions co;
  co.kinds = o.corruptions;
  co.severities = o.severities;
  co.seed = o.seed;
  const nlohmann::json corruption = corruption_benchmark(model, images, labels, co);
  std::vector<at::Tensor> xs;
  std::vector<int64_t> ys;
  const int64_t attack_n = std::min<int64_t>(static_cast<int64_t>(n), o.attack_limit > 0 ? o.attack_limit : static_cast<int64_t>(n));
  for (int64_t i = 0; i < attack_n; ++i) {
    const size_t k = static_cast<size_t>(i * static_cast<int64_t>(n) / attack_n);
    xs.push_back(model.prepare(images[k]));
    ys.push_back(labels[k]);
  }
  AttackOptions ao;
  ao.steps = o.attack_steps;
  ao.seed = o.seed;
  const nlohmann::json attack_curve = robust_accuracy(model, at::stack(xs), at::tensor(ys, at::kLong), o.attack_eps, ao);

  // Subgroups: every column beyond path, label, mask and split.
  std::map<std::string, std::vector<std::string>> columns;
  for (const auto& h : m.header) {
    if (h == "path" || h == "label" || h == "mask" || h == "split") continue;
    for (const auto& r : rows) columns[h].push_back(r.columns.count(h) ? r.columns.at(h) : "");
  }
  SubgroupOptions so;
  so.positive = positive;
  so.threshold = op;
  so.bootstrap_rounds = o.bootstrap_rounds;
  so.seed = o.seed;
  const nlohmann::json subgroups = subgroup_audit(probs, labels, columns, so);

  const double dn = static_cast<double>(n);
  nlohmann::json result = {
      {"medlens_audit", 1},
      {"model", card.id()},
      {"manifest", manifest},
      {"split", o.split},
      {"n", n},
      {"metrics", metrics},
      {"calibration", {{"temperature", card.temperature}, {"ece_before", before.ece}, {"ece_after", after.ece},
                       {"ece_floor", {{"mean", floor.mean}, {"q95", floor.q95}}}, {"mce_before", before.mce},
                       {"mce_after", after.mce}, {"brier_before", brier(raw, labels)},
                       {"brier_after", brier(probs, labels)}}},
      {"selective", {{"aurc", aurc}, {"coverage", answered / dn}, {"refused_by_input_checks", refused_by_checks / dn},
                     {"accuracy_answered", answered ? answered_correct / static_cast<double>(answered) : NAN},
                     {"sensitivity_answered", answered_pos ? answered_tp / static_cast<double>(answered_pos) : NAN},
                     {"abstain", card.thresholds.value("abstain", nlohmann::json::object())}}},
      {"input_checks", checks},
      {"corruption", corruption},
      {"attack", attack_curve},
      {"subgroups", subgroups},
      {"medlens_version", version()},
      {"files", {"audit.html", "audit.json", "reliability.png", "risk_coverage.png", "corruption_heatmap.png", "attack_curve.png"}}};
  for (const char* k : {"accuracy_answered", "sensitivity_answered"})
    if (std::isnan(result["selective"][k].get<double>())) result["selective"][k] = nullptr;

  // Write everything into a fresh folder, swapped in at the end.
  AtomicOutput folder(out, /*is_folder=*/true);
  const fs::path dir = folder.temp_path();
  PlotOptions rel;
  rel.title = "Reliability: ECE " + fixed(before.ece) + " before, " + fixed(after.ece) + " after temperature scaling";
  rel.x_label = "confidence", rel.y_label = "accuracy";
  rel.x_min = 0, rel.x_max = 1, rel.y_min = 0, rel.y_max = 1, rel.diagonal = true;
  write_line_plot((dir / "reliability.png").string(), {bins(before, "before (T = 1)", true), bins(after, "calibrated", false)}, rel);
  PlotOptions rc;
  rc.title = "Risk-coverage (AURC " + fixed(aurc, 4) + ")";
  rc.x_label = "coverage (most confident first)", rc.y_label = "error rate of answered";
  rc.x_min = 0, rc.x_max = 1, rc.y_min = 0;
  write_line_plot((dir / "risk_coverage.png").string(), {Series{"calibrated confidence", cov, risk}}, rc);
  std::vector<std::vector<double>> heat;
  std::vector<std::string> sev_labels;
  for (int s : o.severities) sev_labels.push_back("severity " + std::to_string(s));
  for (const auto& row : corruption["accuracy"]) {
    heat.emplace_back();
    for (const auto& v : row) heat.back().push_back(value_or_nan(v));
  }
  PlotOptions hm;
  hm.title = "Accuracy under corruption (clean " + fixed(corruption["clean"]["accuracy"].get<double>()) + ")";
  hm.width = 700, hm.height = 120 + 26 * static_cast<int>(heat.size());
  hm.y_min = 0, hm.y_max = 1;
  write_heatmap((dir / "corruption_heatmap.png").string(), heat, corruption["kinds"].get<std::vector<std::string>>(), sev_labels, hm);
  Series curve{"PGD L-inf, " + std::to_string(o.attack_steps) + " steps", {}, {}, false, true};
  for (size_t i = 0; i < attack_curve["eps"].size(); ++i) {
    curve.x.push_back(attack_curve["eps"][i].get<double>() * 255);
    curve.y.push_back(attack_curve["accuracy"][i].get<double>());
  }
  PlotOptions ac;
  ac.title = "Robust accuracy under attack (" + std::to_string(attack_n) + " cases)";
  ac.x_label = "eps (grey levels of 255)", ac.y_label = "accuracy", ac.y_min = 0, ac.y_max = 1;
  write_line_plot((dir / "attack_curve.png").string(), {curve}, ac);

  HtmlReport r("medlens trust audit: " + card.id());
  r.paragraph("Model " + card.id() + " on " + std::to_string(n) + " labelled images of " + fs::path(manifest).filename().string() +
              (o.split.empty() ? "" : " (split " + o.split + ")") + ". Every number below is measured on these images.");
  r.heading("Performance");
  r.table({{"metric", "value (95% CI)"},
           {"AUC (" + card.positive_class + " vs rest)", ci(metrics.value("auc", nlohmann::json()))},
           {"accuracy", ci(metrics["accuracy"])},
           {"sensitivity at the operating point", ci(metrics.value("sensitivity", nlohmann::json()))},
           {"specificity at the operating point", ci(metrics.value("specificity", nlohmann::json()))}});
  r.heading("Calibration");
  r.paragraph("Temperature " + fixed(card.temperature) + " (fitted on validation). ECE " + fixed(before.ece) + " before, " +
              fixed(after.ece) + " after; Brier " + fixed(result["calibration"]["brier_before"].get<double>()) + " before, " +
              fixed(result["calibration"]["brier_after"].get<double>()) + " after. A perfectly calibrated model " +
              "would still show an ECE of about " + fixed(floor.mean) + " on " + std::to_string(n) +
              " images (95% of random draws below " + fixed(floor.q95) +
              "): an ECE near that is as good as this sample can show.");
  r.image_png(read_bytes((dir / "reliability.png").string()), "reliability diagram", 520);
  r.heading("Knowing when not to answer");
  r.paragraph("Answered " + pct(answered / dn) + " of the images (the rest were inconclusive: input or out-of-distribution checks " +
              pct(refused_by_checks / dn) + ", low confidence the remainder). Accuracy on answered images " +
              pct(value_or_nan(result["selective"]["accuracy_answered"])) + ", sensitivity " +
              pct(value_or_nan(result["selective"]["sensitivity_answered"])) + ". AURC " + fixed(aurc, 4) + ".");
  r.image_png(read_bytes((dir / "risk_coverage.png").string()), "risk-coverage curve", 520);
  std::vector<std::vector<std::string>> crow = {{"input check", "images failing", "pass rate"}};
  for (const auto& [name, c] : checks.items())
    crow.push_back({name, std::to_string(c["failed"].get<int>()), pct(c["pass_rate"].get<double>())});
  r.table(crow);
  r.heading("Robustness to corruptions");
  r.paragraph("mCE " + fixed(value_or_nan(corruption["mce"])) + ", relative mCE " + fixed(value_or_nan(corruption["relative_mce"])) +
              " (corruption error minus the clean error " + fixed(1 - corruption["clean"]["accuracy"].get<double>()) +
              "; errors are not normalised by a baseline network).");
  std::vector<std::vector<std::string>> table = {{"corruption"}};
  for (int s : o.severities) table[0].push_back("sev " + std::to_string(s) + " acc / refused");
  table[0].push_back("CE");
  const auto kinds = corruption["kinds"].get<std::vector<std::string>>();
  for (size_t k = 0; k < kinds.size(); ++k) {
    std::vector<std::string> row{kinds[k]};
    for (size_t s = 0; s < o.severities.size(); ++s)
      row.push_back(fixed(value_or_nan(corruption["accuracy"][k][s])) + " / " + pct(value_or_nan(corruption["refused"][k][s])));
    row.push_back(corruption["ce"].contains(kinds[k]) ? fixed(corruption["ce"][kinds[k]].get<double>()) : "skipped");
    table.push_back(row);
  }
  r.table(table);
  r.image_png(read_bytes((dir / "corruption_heatmap.png").string()), "accuracy per corruption and severity", 600);
  r.heading("Adversarial robustness");
  std::vector<std::vector<std::string>> arow = {{"eps (of 255)", "accuracy under PGD"}};
  for (size_t i = 0; i < curve.x.size(); ++i) arow.push_back({fixed(curve.x[i], 2), pct(curve.y[i])});
  r.table(arow);
  r.image_png(read_bytes((dir / "attack_curve.png").string()), "robust accuracy over eps", 520);
  r.heading("Subgroups");
  if (columns.empty()) r.paragraph("The manifest has no subgroup columns (site, sex, age band, scanner, ...).");
  for (const auto& [column, audit_col] : subgroups.items()) {
    r.heading(column, 3);
    std::vector<std::vector<std::string>> srow = {{"value", "n", "accuracy", "sensitivity", "AUC", "accuracy gap to the rest", "flag"}};
    for (const auto& g : audit_col["groups"])
      srow.push_back({g["value"].get<std::string>(), std::to_string(g["n"].get<int>()), ci(g["accuracy"]), ci(g["sensitivity"]),
                      ci(g["auc"]), g.contains("gap_accuracy") ? ci(g["gap_accuracy"]) : "n/a",
                      g["flagged"].get<bool>() ? "CI excludes parity" : ""});
    r.table(srow);
  }
  r.save((dir / "audit.html").string());
  {
    std::ofstream f(dir / "audit.json");
    f << result.dump(2) << "\n";
    if (!f) throw InputError(out, "cannot write audit.json");
  }
  folder.commit();
  return result;
}

}  // namespace medlens
