#include "infer/evaluate.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/parallel.h"
#include "io/read.h"
#include "metrics/classification.h"
#include "metrics/detection.h"
#include "metrics/segmentation.h"
#include "transforms/channels.h"
#include "nn/network.h"
#include "io/manifest.h"

namespace medlens {

std::vector<Image> read_images(const std::vector<std::string>& paths) {
  std::vector<Image> images(paths.size());
  parallel_for(static_cast<int64_t>(paths.size()), [&](int64_t i) { images[i] = read_image(paths[i]); });
  return images;
}

namespace {

nlohmann::json evaluate_segmentation(const Model& model, const std::vector<ManifestRow>& rows, const EvaluateOptions& o,
                                     const std::string& manifest) {
  const int K = static_cast<int>(model.card().classes.size());
  std::vector<at::Tensor> preds, probs, truths;
  std::vector<Geometry> geometry;
  Network& net = *model.network();
  net.eval();
  torch::NoGradGuard no_grad;
  for (const auto& r : rows) {
    if (r.mask.empty()) throw InputError(manifest, r.path + " has no mask to evaluate against");
    Image image = read_manifest_input(r, model.card().input.channel_names);
    model.check_fits(image);
    Sample s{image, read_image(r.mask)};
    Rng rng(0);
    s = model.preprocessing().apply(std::move(s), rng);
    const bool flat = !s.image.is_3d();
    const at::Tensor x = (flat ? s.image.voxels().select(1, 0) : s.image.voxels()).unsqueeze(0);
    const at::Tensor logits = net.forward(x);
    preds.push_back(logits.argmax(1)[0]);
    probs.push_back(at::softmax(logits, 1)[0][K - 1]);
    const at::Tensor lab = s.label->voxels()[0].round().to(at::kLong);
    truths.push_back(flat ? lab.select(0, 0) : lab);
    geometry.push_back(s.image.geometry());
  }
  nlohmann::json report = segmentation_report(at::stack(preds), at::stack(truths), K, geometry, o.bootstrap_rounds, o.seed);
  // Lesion-wise detection of the last (lesion) class: sensitivity, precision, FROC and CPM.
  if (K == 2) report["detection"] = detection_summary(at::stack(probs), at::stack(truths), geometry);
  return report;
}

}  // namespace

nlohmann::json evaluate_manifest(const std::vector<Model>& models, const std::string& manifest_path,
                                 const EvaluateOptions& o) {
  if (models.empty()) throw UsageError("evaluate needs a model");
  const Manifest manifest = load_manifest(manifest_path);
  const std::vector<ManifestRow> rows = manifest.select(o.split);
  if (rows.empty()) throw InputError(manifest_path, "no rows in split '" + o.split + "'");
  const ModelCard& card = models.front().card();
  nlohmann::json out = {{"manifest", manifest_path}, {"split", o.split}, {"n", rows.size()}};
  std::string ids;
  for (const auto& m : models) ids += (ids.empty() ? "" : ",") + m.card().id();
  out["model"] = ids;
  if (card.task == "segment") {
    out["task"] = "segment";
    out["metrics"] = evaluate_segmentation(models.front(), rows, o, manifest_path);
    return out;
  }
  std::vector<std::string> paths;
  std::vector<int> labels;
  for (const auto& r : rows) {
    paths.push_back(r.path);
    const auto it = std::find(card.classes.begin(), card.classes.end(), r.label);
    if (it == card.classes.end())
      throw InputError(manifest_path, r.path + ": label '" + r.label + "' is not a class of " + card.id());
    labels.push_back(static_cast<int>(it - card.classes.begin()));
  }
  const std::vector<Image> images = read_images(paths);
  const std::vector<Prediction> preds = predict_many(models, images, o.predict);
  ProbRows probs;
  for (const auto& p : preds) probs.push_back(p.probabilities);
  ClassificationReportOptions ro;
  ro.classes = card.classes;
  ro.positive_class = card.positive_class;
  ro.threshold = o.threshold >= 0 ? o.threshold : card.thresholds.value("operating_point", 0.5);
  ro.bootstrap_rounds = o.bootstrap_rounds;
  ro.seed = o.seed;
  out["task"] = "classify";
  out["metrics"] = classification_report(probs, labels, ro);
  // The yardstick for "ece" on this many cases (docs/TRUST.md).
  const EceFloor floor = ece_floor(probs, 15, 2000, o.seed);
  out["metrics"]["ece_floor"] = {{"mean", floor.mean}, {"q95", floor.q95}};
  nlohmann::json cases = nlohmann::json::array();
  for (size_t i = 0; i < preds.size(); ++i)
    cases.push_back({{"input", paths[i]}, {"label", rows[i].label}, {"predicted", preds[i].label},
                     {"p_" + card.positive_class, preds[i].probabilities[static_cast<size_t>(card.class_index(card.positive_class))]}});
  out["cases"] = cases;
  return out;
}

}  // namespace medlens
