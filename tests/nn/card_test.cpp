// Model cards: parse, validate, round-trip, keep unknown keys.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <vector>

#include "core/error.h"
#include "nn/card.h"
#include "tools/test_util.h"

namespace medlens {
namespace {

nlohmann::json minimal() {
  return {{"name", "m"}, {"version", "1.2.0"}, {"task", "classify"}, {"classes", {"normal", "pneumonia"}},
          {"architecture", {{"name", "resnet"}}}};
}

TEST(ModelCard, RoundTripsEveryFieldAndKeepsUnknownKeys) {
  nlohmann::json j = minimal();
  j["positive_class"] = "pneumonia";
  j["input"] = {{"dims", 2}, {"channels", 1}, {"size", {28, 28}}, {"modalities", {"CR", "DX"}}};
  j["calibration"] = {{"temperature", 1.7}};
  j["thresholds"] = {{"operating_point", 0.42}};
  j["limitations"] = {"paediatric only"};
  j["site_notes"] = "kept";
  const ModelCard c = ModelCard::from_json(j);
  EXPECT_EQ(c.id(), "m@1.2.0");
  EXPECT_EQ(c.class_index("pneumonia"), 1);
  EXPECT_DOUBLE_EQ(c.temperature, 1.7);
  EXPECT_EQ(c.input.modalities, (std::vector<std::string>{"CR", "DX"}));
  const ModelCard again = ModelCard::from_json(c.to_json());
  EXPECT_EQ(again.to_json(), c.to_json());
  EXPECT_EQ(again.to_json()["site_notes"], "kept");
  EXPECT_THROW(c.class_index("covid"), UsageError);
}

TEST(ModelCard, RejectsWhatLaterStagesCannotUse) {
  for (const char* drop : {"name", "version", "task", "classes", "architecture"}) {
    nlohmann::json j = minimal();
    j.erase(drop);
    EXPECT_THROW(ModelCard::from_json(j), UsageError) << drop;
  }
  nlohmann::json j = minimal();
  j["task"] = "regress";
  EXPECT_THROW(ModelCard::from_json(j), UsageError);
  j = minimal();
  j["weights"] = "../../etc/passwd";
  EXPECT_THROW(ModelCard::from_json(j), UsageError);
  j = minimal();
  j["calibration"] = {{"temperature", -1}};
  EXPECT_THROW(ModelCard::from_json(j), UsageError);
  j = minimal();
  j["positive_class"] = "covid";
  EXPECT_THROW(ModelCard::from_json(j), UsageError);
  j = minimal();
  j["ood"] = {{"quality", {{"size", {{"q01", 256.0}, {"q50", 256.0}, {"q99", 256.0}}}}}};
  EXPECT_NO_THROW(ModelCard::from_json(j));
  j["ood"]["quality"]["size"].erase("q01");
  EXPECT_THROW(ModelCard::from_json(j), UsageError);
  j["ood"]["quality"] = {{"size", 256}};
  EXPECT_THROW(ModelCard::from_json(j), UsageError);
}

TEST(ModelCard, RefusesMalformedNumbersThatPredictionsReadWhenLoaded) {
  // Each of these used to pass loading and fail mid-prediction as an internal error (or, for
  // the size, as a misleading size mismatch): now the card is refused, naming the field.
  struct Bad {
    const char* field;
    std::function<void(nlohmann::json&)> edit;
  };
  const std::vector<Bad> bad = {
      {"input.size", [](nlohmann::json& j) { j["input"] = {{"dims", 2}, {"size", {-3, 0}}}; }},
      {"input.size", [](nlohmann::json& j) { j["input"] = {{"dims", 2}, {"size", {28}}}; }},
      {"input.channels", [](nlohmann::json& j) { j["input"] = {{"channels", 0}}; }},
      {"thresholds", [](nlohmann::json& j) { j["thresholds"] = 0.5; }},
      {"thresholds.operating_point", [](nlohmann::json& j) { j["thresholds"] = {{"operating_point", 1.5}}; }},
      {"thresholds.abstain.min_confidence",
       [](nlohmann::json& j) { j["thresholds"] = {{"abstain", {{"min_confidence", "high"}}}}; }},
      {"thresholds.abstain.max_entropy", [](nlohmann::json& j) { j["thresholds"] = {{"abstain", {{"max_entropy", -1}}}}; }},
      {"thresholds.lesion_threshold", [](nlohmann::json& j) { j["thresholds"] = {{"lesion_threshold", nullptr}}; }},
      {"ood", [](nlohmann::json& j) { j["ood"] = nlohmann::json::array(); }},
      {"ood.features.mahalanobis",
       [](nlohmann::json& j) { j["ood"] = {{"features", {{"mahalanobis", {{"threshold", nullptr}}}}}}; }},
      {"ood.features.energy.judged",
       [](nlohmann::json& j) { j["ood"] = {{"features", {{"energy", {{"threshold", 3.0}, {"judged", "yes"}}}}}}; }},
      {"ood.features.file", [](nlohmann::json& j) { j["ood"] = {{"features", {{"file", "../ood.pt"}}}}; }},
  };
  for (const auto& b : bad) {
    nlohmann::json j = minimal();
    b.edit(j);
    try {
      ModelCard::from_json(j);
      ADD_FAILURE() << b.field << " accepted";
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find(b.field), std::string::npos) << e.what();
    }
  }
  // The well-formed versions load.
  nlohmann::json j = minimal();
  j["input"] = {{"dims", 2}, {"channels", 1}, {"size", {28, 28}}};
  j["thresholds"] = {{"operating_point", 0.3}, {"abstain", {{"min_confidence", 0.6}, {"max_entropy", 0.9}}}};
  j["ood"] = {{"features", {{"file", "ood.pt"}, {"mahalanobis", {{"threshold", 12.5}}},
                            {"energy", {{"threshold", -3.0}, {"judged", false}}}}}};
  EXPECT_NO_THROW(ModelCard::from_json(j));
}

TEST(ModelCard, LoadNamesTheFileOnError) {
  test::TempDir tmp;
  EXPECT_THROW(load_card(tmp.path().string()), InputError);
  std::ofstream(tmp.file("card.json")) << "{\"name\": 3";
  try {
    load_card(tmp.path().string());
    ADD_FAILURE();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("card.json"), std::string::npos);
  }
  save_card(ModelCard::from_json(minimal()), tmp.path().string());
  EXPECT_EQ(load_card(tmp.path().string()).name, "m");
}

}  // namespace
}  // namespace medlens
