#include "robust/corruption_bench.h"

#include <cmath>

#include "core/error.h"
#include "infer/predict.h"
#include "metrics/classification.h"
#include "quality/quality.h"
#include "transforms/corruptions.h"

namespace medlens {
namespace {

struct Scores {
  double accuracy = 0, auc = 0, refused = 0;
};

Scores score(const Model& model, const std::vector<Image>& images, const std::vector<int>& labels,
             const CorruptionBenchOptions& o) {
  PredictOptions po;
  po.batch_size = o.batch_size;
  // Judged: with the input and OOD checks and abstention, from the same pass.
  const std::vector<Prediction> preds =
      o.judge ? predict_checked({model}, images, po) : predict_many({model}, images, po);
  const int positive = static_cast<int>(model.card().class_index(model.card().positive_class));
  std::vector<double> s;
  std::vector<bool> pos;
  double correct = 0, refused = 0;
  for (size_t i = 0; i < preds.size(); ++i) {
    const Prediction& p = preds[i];
    const int arg = static_cast<int>(std::max_element(p.probabilities.begin(), p.probabilities.end()) - p.probabilities.begin());
    correct += arg == labels[i];
    s.push_back(p.probabilities[static_cast<size_t>(positive)]);
    pos.push_back(labels[i] == positive);
    if (o.judge) refused += p.status != "ok";
  }
  const double n = static_cast<double>(preds.size());
  return {correct / n, roc_auc(s, pos), o.judge ? refused / n : NAN};
}

nlohmann::json num(double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); }

}  // namespace

nlohmann::json corruption_benchmark(const Model& model, const std::vector<Image>& images, const std::vector<int>& labels,
                                    const CorruptionBenchOptions& o) {
  if (images.empty() || images.size() != labels.size()) throw UsageError("corruption benchmark needs labelled images");
  const std::vector<std::string> kinds = o.kinds.empty() ? corruption_kinds() : o.kinds;
  const Scores clean = score(model, images, labels, o);
  nlohmann::json out = {{"clean", {{"accuracy", clean.accuracy}, {"auc", num(clean.auc)}, {"refused", num(clean.refused)}}},
                        {"kinds", kinds}, {"severities", o.severities}, {"n", images.size()},
                        {"accuracy", nlohmann::json::array()}, {"auc", nlohmann::json::array()},
                        {"refused", nlohmann::json::array()}, {"ce", nlohmann::json::object()},
                        {"relative_ce", nlohmann::json::object()}, {"skipped", nlohmann::json::object()}};
  double mce = 0, rmce = 0;
  int counted = 0;
  for (size_t k = 0; k < kinds.size(); ++k) {
    nlohmann::json acc = nlohmann::json::array(), auc = nlohmann::json::array(), ref = nlohmann::json::array();
    double err = 0;
    int levels = 0;
    for (int sev : o.severities) {
      try {
        const TransformPtr t = make_corruption(kinds[k], sev);
        std::vector<Image> corrupted;
        for (size_t i = 0; i < images.size(); ++i) {
          Rng rng(o.seed + 1000003 * k + 7919 * static_cast<uint64_t>(sev) + i);
          corrupted.push_back((*t)(images[i], rng));
        }
        const Scores s = score(model, corrupted, labels, o);
        acc.push_back(s.accuracy), auc.push_back(num(s.auc)), ref.push_back(num(s.refused));
        err += 1 - s.accuracy;
        ++levels;
      } catch (const InputError& e) {
        acc.push_back(nullptr), auc.push_back(nullptr), ref.push_back(nullptr);
        out["skipped"][kinds[k]] = e.what();
      }
    }
    out["accuracy"].push_back(acc);
    out["auc"].push_back(auc);
    out["refused"].push_back(ref);
    if (levels > 0) {
      const double ce = err / levels;
      out["ce"][kinds[k]] = ce;
      out["relative_ce"][kinds[k]] = ce - (1 - clean.accuracy);
      mce += ce;
      rmce += ce - (1 - clean.accuracy);
      ++counted;
    }
  }
  out["mce"] = counted ? nlohmann::json(mce / counted) : nlohmann::json(nullptr);
  out["relative_mce"] = counted ? nlohmann::json(rmce / counted) : nlohmann::json(nullptr);
  return out;
}

}  // namespace medlens
