// Burned-in marks on 2-D images: annotation text and caliper crosses that sonographers leave in
// ultrasound pixels. Found here (a transform-stage tool, torch-free header) so that both the
// explanation's shortcut check and a preprocessing step that paints the marks out use one
// detector.
#pragma once

#include <cstdint>

#include "core/image.h"
#include "transforms/transform.h"

namespace medlens {

/// What detect_burned_in_marks() looks for; the defaults suit 8-bit B-mode ultrasound.
struct MarkOptions {
  double tophat = 0.15;       ///< candidate voxels: white top-hat above this (fraction of the range)
  double contrast = 0.3;      ///< a component's mean minus the median of a 2-voxel ring around it
  double max_height = 0.08;   ///< component bounding box limits, as fractions of the shorter side
  double max_width = 0.3;     ///<   (text runs along x, so lines of text may be wide)
  double min_vertical = 0.5;  ///< sum |d/dx| >= this * sum |d/dy| (tissue streaks are horizontal)
  int64_t grow = 1;           ///< the mask is dilated by this many voxels to cover stroke edges
};

/// Burned-in marks on a 2-D image (each slice of a volume): annotation text and caliper
/// crosses as sonographers leave them. Method: grey (channel mean) scaled to [0, 1] by the
/// image's range; white top-hat with a disk of radius 3 voxels per 256 (opening removes thin
/// bright strokes); 8-connected components of top-hat > `tophat`; kept when small (bounding box
/// within max_height x max_width of the shorter side, at least 3 voxels), much brighter than
/// their surroundings (mean - median of a 2-voxel ring >= `contrast`) and not a horizontal
/// tissue streak (horizontal gradients at least `min_vertical` times the vertical ones around
/// the component); kept components grown by `grow` voxels. Returns a one-channel 0/1 mask on
/// the image's grid.
Image detect_burned_in_marks(const Image& image, const MarkOptions& options = {});

/// Paints the detected marks out (OpenCV's Telea inpainting, `radius` voxels, per slice and
/// channel), so a model trained and run on the result does not see the annotation text and
/// caliper crosses ("the sonographer measured something"); the thin dotted lines some scanners
/// draw between crosses are not detected and stay. Voxels outside the mask are unchanged; an
/// image without marks passes through bit for bit. Registered as "inpaint-marks".
struct InpaintMarksOptions {
  MarkOptions marks;
  double radius = 3;  ///< Telea neighbourhood in voxels
};
TransformPtr make_inpaint_marks(const InpaintMarksOptions& options = {});

}  // namespace medlens
