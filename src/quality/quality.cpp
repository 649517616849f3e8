#include "quality/quality.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "quality/ood.h"

namespace medlens {
namespace {

// Robust noise SD (Donoho): median absolute finest diagonal Haar detail / 0.6745, over the
// last two axes of every channel and slice.
double noise_sd(const at::Tensor& x) {
  const int64_t h = x.size(-2) / 2 * 2, w = x.size(-1) / 2 * 2;
  if (h < 2 || w < 2) return 0;
  const at::Tensor t = x.narrow(-2, 0, h).narrow(-1, 0, w);
  const at::Tensor a = t.slice(-2, 0, h, 2).slice(-1, 0, w, 2), b = t.slice(-2, 0, h, 2).slice(-1, 1, w, 2);
  const at::Tensor c = t.slice(-2, 1, h, 2).slice(-1, 0, w, 2), d = t.slice(-2, 1, h, 2).slice(-1, 1, w, 2);
  const at::Tensor hh = (a - b - c + d) / 2;
  return hh.abs().flatten().median().item<double>() / 0.6745;
}

std::string fmt(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.3g", v);
  return b;
}

// Feature-space checks against the card's OOD reference (when the bundle has one): the image
// must look, to the network itself, like the images it was trained on.
void assess_ood(const FeatureOod& ood, const at::Tensor& logits, const at::Tensor& features, const Model& model,
                std::vector<QualityReport>& reports) {
  const nlohmann::json& spec = model.card().ood["features"];
  const double pass = spec.value("pass_quantile", 0.99);
  const std::string pct = fmt(100 * pass);
  if (!logits.defined() || !features.defined() || logits.size(0) != static_cast<int64_t>(reports.size()) ||
      features.size(0) != static_cast<int64_t>(reports.size()))
    throw UsageError("the OOD checks of " + model.card().id() + " need the logits and features of every image");
  const std::vector<double> maha = ood.mahalanobis(features), energy = energy_scores(logits);
  for (size_t i = 0; i < reports.size(); ++i) {
    QualityCheck m{"mahalanobis", maha[i], true, ""};
    if (spec.contains("mahalanobis") && m.value > spec["mahalanobis"]["threshold"].get<double>()) {
      m.passed = false;
      m.reason = "the image is unlike the training images (Mahalanobis distance of its features " + fmt(m.value) +
                 ", above the " + pct + "th percentile of validation images, " +
                 fmt(spec["mahalanobis"]["threshold"].get<double>()) + ")";
    }
    reports[i].checks.push_back(m);
    QualityCheck e{"energy", energy[i], true, ""};
    if (spec.contains("energy") && spec["energy"].value("judged", true) && e.value > spec["energy"]["threshold"].get<double>()) {
      e.passed = false;
      e.reason = "the model's response is unlike its response to training images (energy score " + fmt(e.value) +
                 ", above the " + pct + "th percentile of validation images, " +
                 fmt(spec["energy"]["threshold"].get<double>()) + ")";
    }
    reports[i].checks.push_back(e);
  }
}

}  // namespace

bool QualityReport::ok() const {
  return std::all_of(checks.begin(), checks.end(), [](const QualityCheck& c) { return c.passed; });
}

std::map<std::string, double> quality_features(const at::Tensor& prepared) {
  const at::Tensor x = prepared.to(at::kFloat);
  const double sd = x.std().item<double>();
  // 2-D Laplacian over the last two axes (slices of volumes alike).
  const at::Tensor p = x.flatten(0, x.dim() - 3).unsqueeze(1);
  const at::Tensor k = at::tensor({0.f, 1.f, 0.f, 1.f, -4.f, 1.f, 0.f, 1.f, 0.f}).view({1, 1, 3, 3});
  const double lap = at::conv2d(p, k).abs().mean().item<double>();
  return {{"noise", noise_sd(x)}, {"sharpness", sd > 0 ? lap / sd : 0.0}, {"dynamic_range", sd}};
}

nlohmann::json quality_reference(const std::vector<std::map<std::string, double>>& features) {
  nlohmann::json out = nlohmann::json::object();
  if (features.empty()) return out;
  for (const auto& [name, unused] : features.front()) {
    std::vector<double> v;
    for (const auto& f : features) v.push_back(f.at(name));
    std::sort(v.begin(), v.end());
    auto q = [&](double p) { return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5))]; };
    out[name] = {{"q01", q(0.01)}, {"q50", q(0.5)}, {"q99", q(0.99)}};
  }
  return out;
}

double in_plane_size(const Image& image) { return static_cast<double>(std::min(image.height(), image.width())); }

nlohmann::json size_reference(const std::vector<double>& sizes) {
  std::vector<std::map<std::string, double>> f;
  for (double s : sizes) f.push_back({{"size", s}});
  return quality_reference(f).value("size", nlohmann::json::object());
}

std::vector<QualityReport> assess_quality_prepared(const std::vector<Image>& images, const at::Tensor& prepared,
                                                   const at::Tensor& logits, const at::Tensor& features,
                                                   const Model& model) {
  std::vector<QualityReport> reports(images.size());
  const nlohmann::json ref = model.card().ood.value("quality", nlohmann::json::object());
  // The measurements, image by image on LibTorch's threads (each image's own operations then
  // run serially, so its values do not depend on the thread count).
  std::vector<std::map<std::string, double>> measured(images.size());
  std::vector<std::pair<float, float>> ranges(images.size());
  at::parallel_for(0, static_cast<int64_t>(images.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      measured[static_cast<size_t>(i)] = quality_features(prepared[i]);
      ranges[static_cast<size_t>(i)] = value_range(images[static_cast<size_t>(i)]);
    }
  });
  for (size_t i = 0; i < images.size(); ++i) {
    QualityReport& r = reports[i];
    const auto& f = measured[i];
    // Tolerances beyond the training range: generous, so ordinary variation is never flagged.
    auto check = [&](const std::string& name, bool high_is_bad, double factor, const std::string& what) {
      QualityCheck c{name, f.at(name), true, ""};
      if (ref.contains(name)) {
        const double q = ref[name][high_is_bad ? "q99" : "q01"].get<double>();
        const double limit = high_is_bad ? q * factor : q / factor;
        if (high_is_bad ? c.value > limit : c.value < limit) {
          c.passed = false;
          c.reason = what + " (" + fmt(c.value) + ", training images " + (high_is_bad ? "up to " : "down to ") + fmt(q) + ")";
        }
      }
      r.checks.push_back(c);
    };
    QualityCheck range{"dynamic_range", f.at("dynamic_range"), true, ""};
    const auto [lo, hi] = ranges[i];
    if (!(hi > lo)) {
      range.passed = false;
      range.reason = "the image is blank (every voxel has the same value)";
    }
    r.checks.push_back(range);
    check("noise", true, 1.5, "the image is much noisier than the images this model was trained and tested on");
    check("sharpness", false, 1.5, "the image is much blurrier than the images this model was trained and tested on");
    // Size is judged on the image as read (preprocessing resizes every image to the input grid),
    // against the detail the model reads: its input grid, or its smallest training images when
    // those were smaller. Larger images only lose detail the model never used.
    QualityCheck size{"size", in_plane_size(images[i]), true, ""};
    if (ref.contains("size")) {
      const auto& in = model.card().input.size;  // x, y[, z]
      const double smallest = ref["size"]["q01"].get<double>();
      const double reads = in.size() >= 2 ? std::min<double>({smallest, static_cast<double>(in[0]), static_cast<double>(in[1])})
                                          : smallest;
      if (size.value < reads / 2) {
        size.passed = false;
        size.reason = "the image is much smaller than what this model reads (" + fmt(size.value) + " pixels across, against " +
                      fmt(reads) + " from training images of " + fmt(smallest) +
                      " or more): enlarging it cannot add the detail the model looks at";
      }
    }
    r.checks.push_back(size);
  }
  const FeatureOod ood = FeatureOod::load(model);
  if (!images.empty() && !ood.empty()) assess_ood(ood, logits, features, model, reports);
  return reports;
}

std::vector<QualityReport> assess_quality_many(const std::vector<Image>& images, const Model& model) {
  if (images.empty()) return {};
  const at::Tensor prepared = model.prepare_many(images);
  at::Tensor logits, features;
  if (!FeatureOod::load(model).empty()) features_and_logits(model, prepared, features, logits);
  return assess_quality_prepared(images, prepared, logits, features, model);
}

std::vector<Prediction> predict_checked(const std::vector<Model>& models, const std::vector<Image>& images,
                                        const PredictOptions& o, std::vector<QualityReport>* reports) {
  if (images.empty()) return {};
  if (models.empty()) throw UsageError("predict needs at least one model");
  const Model& model = models.front();
  const std::vector<at::Tensor> batches = prepare_for(models, images);
  std::vector<std::string> inputs;
  for (const auto& image : images) inputs.push_back(image.metadata().source_path);
  // The OOD checks read the features of the prediction's own pass: no second pass.
  const bool ood = !FeatureOod::load(model).empty();
  at::Tensor logits, features;
  std::vector<Prediction> preds =
      predict_prepared(models, batches, inputs, o, ood ? &logits : nullptr, ood ? &features : nullptr);
  std::vector<QualityReport> checks = assess_quality_prepared(images, batches.front(), logits, features, model);
  for (size_t i = 0; i < preds.size(); ++i) {
    apply_quality(checks[i], preds[i]);
    apply_abstention(model.card(), preds[i]);
  }
  if (reports) *reports = std::move(checks);
  return preds;
}

QualityReport assess_quality(const Image& image, const Model& model) { return assess_quality_many({image}, model).front(); }

void apply_quality(const QualityReport& report, Prediction& p) {
  for (const auto& c : report.checks) {
    p.quality[c.name] = c.value;
    if (!c.passed) {
      p.status = "inconclusive";
      p.reasons.push_back(c.reason);
      p.quality_flags.push_back(c.name);
    }
  }
}

void apply_abstention(const ModelCard& card, Prediction& p) {
  const nlohmann::json rules = card.thresholds.value("abstain", nlohmann::json::object());
  if (rules.empty()) return;
  const double confidence = *std::max_element(p.probabilities.begin(), p.probabilities.end());
  if (rules.contains("min_confidence") && confidence < rules["min_confidence"].get<double>()) {
    p.status = "inconclusive";
    p.reasons.push_back("the model is not confident enough (" + fmt(confidence) + " below the " +
                        fmt(rules["min_confidence"].get<double>()) + " chosen on validation)");
  }
  if (rules.contains("max_entropy") && p.entropy > rules["max_entropy"].get<double>()) {
    p.status = "inconclusive";
    p.reasons.push_back("the prediction is too uncertain (entropy " + fmt(p.entropy) + ")");
  }
  if (rules.contains("max_mutual_information") && p.passes > 1 &&
      p.mutual_information > rules["max_mutual_information"].get<double>()) {
    p.status = "inconclusive";
    p.reasons.push_back("repeated passes disagree (mutual information " + fmt(p.mutual_information) + ")");
  }
}

nlohmann::json quality_json(const QualityReport& report) {
  nlohmann::json checks = nlohmann::json::array();
  for (const auto& c : report.checks) {
    nlohmann::json j = {{"name", c.name}, {"value", c.value}, {"passed", c.passed}};
    if (!c.passed) j["reason"] = c.reason;
    checks.push_back(j);
  }
  return {{"ok", report.ok()}, {"checks", checks}};
}

}  // namespace medlens
