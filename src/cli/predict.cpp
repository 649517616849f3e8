// medlens predict --model MODEL_DIR (INPUT... | --manifest CSV) [--json]
#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "core/error.h"
#include "infer/evaluate.h"
#include "infer/predict.h"
#include "io/manifest.h"
#include "quality/quality.h"

namespace medlens::cli {

Run add_predict(CLI::App& app) {
  auto* cmd = app.add_subcommand("predict", "Classify images with a model bundle (or an ensemble of them)");
  struct Args {
    std::vector<std::string> models, inputs;
    std::string manifest;
    bool json = false, tta = false;
    int mc = 0, batch = 32;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--model", a->models, "Model bundle folder; repeat for an ensemble")->required();
  cmd->add_option("INPUT", a->inputs, "Images to classify");
  cmd->add_option("--manifest", a->manifest, "Or: a manifest CSV of images");
  cmd->add_flag("--tta", a->tta, "Test-time augmentation (mirror)");
  cmd->add_option("--mc", a->mc, "Monte-Carlo dropout samples per model (uncertainty)")->check(CLI::Range(0, 1000));
  cmd->add_option("--batch-size", a->batch, "Images per forward pass");
  cmd->add_flag("--json", a->json, "One JSON object per input, a line each");
  return [a]() {
    if (a->inputs.empty() == a->manifest.empty()) throw UsageError("give INPUT files or --manifest, not both or neither");
    std::vector<std::string> paths = a->inputs;
    if (!a->manifest.empty())
      for (const auto& r : load_manifest(a->manifest).rows) paths.push_back(r.path);
    std::vector<Model> models;
    for (const auto& m : a->models) models.push_back(Model::load(m));
    PredictOptions o;
    o.tta = a->tta;
    o.mc_samples = a->mc;
    o.batch_size = a->batch;
    // Read and predict in chunks so memory stays bounded on large manifests.
    const size_t chunk = 512;
    for (size_t start = 0; start < paths.size(); start += chunk) {
      const std::vector<std::string> part(paths.begin() + static_cast<long>(start),
                                          paths.begin() + static_cast<long>(std::min(paths.size(), start + chunk)));
      const std::vector<Image> images = read_images(part);
      // The same checks as analyze (input quality, out-of-distribution, abstention), from the
      // same prepared tensors and the same pass as the prediction.
      const std::vector<Prediction> preds = predict_checked(models, images, o);
      for (const auto& p : preds) {
        if (a->json) {
          std::cout << prediction_json(p).dump() << "\n";
          continue;
        }
        std::printf("%s: %s", p.input.c_str(), p.label.c_str());
        for (size_t k = 0; k < p.classes.size(); ++k) std::printf("  P(%s)=%.3f", p.classes[k].c_str(), p.probabilities[k]);
        std::printf("  [%s]\n", p.status.c_str());
      }
    }
    return 0;
  };
}

}  // namespace medlens::cli
