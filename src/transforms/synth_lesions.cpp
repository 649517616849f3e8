#include "transforms/synth_lesions.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <numbers>

#include "core/error.h"
#include "transforms/augment.h"

namespace medlens {

LesionOptions LesionOptions::for_modality(const std::string& modality) {
  std::string m = modality;
  for (char& c : m) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  LesionOptions o;
  if (m == "MR") {
    o.contrast(0.35).mass_effect(1.0);
  } else if (m == "US") {
    o.contrast(-0.6).keep_background(0.4).soft_margin(1.0).lobulation(4, 0.25).texture(0.1);
  } else if (m == "CR" || m == "DX") {
    o.contrast(0.3).keep_background(0.5).soft_margin(2.0).lobulation(2, 0.2).texture(0.15);
  } else if (m == "OP") {
    o.contrast(-0.4).soft_margin(1.0);
  }
  return o;
}

void LesionOptions::validate() const {
  auto need = [](bool ok, const std::string& what) {
    if (!ok) throw UsageError("lesion options: " + what);
  };
  need(radius_min_mm_ > 0 && radius_min_mm_ <= radius_max_mm_ && std::isfinite(radius_max_mm_),
       "radius needs 0 < min <= max");
  need(lobes_ >= 0 && lobes_ <= 64 && lobe_depth_ >= 0 && lobe_depth_ <= 2, "lobes 0..64, lobe depth 0..2");
  need(edge_mm_ > 0 && std::isfinite(edge_mm_), "edge width must be > 0 mm");
  need(spikes_ >= 0 && spikes_ <= 256 && spike_length_ >= 0 && spike_length_ <= 5 && spike_width_mm_ > 0,
       "spikes 0..256, spike length 0..5 radii, spike width > 0 mm");
  need(texture_ >= 0 && texture_ <= 1 && texture_mm_ > 0, "texture amplitude 0..1, texture scale > 0 mm");
  need(contrast_ >= -1 && contrast_ <= 10 && core_contrast_ >= -1 && core_contrast_ <= 10 &&
           oedema_contrast_ >= -1 && oedema_contrast_ <= 10,
       "contrasts lie in [-1, 10] (fractions of the local background)");
  need(keep_background_ >= 0 && keep_background_ <= 1, "keep_background lies in [0, 1]");
  need(rim_mm_ >= 0 && oedema_mm_ >= 0 && mass_effect_mm_ >= 0 && std::isfinite(oedema_mm_) &&
           std::isfinite(mass_effect_mm_) && std::isfinite(rim_mm_),
       "rim, oedema and mass effect are >= 0 mm");
  for (double g : channel_gain_) need(std::isfinite(g) && std::abs(g) <= 20, "channel gains are finite, |gain| <= 20");
}

namespace {
constexpr double kMassEffectReach = 2.5;  // the push fades to zero at this many radii
}

double LesionOptions::reach_mm() const {
  double body = radius_max_mm_ * (1 + lobe_depth_);
  if (margin_ == Margin::kSpiculated) body += spike_length_ * radius_max_mm_;
  const double lesion = body + edge_mm_ / 2 + oedema_mm_;
  return mass_effect_mm_ > 0 ? std::max(lesion, kMassEffectReach * radius_max_mm_) : lesion;
}

nlohmann::json LesionOptions::to_json() const {
  nlohmann::json j = {{"radius_mm", {radius_min_mm_, radius_max_mm_}},
                      {"lobes", lobes_},
                      {"lobe_depth", lobe_depth_},
                      {"margin", margin_ == Margin::kSoft ? "soft" : "spiculated"},
                      {"edge_mm", edge_mm_},
                      {"texture", texture_},
                      {"texture_mm", texture_mm_},
                      {"contrast", contrast_},
                      {"keep_background", keep_background_},
                      {"oedema_mm", oedema_mm_},
                      {"mass_effect_mm", mass_effect_mm_}};
  if (margin_ == Margin::kSpiculated) {
    j["spikes"] = spikes_;
    j["spike_length"] = spike_length_;
    j["spike_width_mm"] = spike_width_mm_;
  }
  if (ring_) {
    j["ring"] = true;
    j["rim_mm"] = rim_mm_;
    j["core_contrast"] = core_contrast_;
  }
  if (oedema_mm_ > 0) j["oedema_contrast"] = oedema_contrast_;
  if (!channel_gain_.empty()) j["channel_gain"] = channel_gain_;
  return j;
}

namespace {

// 0 below 0, 1 above 1, C2-smooth in between (Perlin's smootherstep).
at::Tensor smootherstep(const at::Tensor& t) {
  const at::Tensor x = t.clamp(0.0, 1.0);
  return x * x * x * (x * (x * 6.0 - 15.0) + 10.0);
}

Vec3 random_direction(Rng& rng, bool flat) {
  if (flat) {
    const double a = rng.uniform(0, 2 * std::numbers::pi);
    return {std::cos(a), std::sin(a), 0};
  }
  Vec3 v{};
  double n = 0;
  while (n < 1e-6) {
    v = {rng.normal(0, 1), rng.normal(0, 1), rng.normal(0, 1)};
    n = norm(v);
  }
  return {v[0] / n, v[1] / n, v[2] / n};
}

// A direction-dependent bump exp(k (u.v - 1)): 1 along v, falling off with the angle.
struct Bump {
  Vec3 direction;
  double amplitude;      // lobes: fraction of R0; spikes: mm
  double concentration;  // k
  nlohmann::json json(const char* amplitude_key) const {
    return {{"direction", {direction[0], direction[1], direction[2]}},
            {amplitude_key, amplitude}, {"concentration", concentration}};
  }
};

at::Tensor bump(const Bump& b, const std::array<at::Tensor, 3>& u) {
  const at::Tensor cosine = u[0] * b.direction[0] + u[1] * b.direction[1] + u[2] * b.direction[2];
  return at::exp((cosine - 1.0) * b.concentration);
}

// True when voxel (x, y, z) lies in the image (and region) and so do the points r voxels
// away along each in-plane/through-plane axis.
bool fits(const std::array<int64_t, 3>& c, const std::array<int64_t, 3>& r, const Shape& s,
          const at::Tensor* region) {
  const std::array<int64_t, 3> n{s.x, s.y, s.z};
  const auto* m = region ? region->data_ptr<bool>() : nullptr;
  auto inside = [&](std::array<int64_t, 3> p) {
    for (int a = 0; a < 3; ++a)
      if (p[a] < 0 || p[a] >= n[a]) return false;
    return !m || m[(p[2] * s.y + p[1]) * s.x + p[0]];
  };
  if (!inside(c)) return false;
  for (int a = 0; a < 3; ++a)
    for (int64_t sign : {-1, 1}) {
      std::array<int64_t, 3> p = c;
      p[a] += sign * r[a];
      if (!inside(p)) return false;
    }
  return true;
}

}  // namespace

SynthResult insert_lesion(const Image& background, const LesionOptions& o, Rng& rng, const Image* region) {
  o.validate();
  const Shape s = background.shape();
  if (background.empty()) throw InputError(background.metadata().source_path, "the background is empty");
  const Geometry& g = background.geometry();
  const Vec3& sp = g.spacing;
  const bool flat = s.z == 1;

  at::Tensor inside;  // (Z, Y, X) bool, contiguous
  if (region) {
    const Shape r = region->shape();
    if (r.z != s.z || r.y != s.y || r.x != s.x)
      throw InputError(region->metadata().source_path, "the region's grid differs from the background's");
    inside = (region->voxels() != 0).any(0).contiguous();
  }

  // The lesion's shape.
  const double r0 = rng.uniform(o.radius_min_mm_, o.radius_max_mm_);
  std::vector<Bump> lobes, spikes;
  for (int l = 0; l < o.lobes_; ++l) {
    const Vec3 d = random_direction(rng, flat);
    const double a = o.lobe_depth_ * rng.uniform(0.5, 1.0), k = rng.uniform(2.0, 6.0);
    lobes.push_back({d, a, k});
  }
  if (o.margin_ == LesionOptions::Margin::kSpiculated) {
    const double k = std::pow(2.0 * r0 / o.spike_width_mm_, 2);  // angular half-width ~ width / 2R0
    for (int m = 0; m < o.spikes_; ++m) {
      const Vec3 d = random_direction(rng, flat);
      spikes.push_back({d, o.spike_length_ * r0 * rng.uniform(0.4, 1.0), k});
    }
  }
  double body = r0, spiked = 0;
  for (const Bump& b : lobes) body = std::max(body, r0 * (1 + b.amplitude));
  for (const Bump& b : spikes) spiked = std::max(spiked, b.amplitude);
  const double push = std::min(o.mass_effect_mm_, 0.5 * r0);

  // The centre: a voxel of the region (or image) where the base radius fits, if one is found.
  const std::array<int64_t, 3> fit_r{static_cast<int64_t>(std::ceil(r0 / sp[0])),
                                     static_cast<int64_t>(std::ceil(r0 / sp[1])),
                                     flat ? 0 : static_cast<int64_t>(std::ceil(r0 / sp[2]))};
  at::Tensor candidates;
  if (inside.defined()) {
    candidates = at::nonzero(inside.reshape(-1)).reshape(-1).contiguous();
    if (candidates.numel() == 0)
      throw InputError(region->metadata().source_path, "the region is empty: no voxel where a lesion may go");
  }
  auto pick = [&]() {
    const int64_t count = candidates.defined() ? candidates.numel() : s.voxels();
    const int64_t i = rng.integer(0, count - 1);
    const int64_t v = candidates.defined() ? candidates.data_ptr<int64_t>()[i] : i;
    return std::array<int64_t, 3>{v % s.x, (v / s.x) % s.y, v / (s.x * s.y)};
  };
  std::array<int64_t, 3> centre = pick();
  for (int attempt = 0; attempt < 200 && !fits(centre, fit_r, s, inside.defined() ? &inside : nullptr); ++attempt)
    centre = pick();

  // The box holding every voxel the lesion may change and the shell where the local level is
  // measured.
  const double zone_r = std::max(body + spiked + o.edge_mm_ / 2 + o.oedema_mm_, push > 0 ? kMassEffectReach * r0 : 0.0);
  const double shell_lo = body + o.edge_mm_ / 2, shell_hi = shell_lo + std::max(0.5 * r0, 2 * std::max({sp[0], sp[1], flat ? 0.0 : sp[2]}));
  const double box_r = std::max(zone_r, shell_hi);
  std::array<int64_t, 3> lo{}, hi{};
  const std::array<int64_t, 3> n{s.x, s.y, s.z};
  for (int a = 0; a < 3; ++a) {
    const int64_t half = (a == 2 && flat) ? 0 : static_cast<int64_t>(std::ceil(box_r / sp[a])) + 1;
    lo[a] = std::max<int64_t>(0, centre[a] - half);
    hi[a] = std::min<int64_t>(n[a], centre[a] + half + 1);
  }
  using at::indexing::Slice;
  const std::vector<at::indexing::TensorIndex> box{Slice(), Slice(lo[2], hi[2]), Slice(lo[1], hi[1]), Slice(lo[0], hi[0])};
  const at::Tensor bg_box = background.voxels().index(box).contiguous();
  const int64_t bz = hi[2] - lo[2], by = hi[1] - lo[1], bx = hi[0] - lo[0];

  // Offsets from the centre in mm along the index axes, distance and direction.
  const auto dopt = at::TensorOptions().dtype(at::kDouble);
  std::vector<at::Tensor> grid = at::meshgrid(
      {(at::arange(lo[2], hi[2], dopt) - centre[2]) * sp[2], (at::arange(lo[1], hi[1], dopt) - centre[1]) * sp[1],
       (at::arange(lo[0], hi[0], dopt) - centre[0]) * sp[0]},
      "ij");
  const std::array<at::Tensor, 3> d{grid[2], grid[1], grid[0]};
  const at::Tensor r = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
  const at::Tensor safe_r = r.clamp_min(1e-9);
  std::array<at::Tensor, 3> u{d[0] / safe_r, d[1] / safe_r, d[2] / safe_r};
  u[0] = at::where(r > 0, u[0], at::ones_like(u[0]));  // any direction at the centre itself

  // Mass effect: tissue at radius q moves out to q + push(q); the warp samples inwards.
  at::Tensor bg = bg_box;
  at::Tensor pushed = at::zeros_like(r, at::kBool);
  if (push > 0) {
    const at::Tensor delta = at::where(r < r0, r * (push / r0), push * (1.0 - smootherstep((r - r0) / ((kMassEffectReach - 1) * r0))));
    pushed = delta > 0;
    std::vector<at::Tensor> c;
    for (int a = 0; a < 3; ++a) {
      const at::Tensor idx = d[a] / sp[a] + static_cast<double>(centre[a] - lo[a]);
      c.push_back(idx - delta * u[a] / sp[a]);
    }
    Geometry bg_geometry;
    bg_geometry.spacing = sp;
    const Image box_image(bg_box, bg_geometry, Metadata{});
    const at::Tensor warped = resample_at(box_image, at::stack(c), Interp::kLinear, Border::kBorder).voxels();
    bg = at::where(pushed.unsqueeze(0), warped, bg_box);
  }

  // Boundary, strength, mask.
  at::Tensor lobe = at::zeros_like(r);
  for (const Bump& b : lobes) lobe = at::maximum(lobe, bump(b, u) * b.amplitude);
  at::Tensor spike = at::zeros_like(r);
  for (const Bump& b : spikes) spike = at::maximum(spike, bump(b, u) * b.amplitude);
  const at::Tensor boundary = r0 * (1.0 + lobe) + spike;
  const at::Tensor strength = smootherstep((boundary - r) / o.edge_mm_ + 0.5);
  const at::Tensor mask_box = strength > 0.5;

  // The local background level per channel, in a shell just outside the body.
  at::Tensor shell = (r >= shell_lo) & (r <= shell_hi) & (strength == 0);
  if (inside.defined()) {
    const at::Tensor in_box = inside.index({Slice(lo[2], hi[2]), Slice(lo[1], hi[1]), Slice(lo[0], hi[0])});
    if ((shell & in_box).any().item<bool>()) shell = shell & in_box;
  }
  if (!shell.any().item<bool>()) shell = strength == 0;
  if (!shell.any().item<bool>()) shell = at::ones_like(shell);
  const at::Tensor level = (bg * shell.unsqueeze(0)).sum({1, 2, 3}, false, at::kDouble) / shell.sum().item<double>();
  const auto [vlo, vhi] = value_range(background);
  const at::Tensor ref = level.clamp_min(0.1 * (static_cast<double>(vhi) - vlo)).view({-1, 1, 1, 1});
  const at::Tensor m = level.view({-1, 1, 1, 1});

  // Contrast, texture, tissue.
  at::Tensor contrast = at::full_like(r, o.contrast_);
  if (o.ring_) {
    const double rim = o.rim_mm_ > 0 ? o.rim_mm_ : 0.25 * r0;
    const at::Tensor outer = smootherstep((r - (boundary - rim)) / o.edge_mm_ + 0.5);
    contrast = o.core_contrast_ + (o.contrast_ - o.core_contrast_) * outer;
  }
  if (o.texture_ > 0) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(rng.next_seed());
    at::Tensor noise = at::randn({1, bz, by, bx}, gen, at::TensorOptions().dtype(at::kFloat));
    noise = gaussian_smooth_voxels(noise, {o.texture_mm_ / sp[0], o.texture_mm_ / sp[1], flat ? 0.0 : o.texture_mm_ / sp[2]});
    const double sd = noise.std().item<double>();
    noise = (noise / (sd > 1e-12 ? sd : 1.0))[0].to(at::kDouble);
    contrast = contrast * (1.0 + o.texture_ * noise).clamp(0.0, 2.0);
  }
  const at::Tensor bgd = bg.to(at::kDouble);
  at::Tensor channel_contrast = contrast.unsqueeze(0);
  if (!o.channel_gain_.empty()) {
    if (static_cast<int64_t>(o.channel_gain_.size()) != background.channels())
      throw UsageError("lesion channel_gain has " + std::to_string(o.channel_gain_.size()) + " values for an image with " +
                       std::to_string(background.channels()) + " channels");
    channel_contrast = channel_contrast * at::tensor(o.channel_gain_, at::kDouble).view({-1, 1, 1, 1});
  }
  const at::Tensor tissue = m + ref * channel_contrast + o.keep_background_ * (bgd - m);
  at::Tensor value = bgd + strength.unsqueeze(0) * (tissue - bgd);
  at::Tensor halo = at::zeros_like(r, at::kBool);
  if (o.oedema_mm_ > 0) {
    const at::Tensor h = (1.0 - smootherstep((r - boundary) / o.oedema_mm_)) * (1.0 - strength);
    halo = h > 0;
    value = value + h.unsqueeze(0) * ref * o.oedema_contrast_;
  }
  value = value.clamp(vlo, vhi);
  if (at::equal(background.voxels(), at::round(background.voxels()))) value = at::round(value);

  // Only the zone changes; everything else keeps its exact bytes.
  const at::Tensor zone_box = (strength > 0) | halo | pushed;
  const at::Tensor out_box = at::where(zone_box.unsqueeze(0), value.to(at::kFloat), bg_box);
  at::Tensor out = background.voxels().clone();
  out.index_put_(box, out_box);
  at::Tensor mask = at::zeros({1, s.z, s.y, s.x}, at::kFloat), zone = at::zeros({1, s.z, s.y, s.x}, at::kFloat);
  mask.index_put_(box, mask_box.unsqueeze(0).to(at::kFloat));
  zone.index_put_(box, zone_box.unsqueeze(0).to(at::kFloat));

  Metadata mask_md;
  mask_md.modality = background.metadata().modality;
  SynthResult result{background.with_voxels(out), Image(mask, g, mask_md), Image(zone, g, mask_md), {}};

  const int64_t voxels = mask_box.sum().item<int64_t>();
  const Vec3 c{static_cast<double>(centre[0]), static_cast<double>(centre[1]), static_cast<double>(centre[2])};
  const Vec3 lps = g.index_to_lps(c);
  nlohmann::json& j = result.description;
  j["centre_voxel"] = {centre[0], centre[1], centre[2]};
  j["centre_lps_mm"] = {lps[0], lps[1], lps[2]};
  j["radius_mm"] = r0;
  j["max_radius_mm"] = voxels ? r.masked_select(mask_box).max().item<double>() : 0.0;
  j["voxels"] = voxels;
  if (flat) {
    j["area_mm2"] = static_cast<double>(voxels) * sp[0] * sp[1];
    j["equivalent_radius_mm"] = std::sqrt(j["area_mm2"].get<double>() / std::numbers::pi);
  } else {
    j["volume_mm3"] = static_cast<double>(voxels) * sp[0] * sp[1] * sp[2];
    j["equivalent_radius_mm"] = std::cbrt(3 * j["volume_mm3"].get<double>() / (4 * std::numbers::pi));
  }
  j["zone_voxels"] = zone_box.sum().item<int64_t>();
  j["local_background"] = std::vector<double>(level.data_ptr<double>(), level.data_ptr<double>() + level.numel());
  j["mass_effect_mm"] = push;
  j["lobes"] = nlohmann::json::array();
  for (const Bump& b : lobes) j["lobes"].push_back(b.json("depth"));
  if (!spikes.empty()) {
    j["spikes"] = nlohmann::json::array();
    for (const Bump& b : spikes) j["spikes"].push_back(b.json("length_mm"));
  }
  j["options"] = o.to_json();
  return result;
}

Image synthetic_contrast(const Image& image, const std::vector<double>& from, const std::vector<double>& to) {
  if (from.size() != to.size() || from.size() < 2)
    throw UsageError("synthetic contrast: need two or more control points, as many 'from' as 'to'");
  for (size_t i = 1; i < from.size(); ++i)
    if (!(from[i] > from[i - 1])) throw UsageError("synthetic contrast: 'from' points must increase");
  if (image.empty()) throw InputError(image.metadata().source_path, "cannot remap an empty image");
  const at::Tensor v = image.voxels();
  const at::Tensor flat = v.reshape(-1);
  auto quantile99 = [](const at::Tensor& t) {
    const int64_t k = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(0.99 * static_cast<double>(t.numel()))));
    return std::get<0>(at::kthvalue(t, k)).item<double>();
  };
  double scale = quantile99(flat);
  const at::Tensor fg = flat.masked_select(flat > 0.1 * scale);
  if (fg.numel() > 0) scale = quantile99(fg);
  if (!(scale > 0)) scale = 1;
  const at::Tensor u = (v / scale).to(at::kDouble);
  // Piecewise linear through the points; flat beyond either end.
  at::Tensor out = at::full_like(u, to.front());
  for (size_t i = 1; i < from.size(); ++i) {
    const double a = from[i - 1], b = from[i];
    const at::Tensor t = ((u - a) / (b - a)).clamp(0.0, 1.0);
    out = at::where(u > a, to[i - 1] + (to[i] - to[i - 1]) * t, out);
  }
  Image result = image.with_voxels((out * scale).to(at::kFloat));
  result.metadata().tags["SyntheticContrast"] = "remapped";
  return result;
}

Image synthetic_contrast(const Image& image, const std::string& preset) {
  // ch2 (T1): CSF ~0.3, grey matter ~0.7, white matter ~0.95 of the foreground's 99th percentile.
  if (preset == "t2-like")
    return synthetic_contrast(image, {0.0, 0.1, 0.3, 0.7, 0.95, 1.3}, {0.0, 0.15, 0.95, 0.6, 0.35, 0.45});
  throw UsageError("unknown synthetic contrast '" + preset + "' (known: t2-like)");
}

}  // namespace medlens
