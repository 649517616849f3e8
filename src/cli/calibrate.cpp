// medlens calibrate --model MODEL_DIR --manifest CSV [--json]: the post-training trust fit on
// an existing bundle (temperature, abstention threshold, OOD reference), rewriting its card.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "quality/trust.h"

namespace medlens::cli {

Run add_calibrate(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "calibrate", "Fit temperature, abstention and out-of-distribution thresholds of a classifier bundle (rewrites its card)");
  struct Args {
    std::string model, manifest;
    CalibrateOptions o;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--model", a->model, "Model bundle folder (rewritten in place, atomically)")->required();
  cmd->add_option("--manifest", a->manifest, "Manifest CSV with the bundle's train and val rows")->required();
  cmd->add_option("--train-split", a->o.train_split, "Split the OOD reference is fitted on")->capture_default_str();
  cmd->add_option("--val-split", a->o.val_split, "Split temperature and thresholds are chosen on")->capture_default_str();
  cmd->add_option("--target-sensitivity", a->o.trust.target_sensitivity,
                  "Sensitivity the answered val cases must keep")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--target-accuracy", a->o.trust.target_accuracy,
                  "Selective accuracy the answered val cases must keep (0: none)")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--min-coverage", a->o.trust.min_coverage, "Abstain on at most 1 - this of val")
      ->capture_default_str()->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--ood-pass", a->o.trust.ood_pass, "Fraction of val images each OOD threshold lets through")
      ->capture_default_str()->check(CLI::Range(0.5, 1.0));
  cmd->add_flag("--judge-energy", a->o.trust.judge_energy, "Also refuse images whose energy score exceeds its threshold");
  cmd->add_option("--components", a->o.trust.components, "Exact eigen-directions in the Mahalanobis covariance")
      ->capture_default_str()->check(CLI::Range(1, 4096));
  cmd->add_flag("--json", a->json, "Print the summary as JSON");
  return [a]() {
    const nlohmann::json s = calibrate_bundle(a->model, a->manifest, a->o);
    if (a->json) {
      std::cout << s.dump(2) << "\n";
      return 0;
    }
    const auto& ab = s["abstain"];
    std::printf("%s: temperature %.4f (was %.4f), val ECE %.4f -> %.4f, accuracy %.4f (uncalibrated %.4f)\n",
                s["model"].get<std::string>().c_str(), s["temperature"].get<double>(), s["temperature_before"].get<double>(),
                s["ece_before"].get<double>(), s["ece_after"].get<double>(), s["accuracy"].get<double>(),
                s["accuracy_uncalibrated"].get<double>());
    std::printf("  a perfectly calibrated model would show ECE %.4f on these %lld cases (95%% of draws below %.4f)\n",
                s["ece_floor"].get<double>(), static_cast<long long>(s["val_cases"].get<int64_t>()),
                s["ece_floor_q95"].get<double>());
    std::printf("  abstain below confidence %.4f: answers %.1f%% of val, sensitivity %.4f on those (target %.2f%s), AURC %.4f\n",
                ab["min_confidence"].get<double>(), 100 * ab["val_coverage"].get<double>(),
                ab["val_sensitivity_answered"].get<double>(), ab["target_sensitivity"].get<double>(),
                ab["target_met"].get<bool>() ? ", met" : ", NOT met within the coverage limit", s["aurc"].get<double>());
    std::printf("  OOD: Mahalanobis <= %.4g lets %.1f%% of val through (%lld features, %lld components); energy threshold %.4g%s\n",
                s["ood"]["mahalanobis_threshold"].get<double>(), 100 * s["ood"]["val_pass_rate"].get<double>(),
                static_cast<long long>(s["ood"]["features"].get<int64_t>()),
                static_cast<long long>(s["ood"]["components"].get<int64_t>()), s["ood"]["energy_threshold"].get<double>(),
                a->o.trust.judge_energy ? "" : " (measured, not judged)");
    std::printf("wrote %s/card.json, ood.pt, reliability.png, risk_coverage.png\n", a->model.c_str());
    return 0;
  };
}

}  // namespace medlens::cli
