// The model card: what a bundle is for and how to use it. Written once by training and read by
// every later stage (inference, explanation, audit, server) — medlens's "plan". Torch-free.
//
// A bundle is a folder: card.json, the weights file it names, and nothing else needed.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace medlens {

/// What the network takes, after the card's preprocessing pipeline.
struct InputSpec {
  int64_t dims = 2;                         ///< 2 or 3 spatial dimensions
  int64_t channels = 1;                     ///< channels after preprocessing
  std::vector<int64_t> size;                ///< network input size x, y[, z] (empty: any)
  std::vector<std::string> modalities;      ///< DICOM modality codes accepted (empty: any)
  std::vector<std::string> body_parts;      ///< BodyPartExamined values accepted (empty: any)
  std::vector<std::string> channel_names;   ///< for multi-modal inputs, e.g. {"T1", "FLAIR"}
};

struct ModelCard {
  int format_version = 1;
  std::string name, version, task;          ///< task: "classify" or "segment"
  std::string description;
  std::vector<std::string> classes;         ///< output order
  std::string positive_class;               ///< for binary AUC / sensitivity (classify)
  InputSpec input;
  nlohmann::json preprocessing = nlohmann::json::object();  ///< pipeline spec (deterministic)
  nlohmann::json architecture = nlohmann::json::object();   ///< make_network() spec, or TorchScript
  std::string weights = "weights.pt";       ///< file in the bundle
  std::string weights_format = "native";    ///< "native" (save_weights) or "torchscript"
  double temperature = 1.0;                 ///< calibration: logits are divided by it
  nlohmann::json thresholds = nlohmann::json::object();     ///< operating points, abstention
  nlohmann::json metrics = nlohmann::json::object();        ///< measured, with 95% CIs
  nlohmann::json training = nlohmann::json::object();       ///< data summary, command, seed
  nlohmann::json explanation = nlohmann::json::object();    ///< default method and layer
  nlohmann::json ood = nlohmann::json::object();            ///< out-of-distribution statistics
  std::string intended_use;
  std::vector<std::string> limitations;
  nlohmann::json extra = nlohmann::json::object();          ///< unknown keys, kept on save

  /// Parses a card; UsageError naming the field for anything missing or malformed.
  static ModelCard from_json(const nlohmann::json& j);
  nlohmann::json to_json() const;
  /// "name@version".
  std::string id() const { return name + "@" + version; }
  /// Index of a class name; UsageError when absent.
  int64_t class_index(const std::string& cls) const;
};

/// Reads BUNDLE/card.json; InputError naming the file when unreadable or invalid.
ModelCard load_card(const std::string& bundle_dir);
/// Writes BUNDLE/card.json atomically (pretty, keys sorted, so diffs stay readable).
void save_card(const ModelCard& card, const std::string& bundle_dir);
/// SHA-256 over card.json and the weights file: the bundle's identity in provenance records.
std::string bundle_hash(const std::string& bundle_dir);

}  // namespace medlens
