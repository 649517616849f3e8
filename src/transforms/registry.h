// Stable names for transforms, so pipeline specs (JSON), model cards and the command line all
// build the same objects. Families register in one explicit table each (no static-init magic).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <functional>
#include <string>
#include <vector>

#include "transforms/transform.h"

namespace medlens {

struct TransformInfo {
  std::string name;     ///< stable op name, e.g. "gaussian-blur"
  std::string family;   ///< intensity, spatial, filter, augment, corrupt
  std::string summary;  ///< one line, with its parameters and their defaults
};

using TransformFactory = std::function<TransformPtr(const nlohmann::json& params)>;

class TransformRegistry {
 public:
  void add(const std::string& name, const std::string& family, const std::string& summary,
           TransformFactory factory);
  /// Throws UsageError for an unknown name (listing the known ones) or bad parameters.
  TransformPtr make(const std::string& name, const nlohmann::json& params) const;
  const std::vector<TransformInfo>& list() const { return infos_; }

 private:
  std::vector<TransformInfo> infos_;
  std::vector<TransformFactory> factories_;
};

/// The registry of every transform medlens has.
const TransformRegistry& transforms();

TransformPtr make_transform(const std::string& name, const nlohmann::json& params);
/// Parses "name" or "name:key=value,key=value" (the CLI's --op).
TransformPtr parse_op(const std::string& text);
/// A pipeline from a spec: {"transforms": [{"op": NAME, ...params}, ...]} or a bare list.
Compose load_pipeline(const nlohmann::json& spec);
/// Reads a pipeline spec file; InputError naming the file when it is unreadable or invalid.
Compose load_pipeline_file(const std::string& path);

// Family tables, one per source file.
void register_intensity(TransformRegistry& r);    // intensity.cpp
void register_histogram(TransformRegistry& r);    // histogram.cpp: equalisation, CLAHE
void register_spatial(TransformRegistry& r);      // spatial.cpp: flips, resample, resize, crops
void register_morphology(TransformRegistry& r);   // morphology.cpp: edges, morphology, components
void register_denoise(TransformRegistry& r);      // denoise.cpp
void register_bias_field(TransformRegistry& r);   // bias_field.cpp: N4
void register_augment(TransformRegistry& r);      // augment.cpp
void register_corruptions(TransformRegistry& r);  // corruptions.cpp
void register_marks(TransformRegistry& r);        // marks.cpp: burned-in text and calipers

}  // namespace medlens
