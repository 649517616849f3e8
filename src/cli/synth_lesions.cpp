// medlens synth-lesions --background PATH... --out DIR --count N [--seed N]: a labelled data set
// of real backgrounds with synthetic lesions (exact masks) and untouched normals.
// Writes DIR/images/, DIR/masks/, DIR/manifest.csv (path,label,mask) and DIR/lesions.json,
// all through a temporary folder renamed into place at the end.
#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>

#include "cli/commands.h"
#include "core/error.h"
#include "core/image.h"
#include "io/file_util.h"
#include "io/read.h"
#include "io/write.h"
#include "transforms/augment.h"
#include "transforms/registry.h"
#include "transforms/synth_lesions.h"

namespace fs = std::filesystem;

namespace medlens::cli {
namespace {

struct Args {
  std::vector<std::string> backgrounds, regions;
  std::string out, size, modality, lesions = "1", radius, second_contrast, channel_gain;
  double spacing_mm = 0;
  int64_t count = 0;
  uint64_t seed = 0;
  double normal_fraction = 0.5;
  bool slices = false;
};

// "a;b;c" (or commas) into numbers; UsageError naming the option otherwise.
std::vector<double> parse_list(const std::string& option, const std::string& text) {
  std::vector<double> out;
  std::string item;
  auto flush = [&] {
    char* end = nullptr;
    const double v = std::strtod(item.c_str(), &end);
    if (item.empty() || end != item.c_str() + item.size() || !std::isfinite(v))
      throw UsageError(option + ": expected numbers separated by ';', got '" + text + "'");
    out.push_back(v);
    item.clear();
  };
  for (char c : text) {
    if (c == ';' || c == ',') flush();
    else if (!std::isspace(static_cast<unsigned char>(c))) item += c;
  }
  flush();
  return out;
}

std::pair<double, double> parse_range(const std::string& option, const std::string& text) {
  const std::vector<double> v = parse_list(option, text);
  if (v.size() > 2 || v.front() > v.back()) throw UsageError(option + ": expected LO[;HI] with LO <= HI");
  return {v.front(), v.back()};
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The modality that picks the lesion defaults: the override, the file's own, or a guess from
// the path and format (documented in docs/SYNTHETIC_LESIONS.md).
std::string pick_modality(const std::string& override_modality, const Image& image, const std::string& path) {
  if (!override_modality.empty()) return override_modality;
  if (!image.metadata().modality.empty() && image.metadata().modality != "OT") return image.metadata().modality;
  const std::string p = lower(path);
  auto has = [&](const char* w) { return p.find(w) != std::string::npos; };
  if (has("busi") || has("ultrasound") || has("breast_us")) return "US";
  if (has("pneumonia") || has("chest") || has("xray") || has("x-ray") || has("cxr")) return "DX";
  if (has("retina") || has("fundus")) return "OP";
  if (image.metadata().source_format == "nifti" && image.is_3d()) return "MR";
  return "OT";
}

// Voxels (Z, Y, X) whose channel mean is above 10% of the way from the minimum to the 99th
// percentile: tissue rather than air or the black frame around ultrasound and fundus images.
at::Tensor foreground(const Image& image) {
  const at::Tensor mean = image.voxels().mean(0);
  const at::Tensor flat = mean.reshape(-1);
  const int64_t k = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(0.99 * static_cast<double>(flat.numel()))));
  const double p99 = std::get<0>(at::kthvalue(flat, k)).item<double>();
  const double lo = flat.min().item<double>();
  at::Tensor fg = mean > lo + 0.1 * (p99 - lo);
  if (!fg.any().item<bool>()) fg = at::ones_like(fg);
  return fg;
}

struct Source {
  std::string path;
  Image image;
  Image region;  // 1 channel, 0/1, same grid
  std::string modality;
};

// Dilation of a (Z, Y, X) 0/1 tensor by a box of +-k voxels per axis (separable max pooling).
at::Tensor dilate(const at::Tensor& m, const std::array<int64_t, 3>& k) {
  at::Tensor t = m.to(at::kFloat).unsqueeze(0).unsqueeze(0);
  if (k[0] > 0) t = at::max_pool3d(t, {1, 1, 2 * k[0] + 1}, {1, 1, 1}, {0, 0, k[0]});
  if (k[1] > 0) t = at::max_pool3d(t, {1, 2 * k[1] + 1, 1}, {1, 1, 1}, {0, k[1], 0});
  if (k[2] > 0) t = at::max_pool3d(t, {2 * k[2] + 1, 1, 1}, {1, 1, 1}, {k[2], 0, 0});
  return t.squeeze(0).squeeze(0) > 0.5;
}

// One axial slice (index z = k) of a volume, with its geometry.
Image slice_of(const Image& image, int64_t k) {
  Geometry g = image.geometry();
  g.origin = g.index_to_lps({0, 0, static_cast<double>(k)});
  return Image(image.voxels().narrow(1, k, 1).clone(), g, image.metadata());
}

bool integral_16bit(const Image& image) {
  const at::Tensor& v = image.voxels();
  return at::equal(v, at::round(v)) && v.min().item<float>() >= 0 && v.max().item<float>() <= 65535;
}

// The default base-radius range: 4%..12% of the smaller in-plane extent of the background,
// at least 1.5 voxels; then capped at a quarter of the output's smallest extent so a lesion fits.
std::pair<double, double> radius_range(const Args& a, const Image& full, const Image& out) {
  const Vec3& sp = full.geometry().spacing;
  double lo, hi;
  if (!a.radius.empty()) {
    std::tie(lo, hi) = parse_range("--radius-mm", a.radius);
    if (!(lo > 0)) throw UsageError("--radius-mm: radii must be positive");
    return {lo, hi};
  }
  const double extent = std::min(full.width() * sp[0], full.height() * sp[1]);
  lo = std::max(0.04 * extent, 1.5 * std::min(sp[0], sp[1]));
  hi = std::max(lo, 0.12 * extent);
  double room = std::min(out.width() * sp[0], out.height() * sp[1]);
  if (out.is_3d()) room = std::min(room, out.depth() * sp[2]);
  hi = std::min(hi, 0.25 * room);
  return {std::min(lo, hi), hi};
}

void check_out_folder(const std::string& out) {
  std::error_code ec;
  if (!fs::exists(out, ec)) return;
  if (!fs::is_directory(out, ec)) throw UsageError("--out " + out + " exists and is not a folder");
  const bool ours = fs::exists(fs::path(out) / "manifest.csv") && fs::exists(fs::path(out) / "lesions.json");
  if (!fs::is_empty(out, ec) && !ours)
    throw UsageError("--out " + out + " exists and holds other files: give a new or empty folder "
                     "(a previous synth-lesions output is replaced)");
}

int run(const Args& a) {
  if (a.backgrounds.empty()) throw UsageError("synth-lesions needs at least one --background");
  if (a.out.empty()) throw UsageError("synth-lesions needs --out DIR");
  if (a.count < 1) throw UsageError("--count must be at least 1");
  if (!(a.normal_fraction >= 0 && a.normal_fraction <= 1)) throw UsageError("--normal-fraction lies in [0, 1]");
  if (!a.regions.empty() && a.regions.size() != 1 && a.regions.size() != a.backgrounds.size())
    throw UsageError("give one --region for all backgrounds or one per --background");
  const auto [lesions_lo, lesions_hi] = parse_range("--lesions-per-image", a.lesions);
  if (!(lesions_lo >= 1 && lesions_lo == std::floor(lesions_lo) && lesions_hi == std::floor(lesions_hi)))
    throw UsageError("--lesions-per-image takes whole numbers >= 1 (N or LO;HI)");
  std::array<int64_t, 3> size{0, 0, 0};  // 0: whole axis
  if (!a.size.empty()) {
    const std::vector<double> v = parse_list("--size", a.size);
    if (v.size() < 2 || v.size() > 3) throw UsageError("--size takes X;Y or X;Y;Z voxels");
    for (size_t i = 0; i < v.size(); ++i) {
      if (!(v[i] >= 1 && v[i] == std::floor(v[i]))) throw UsageError("--size takes whole voxels >= 1");
      size[i] = static_cast<int64_t>(v[i]);
    }
  }
  if (!a.radius.empty()) parse_range("--radius-mm", a.radius);  // refuse bad text before any work
  std::vector<double> gains;
  if (!a.channel_gain.empty()) gains = parse_list("--channel-gain", a.channel_gain);
  else if (!a.second_contrast.empty()) gains = {0.25, 2.0};  // subtle on the first contrast, clear on the second
  if (!a.second_contrast.empty() && gains.size() != 2)
    throw UsageError("--channel-gain needs two values with --second-contrast (first;second)");
  if (!(a.spacing_mm >= 0)) throw UsageError("--spacing-mm must be positive");
  check_out_folder(a.out);

  std::vector<Source> sources;
  for (size_t i = 0; i < a.backgrounds.size(); ++i) {
    Source s{a.backgrounds[i], read_image(a.backgrounds[i]), {}, {}};
    std::optional<Image> region_image;
    if (!a.regions.empty()) {
      const std::string& rp = a.regions.size() == 1 ? a.regions[0] : a.regions[i];
      const Image r = read_image(rp);
      const Shape rs = r.shape(), bs = s.image.shape();
      if (rs.z != bs.z || rs.y != bs.y || rs.x != bs.x)
        throw InputError(rp, "the region's grid differs from the background " + s.path + "'s");
      region_image = Image((r.voxels() != 0).any(0, true).to(at::kFloat), s.image.geometry(), Metadata{});
    }
    if (a.spacing_mm > 0) {
      // Coarser grids for 3-D benchmarks; the region follows with nearest-neighbour labels.
      Rng unused(0);
      Sample resampled = make_transform("resample", {{"spacing", a.spacing_mm}})->apply(Sample{s.image, region_image}, unused);
      s.image = resampled.image;
      region_image = resampled.label;
    }
    if (!a.second_contrast.empty()) {
      const Image second = synthetic_contrast(s.image, a.second_contrast);
      s.image = s.image.with_voxels(at::cat({s.image.voxels(), second.voxels()}, 0));
    }
    if (region_image) {
      s.region = *region_image;
    } else {
      s.region = Image(foreground(s.image).unsqueeze(0).to(at::kFloat), s.image.geometry(), Metadata{});
    }
    if (!(s.region.voxels() > 0).any().item<bool>()) throw InputError(s.path, "the region for lesions is empty");
    s.modality = pick_modality(a.modality, s.image, s.path);
    sources.push_back(std::move(s));
  }

  Rng master(a.seed);
  const int64_t normals = std::llround(static_cast<double>(a.count) * a.normal_fraction);
  std::vector<char> is_normal(static_cast<size_t>(a.count), 0);
  std::fill(is_normal.begin(), is_normal.begin() + normals, 1);
  for (int64_t i = a.count - 1; i > 0; --i) std::swap(is_normal[i], is_normal[master.integer(0, i)]);
  std::vector<uint64_t> seeds;
  for (int64_t i = 0; i < a.count; ++i) seeds.push_back(master.next_seed());

  AtomicOutput output(a.out, true);
  const fs::path root = output.temp_path();
  fs::create_directory(root / "images");
  fs::create_directory(root / "masks");
  const bool two = !a.second_contrast.empty();
  if (two) fs::create_directory(root / "contrast2");
  std::string manifest = two ? "path,label,mask,contrast2\n" : "path,label,mask\n";
  nlohmann::json entries = nlohmann::json::array();
  int64_t lesion_total = 0;

  for (int64_t i = 0; i < a.count; ++i) {
    const Source& src = sources[static_cast<size_t>(i) % sources.size()];
    Rng rng(seeds[static_cast<size_t>(i)]);
    Image image = src.image, region = src.region;
    nlohmann::json entry = {{"background", src.path}, {"modality", src.modality}};

    // An axial slice with plenty of region in it.
    if (a.slices && image.is_3d()) {
      const at::Tensor per_slice = region.voxels()[0].sum({1, 2});
      const at::Tensor good = at::nonzero(per_slice >= 0.5 * per_slice.max().item<double>()).reshape(-1);
      const int64_t k = good[rng.integer(0, good.numel() - 1)].item<int64_t>();
      image = slice_of(image, k);
      region = slice_of(region, k);
      entry["slice"] = k;
    }

    // A window centred on a region voxel, kept inside the image.
    const Shape s = image.shape();
    const std::array<int64_t, 3> n{s.x, s.y, s.z};
    std::array<int64_t, 3> win{}, start{};
    const at::Tensor cand = at::nonzero(region.voxels()[0].reshape(-1) > 0).reshape(-1);
    const int64_t v = cand[rng.integer(0, cand.numel() - 1)].item<int64_t>();
    const std::array<int64_t, 3> centre{v % s.x, (v / s.x) % s.y, v / (s.x * s.y)};
    for (int ax = 0; ax < 3; ++ax) {
      win[ax] = size[ax] > 0 ? std::min(size[ax], n[ax]) : n[ax];
      start[ax] = std::clamp<int64_t>(centre[ax] - win[ax] / 2, 0, n[ax] - win[ax]);
    }
    const bool whole = win == n;
    if (!whole) {
      const TransformPtr crop = make_crop_at(start, win);
      Sample cropped = crop->apply(Sample{image, region}, rng);
      image = cropped.image;
      region = *cropped.label;
    }
    entry["crop_start"] = {start[0], start[1], start[2]};
    entry["size"] = {win[0], win[1], win[2]};
    const Vec3& spacing = image.geometry().spacing;
    entry["spacing_mm"] = {spacing[0], spacing[1], spacing[2]};

    Image mask(at::zeros({1, image.depth(), image.height(), image.width()}), image.geometry(), Metadata{});
    nlohmann::json lesions = nlohmann::json::array();
    const bool normal = is_normal[static_cast<size_t>(i)];
    if (!normal) {
      LesionOptions opts = LesionOptions::for_modality(src.modality);
      const auto [rlo, rhi] = radius_range(a, src.image, image);
      opts.radius(rlo, rhi);
      if (!gains.empty()) opts.channel_gain(gains);
      const Vec3& sp = image.geometry().spacing;
      const std::array<int64_t, 3> reach{static_cast<int64_t>(std::ceil(opts.reach_mm() / sp[0])),
                                         static_cast<int64_t>(std::ceil(opts.reach_mm() / sp[1])),
                                         image.is_3d() ? static_cast<int64_t>(std::ceil(opts.reach_mm() / sp[2])) : 0};
      const int64_t wanted = rng.integer(static_cast<int64_t>(lesions_lo), static_cast<int64_t>(lesions_hi));
      at::Tensor occupied = at::zeros({image.depth(), image.height(), image.width()}, at::kBool);
      for (int64_t l = 0; l < wanted; ++l) {
        // Later lesions keep clear of earlier ones so every mask stays exact.
        const at::Tensor free = (region.voxels()[0] > 0) & ~dilate(occupied, reach);
        if (l > 0 && !free.any().item<bool>()) break;
        const Image room(free.unsqueeze(0).to(at::kFloat), image.geometry(), Metadata{});
        SynthResult r = insert_lesion(image, opts, rng, &room);
        image = r.image;
        mask = mask.with_voxels(at::maximum(mask.voxels(), r.mask.voxels()));
        occupied = occupied | (r.zone.voxels()[0] > 0);
        lesions.push_back(r.description);
      }
      lesion_total += static_cast<int64_t>(lesions.size());
    }

    char stem[32];
    std::snprintf(stem, sizeof stem, "%05lld", static_cast<long long>(i));
    const std::string ext = !image.is_3d() && integral_16bit(image) ? ".png" : ".nii.gz";
    const std::string img_rel = std::string("images/") + stem + ext, mask_rel = std::string("masks/") + stem + ext;
    const char* label = normal ? "normal" : "lesion";
    if (two) {
      // One file per contrast, as two series of one study would arrive.
      const std::string c2_rel = std::string("contrast2/") + stem + ext;
      write_image(image.with_voxels(image.voxels().narrow(0, 0, 1).contiguous()), (root / img_rel).string());
      write_image(image.with_voxels(image.voxels().narrow(0, 1, 1).contiguous()), (root / c2_rel).string());
      manifest += img_rel + "," + label + "," + mask_rel + "," + c2_rel + "\n";
      entry["contrast2"] = c2_rel;
    } else {
      write_image(image, (root / img_rel).string());
      manifest += img_rel + "," + label + "," + mask_rel + "\n";
    }
    write_image(mask, (root / mask_rel).string());
    entry["path"] = img_rel;
    entry["mask"] = mask_rel;
    entry["label"] = label;
    entry["lesions"] = lesions;
    entries.push_back(entry);
  }

  std::ofstream(root / "manifest.csv") << manifest;
  nlohmann::json doc = {{"seed", a.seed}, {"count", a.count}, {"normals", normals},
                        {"lesions", lesion_total}, {"images", entries}};
  std::ofstream(root / "lesions.json") << doc.dump(1) << "\n";
  output.commit();
  std::printf("wrote %lld images (%lld with %lld lesions, %lld normal) to %s\n", static_cast<long long>(a.count),
              static_cast<long long>(a.count - normals), static_cast<long long>(lesion_total),
              static_cast<long long>(normals), a.out.c_str());
  return 0;
}

}  // namespace

Run add_synth_lesions(CLI::App& app) {
  auto* cmd = app.add_subcommand("synth-lesions",
                                 "Insert synthetic lesions with exact masks into real backgrounds; write a data set");
  auto args = std::make_shared<Args>();
  cmd->add_option("--background", args->backgrounds, "Background images (used in turn)")->required();
  cmd->add_option("--out", args->out, "Output folder: images/, masks/, manifest.csv, lesions.json")->required();
  cmd->add_option("--count", args->count, "Number of images to write")->required()->check(CLI::Range(1, 1000000));
  cmd->add_option("--seed", args->seed, "Seed (same seed, same data set)");
  cmd->add_option("--region", args->regions,
                  "Where lesion centres may fall (> 0), one for all backgrounds or one each "
                  "(default: the background's bright foreground)");
  cmd->add_option("--normal-fraction", args->normal_fraction, "Fraction of untouched normals (default 0.5)");
  cmd->add_option("--size", args->size, "Patch size X;Y[;Z] voxels, clamped to the background (default: whole)");
  cmd->add_flag("--slices", args->slices, "Take 2-D axial (index z) slices from 3-D backgrounds");
  cmd->add_option("--modality", args->modality, "Modality for the lesion defaults: MR, US, DX, CR, OP, ...");
  cmd->add_option("--lesions-per-image", args->lesions, "Lesions per lesion image: N or LO;HI (default 1)");
  cmd->add_option("--spacing-mm", args->spacing_mm, "Resample backgrounds (and regions) to this isotropic spacing first");
  cmd->add_option("--second-contrast", args->second_contrast,
                  "Add a synthetic second contrast of the same anatomy (preset: t2-like), written to contrast2/ "
                  "and the manifest's contrast2 column");
  cmd->add_option("--channel-gain", args->channel_gain,
                  "Lesion contrast factor per channel, FIRST;SECOND (default with --second-contrast: 0.25;2)");
  cmd->add_option("--radius-mm", args->radius, "Base radius range LO;HI in mm (default: 4%..12% of the extent)");
  return [args]() { return run(*args); };
}

}  // namespace medlens::cli
