// Pieces both halves of `medlens analyze` (classifiers in analyze.cpp, lesion segmenters in
// lesions.cpp) write the same way: atomic text files, number formats, the card summary and
// its limits in the report.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "nn/card.h"

namespace medlens {
class HtmlReport;
}

namespace medlens::analysis {

/// Writes `text` to `path` through a temporary file renamed into place.
void write_text(const std::string& path, const std::string& text);
/// 0.1234 -> "12.3%".
std::string percent(double p);
/// A number with `digits` decimals.
std::string fixed(double v, int digits = 3);
/// The model block of findings.json: id, task, classes, intended use, limits, val metrics.
nlohmann::json card_summary(const ModelCard& card);
/// The report's "What this model cannot do" section: the card's limitations, or a warning when
/// the card states none.
void write_limitations(HtmlReport& report, const ModelCard& card);

}  // namespace medlens::analysis
