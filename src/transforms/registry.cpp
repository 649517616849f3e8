#include "transforms/registry.h"

#include <nlohmann/json.hpp>

#include <fstream>

#include "core/error.h"
#include "transforms/params.h"

namespace medlens {

void TransformRegistry::add(const std::string& name, const std::string& family,
                            const std::string& summary, TransformFactory factory) {
  infos_.push_back({name, family, summary});
  factories_.push_back(std::move(factory));
}

TransformPtr TransformRegistry::make(const std::string& name, const nlohmann::json& params) const {
  for (size_t i = 0; i < infos_.size(); ++i)
    if (infos_[i].name == name) return factories_[i](params);
  std::string known;
  for (const auto& info : infos_) known += (known.empty() ? "" : ", ") + info.name;
  throw UsageError("unknown transform '" + name + "' (known: " + known + ")");
}

const TransformRegistry& transforms() {
  static const TransformRegistry registry = [] {
    TransformRegistry r;
    register_intensity(r);
    register_histogram(r);
    register_spatial(r);
    register_morphology(r);
    register_denoise(r);
    register_bias_field(r);
    register_augment(r);
    register_corruptions(r);
    register_marks(r);
    return r;
  }();
  return registry;
}

TransformPtr make_transform(const std::string& name, const nlohmann::json& params) {
  return transforms().make(name, params);
}

TransformPtr parse_op(const std::string& text) {
  const size_t colon = text.find(':');
  const std::string name = text.substr(0, colon);
  const nlohmann::json params =
      colon == std::string::npos ? nlohmann::json::object() : parse_key_values(text.substr(colon + 1));
  return make_transform(name, params);
}

Compose load_pipeline(const nlohmann::json& spec) {
  const nlohmann::json* list = &spec;
  if (spec.is_object()) {
    if (!spec.contains("transforms")) throw UsageError("pipeline spec needs a \"transforms\" list");
    list = &spec["transforms"];
  }
  if (!list->is_array()) throw UsageError("pipeline \"transforms\" must be a list");
  std::vector<TransformPtr> steps;
  for (const auto& entry : *list) {
    if (!entry.is_object() || !entry.contains("op") || !entry["op"].is_string())
      throw UsageError("each pipeline step needs \"op\": NAME");
    nlohmann::json params = entry;
    params.erase("op");
    steps.push_back(make_transform(entry["op"].get<std::string>(), params));
  }
  return Compose(steps);
}

Compose load_pipeline_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw InputError(path, "cannot open pipeline spec");
  nlohmann::json spec;
  try {
    spec = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw InputError(path, std::string("pipeline spec is not valid JSON: ") + e.what());
  }
  try {
    return load_pipeline(spec);
  } catch (const UsageError& e) {
    throw InputError(path, e.what());
  }
}

}  // namespace medlens
