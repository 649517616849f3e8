// medlens explain --model MODEL_DIR INPUT --method NAME [--target CLASS] [--layer L]
//                 [--param key=value ...] [--region MASK] --out DIR [--json]
//                 [--evaluate [--mask MASK]] [--seed N] [--batch-size N]
// Writes OUT/attribution.nii.gz (the map in the input's geometry), OUT/overlay.png and
// OUT/explanation.json (with --evaluate also the faithfulness, localisation, randomisation and
// stability metrics).
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "cli/commands.h"
#include "core/error.h"
#include "explain/evaluate.h"
#include "explain/explain.h"
#include "infer/model.h"
#include "io/file_util.h"
#include "io/read.h"
#include "io/write.h"
#include "nn/card.h"
#include "report/render.h"
#include "transforms/spatial.h"

namespace fs = std::filesystem;

namespace medlens::cli {
namespace {

struct Args {
  std::string model, input, method = "gradcam", target, layer, region, out, mask;
  std::vector<std::string> params;
  bool json = false, evaluate = false;
  uint64_t seed = 0;
  int batch_size = 16, top = 3;
};

// "key=value": the value as JSON when it parses (numbers, true/false, lists), else a string.
nlohmann::json parse_params(const std::vector<std::string>& items) {
  nlohmann::json p = nlohmann::json::object();
  for (const auto& item : items) {
    const size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == item.size())
      throw UsageError("--param takes key=value, got '" + item + "'");
    const std::string key = item.substr(0, eq), text = item.substr(eq + 1);
    nlohmann::json value = nlohmann::json::parse(text, nullptr, false);
    p[key] = value.is_discarded() ? nlohmann::json(text) : value;
  }
  return p;
}

void write_json(const std::string& path, const nlohmann::json& j) {
  AtomicOutput out(path);
  {
    std::ofstream f(out.temp_path());
    f << j.dump(2) << "\n";
    if (!f) throw InputError(path, "cannot write");
  }
  out.commit();
}

int run(const Args& a) {
  const auto names = explanation_methods();
  if (std::find(names.begin(), names.end(), a.method) == names.end()) {
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    throw UsageError("--method: unknown method '" + a.method + "' (known: " + list + ")");
  }
  if (!a.mask.empty() && !a.evaluate) throw UsageError("--mask is used with --evaluate");
  if (a.batch_size < 1) throw UsageError("--batch-size must be at least 1");
  ExplainOptions o;
  o.method = a.method;
  o.target = a.target;
  o.layer = a.layer;
  o.params = parse_params(a.params);
  o.seed = a.seed;
  o.batch_size = a.batch_size;
  o.top_regions = a.top;

  const Model model = Model::load(a.model);
  const Image image = read_image(a.input);
  model.check_fits(image);
  if (!a.target.empty()) {
    const auto& cls = model.card().classes;
    if (std::find(cls.begin(), cls.end(), a.target) == cls.end()) {
      std::string list;
      for (const auto& c : cls) list += (list.empty() ? "" : ", ") + c;
      throw UsageError("--target: model " + model.card().id() + " has no class '" + a.target + "' (classes: " + list + ")");
    }
  }
  Image region;
  if (!a.region.empty()) {
    if (model.card().task != "segment") throw UsageError("--region explains a segmenter's logits inside a mask; " + model.card().id() + " is a classifier");
    region = read_image(a.region);
    o.region = &region;
  }
  Image mask;
  if (!a.mask.empty()) {
    const Image m = read_image(a.mask);
    mask = resample_onto(m, image.shape().with_z(image.depth()), image.geometry(), true);
    mask.metadata().source_path = a.mask;
  }

  const Explanation e = explain(model, image, o);
  nlohmann::json j = explanation_json(e, model);
  Image marks;
  const ShortcutCheck shortcut = shortcut_check(image, e, MarkOptions{}, &marks);
  j["shortcut_check"] = shortcut_check_json(shortcut);
  j["input"] = a.input;
  if (!o.params.empty()) j["params"] = o.params;
  j["files"] = {"attribution.nii.gz", "overlay.png", "explanation.json"};
  if (a.evaluate) j["evaluation"] = evaluate_explanation(model, image, o, mask.empty() ? nullptr : &mask);

  std::error_code ec;
  fs::create_directories(a.out, ec);
  if (ec || !fs::is_directory(a.out)) throw InputError(a.out, "cannot create the output folder");
  write_image(e.attribution, (fs::path(a.out) / "attribution.nii.gz").string());
  RenderOptions ro;
  ro.heatmap = &e.attribution;
  if (!mask.empty()) ro.outlines.push_back(&mask);
  if (shortcut.marks_voxels > 0) ro.outlines.push_back(&marks);
  write_render((fs::path(a.out) / "overlay.png").string(), image, ro);
  write_json((fs::path(a.out) / "explanation.json").string(), j);

  if (a.json) {
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::printf("%s: %s for '%s' (score %.4g) in %.3f s\n", a.input.c_str(), e.method.c_str(), e.target.c_str(), e.score,
              e.seconds);
  for (size_t i = 0; i < e.regions.size(); ++i) {
    const auto& r = e.regions[i];
    std::printf("  region %zu: %.1f%% of the attribution, voxels x %lld..%lld y %lld..%lld z %lld..%lld\n", i + 1,
                100 * r.mass_share, static_cast<long long>(r.box_min[0]), static_cast<long long>(r.box_max[0]),
                static_cast<long long>(r.box_min[1]), static_cast<long long>(r.box_max[1]),
                static_cast<long long>(r.box_min[2]), static_cast<long long>(r.box_max[2]));
  }
  std::printf("  shortcut check: %s\n", shortcut.summary.c_str());
  if (a.evaluate) {
    const auto& ev = j["evaluation"];
    std::printf("  deletion AUC %.3f (random %.3f), insertion AUC %.3f (random %.3f)\n",
                ev["deletion"]["auc"].get<double>(), ev["deletion"]["random_auc"].get<double>(),
                ev["insertion"]["auc"].get<double>(), ev["insertion"]["random_auc"].get<double>());
    if (ev.contains("localisation"))
      std::printf("  pointing game %s, relevance mass %.3f\n", ev["localisation"]["pointing_hit"].get<bool>() ? "hit" : "miss",
                  ev["localisation"]["mass_accuracy"].get<double>());
    if (ev["randomisation"].contains("verdict"))
      std::printf("  randomisation check %s\n", ev["randomisation"]["verdict"].get<std::string>().c_str());
    std::printf("  max-sensitivity %.3f\n", ev["stability"]["max_sensitivity"].get<double>());
  }
  std::printf("wrote %s/attribution.nii.gz, overlay.png, explanation.json\n", a.out.c_str());
  return 0;
}

}  // namespace

Run add_explain(CLI::App& app) {
  auto* cmd = app.add_subcommand("explain", "Explain a model's result on an image with an attribution map; optionally measure it");
  auto a = std::make_shared<Args>();
  cmd->add_option("--model", a->model, "Model bundle folder")->required();
  cmd->add_option("INPUT", a->input, "Image file or DICOM folder")->required();
  cmd->add_option("--method", a->method,
                  "gradcam, gradcam++, scorecam, saliency, smoothgrad, integrated-gradients, input-x-gradient, "
                  "occlusion, rise, lime, kernel-shap (default gradcam)");
  cmd->add_option("--target", a->target, "Class to explain (default: the predicted class; segmenters: the last class)");
  cmd->add_option("--layer", a->layer, "Layer for the CAM methods (default: the card's or the last spatial one)");
  cmd->add_option("--param", a->params, "Method parameter key=value (repeatable), e.g. steps=128, patch=16, samples=1000");
  cmd->add_option("--region", a->region, "Segmenters: explain the target's logits summed inside this mask");
  cmd->add_option("--out", a->out, "Output folder: attribution.nii.gz, overlay.png, explanation.json")->required();
  cmd->add_flag("--json", a->json, "Print explanation.json to stdout");
  cmd->add_flag("--evaluate", a->evaluate,
                "Also measure the explanation: deletion/insertion vs random, randomisation check, stability, time");
  cmd->add_option("--mask", a->mask, "With --evaluate: lesion mask for the pointing game and relevance mass");
  cmd->add_option("--seed", a->seed, "Seed for the random methods and metrics");
  cmd->add_option("--batch-size", a->batch_size, "Forward passes per batch for perturbation methods (bounds memory)");
  cmd->add_option("--top", a->top, "Top attribution regions to describe (default 3)");
  return [a]() { return run(*a); };
}

}  // namespace medlens::cli
