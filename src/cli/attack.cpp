// medlens attack --model MODEL_DIR --manifest CSV --method fgsm|pgd --eps E [--json]: accuracy
// under adversarial perturbation of the network input.
#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "core/error.h"
#include "infer/model.h"
#include "robust/attack.h"

namespace medlens::cli {

Run add_attack(CLI::App& app) {
  auto* cmd = app.add_subcommand("attack", "Accuracy of a classifier under FGSM/PGD attacks (robust accuracy over eps)");
  struct Args {
    std::string model, manifest, split;
    AttackOptions o;
    std::vector<double> ladder;
    int64_t limit = 0;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--model", a->model, "Model bundle folder")->required();
  cmd->add_option("--manifest", a->manifest, "Labelled manifest CSV")->required();
  cmd->add_option("--method", a->o.method, "fgsm or pgd")->required()->check(CLI::IsMember({"fgsm", "pgd"}));
  cmd->add_option("--eps", a->o.eps, "Radius as a fraction of each image's intensity range (2/255 = two 8-bit grey levels)")
      ->required()->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--norm", a->o.norm, "linf or l2")->capture_default_str()->check(CLI::IsMember({"linf", "l2"}));
  cmd->add_option("--steps", a->o.steps, "PGD iterations")->capture_default_str()->check(CLI::Range(1, 1000));
  cmd->add_flag("!--no-random-start", a->o.random_start, "PGD starts at the clean image");
  cmd->add_option("--ladder", a->ladder, "Also report accuracy at these eps values (robust accuracy curve)");
  cmd->add_option("--split", a->split, "Only rows of this split");
  cmd->add_option("--limit", a->limit, "At most this many rows, evenly spaced (0: all)");
  cmd->add_option("--seed", a->o.seed, "Seed of the random start");
  cmd->add_flag("--json", a->json, "Print JSON");
  return [a]() {
    const Model model = Model::load(a->model);
    if (model.card().task != "classify") throw UsageError("attack is for classifiers; " + model.card().id() + " is a segmenter");
    at::Tensor x, y;
    load_prepared(model, a->manifest, a->split, a->limit, x, y);
    std::vector<double> ladder = a->ladder;
    if (std::find(ladder.begin(), ladder.end(), a->o.eps) == ladder.end()) ladder.push_back(a->o.eps);
    std::sort(ladder.begin(), ladder.end());
    nlohmann::json r = robust_accuracy(model, x, y, ladder, a->o);
    r["model"] = model.card().id();
    r["manifest"] = a->manifest;
    for (size_t i = 0; i < ladder.size(); ++i)
      if (ladder[i] == a->o.eps) r["adversarial_accuracy"] = r["accuracy"][i];
    if (a->json) {
      std::cout << r.dump(2) << "\n";
      return 0;
    }
    std::printf("%s on %lld images, %s (%s%s): clean accuracy %.4f\n", r["model"].get<std::string>().c_str(),
                static_cast<long long>(r["n"].get<int64_t>()), a->o.method.c_str(), a->o.norm.c_str(),
                a->o.method == "pgd" ? (", " + std::to_string(a->o.steps) + " steps").c_str() : "",
                r["clean_accuracy"].get<double>());
    for (size_t i = 0; i < ladder.size(); ++i)
      std::printf("  eps %.5f (%.2f/255): accuracy %.4f\n", ladder[i], ladder[i] * 255, r["accuracy"][i].get<double>());
    return 0;
  };
}

}  // namespace medlens::cli
