// JSON and text renderings of library results shared by several commands.
#pragma once

#include <nlohmann/json.hpp>

#include "core/geometry.h"
#include "core/metadata.h"
#include "io/describe.h"

namespace medlens::cli {

nlohmann::json geometry_json(const Geometry& g, const Shape& s);
nlohmann::json metadata_json(const Metadata& m);
nlohmann::json summary_json(const ImageSummary& s);
void print_summary(const ImageSummary& s);

}  // namespace medlens::cli
