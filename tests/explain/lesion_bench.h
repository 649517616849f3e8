// The lesion localisation benchmark the explanation tests and bench/explain share: synthetic
// lesions (medlens's synth-lesions model) in 64x64 windows of real anatomy, and a lesion-vs-normal
// classifier trained by medlens on them. Two sources:
//  - "ch2": axial slices of mricron's ch2 T1 (brain mask ch2bet), bright MR lesions;
//  - "busi": the 20 normal breast ultrasound images vendored in data/samples/busi, hypoechoic
//    US lesions.
// Design choices, each for a reason:
//  - cases come in pairs: one window with a lesion, the same window without; the classifier can
//    only tell them apart by the lesion, so a faithful explanation has to point at it;
//  - lesion centres lie at least `margin` voxels inside the window (a lesion cut by the border
//    is half a lesion), radius 6-10 mm: larger than one cell of the last ResNet stage (8 voxels),
//    so a CAM can resolve it;
//  - fixed seeds throughout: the same cases and the same model on every run.
#pragma once

#include <string>
#include <vector>

#include "core/image.h"
#include "infer/model.h"

namespace medlens::test {

struct LesionCase {
  Image image;   ///< 64x64 window (2-D image)
  Image mask;    ///< lesion mask (all zero for normals)
  bool lesion = false;
};

struct LesionBenchOptions {
  std::string source = "ch2";   ///< ch2 | busi
  int train_cases = 300;        ///< training + validation cases (80% / 20%), half with a lesion
  int test_cases = 60;          ///< held-out cases, half with a lesion
  int epochs = 10;
  int64_t size = 64;            ///< window side (voxels)
  int64_t margin = 14;          ///< lesion centres at least this far inside the window
  double radius_min_mm = 6, radius_max_mm = 10;
  uint64_t seed = 1;
};

struct LesionBench {
  std::string bundle;                 ///< the trained model's folder (lives as long as the process)
  Model model;
  std::vector<LesionCase> test;       ///< held-out cases (not used in training)
  double val_auc = 0;                 ///< the trainer's validation AUC
  double train_seconds = 0;
};

/// `count` cases from `o.source`, alternately with and without a lesion (pairs share a window),
/// drawn with `seed`.
std::vector<LesionCase> make_lesion_cases(const LesionBenchOptions& o, int count, uint64_t seed);

/// Builds the cases, trains the classifier (resnet-compact, width 8, z-score, x flips) into a
/// temporary folder and loads it.
LesionBench build_lesion_bench(const LesionBenchOptions& o);

/// The tests' benchmark: ch2 with the default options, built on first use, once per process.
const LesionBench& lesion_bench();

}  // namespace medlens::test
