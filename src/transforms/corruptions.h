// Corruptions: realistic noise and acquisition artefacts at severities 1..5, each made where it
// arises (photon counts, k-space, the CT sinogram, the JPEG codec) and scaled to the image's own
// intensity range, so robustness can be measured and trained for. Every kind keeps shape,
// geometry and metadata, tags metadata.tags["Corruption"] = "kind:severity", and draws its
// randomness only from the Rng passed to apply. docs/CORRUPTIONS.md describes each kind.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "transforms/transform.h"

namespace medlens {

/// The stable kind names, in table order (gaussian, poisson, ..., pixelate).
std::vector<std::string> corruption_kinds();

/// One kind at one severity: the parameters that severity uses, with units in their names
/// (e.g. {"radius_mm": 2}, {"sigma_of_range": 0.07}).
struct CorruptionLevel {
  std::string kind;
  int severity = 0;
  nlohmann::json parameters;
};

/// Every kind at every severity 1..5, kinds in corruption_kinds() order: what --list prints and
/// docs/CORRUPTIONS.md tabulates.
std::vector<CorruptionLevel> corruption_table();

/// One line saying how the kind is made (and what "range" means). UsageError for an unknown kind.
std::string corruption_description(const std::string& kind);

/// True when the kind draws random numbers (noise, positions, directions).
bool corruption_is_random(const std::string& kind);

/// The corruption `kind` at `severity` (1 mild .. 5 severe): a RandomTransform when the kind
/// draws random numbers, otherwise deterministic. UsageError for an unknown kind or a severity
/// outside 1..5.
TransformPtr make_corruption(const std::string& kind, int severity);

}  // namespace medlens
