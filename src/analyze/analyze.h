// The main job, `medlens analyze`: read -> check the input fits the model -> preprocess ->
// predict (calibrated, with uncertainty) -> explain -> findings.json + report.html.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

namespace medlens {

struct AnalyzeOptions {
  std::string input;                 ///< image file or DICOM folder
  std::string out;                   ///< output folder (created; existing files replaced one by one)
  std::vector<std::string> models;   ///< bundles; empty: the default model for the input
  bool tta = false;
  int mc_samples = 0;
  std::string explain_method;        ///< empty: the card's default (Grad-CAM); "none" to skip
  uint64_t seed = 0;
  /// Further series of the study for multi-channel models, by the card's channel name
  /// (input.channel_names[1..]); INPUT is the first channel.
  std::map<std::string, std::string> channels;
  /// Register each further series to INPUT (rigid, mutual information) before stacking.
  bool register_series = false;
};

/// Runs the analysis and returns findings.json's content. Throws InputError for an input that
/// cannot be read or does not fit the model (wrong modality, a volume for a 2-D model, ...),
/// UsageError for bad options.
nlohmann::json analyze(const AnalyzeOptions& options);

/// Where the default models live: $MEDLENS_MODELS, else the repository's models/ folder next to
/// the build, else <prefix>/share/medlens/models.
std::string default_models_dir();

/// The default bundle for an image of this modality (US -> busi, CR/DX/unknown 2-D ->
/// pneumoniamnist, MR volume -> brain-lesion). InputError when there is none.
std::string default_model_for(const std::string& modality, bool volume);

}  // namespace medlens
