// Burned-in text in pixels: a stroke-based detector (no OCR engine at run time). Text burned
// into medical images (side labels, names, dates, scanner captions) is made of character-sized
// components with thin strokes of near-uniform intensity, much brighter (or darker) than what
// is around them, standing in rows. The detector finds such rows; the caller blanks them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace medlens::deid {

struct TextRegion {
  int x = 0, y = 0, width = 0, height = 0;  ///< pixels, already grown by a margin
  int characters = 0;                        ///< character-like components in the row
};

/// Finds rows of burned-in text in an 8-bit grey image (row-major, `stride` bytes per row),
/// light-on-dark and dark-on-light. Regions are clipped to the image.
std::vector<TextRegion> find_text_regions(const uint8_t* grey, int rows, int cols, size_t stride);

/// Grey values for detection from stored samples: scales [lo, hi] of `values` to 0..255.
/// `samples` 1 or 3 (interleaved RGB: luminance).
std::vector<uint8_t> to_grey8(const double* values, int rows, int cols, int samples);

}  // namespace medlens::deid
