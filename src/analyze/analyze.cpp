#include "analyze/analyze.h"
#include "analyze/common.h"
#include "analyze/lesions.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/hash.h"
#include "core/image.h"
#include "core/version.h"
#include "explain/explain.h"
#include "infer/model.h"
#include "infer/predict.h"
#include "io/file_util.h"
#include "io/read.h"
#include "io/write.h"
#include "quality/quality.h"
#include "report/html.h"
#include "report/render.h"

namespace fs = std::filesystem;

namespace medlens {

std::string default_models_dir() {
  if (const char* env = std::getenv("MEDLENS_MODELS")) return env;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (const fs::path& candidate : {exe.parent_path() / "../../models", exe.parent_path() / "../share/medlens/models"})
      if (fs::is_directory(candidate, ec)) return fs::weakly_canonical(candidate).string();
  }
  return "models";
}

std::string default_model_for(const std::string& modality, bool volume) {
  std::string name;
  if (volume) name = modality.empty() || modality == "MR" ? "brain-lesion" : "";
  else if (modality == "US") name = "busi";
  else if (modality.empty() || modality == "CR" || modality == "DX" || modality == "OT") name = "pneumoniamnist";
  if (name.empty())
    throw InputError("", std::string("no default model for ") + (volume ? "3-D " : "2-D ") +
                             (modality.empty() ? "images" : modality + " images") + ": pass --model");
  const std::string dir = (fs::path(default_models_dir()) / name).string();
  std::error_code ec;
  if (!fs::exists(fs::path(dir) / "card.json", ec))
    throw InputError(dir, "default model '" + name + "' is not installed (run `make models`)");
  return dir;
}

using analysis::card_summary;
using analysis::fixed;
using analysis::percent;
using analysis::write_text;

nlohmann::json analyze(const AnalyzeOptions& o) {
  if (o.input.empty() || o.out.empty()) throw UsageError("analyze needs INPUT and --out");
  const Image image = read_image(o.input);
  std::vector<std::string> bundles = o.models;
  if (bundles.empty()) bundles.push_back(default_model_for(image.metadata().modality, image.is_3d()));
  std::vector<Model> models;
  for (const auto& b : bundles) models.push_back(Model::load(b));
  for (const auto& m : models) m.check_fits(image);
  const Model& model = models.front();
  const ModelCard& card = model.card();
  if (card.task == "segment") {
    if (models.size() > 1) throw UsageError("analyze takes one segmentation model at a time");
    return analyze_lesions(o, image, model);
  }
  if (!o.channels.empty()) throw UsageError("--channel is for multi-channel models; " + card.id() + " takes one series");

  // Quality and out-of-distribution checks come before any answer is trusted: they read the
  // prediction's own prepared image and pass.
  PredictOptions po;
  po.tta = o.tta;
  po.mc_samples = o.mc_samples;
  po.seed = o.seed;
  std::vector<QualityReport> checks;
  const Prediction p = predict_checked(models, {image}, po, &checks).front();
  const QualityReport& quality = checks.front();

  const size_t pos = static_cast<size_t>(card.class_index(card.positive_class));
  const double op = card.thresholds.value("operating_point", 0.5);
  const bool positive = p.probabilities[pos] >= op;

  std::error_code ec;
  fs::create_directories(o.out, ec);
  if (ec) throw InputError(o.out, "cannot create output folder: " + ec.message());

  nlohmann::json explanation = nullptr;
  std::vector<uint8_t> overlay_png;
  ShortcutCheck shortcut;
  const std::string method = !o.explain_method.empty() ? o.explain_method : card.explanation.value("method", "gradcam");
  if (method != "none") {
    ExplainOptions eo;
    eo.method = method;
    eo.seed = o.seed;
    eo.target = card.positive_class;  // why the model does or does not see the finding
    const Explanation e = explain(model, image, eo);
    // The shortcut check: how much of the explanation lies on burned-in text or calipers.
    Image marks;
    shortcut = shortcut_check(image, e, MarkOptions{}, &marks);
    write_image(e.attribution, (fs::path(o.out) / "attribution.nii.gz").string());
    RenderOptions ro;
    ro.heatmap = &e.attribution;
    if (shortcut.marks_voxels > 0) ro.outlines.push_back(&marks);  // the marks, outlined
    overlay_png = render_png(image, ro);
    write_render((fs::path(o.out) / "overlay.png").string(), image, ro);
    explanation = explanation_json(e, model);
    explanation.erase("seconds");  // findings are bit-identical run after run: no timings
    explanation["shortcut_check"] = shortcut_check_json(shortcut);
    explanation["files"] = {"attribution.nii.gz", "overlay.png"};
  }

  nlohmann::json probabilities = nlohmann::json::object();
  for (size_t k = 0; k < p.classes.size(); ++k) probabilities[p.classes[k]] = p.probabilities[k];
  nlohmann::json findings = {
      {"medlens_findings", 1},
      {"input", {{"path", o.input}, {"format", image.metadata().source_format}, {"modality", image.metadata().modality},
                 {"size", {image.width(), image.height(), image.depth()}}, {"channels", image.channels()},
                 {"spacing_mm", image.geometry().spacing}}},
      {"result", {{"label", p.label}, {"probabilities", probabilities}, {"calibrated", true},
                  {"status", p.status}, {"reasons", p.reasons},
                  {"positive_class", card.positive_class}, {"operating_point", op},
                  {"decision", p.status == "ok" ? (positive ? card.positive_class + " suspected" : "no " + card.positive_class + " suspected")
                                                : "inconclusive: refer for human reading"}}},
      {"uncertainty", prediction_json(p)["uncertainty"]},
      {"quality", quality_json(quality)},
      {"model", card_summary(card)},
      {"explanation", explanation},
      {"provenance", {{"medlens_version", version()}, {"bundle_sha256", model.hash()},
                      {"input_sha256", fs::is_directory(o.input) ? std::string("(folder)") : sha256_file(o.input)},
                      {"options", {{"tta", o.tta}, {"mc_samples", o.mc_samples}, {"explain", method}, {"seed", o.seed},
                                   {"models", bundles.size()}}}}},
  };
  write_text((fs::path(o.out) / "findings.json").string(), findings.dump(2) + "\n");

  // The human-readable report: the image, the result, how sure, why, and what the model cannot do.
  HtmlReport r("medlens analysis: " + fs::path(o.input).filename().string());
  r.heading("Result");
  r.raw("<p class=\"" + std::string(p.status == "ok" ? "ok" : "inconclusive") + "\">" +
        html_escape(findings["result"]["decision"].get<std::string>()) + "</p>");
  std::vector<std::vector<std::string>> rows = {{"class", "calibrated probability"}};
  for (size_t k = 0; k < p.classes.size(); ++k) rows.push_back({p.classes[k], percent(p.probabilities[k])});
  r.table(rows);
  r.paragraph("Operating point: P(" + card.positive_class + ") >= " + fixed(op) + " is reported as " +
              card.positive_class + " suspected (chosen on validation: " + card.thresholds.value("rule", nlohmann::json("youden")).dump() + ").");
  for (const auto& reason : p.reasons) r.paragraph("Why inconclusive: " + reason, "warn");
  r.heading("How sure, and why");
  r.table({{"measure", "value"},
           {"predictive entropy (nats)", fixed(p.entropy)},
           {"passes (ensemble x TTA x MC dropout)", std::to_string(p.passes)},
           {"mutual information (disagreement)", p.passes > 1 ? fixed(p.mutual_information, 4) : "n/a (single pass)"}});
  r.image_png(render_png(image), "input (" + image.metadata().modality + ")", 360);
  if (!overlay_png.empty()) {
    r.image_png(overlay_png, "where the evidence for '" + card.positive_class + "' lies (" + method + ")", 360);
    const auto& regions = explanation["top_regions"];
    if (!regions.empty()) {
      std::vector<std::vector<std::string>> rr = {{"region", "share of attribution", "box (voxels, min..max)"}};
      int i = 0;
      for (const auto& reg : regions)
        rr.push_back({std::to_string(++i), percent(reg["mass_share"].get<double>()),
                      reg["box_voxels"]["min"].dump() + " .. " + reg["box_voxels"]["max"].dump()});
      r.table(rr);
    }
    // The shortcut check, for every 2-D input: said plainly, whatever the verdict.
    if (shortcut.applicable) {
      r.heading("Shortcut check: burned-in text and calipers", 3);
      if (shortcut.marks_voxels == 0) {
        r.paragraph("No burned-in text or caliper marks were found on the image, so the explanation cannot rest on them.");
      } else {
        r.table({{"measure", "value"},
                 {"share of the attribution on text/calipers", percent(shortcut.marks_share)},
                 {"share of the image they cover", percent(shortcut.marks_area_share)},
                 {"verdict", shortcut.flag ? "FLAGGED" : "ok"}});
        r.paragraph(shortcut.flag
                        ? "The explanation leans on burned-in text or calipers (outlined on the overlay) rather than on "
                          "anatomy: the result may rest on a shortcut. Review the image without them."
                        : "The explanation does not concentrate on the burned-in text or calipers (outlined on the overlay).",
                    shortcut.flag ? "warn" : "");
        r.paragraph("Rule: flagged when at least " + percent(kShortcutMinShare) + " of the positive attribution lies on the marks and at least " +
                        fixed(kShortcutMinRatio, 0) + "x their share of the image.",
                    "muted");
      }
    }
  }
  r.heading("Input quality");
  std::vector<std::vector<std::string>> qrows = {{"check", "value", "verdict"}};
  for (const auto& c : quality.checks) qrows.push_back({c.name, fixed(c.value, 4), c.passed ? "ok" : c.reason});
  r.table(qrows);
  r.heading("Model");
  r.table({{"field", "value"},
           {"model", card.id()},
           {"task", card.description.empty() ? card.task : card.description},
           {"validation AUC", card.metrics.contains("val") && card.metrics["val"].contains("auc")
                                  ? fixed(card.metrics["val"]["auc"]["value"].get<double>()) + " (95% CI " +
                                        fixed(card.metrics["val"]["auc"]["ci95"][0].get<double>()) + "-" +
                                        fixed(card.metrics["val"]["auc"]["ci95"][1].get<double>()) + ")"
                                  : "not stated"},
           {"intended use", card.intended_use.empty() ? "not stated" : card.intended_use},
           {"bundle sha256", model.hash()}});
  analysis::write_limitations(r, card);
  r.save((fs::path(o.out) / "report.html").string());
  return findings;
}

}  // namespace medlens
