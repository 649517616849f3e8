// The lesion half of `medlens analyze`: a segmenter's probability map (sliding windows) turned
// into findings measured in mm, each with its overlay, its mask and its explanation.
#pragma once

#include <nlohmann/json.hpp>

#include "analyze/analyze.h"
#include "core/image.h"
#include "infer/model.h"

namespace medlens {

/// Analyses `first` (the input, channel 1) plus the further series the card's channels name
/// (options.channels) with segmenter `model`; writes findings.json, report.html, lesions.nii.gz
/// (finding ids), probability.nii.gz and per-lesion PNGs into options.out. InputError when a
/// series the model expects is missing or does not fit.
nlohmann::json analyze_lesions(const AnalyzeOptions& options, const Image& first, const Model& model);

}  // namespace medlens
