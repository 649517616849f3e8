#include "nn/card.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>

#include "core/error.h"
#include "core/hash.h"
#include "io/file_util.h"

namespace fs = std::filesystem;

namespace medlens {
namespace {

template <typename T>
T field(const nlohmann::json& j, const char* key, const T& fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  try {
    return j[key].get<T>();
  } catch (const nlohmann::json::exception&) {
    throw UsageError(std::string("model card field '") + key + "' has the wrong type");
  }
}

template <typename T>
T required(const nlohmann::json& j, const char* key) {
  if (!j.contains(key)) throw UsageError(std::string("model card lacks '") + key + "'");
  return field<T>(j, key, T{});
}

const char* kKnown[] = {"medlens_card", "name", "version", "task", "description", "classes",
                        "positive_class", "input", "preprocessing", "architecture", "weights",
                        "weights_format", "calibration", "thresholds", "metrics", "training",
                        "explanation", "ood", "intended_use", "limitations"};

// A file the card names must sit in the bundle itself: no folders, no way out of it.
bool names_a_bundle_file(const std::string& name) {
  return !name.empty() && name.find('/') == std::string::npos && name.find("..") == std::string::npos;
}

// The numbers every prediction reads from thresholds (decision, abstention, lesion finding):
// a malformed one is refused when the card is loaded, naming the field, not mid-prediction.
void number_in(const nlohmann::json& j, const std::string& where, const char* key, double lo, double hi) {
  if (!j.contains(key)) return;
  const nlohmann::json& v = j[key];
  if (!v.is_number() || !(v.get<double>() >= lo && v.get<double>() <= hi)) {
    char range[64];
    std::snprintf(range, sizeof range, std::isinf(hi) ? "at least %g" : "in [%g, %g]", lo, hi);
    throw UsageError("model card " + where + key + " must be a number " + range);
  }
}

void check_thresholds(const nlohmann::json& t) {
  if (!t.is_object()) throw UsageError("model card thresholds must be an object");
  const double inf = std::numeric_limits<double>::infinity();
  number_in(t, "thresholds.", "operating_point", 0, 1);
  number_in(t, "thresholds.", "lesion_threshold", 0, 1);
  number_in(t, "thresholds.", "min_volume_mm3", 0, inf);
  if (t.contains("abstain")) {
    const nlohmann::json& a = t["abstain"];
    if (!a.is_object()) throw UsageError("model card thresholds.abstain must be an object");
    number_in(a, "thresholds.abstain.", "min_confidence", 0, 1);
    number_in(a, "thresholds.abstain.", "max_entropy", 0, inf);
    number_in(a, "thresholds.abstain.", "max_mutual_information", 0, inf);
  }
}

void check_ood_features(const nlohmann::json& ood) {
  if (!ood.is_object()) throw UsageError("model card ood must be an object");
  if (!ood.contains("features")) return;
  const nlohmann::json& f = ood["features"];
  if (!f.is_object()) throw UsageError("model card ood.features must be an object");
  if (f.contains("file")) {
    const nlohmann::json& file = f["file"];
    if (!file.is_string() || !names_a_bundle_file(file.get<std::string>()))
      throw UsageError("model card ood.features.file must be a file name inside the bundle");
  }
  if (f.contains("sha256") && !f["sha256"].is_string()) throw UsageError("model card ood.features.sha256 must be a string");
  number_in(f, "ood.features.", "pass_quantile", 0, 1);
  for (const char* score : {"mahalanobis", "energy"}) {
    if (!f.contains(score)) continue;
    const nlohmann::json& s = f[score];
    const std::string where = std::string("ood.features.") + score;
    if (!s.is_object() || !s.contains("threshold") || !s["threshold"].is_number())
      throw UsageError("model card " + where + " needs a numeric threshold");
    if (s.contains("judged") && !s["judged"].is_boolean())
      throw UsageError("model card " + where + ".judged must be true or false");
  }
}

}  // namespace

ModelCard ModelCard::from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw UsageError("model card must be a JSON object");
  ModelCard c;
  c.format_version = field<int>(j, "medlens_card", 1);
  c.name = required<std::string>(j, "name");
  c.version = required<std::string>(j, "version");
  c.task = required<std::string>(j, "task");
  if (c.task != "classify" && c.task != "segment")
    throw UsageError("model card task must be 'classify' or 'segment', not '" + c.task + "'");
  c.description = field<std::string>(j, "description", "");
  c.classes = required<std::vector<std::string>>(j, "classes");
  if (c.classes.size() < 2) throw UsageError("model card needs at least two classes");
  c.positive_class = field<std::string>(j, "positive_class", c.classes.back());
  if (std::find(c.classes.begin(), c.classes.end(), c.positive_class) == c.classes.end())
    throw UsageError("positive_class '" + c.positive_class + "' is not one of the classes");
  const nlohmann::json in = field<nlohmann::json>(j, "input", nlohmann::json::object());
  c.input.dims = field<int64_t>(in, "dims", 2);
  if (c.input.dims != 2 && c.input.dims != 3) throw UsageError("model card input.dims must be 2 or 3");
  c.input.channels = field<int64_t>(in, "channels", 1);
  if (c.input.channels < 1) throw UsageError("model card input.channels must be at least 1");
  c.input.size = field<std::vector<int64_t>>(in, "size", {});
  if (!c.input.size.empty() && static_cast<int64_t>(c.input.size.size()) != c.input.dims)
    throw UsageError("model card input.size must give one length per dimension (" + std::to_string(c.input.dims) + ")");
  for (int64_t n : c.input.size)
    if (n < 1) throw UsageError("model card input.size lengths must be positive");
  c.input.modalities = field<std::vector<std::string>>(in, "modalities", {});
  c.input.body_parts = field<std::vector<std::string>>(in, "body_parts", {});
  c.input.channel_names = field<std::vector<std::string>>(in, "channel_names", {});
  c.preprocessing = field<nlohmann::json>(j, "preprocessing", nlohmann::json::object({{"transforms", nlohmann::json::array()}}));
  c.architecture = required<nlohmann::json>(j, "architecture");
  c.weights = field<std::string>(j, "weights", "weights.pt");
  if (!names_a_bundle_file(c.weights))
    throw UsageError("model card 'weights' must be a file name inside the bundle");
  c.weights_format = field<std::string>(j, "weights_format", "native");
  if (c.weights_format != "native" && c.weights_format != "torchscript")
    throw UsageError("weights_format must be 'native' or 'torchscript'");
  const nlohmann::json cal = field<nlohmann::json>(j, "calibration", nlohmann::json::object());
  c.temperature = field<double>(cal, "temperature", 1.0);
  if (!(c.temperature > 0)) throw UsageError("calibration temperature must be positive");
  c.thresholds = field<nlohmann::json>(j, "thresholds", nlohmann::json::object());
  check_thresholds(c.thresholds);
  c.metrics = field<nlohmann::json>(j, "metrics", nlohmann::json::object());
  c.training = field<nlohmann::json>(j, "training", nlohmann::json::object());
  c.explanation = field<nlohmann::json>(j, "explanation", nlohmann::json::object());
  c.ood = field<nlohmann::json>(j, "ood", nlohmann::json::object());
  // The quality reference is read on every prediction (quality/): a malformed one is refused
  // here, naming the field, rather than failing inside a check.
  check_ood_features(c.ood);
  if (c.ood.contains("quality")) {
    const nlohmann::json& q = c.ood["quality"];
    if (!q.is_object()) throw UsageError("model card ood.quality must be an object");
    for (auto it = q.begin(); it != q.end(); ++it)
      for (const char* k : {"q01", "q50", "q99"})
        if (!it.value().is_object() || !it.value().contains(k) || !it.value()[k].is_number())
          throw UsageError("model card ood.quality." + it.key() + " needs the numbers q01, q50 and q99");
  }
  c.intended_use = field<std::string>(j, "intended_use", "");
  c.limitations = field<std::vector<std::string>>(j, "limitations", {});
  for (auto it = j.begin(); it != j.end(); ++it)
    if (std::find(std::begin(kKnown), std::end(kKnown), it.key()) == std::end(kKnown)) c.extra[it.key()] = it.value();
  return c;
}

nlohmann::json ModelCard::to_json() const {
  nlohmann::json j = extra;
  j["medlens_card"] = format_version;
  j["name"] = name;
  j["version"] = version;
  j["task"] = task;
  j["description"] = description;
  j["classes"] = classes;
  j["positive_class"] = positive_class;
  j["input"] = {{"dims", input.dims}, {"channels", input.channels}, {"size", input.size},
                {"modalities", input.modalities}, {"body_parts", input.body_parts},
                {"channel_names", input.channel_names}};
  j["preprocessing"] = preprocessing;
  j["architecture"] = architecture;
  j["weights"] = weights;
  j["weights_format"] = weights_format;
  nlohmann::json cal = {{"temperature", temperature}};
  j["calibration"] = cal;
  j["thresholds"] = thresholds;
  j["metrics"] = metrics;
  j["training"] = training;
  j["explanation"] = explanation;
  j["ood"] = ood;
  j["intended_use"] = intended_use;
  j["limitations"] = limitations;
  return j;
}

int64_t ModelCard::class_index(const std::string& cls) const {
  for (size_t i = 0; i < classes.size(); ++i)
    if (classes[i] == cls) return static_cast<int64_t>(i);
  throw UsageError("model " + id() + " has no class '" + cls + "'");
}

ModelCard load_card(const std::string& bundle_dir) {
  const std::string path = (fs::path(bundle_dir) / "card.json").string();
  std::ifstream in(path);
  if (!in) throw InputError(bundle_dir, "not a model bundle (no readable card.json)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw InputError(path, std::string("card is not valid JSON: ") + e.what());
  }
  try {
    return ModelCard::from_json(j);
  } catch (const UsageError& e) {
    throw InputError(path, e.what());
  }
}

void save_card(const ModelCard& card, const std::string& bundle_dir) {
  AtomicOutput out((fs::path(bundle_dir) / "card.json").string());
  {
    std::ofstream f(out.temp_path());
    f << card.to_json().dump(2) << "\n";
    if (!f) throw InputError(bundle_dir, "cannot write card.json");
  }
  out.commit();
}

std::string bundle_hash(const std::string& bundle_dir) {
  const ModelCard card = load_card(bundle_dir);
  return sha256_hex(sha256_file((fs::path(bundle_dir) / "card.json").string()) +
                    sha256_file((fs::path(bundle_dir) / card.weights).string()));
}

}  // namespace medlens
