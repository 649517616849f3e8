// medlens analyze INPUT [--model MODEL_DIR] --out DIR: the main job.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>

#include "analyze/analyze.h"
#include "cli/commands.h"

namespace medlens::cli {

Run add_analyze(CLI::App& app) {
  auto* cmd = app.add_subcommand("analyze", "The main job: check, predict, explain and report on one image or study");
  struct Args {
    AnalyzeOptions o;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("INPUT", a->o.input, "Image file or DICOM folder")->required();
  cmd->add_option("--model", a->o.models, "Model bundle (repeat for an ensemble); default: chosen by modality");
  cmd->add_option("--out", a->o.out, "Output folder for findings.json, report.html, overlay.png, attribution.nii.gz")->required();
  cmd->add_flag("--tta", a->o.tta, "Test-time augmentation (mirror)");
  cmd->add_option("--mc", a->o.mc_samples, "Monte-Carlo dropout samples (uncertainty)");
  cmd->add_option("--explain", a->o.explain_method, "Explanation method (default: the card's, Grad-CAM); 'none' to skip");
  cmd->add_option("--seed", a->o.seed, "Seed for Monte-Carlo and perturbation methods");
  cmd->add_flag("--json", a->json, "Print findings.json to stdout");
  return [a]() {
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
    std::printf("report: %s/report.html\nfindings: %s/findings.json\n", a->o.out.c_str(), a->o.out.c_str());
    return 0;
  };
}

}  // namespace medlens::cli
