// medlens evaluate --model MODEL_DIR --manifest CSV [--split NAME] [--json]
#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "infer/evaluate.h"

namespace medlens::cli {

namespace {
void print_metric(const nlohmann::json& m, const char* name) {
  if (!m.contains(name)) return;
  const auto& v = m[name];
  std::printf("  %-18s %.4f  (95%% CI %.4f - %.4f)\n", name, v["value"].get<double>(), v["ci95"][0].get<double>(),
              v["ci95"][1].get<double>());
}
}  // namespace

Run add_evaluate(CLI::App& app) {
  auto* cmd = app.add_subcommand("evaluate", "Metrics with 95% bootstrap CIs of a model (or ensemble) on a manifest");
  struct Args {
    std::vector<std::string> models;
    std::string manifest, split;
    bool json = false, tta = false;
    int rounds = 1000;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--model", a->models, "Model bundle folder; repeat for an ensemble")->required();
  cmd->add_option("--manifest", a->manifest, "Manifest CSV")->required();
  cmd->add_option("--split", a->split, "Only rows of this split");
  cmd->add_option("--bootstrap", a->rounds, "Bootstrap resamples for the CIs");
  cmd->add_flag("--tta", a->tta, "Test-time augmentation (mirror)");
  cmd->add_flag("--json", a->json, "Print JSON");
  return [a]() {
    std::vector<Model> models;
    for (const auto& m : a->models) models.push_back(Model::load(m));
    EvaluateOptions o;
    o.split = a->split;
    o.bootstrap_rounds = a->rounds;
    o.predict.tta = a->tta;
    const nlohmann::json r = evaluate_manifest(models, a->manifest, o);
    if (a->json) {
      std::cout << r.dump(2) << "\n";
      return 0;
    }
    std::printf("model %s on %s%s (%zu cases)\n", r["model"].get<std::string>().c_str(), a->manifest.c_str(),
                a->split.empty() ? "" : (" split " + a->split).c_str(), r["n"].get<size_t>());
    const auto& m = r["metrics"];
    if (r["task"] == "classify") {
      for (const char* k : {"auc", "auc_ovr_macro", "accuracy", "balanced_accuracy", "sensitivity", "specificity",
                            "macro_f1", "brier", "ece"})
        print_metric(m, k);
      if (m.contains("ece_floor"))
        std::printf("  %-18s %.4f  (95%% of draws below %.4f: a perfectly calibrated model's ECE on these cases)\n",
                    "ece_floor", m["ece_floor"]["mean"].get<double>(), m["ece_floor"]["q95"].get<double>());
      std::printf("  operating point P(%s) >= %.4f\n  confusion matrix (rows true, columns predicted):\n",
                  m["positive_class"].get<std::string>().c_str(), m["threshold"].get<double>());
      for (const auto& row : m["confusion_matrix"]) {
        std::printf("   ");
        for (const auto& c : row) std::printf(" %6lld", static_cast<long long>(c.get<int64_t>()));
        std::printf("\n");
      }
    } else {
      for (auto it = m.begin(); it != m.end(); ++it) {
        std::printf(" %s\n", it.key().c_str());
        for (const char* k : {"dice", "iou", "hd95", "asd"}) print_metric(it.value(), k);
      }
    }
    return 0;
  };
}

}  // namespace medlens::cli
