// Whole-slide images through OpenSlide 3.4. OpenSlide reports errors as a sticky state on the
// handle rather than return codes, so every call is followed by a check.

#include "io/wsi.h"

#include <openslide.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <sstream>

#include "core/error.h"
#include "io/read.h"

namespace fs = std::filesystem;

namespace medlens {

namespace {

// An open slide that closes itself; check() turns OpenSlide's error state into InputError.
class Slide {
 public:
  explicit Slide(const std::string& path) : path_(path) {
    std::error_code ec;
    if (fs::is_directory(path, ec)) throw InputError(path, "is a folder, expected a slide file");
    if (!fs::exists(path, ec)) throw InputError(path, "no such file");
    if (!is_whole_slide(path))
      throw InputError(path, "not a whole-slide image OpenSlide recognises");
    osr_ = openslide_open(path.c_str());
    if (osr_ == nullptr) throw InputError(path, "OpenSlide cannot open this slide");
    check();
  }
  ~Slide() {
    if (osr_) openslide_close(osr_);
  }
  Slide(const Slide&) = delete;
  Slide& operator=(const Slide&) = delete;

  openslide_t* get() const { return osr_; }
  void check() const {
    if (const char* e = openslide_get_error(osr_))
      throw InputError(path_, std::string("OpenSlide: ") + e);
  }

 private:
  std::string path_;
  openslide_t* osr_ = nullptr;
};

double parse_double(const std::string& s) {
  std::istringstream in(s);
  in.imbue(std::locale::classic());
  double v = 0;
  if (!(in >> v) || !std::isfinite(v)) return 0;
  return v;
}

// OpenSlide 3.4's generic-tiff driver exposes only the raw TIFF resolution tags, not mpp.
double mpp_from_tiff(const std::map<std::string, std::string>& p, const char* tag) {
  const auto res = p.find(tag);
  const auto unit = p.find("tiff.ResolutionUnit");
  if (res == p.end() || unit == p.end()) return 0;
  const double r = parse_double(res->second);
  if (!(r > 0)) return 0;
  if (unit->second == "centimeter") return 1e4 / r;
  if (unit->second == "inch") return 25400.0 / r;
  return 0;
}

SlideInfo info_of(const Slide& slide, const std::string& path) {
  openslide_t* osr = slide.get();
  SlideInfo info;
  if (const char* v = openslide_detect_vendor(path.c_str())) info.vendor = v;
  const int32_t count = openslide_get_level_count(osr);
  slide.check();
  if (count < 1) throw InputError(path, "slide has no levels");
  for (int32_t l = 0; l < count; ++l) {
    SlideLevel level;
    openslide_get_level_dimensions(osr, l, &level.width, &level.height);
    level.downsample = openslide_get_level_downsample(osr, l);
    slide.check();
    if (level.width <= 0 || level.height <= 0 || !(level.downsample > 0))
      throw InputError(path, "slide level " + std::to_string(l) + " has no pixels");
    info.levels.push_back(level);
  }
  if (const char* const* names = openslide_get_property_names(osr)) {
    for (; *names; ++names)
      if (const char* value = openslide_get_property_value(osr, *names))
        info.properties[*names] = value;
  }
  slide.check();
  auto prop = [&](const char* name) {
    const auto it = info.properties.find(name);
    return it == info.properties.end() ? 0.0 : parse_double(it->second);
  };
  info.mpp_x = prop(OPENSLIDE_PROPERTY_NAME_MPP_X);
  info.mpp_y = prop(OPENSLIDE_PROPERTY_NAME_MPP_Y);
  if (!(info.mpp_x > 0) || !(info.mpp_y > 0)) {
    info.mpp_x = mpp_from_tiff(info.properties, "tiff.XResolution");
    info.mpp_y = mpp_from_tiff(info.properties, "tiff.YResolution");
  }
  if (!(info.mpp_x > 0) || !(info.mpp_y > 0)) info.mpp_x = info.mpp_y = 0;
  return info;
}

// Reads a checked rectangle of `level` into planar RGB floats.
VoxelBuffer read_region(const Slide& slide, const SlideInfo& info, const std::string& path,
                        int level, int64_t x, int64_t y, int64_t w, int64_t h) {
  if (level < 0 || level >= static_cast<int>(info.levels.size()))
    throw InputError(path, "level " + std::to_string(level) + " does not exist (the slide has " +
                               std::to_string(info.levels.size()) + ")");
  const SlideLevel& L = info.levels[static_cast<size_t>(level)];
  if (w <= 0 || h <= 0 || x < 0 || y < 0 || x > L.width - w || y > L.height - h)
    throw InputError(path, "region x=" + std::to_string(x) + " y=" + std::to_string(y) + " " +
                               std::to_string(w) + "x" + std::to_string(h) + " is outside level " +
                               std::to_string(level) + " (" + std::to_string(L.width) + "x" +
                               std::to_string(L.height) + ")");
  if (w > max_voxels() / h / 3)
    throw InputError(path, "region " + std::to_string(w) + "x" + std::to_string(h) +
                               " is too large: more than " + std::to_string(max_voxels()) +
                               " values (MEDLENS_MAX_VOXELS); read a smaller region");

  std::vector<uint32_t> argb(static_cast<size_t>(w * h));
  // OpenSlide takes the top-left corner in level-0 pixels and the size in level pixels.
  const int64_t x0 = std::llround(static_cast<double>(x) * L.downsample);
  const int64_t y0 = std::llround(static_cast<double>(y) * L.downsample);
  openslide_read_region(slide.get(), argb.data(), x0, y0, level, w, h);
  slide.check();

  VoxelBuffer out;
  out.shape = {3, 1, h, w};
  out.data.resize(static_cast<size_t>(3 * w * h));
  const size_t plane = static_cast<size_t>(w * h);
  float* r = out.data.data();
  float* g = r + plane;
  float* b = g + plane;
  for (size_t i = 0; i < plane; ++i) {
    // Premultiplied ARGB: undo the premultiplication; fully transparent is background white.
    const uint32_t p = argb[i];
    const uint32_t a = p >> 24;
    uint32_t c[3] = {(p >> 16) & 0xff, (p >> 8) & 0xff, p & 0xff};
    if (a == 0) {
      c[0] = c[1] = c[2] = 255;
    } else if (a != 255) {
      for (uint32_t& v : c) v = std::min<uint32_t>(255, (v * 255 + a / 2) / a);
    }
    r[i] = static_cast<float>(c[0]);
    g[i] = static_cast<float>(c[1]);
    b[i] = static_cast<float>(c[2]);
  }

  Geometry& geo = out.geometry;
  Metadata& md = out.metadata;
  if (info.mpp_x > 0 && info.mpp_y > 0) {
    const double sx = info.mpp_x * L.downsample / 1000.0, sy = info.mpp_y * L.downsample / 1000.0;
    geo.spacing = {sx, sy, 1.0};
    // Centre of the region's first pixel, in level-0 millimetres (pixel i of a level spans
    // level-0 pixels [i*ds, (i+1)*ds)).
    geo.origin = {((x + 0.5) * L.downsample - 0.5) * info.mpp_x / 1000.0,
                  ((y + 0.5) * L.downsample - 0.5) * info.mpp_y / 1000.0, 0.0};
  } else {
    geo.origin = {static_cast<double>(x), static_cast<double>(y), 0.0};
    md.warnings.push_back("microns per pixel unknown: spacing set to 1 mm");
  }
  if (info.vendor == "generic-tiff") {
    // OpenSlide 3.4.1 with libtiff 4.5 misplaces the pixels of a tiled level smaller than one
    // tile (libtiff now clips its raster to the image); nothing here can repair that.
    auto prop = [&](const std::string& key) {
      const auto it = info.properties.find("openslide.level[" + std::to_string(level) + "]." + key);
      return it == info.properties.end() ? 0.0 : parse_double(it->second);
    };
    const double tw = prop("tile-width"), th = prop("tile-height");
    if (L.width < tw || L.height < th)
      md.warnings.push_back("level " + std::to_string(level) + " (" + std::to_string(L.width) +
                            "x" + std::to_string(L.height) + ") is smaller than one tile: " +
                            "OpenSlide 3.4 may misplace its pixels; prefer a finer level");
  }
  md.modality = "SM";
  md.photometric = "RGB";
  md.source_path = path;
  md.source_format = "wsi";
  md.tags["Vendor"] = info.vendor;
  md.tags["LevelCount"] = std::to_string(info.levels.size());
  for (size_t l = 0; l < info.levels.size(); ++l) {
    std::ostringstream s;
    s.imbue(std::locale::classic());
    s << info.levels[l].width << "x" << info.levels[l].height << " downsample "
      << info.levels[l].downsample;
    md.tags["Level" + std::to_string(l)] = s.str();
  }
  md.tags["ReadLevel"] = std::to_string(level);
  md.tags["ReadRegion"] = std::to_string(x) + "," + std::to_string(y) + "," + std::to_string(w) +
                          "," + std::to_string(h);
  if (const auto it = info.properties.find(OPENSLIDE_PROPERTY_NAME_OBJECTIVE_POWER);
      it != info.properties.end())
    md.tags["ObjectivePower"] = it->second;
  if (info.mpp_x > 0) {
    std::ostringstream s;
    s.imbue(std::locale::classic());
    s << info.mpp_x << "\\" << info.mpp_y;
    md.tags["MicronsPerPixel"] = s.str();
  }
  return out;
}

}  // namespace

bool is_whole_slide(const std::string& path) {
  return openslide_detect_vendor(path.c_str()) != nullptr;
}

SlideInfo slide_info(const std::string& path) {
  Slide slide(path);
  return info_of(slide, path);
}

VoxelBuffer read_slide_region(const std::string& path, int level, int64_t x, int64_t y,
                              int64_t width, int64_t height) {
  Slide slide(path);
  const SlideInfo info = info_of(slide, path);
  return read_region(slide, info, path, level, x, y, width, height);
}

std::vector<std::array<int64_t, 4>> slide_tiles(const SlideInfo& info, int level, int64_t tile,
                                                int64_t overlap) {
  if (level < 0 || level >= static_cast<int>(info.levels.size()))
    throw UsageError("slide_tiles: level " + std::to_string(level) + " does not exist");
  if (tile < 1) throw UsageError("slide_tiles: tile size must be at least 1");
  if (overlap < 0 || overlap >= tile)
    throw UsageError("slide_tiles: overlap must be in [0, tile size)");
  const SlideLevel& L = info.levels[static_cast<size_t>(level)];
  const int64_t stride = tile - overlap;
  // Starts along one axis; the last tile is the first that reaches the edge.
  auto starts = [&](int64_t extent) {
    std::vector<int64_t> s;
    for (int64_t p = 0;; p += stride) {
      s.push_back(p);
      if (p + tile >= extent) break;
    }
    return s;
  };
  std::vector<std::array<int64_t, 4>> tiles;
  const auto xs = starts(L.width), ys = starts(L.height);
  tiles.reserve(xs.size() * ys.size());
  for (int64_t ty : ys)
    for (int64_t tx : xs)
      tiles.push_back({tx, ty, std::min(tile, L.width - tx), std::min(tile, L.height - ty)});
  return tiles;
}

VoxelBuffer read_wsi(const std::string& path, const ReadOptions& options) {
  Slide slide(path);
  const SlideInfo info = info_of(slide, path);
  int level = options.wsi_level;
  if (level < 0) {
    // The finest level small enough; a region, when given, is in that level's pixels.
    for (size_t l = 0; l < info.levels.size() && level < 0; ++l)
      if (info.levels[l].width <= options.max_wsi_pixels / info.levels[l].height)
        level = static_cast<int>(l);
    if (level < 0) {
      const SlideLevel& c = info.levels.back();
      throw InputError(path, "no level fits in " + std::to_string(options.max_wsi_pixels) +
                                 " pixels (the coarsest is " + std::to_string(c.width) + "x" +
                                 std::to_string(c.height) + "); choose a level and a region");
    }
  }
  if (level >= static_cast<int>(info.levels.size()))
    throw InputError(path, "level " + std::to_string(level) + " does not exist (the slide has " +
                               std::to_string(info.levels.size()) + ")");
  const SlideLevel& L = info.levels[static_cast<size_t>(level)];
  std::array<int64_t, 4> region{0, 0, L.width, L.height};
  if (options.wsi_region) region = *options.wsi_region;
  return read_region(slide, info, path, level, region[0], region[1], region[2], region[3]);
}

}  // namespace medlens
