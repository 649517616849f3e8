// medlens analyze INPUT [--model MODEL_DIR] --out DIR: the main job.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>

#include "analyze/analyze.h"
#include "cli/commands.h"
#include "core/error.h"

namespace medlens::cli {

Run add_analyze(CLI::App& app) {
  auto* cmd = app.add_subcommand("analyze", "The main job: check, predict, explain and report on one image or study");
  struct Args {
    AnalyzeOptions o;
    std::vector<std::string> channels;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("INPUT", a->o.input, "Image file or DICOM folder")->required();
  cmd->add_option("--model", a->o.models, "Model bundle (repeat for an ensemble); default: chosen by modality");
  cmd->add_option("--out", a->o.out, "Output folder for findings.json, report.html, overlay.png, attribution.nii.gz")->required();
  cmd->add_flag("--tta", a->o.tta, "Test-time augmentation (mirror)");
  cmd->add_option("--mc", a->o.mc_samples, "Monte-Carlo dropout samples (uncertainty)")->check(CLI::Range(0, 1000));
  cmd->add_option("--explain", a->o.explain_method, "Explanation method (default: the card's, Grad-CAM); 'none' to skip");
  cmd->add_option("--seed", a->o.seed, "Seed for Monte-Carlo and perturbation methods");
  cmd->add_option("--channel", a->channels,
                  "A further series of the study for a multi-channel model, NAME=PATH (repeat; names from the card)");
  cmd->add_flag("--register", a->o.register_series, "Register further series to INPUT (rigid, mutual information)");
  cmd->add_flag("--json", a->json, "Print findings.json to stdout");
  return [a]() {
    for (const auto& c : a->channels) {
      const size_t eq = c.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == c.size())
        throw UsageError("--channel takes NAME=PATH, got '" + c + "'");
      a->o.channels[c.substr(0, eq)] = c.substr(eq + 1);
    }
    const nlohmann::json f = analyze(a->o);
    if (a->json) {
      std::cout << f.dump(2) << "\n";
      return 0;
    }
    const auto& r = f["result"];
    std::printf("%s: %s (P(%s) = %.3f, status %s)\n", a->o.input.c_str(), r["decision"].get<std::string>().c_str(),
                r["positive_class"].get<std::string>().c_str(),
                r["probabilities"][r["positive_class"].get<std::string>()].get<double>(), r["status"].get<std::string>().c_str());
    for (const auto& reason : r["reasons"]) std::printf("  reason: %s\n", reason.get<std::string>().c_str());
    for (const auto& l : f.value("lesions", nlohmann::json::array()))
      std::printf("  lesion %d: P = %.3f, %.0f mm3, %.1f x %.1f mm, centre (%.1f, %.1f, %.1f) mm LPS, best slice %lld\n",
                  l["id"].get<int>(), l["probability"].get<double>(), l.value("volume_mm3", l.value("area_mm2", 0.0)),
                  l["longest_axial_diameter_mm"].get<double>(), l["perpendicular_diameter_mm"].get<double>(),
                  l["centroid_lps"][0].get<double>(), l["centroid_lps"][1].get<double>(), l["centroid_lps"][2].get<double>(),
                  static_cast<long long>(l["best_slice"].get<int64_t>()));
    std::printf("report: %s/report.html\nfindings: %s/findings.json\n", a->o.out.c_str(), a->o.out.c_str());
    return 0;
  };
}

}  // namespace medlens::cli
