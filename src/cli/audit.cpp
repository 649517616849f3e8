// medlens audit --model MODEL_DIR --manifest CSV --out DIR: the trust report.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "robust/audit.h"

namespace medlens::cli {

Run add_audit(CLI::App& app) {
  auto* cmd = app.add_subcommand("audit", "Trust report: calibration, abstention, OOD checks, corruptions, attacks, subgroups");
  struct Args {
    std::string model, manifest, out;
    AuditOptions o;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--model", a->model, "Model bundle folder")->required();
  cmd->add_option("--manifest", a->manifest, "Labelled manifest CSV; extra columns are audited as subgroups")->required();
  cmd->add_option("--out", a->out, "Output folder (replaced): audit.html, audit.json and the plots")->required();
  cmd->add_option("--split", a->o.split, "Only rows of this split");
  cmd->add_option("--limit", a->o.limit, "At most this many rows, evenly spaced (0: all)");
  cmd->add_option("--corruptions", a->o.corruptions, "Corruption kinds (default: all; see medlens corrupt --list)");
  cmd->add_option("--severities", a->o.severities, "Severities")->check(CLI::Range(1, 5));
  cmd->add_option("--attack-eps", a->o.attack_eps, "Eps ladder for PGD, fractions of the intensity range");
  cmd->add_option("--attack-steps", a->o.attack_steps, "PGD steps")->capture_default_str()->check(CLI::Range(1, 1000));
  cmd->add_option("--attack-limit", a->o.attack_limit, "Cases attacked")->capture_default_str();
  cmd->add_option("--bootstrap", a->o.bootstrap_rounds, "Bootstrap resamples for CIs")->capture_default_str();
  cmd->add_option("--seed", a->o.seed, "Seed for corruptions, attacks and bootstrap");
  cmd->add_flag("--json", a->json, "Print audit.json");
  return [a]() {
    const nlohmann::json r = audit(a->model, a->manifest, a->out, a->o);
    if (a->json) {
      std::cout << r.dump(2) << "\n";
      return 0;
    }
    std::printf("%s on %zu images: ECE %.4f -> %.4f, answered %.1f%%, AURC %.4f, mCE %s, PGD accuracy at max eps %.3f\n",
                r["model"].get<std::string>().c_str(), r["n"].get<size_t>(), r["calibration"]["ece_before"].get<double>(),
                r["calibration"]["ece_after"].get<double>(), 100 * r["selective"]["coverage"].get<double>(),
                r["selective"]["aurc"].get<double>(), r["corruption"]["mce"].dump().c_str(),
                r["attack"]["accuracy"].back().get<double>());
    std::printf("report: %s/audit.html\n", a->out.c_str());
    return 0;
  };
}

}  // namespace medlens::cli
