#include "analyze/lesions.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <filesystem>

#include "analyze/common.h"
#include "core/error.h"
#include "core/hash.h"
#include "core/version.h"
#include "explain/explain.h"
#include "findings/findings.h"
#include "infer/sliding_window.h"
#include "io/read.h"
#include "io/write.h"
#include "nn/network.h"
#include "quality/quality.h"
#include "report/html.h"
#include "report/render.h"
#include "transforms/augment.h"
#include "transforms/channels.h"
#include "transforms/spatial.h"

namespace fs = std::filesystem;

namespace medlens {
namespace {

using analysis::fixed;
using analysis::percent;

// The series the card asks for, in its channel order, stacked on the first one's grid.
Image assemble_input(const AnalyzeOptions& o, const Image& first, const ModelCard& card) {
  const std::vector<std::string>& names = card.input.channel_names;
  for (const auto& [name, path] : o.channels)
    if (std::find(names.begin() + (names.empty() ? 0 : 1), names.end(), name) == names.end()) {
      std::string known;
      for (size_t c = 1; c < names.size(); ++c) known += (known.empty() ? "" : ", ") + names[c];
      throw UsageError("--channel " + name + ": model " + card.id() + " takes no such series" +
                       (known.empty() ? " (it takes one series: INPUT)" : " (it takes INPUT plus: " + known + ")"));
    }
  std::vector<Image> series{first};
  std::vector<std::string> paths{o.input};
  for (size_t c = 1; c < names.size(); ++c) {
    const auto it = o.channels.find(names[c]);
    if (it == o.channels.end())
      throw InputError(o.input, "model " + card.id() + " needs a '" + names[c] + "' series as channel " + std::to_string(c + 1) +
                                    " of " + std::to_string(names.size()) + " and none was given: pass --channel " + names[c] +
                                    "=PATH (a study without it is refused, not guessed at)");
    series.push_back(read_image(it->second));
    paths.push_back(it->second);
  }
  ChannelOptions co;
  co.register_series = o.register_series;
  return stack_channels(series, paths, co);
}

// The window of the card's input size centred on a finding, kept inside the image.
std::array<int64_t, 3> window_start(const Image& image, const Finding& f, const ModelCard& card) {
  const int64_t n[3] = {image.width(), image.height(), image.depth()};
  std::array<int64_t, 3> start{0, 0, 0};
  for (size_t a = 0; a < 3; ++a) {
    const int64_t w = a < card.input.size.size() ? card.input.size[a] : 1;
    start[a] = std::clamp<int64_t>(std::llround(f.centroid_voxel[a]) - w / 2, 0, std::max<int64_t>(0, n[a] - w));
  }
  return start;
}

Sample lesion_window(const Image& image, const Image& mask, const Finding& f, const ModelCard& card) {
  std::array<int64_t, 3> size{1, 1, 1};
  for (size_t a = 0; a < 3 && a < card.input.size.size(); ++a) size[a] = card.input.size[a];
  Rng unused(0);
  return make_crop_at(window_start(image, f, card), size)->apply(Sample{image, mask}, unused);
}

Image channel_of(const Image& image, int64_t c) {
  return image.with_voxels(image.voxels().narrow(0, c, 1).contiguous());
}

}  // namespace

nlohmann::json analyze_lesions(const AnalyzeOptions& o, const Image& first, const Model& model) {
  const ModelCard& card = model.card();
  const Image image = assemble_input(o, first, card);
  // Probabilities on the network's grid by sliding windows of the training size, then back on
  // the input's grid so findings are measured where the reader looks. The quality checks read
  // the same prepared input (segmenters carry no feature-space OOD reference: no logits needed).
  const Image prepared = model.prepared_image(image);
  const bool volume = prepared.is_3d();
  const at::Tensor x = volume ? prepared.voxels() : prepared.voxels().select(1, 0);
  const QualityReport quality = assess_quality_prepared({image}, x.unsqueeze(0), at::Tensor(), at::Tensor(), model).front();
  std::vector<int64_t> patch;
  for (auto it = card.input.size.rbegin(); it != card.input.size.rend(); ++it) patch.push_back(*it);  // [z,] y, x
  SlidingWindowOptions sw(patch);
  sw.overlap(0.5);
  if (o.tta) sw.mirror_axes(volume ? std::vector<int64_t>{0, 1, 2} : std::vector<int64_t>{0, 1});
  const at::Tensor probs = sliding_window_inference(*model.network(), x, sw);
  const int64_t pos = card.class_index(card.positive_class.empty() ? card.classes.back() : card.positive_class);
  at::Tensor lesion = probs[pos].contiguous();
  lesion = volume ? lesion.unsqueeze(0) : lesion.unsqueeze(0).unsqueeze(0);
  const Image prob_model = prepared.with_voxels(lesion);
  Shape one = image.shape();
  one.c = 1;
  const Image probability = resample_onto(prob_model, one, image.geometry());

  FindingOptions fo;
  fo.threshold = card.thresholds.value("lesion_threshold", 0.5);
  fo.min_volume_mm3 = card.thresholds.value("min_volume_mm3", 0.0);
  Image labels;
  const std::vector<Finding> found = extract_findings(probability, &image, fo, &labels);

  std::error_code ec;
  fs::create_directories(o.out, ec);
  if (ec) throw InputError(o.out, "cannot create output folder: " + ec.message());
  write_image(labels, (fs::path(o.out) / "lesions.nii.gz").string());
  write_image(probability, (fs::path(o.out) / "probability.nii.gz").string());

  // Each lesion: its best slice with the outline (every channel), and why the model drew it.
  const std::string method = !o.explain_method.empty() ? o.explain_method : card.explanation.value("method", "gradcam");
  const size_t max_explained = 10;  // explanations cost a backward pass each
  nlohmann::json lesions = nlohmann::json::array();
  HtmlReport report("medlens lesion analysis: " + fs::path(o.input).filename().string());
  std::vector<std::pair<std::vector<uint8_t>, std::string>> pictures;
  const std::vector<std::string>& names = card.input.channel_names;
  for (const Finding& f : found) {
    nlohmann::json j = to_json(f);
    const Image mask = labels.with_voxels((labels.voxels() == static_cast<float>(f.id)).to(at::kFloat));
    nlohmann::json files = nlohmann::json::array();
    for (int64_t c = 0; c < image.channels(); ++c) {
      const std::string name = c < static_cast<int64_t>(names.size()) ? names[static_cast<size_t>(c)] : "channel" + std::to_string(c + 1);
      const std::string file = "lesion_" + std::to_string(f.id) + "_" + name + ".png";
      RenderOptions ro;
      ro.slice = f.best_slice;
      ro.outlines.push_back(&mask);
      const Image shown = channel_of(image, c);
      write_render((fs::path(o.out) / file).string(), shown, ro);
      files.push_back(file);
      if (static_cast<size_t>(f.id) <= 4) pictures.push_back({render_png(shown, ro), "lesion " + std::to_string(f.id) + ", " + name + ", slice " + std::to_string(f.best_slice)});
    }
    if (method != "none" && static_cast<size_t>(f.id) <= max_explained) {
      // Explained on a window of the training size around the lesion, the input the network
      // was trained on, with the lesion's own logits as the target: why this lesion.
      const Sample window = lesion_window(image, mask, f, card);
      ExplainOptions eo;
      eo.method = method;
      eo.seed = o.seed;
      eo.target = card.classes[static_cast<size_t>(pos)];
      eo.region = &*window.label;
      const Explanation e = explain(model, window.image, eo);
      const double inside = attribution_share_in(e.attribution, *window.label);
      const std::string file = "lesion_" + std::to_string(f.id) + "_explanation.png";
      RenderOptions ro;
      ro.slice = window.image.is_3d() ? f.best_slice - window_start(image, f, card)[2] : 0;
      ro.heatmap = &e.attribution;
      ro.outlines.push_back(&*window.label);
      const Image shown = channel_of(window.image, 0);
      write_render((fs::path(o.out) / file).string(), shown, ro);
      files.push_back(file);
      j["explanation"] = {{"method", e.method}, {"layer", e.layer}, {"share_inside_lesion", inside},
                          {"file", file},
                          {"reading", inside >= 0.5 ? "the evidence lies mostly on the lesion itself"
                                                    : "much of the evidence lies outside the lesion: check its surroundings"}};
      if (static_cast<size_t>(f.id) <= 4) pictures.push_back({render_png(shown, ro), "lesion " + std::to_string(f.id) + ": where the evidence lies (" + method + ")"});
    }
    j["files"] = files;
    lesions.push_back(j);
  }

  std::vector<std::string> reasons;
  for (const auto& c : quality.checks)
    if (!c.passed) reasons.push_back(c.reason);
  const std::string status = reasons.empty() ? "ok" : "inconclusive";
  const double top = found.empty() ? probability.voxels().max().item<double>() : found.front().probability;
  const std::string decision =
      status != "ok" ? "inconclusive: refer for human reading"
      : found.empty() ? "no lesion found"
                      : std::to_string(found.size()) + (found.size() == 1 ? " lesion" : " lesions") + " found";
  nlohmann::json findings = {
      {"medlens_findings", 1},
      {"input", {{"path", o.input}, {"series", o.channels}, {"format", first.metadata().source_format},
                 {"modality", first.metadata().modality}, {"size", {image.width(), image.height(), image.depth()}},
                 {"channels", image.channels()}, {"spacing_mm", image.geometry().spacing}}},
      {"result", {{"label", found.empty() ? "no " + card.classes[static_cast<size_t>(pos)] : card.classes[static_cast<size_t>(pos)]},
                  {"probabilities", {{card.classes[static_cast<size_t>(pos)], top}}},
                  {"calibrated", false},
                  {"status", status}, {"reasons", reasons}, {"positive_class", card.classes[static_cast<size_t>(pos)]},
                  {"lesion_count", found.size()}, {"threshold", fo.threshold}, {"decision", decision}}},
      {"lesions", lesions},
      {"quality", quality_json(quality)},
      {"model", analysis::card_summary(card)},
      {"files", {"lesions.nii.gz", "probability.nii.gz", "report.html"}},
      {"provenance", {{"medlens_version", version()}, {"bundle_sha256", model.hash()},
                      {"input_sha256", fs::is_directory(o.input) ? std::string("(folder)") : sha256_file(o.input)},
                      {"options", {{"tta", o.tta}, {"explain", method}, {"seed", o.seed},
                                   {"register", o.register_series}, {"patch", patch}}}}},
  };
  analysis::write_text((fs::path(o.out) / "findings.json").string(), findings.dump(2) + "\n");

  report.heading("Result");
  report.raw("<p class=\"" + std::string(status == "ok" ? "ok" : "inconclusive") + "\">" + html_escape(decision) + "</p>");
  for (const auto& r : reasons) report.paragraph("Why inconclusive: " + r, "warn");
  if (!found.empty()) {
    std::vector<std::vector<std::string>> rows = {{"lesion", "probability (max / mean)", found.front().planar ? "area mm²" : "volume mm³",
                                                   "longest axial × perpendicular (mm)", "centre (LPS mm)", "best slice"}};
    for (const Finding& f : found)
      rows.push_back({std::to_string(f.id), fixed(f.probability) + " / " + fixed(f.mean_probability), fixed(f.volume_mm3, 1),
                      fixed(f.longest_axial_diameter_mm, 1) + " × " + fixed(f.perpendicular_diameter_mm, 1),
                      fixed(f.centroid_lps[0], 1) + ", " + fixed(f.centroid_lps[1], 1) + ", " + fixed(f.centroid_lps[2], 1),
                      std::to_string(f.best_slice)});
    report.table(rows);
    report.paragraph("Probabilities are the network's (not calibrated on real cases). Diameters follow RECIST: the longest "
                     "in one axial slice and the longest at right angles to it (docs/FINDINGS.md).", "muted");
  }
  for (const auto& [png, caption] : pictures) report.image_png(png, caption, 300);
  report.heading("Input quality");
  std::vector<std::vector<std::string>> qrows = {{"check", "value", "verdict"}};
  for (const auto& c : quality.checks) qrows.push_back({c.name, fixed(c.value, 4), c.passed ? "ok" : c.reason});
  report.table(qrows);
  report.heading("Model");
  std::string channels;
  for (const auto& n : names) channels += (channels.empty() ? "" : " + ") + n;
  const nlohmann::json val = card.metrics.value("val", nlohmann::json::object());
  report.table({{"field", "value"},
                {"model", card.id()},
                {"task", card.description.empty() ? card.task : card.description},
                {"series (channels)", channels.empty() ? "one" : channels},
                {"validation Dice", val.contains("class_" + std::to_string(pos))
                                        ? fixed(val["class_" + std::to_string(pos)]["dice"]["value"].get<double>())
                                        : "see the model card"},
                {"validation lesion sensitivity / CPM",
                 val.contains("detection") && val["detection"]["sensitivity"].is_number()
                     ? fixed(val["detection"]["sensitivity"].get<double>()) + " / " + fixed(val["detection"]["froc"]["cpm"].get<double>())
                     : "see the model card"},
                {"intended use", card.intended_use.empty() ? "not stated" : card.intended_use},
                {"bundle sha256", model.hash()}});
  analysis::write_limitations(report, card);
  report.save((fs::path(o.out) / "report.html").string());
  return findings;
}

}  // namespace medlens
