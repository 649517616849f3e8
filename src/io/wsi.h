// Whole-slide pathology images (Aperio .svs, Hamamatsu .ndpi, Leica .scn, MIRAX, Ventana,
// pyramidal tiled TIFF, ...) through OpenSlide. A slide is a pyramid of levels; level 0 is the
// full resolution. Coordinates here are always in the pixels of the level named alongside them.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/voxel_buffer.h"

namespace medlens {

struct SlideLevel {
  int64_t width = 0, height = 0;
  double downsample = 1.0;  ///< level-0 pixels per pixel of this level
};

struct SlideInfo {
  std::string vendor;              ///< OpenSlide's format name, e.g. "aperio", "generic-tiff"
  std::vector<SlideLevel> levels;  ///< finest first
  double mpp_x = 0, mpp_y = 0;     ///< microns per level-0 pixel; 0 when unknown
  std::map<std::string, std::string> properties;  ///< every OpenSlide property
};

/// True when OpenSlide recognises the file as a slide (false for missing or other files).
bool is_whole_slide(const std::string& path);

/// Levels, resolution and properties of a slide. mpp comes from openslide.mpp-x/y, else from
/// the TIFF resolution tags. InputError when OpenSlide cannot open the file.
SlideInfo slide_info(const std::string& path);

/// RGB pixels (3 channels, 0..255, Z = 1) of the rectangle x, y, width, height given in
/// `level`'s own pixels (converted to OpenSlide's level-0 origin internally; exact when the
/// downsample is an integer). Transparent pixels become white. InputError when the level does
/// not exist, the rectangle leaves the level, or it holds more than max_voxels() values.
VoxelBuffer read_slide_region(const std::string& path, int level, int64_t x, int64_t y,
                              int64_t width, int64_t height);

/// Tiles {x, y, width, height} in `level`'s pixels covering that level row by row: tiles of
/// `tile` pixels placed every tile - overlap pixels, the last ones in a row or column clipped
/// to the level. overlap = 0 covers every pixel exactly once. UsageError for a bad level, a tile
/// below 1 or an overlap outside [0, tile).
std::vector<std::array<int64_t, 4>> slide_tiles(const SlideInfo& info, int level, int64_t tile,
                                                int64_t overlap = 0);

}  // namespace medlens
