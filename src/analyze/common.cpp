#include "analyze/common.h"

#include <cstdio>
#include <fstream>

#include "core/error.h"
#include "io/file_util.h"
#include "report/html.h"

namespace medlens::analysis {

void write_text(const std::string& path, const std::string& text) {
  AtomicOutput out(path);
  {
    std::ofstream f(out.temp_path());
    f << text;
    if (!f) throw InputError(path, "cannot write");
  }
  out.commit();
}

std::string percent(double p) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f%%", 100 * p);
  return b;
}

std::string fixed(double v, int digits) {
  char b[32];
  std::snprintf(b, sizeof b, "%.*f", digits, v);
  return b;
}

nlohmann::json card_summary(const ModelCard& c) {
  nlohmann::json metrics = nlohmann::json::object();
  if (c.metrics.contains("val"))
    for (const char* k : {"auc", "accuracy", "balanced_accuracy", "sensitivity", "specificity", "ece", "dice",
                          "detection"})
      if (c.metrics["val"].contains(k)) metrics[k] = c.metrics["val"][k];
  return {{"id", c.id()},           {"task", c.task},           {"classes", c.classes},
          {"positive_class", c.positive_class}, {"description", c.description},
          {"intended_use", c.intended_use}, {"limitations", c.limitations}, {"val_metrics", metrics},
          {"modalities", c.input.modalities}, {"channels", c.input.channel_names}};
}

void write_limitations(HtmlReport& r, const ModelCard& card) {
  r.heading("What this model cannot do", 3);
  if (card.limitations.empty()) r.paragraph("The card states no limitations; treat the result with care.", "warn");
  r.raw("<ul>");
  for (const auto& l : card.limitations) r.raw("<li>" + html_escape(l) + "</li>");
  r.raw("</ul>");
}

}  // namespace medlens::analysis
