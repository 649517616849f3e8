// medlens synth-lesions as users run it, on every supported kind of background. An independent
// reader (numpy, nibabel, Pillow, scipy) checks what was written: normals are byte-identical
// crops of the background, lesion images differ from the crop only within each lesion's reach,
// masks are binary and lie inside the lesions' bodies, and the contrast has the intended sign.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>

#include "tools/test_util.h"

namespace fs = std::filesystem;

namespace medlens {
namespace {

// argv: OUT_DIR BACKGROUND [REGION]. Prints one JSON object of counts and extremes.
const char* kChecker = R"PY(
import sys, os, json
import numpy as np, nibabel as nib
from PIL import Image
from scipy import ndimage

def load(p):
    if p.endswith('.png'):
        im = Image.open(p)
        a = np.asarray(im).astype(np.float64)
        return (a[None, None] if a.ndim == 2 else np.moveaxis(a, -1, 0)[:, None]), im.mode
    d = np.asarray(nib.load(p).dataobj).astype(np.float64)
    while d.ndim < 3: d = d[..., None]
    return np.transpose(d[..., None], (3, 2, 1, 0)), 'nifti'

out, ref = sys.argv[1], sys.argv[2]
bg_all = load(ref)[0]
region = load(sys.argv[3])[0][0] > 0 if len(sys.argv) > 3 else None
doc = json.load(open(os.path.join(out, 'lesions.json')))
rows = open(os.path.join(out, 'manifest.csv')).read().splitlines()
res = dict(header=rows[0], rows=len(rows) - 1, normals=0, normals_identical=0, normal_masks_empty=0,
           lesion_images=0, lesions=0, masks_binary=0, shape_ok=0, manifest_matches=0,
           changed_outside_reach=0, mask_outside_body=0, lesion_masks_empty=0, centres_in_region=0,
           contrast_min=1e9, contrast_max=-1e9, radius_min=1e9, radius_max=0.0, modes=[])
for i, e in enumerate(doc['images']):
    res['manifest_matches'] += rows[i + 1] == '%s,%s,%s' % (e['path'], e['label'], e['mask'])
    img, mode = load(os.path.join(out, e['path']))
    mask = load(os.path.join(out, e['mask']))[0][0]
    if mode not in res['modes']: res['modes'].append(mode)
    k = e.get('slice')
    bg = bg_all if k is None else bg_all[:, k:k + 1]
    (x0, y0, z0), (sx, sy, sz) = e['crop_start'], e['size']
    crop = bg[:, z0:z0 + sz, y0:y0 + sy, x0:x0 + sx]
    res['shape_ok'] += img.shape == crop.shape and mask.shape == crop.shape[1:]
    res['masks_binary'] += set(np.unique(mask).tolist()) <= {0.0, 1.0}
    if e['label'] == 'normal':
        res['normals'] += 1
        res['normals_identical'] += bool(np.array_equal(img, crop))
        res['normal_masks_empty'] += bool(mask.max() == 0)
        continue
    res['lesion_images'] += 1
    sp = e['spacing_mm']
    zz, yy, xx = np.meshgrid(*(np.arange(n) for n in mask.shape), indexing='ij')
    near = np.zeros(mask.shape, bool)
    body = np.zeros(mask.shape, bool)
    for l in e['lesions']:
        res['lesions'] += 1
        o, c, r0 = l['options'], l['centre_voxel'], l['radius_mm']
        res['radius_min'] = min(res['radius_min'], r0)
        res['radius_max'] = max(res['radius_max'], r0)
        d = np.sqrt(((xx - c[0]) * sp[0]) ** 2 + ((yy - c[1]) * sp[1]) ** 2 + ((zz - c[2]) * sp[2]) ** 2)
        extent = r0 * (1 + o['lobe_depth']) + o.get('spike_length', 0) * r0
        reach = extent + o['edge_mm'] / 2 + o['oedema_mm']
        if o['mass_effect_mm'] > 0: reach = max(reach, 2.5 * r0)
        near |= d <= reach + 1e-6
        body |= d < extent + 1e-6
        if region is not None:
            rk = region if k is None else region[k:k + 1]
            res['centres_in_region'] += bool(rk[z0 + c[2], y0 + c[1], x0 + c[0]])
    changed = (img != crop).any(0)
    m = mask > 0
    res['changed_outside_reach'] += int((changed & ~near).sum())
    res['mask_outside_body'] += int((m & ~body).sum())
    res['lesion_masks_empty'] += bool(not m.any())
    st = np.ones((3, 3, 3), bool) if m.shape[0] > 1 else np.ones((1, 3, 3), bool)
    ring = ndimage.binary_dilation(m, st, 3) & ~ndimage.binary_dilation(m, st, 1)
    inside, around = img[:, m].mean(), img[:, ring].mean()
    rel = (inside - around) / around
    res['contrast_min'] = min(res['contrast_min'], rel)
    res['contrast_max'] = max(res['contrast_max'], rel)
print(json.dumps(res))
)PY";

std::string ch2() { return test::mricron_templates() + "/ch2.nii.gz"; }
std::string ch2bet() { return test::mricron_templates() + "/ch2bet.nii.gz"; }

nlohmann::json check(const std::string& out, const std::vector<std::string>& refs) {
  std::vector<std::string> argv{"/usr/bin/python3", "-c", kChecker, out};
  argv.insert(argv.end(), refs.begin(), refs.end());
  const test::CommandResult r = test::run(argv);
  EXPECT_EQ(r.status, 0) << r.error;
  return r.status == 0 ? nlohmann::json::parse(r.output) : nlohmann::json::object();
}

// What every data set must satisfy, whatever the background.
void expect_valid(const nlohmann::json& j, int count, int normals) {
  ASSERT_FALSE(j.empty());
  EXPECT_EQ(j["header"], "path,label,mask");
  EXPECT_EQ(j["rows"], count);
  EXPECT_EQ(j["manifest_matches"], count);
  EXPECT_EQ(j["shape_ok"], count);
  EXPECT_EQ(j["masks_binary"], count);
  EXPECT_EQ(j["normals"], normals);
  EXPECT_EQ(j["normals_identical"], normals) << "normals are untouched crops";
  EXPECT_EQ(j["normal_masks_empty"], normals);
  EXPECT_EQ(j["lesion_images"], count - normals);
  EXPECT_GE(j["lesions"].get<int>(), count - normals);
  EXPECT_EQ(j["lesion_masks_empty"], 0);
  EXPECT_EQ(j["changed_outside_reach"], 0) << "nothing changes beyond a lesion's reach";
  EXPECT_EQ(j["mask_outside_body"], 0);
}

std::string files_of(const fs::path& dir) {
  std::string all;
  for (const char* sub : {"images", "masks"})
    for (int i = 0; fs::exists(dir / sub); ++i) {
      char name[32];
      std::snprintf(name, sizeof name, "%05d", i);
      bool found = false;
      for (const char* ext : {".png", ".nii.gz"})
        if (fs::exists(dir / sub / (std::string(name) + ext))) {
          all += test::read_text((dir / sub / (std::string(name) + ext)).string());
          found = true;
        }
      if (!found) break;
    }
  return all + test::read_text((dir / "manifest.csv").string()) + test::read_text((dir / "lesions.json").string());
}

TEST(SynthLesionsCli, Ch2VolumesInTheBrainAreReproducible) {
  test::TempDir tmp;
  const std::vector<std::string> args = {"synth-lesions", "--background", ch2(), "--region", ch2bet(), "--count", "4",
                                         "--size", "32;32;32", "--lesions-per-image", "1;2", "--seed", "5"};
  auto with_out = [&](const std::string& out, const std::string& seed) {
    std::vector<std::string> a = args;
    a.back() = seed;
    a.insert(a.end(), {"--out", out});
    return test::run_medlens(a);
  };
  const auto r = with_out(tmp.file("a"), "5");
  ASSERT_EQ(r.status, 0) << r.error;
  EXPECT_NE(r.output.find("wrote 4 images"), std::string::npos);
  EXPECT_TRUE(fs::exists(tmp.path() / "a" / "images" / "00000.nii.gz"));
  const nlohmann::json j = check(tmp.file("a"), {ch2(), ch2bet()});
  expect_valid(j, 4, 2);
  EXPECT_EQ(j["centres_in_region"], j["lesions"]) << "centres fall in the brain";
  EXPECT_GT(j["contrast_min"].get<double>(), 0.0) << "bright-ish on T1";
  EXPECT_EQ(j["modes"], nlohmann::json::array({"nifti"}));

  ASSERT_EQ(with_out(tmp.file("b"), "5").status, 0);
  EXPECT_EQ(files_of(tmp.path() / "a"), files_of(tmp.path() / "b")) << "same seed, same bytes";
  // Another seed, into the previous output: it is replaced, and differs.
  ASSERT_EQ(with_out(tmp.file("b"), "6").status, 0);
  EXPECT_NE(test::read_text(tmp.file("a/lesions.json")), test::read_text(tmp.file("b/lesions.json")));
  EXPECT_NE(files_of(tmp.path() / "a"), files_of(tmp.path() / "b"));
}

TEST(SynthLesionsCli, Ch2AxialSlicesArePngs) {
  test::TempDir tmp;
  const auto r = test::run_medlens({"synth-lesions", "--background", ch2(), "--region", ch2bet(), "--slices",
                                    "--count", "4", "--seed", "2", "--out", tmp.file("s")});
  ASSERT_EQ(r.status, 0) << r.error;
  const nlohmann::json j = check(tmp.file("s"), {ch2(), ch2bet()});
  expect_valid(j, 4, 2);
  EXPECT_EQ(j["centres_in_region"], j["lesions"]);
  EXPECT_GT(j["contrast_min"].get<double>(), 0.0);
  EXPECT_EQ(j["modes"], nlohmann::json::array({"L"})) << "8-bit like the source";
}

TEST(SynthLesionsCli, BreastUltrasoundLesionsAreHypoechoic) {
  test::TempDir tmp;
  const std::string busi = test::vendored_samples() + "/busi/normal_100.png";
  const auto r = test::run_medlens({"synth-lesions", "--background", busi, "--count", "4", "--seed", "1",
                                    "--out", tmp.file("u")});
  ASSERT_EQ(r.status, 0) << r.error;
  const nlohmann::json j = check(tmp.file("u"), {busi});
  expect_valid(j, 4, 2);
  EXPECT_LT(j["contrast_max"].get<double>(), -0.3) << "darker than the tissue around";
  EXPECT_EQ(j["modes"], nlohmann::json::array({"L"}));
}

TEST(SynthLesionsCli, ChestXrayOpacitiesScaleToTheTinyImage) {
  test::TempDir tmp;
  const std::string cxr = test::vendored_samples() + "/pneumoniamnist/val_00136.png";
  const auto r = test::run_medlens({"synth-lesions", "--background", cxr, "--count", "6", "--normal-fraction",
                                    "0.34", "--seed", "3", "--out", tmp.file("x")});
  ASSERT_EQ(r.status, 0) << r.error;
  const nlohmann::json j = check(tmp.file("x"), {cxr});
  expect_valid(j, 6, 2);
  EXPECT_GT(j["contrast_min"].get<double>(), 0.0) << "opacities are brighter";
  EXPECT_GE(j["radius_min"].get<double>(), 1.5);
  EXPECT_LE(j["radius_max"].get<double>(), 0.25 * 28);
}

TEST(SynthLesionsCli, RetinaColourPatches) {
  test::TempDir tmp;
  // The reference is medlens's own decode of the JPEG, so codec differences cannot matter.
  const std::string jpg = test::skimage_data() + "/retina.jpg";
  ASSERT_EQ(test::run_medlens({"convert", jpg, tmp.file("retina.png")}).status, 0);
  const auto r = test::run_medlens({"synth-lesions", "--background", jpg, "--size", "256;256", "--count", "3",
                                    "--normal-fraction", "0.34", "--radius-mm", "12;24", "--seed", "4",
                                    "--out", tmp.file("f")});
  ASSERT_EQ(r.status, 0) << r.error;
  const nlohmann::json j = check(tmp.file("f"), {tmp.file("retina.png")});
  expect_valid(j, 3, 1);
  EXPECT_LT(j["contrast_max"].get<double>(), 0.0) << "dark, haemorrhage-like";
  EXPECT_GE(j["radius_min"].get<double>(), 12.0);
  EXPECT_LE(j["radius_max"].get<double>(), 24.0);
  EXPECT_EQ(j["modes"], nlohmann::json::array({"RGB"}));
}

TEST(SynthLesionsCli, RefusalsLeaveNothingBehind) {
  test::TempDir tmp;
  const std::string busi = test::vendored_samples() + "/busi/normal_100.png";
  EXPECT_EQ(test::run_medlens({"synth-lesions", "--background", busi, "--count", "0", "--out", tmp.file("o")}).status, 2);
  EXPECT_EQ(test::run_medlens({"synth-lesions", "--background", busi, "--count", "2"}).status, 2);
  EXPECT_EQ(test::run_medlens({"synth-lesions", "--background", busi, "--count", "2", "--size", "a;b",
                               "--out", tmp.file("o")}).status, 2);
  // An unreadable second background: status 3, one line naming it, and no folder at all.
  const auto bad = test::run_medlens({"synth-lesions", "--background", busi, tmp.file("missing.png"), "--count", "2",
                                      "--out", tmp.file("o")});
  EXPECT_EQ(bad.status, 3);
  EXPECT_NE(bad.error.find("missing.png"), std::string::npos) << bad.error;
  const auto mismatched = test::run_medlens({"synth-lesions", "--background", busi, "--region",
                                             test::vendored_samples() + "/pneumoniamnist/val_00136.png",
                                             "--count", "1", "--out", tmp.file("o")});
  EXPECT_EQ(mismatched.status, 3) << mismatched.error;
  // A folder holding other files is not replaced.
  fs::create_directory(tmp.path() / "keep");
  test::run({"touch", tmp.file("keep/notes.txt")});
  EXPECT_EQ(test::run_medlens({"synth-lesions", "--background", busi, "--count", "2", "--out", tmp.file("keep")}).status, 2);
  EXPECT_TRUE(fs::exists(tmp.path() / "keep" / "notes.txt"));
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(tmp.path())) left.push_back(e.path().filename().string());
  EXPECT_EQ(left, std::vector<std::string>{"keep"}) << "no output and no temporary folder";
}

}  // namespace
}  // namespace medlens

namespace medlens {
namespace {

// Two contrasts of one anatomy: the second is the documented t2-like remapping of the first
// (checked against numpy on the normals), both share one mask, and the lesion is subtle on T1
// and clear on the second contrast (the default channel gains 0.25 and 2).
const char* kTwoContrastChecker = R"PY(
import sys, os, json
import numpy as np, nibabel as nib
from scipy import ndimage
out = sys.argv[1]
rows = open(os.path.join(out, 'manifest.csv')).read().splitlines()
res = dict(header=rows[0], spacing=[], remap_err=0.0, normals=0, lesions=0, ratio_min=1e9, t1_max=0.0)
def q99(a):
    s = np.sort(a.ravel()); return s[max(1, int(np.ceil(0.99 * s.size))) - 1]
for row in rows[1:]:
    path, label, mask, c2 = row.split(',')
    a = np.asarray(nib.load(os.path.join(out, path)).dataobj).astype(np.float64)
    b = np.asarray(nib.load(os.path.join(out, c2)).dataobj).astype(np.float64)
    m = np.asarray(nib.load(os.path.join(out, mask)).dataobj) > 0
    res['spacing'] = [float(z) for z in nib.load(os.path.join(out, path)).header.get_zooms()[:3]]
    if label == 'normal':
        res['normals'] += 1
        scale = q99(a); fg = a[a > 0.1 * scale]; scale = q99(fg)
        want = np.interp(a / scale, [0.0, 0.1, 0.3, 0.7, 0.95, 1.3], [0.0, 0.15, 0.95, 0.6, 0.35, 0.45]) * scale
        res['remap_err'] = max(res['remap_err'], float(np.abs(b - want).max() / scale))
        continue
    res['lesions'] += 1
    ring = ndimage.binary_dilation(m, iterations=3) & ~ndimage.binary_dilation(m, iterations=1)
    rel = lambda v: abs(v[m].mean() - v[ring].mean()) / v[ring].mean()
    res['ratio_min'] = min(res['ratio_min'], rel(b) / max(rel(a), 1e-9))
    res['t1_max'] = max(res['t1_max'], rel(a))
print(json.dumps(res))
)PY";

TEST(SynthLesionsCli, SecondContrastIsARemappingWhereTheLesionStandsOutMore) {
  test::TempDir tmp;
  const std::string out = tmp.file("two");
  const test::CommandResult r = test::run_medlens({"synth-lesions", "--background", ch2(), "--region", ch2bet(),
                                                   "--spacing-mm", "3", "--second-contrast", "t2-like", "--count", "4",
                                                   "--seed", "5", "--radius-mm", "6;9", "--out", out});
  ASSERT_EQ(r.status, 0) << r.error;
  const test::CommandResult c = test::run({"/usr/bin/python3", "-c", kTwoContrastChecker, out});
  ASSERT_EQ(c.status, 0) << c.error;
  const nlohmann::json j = nlohmann::json::parse(c.output);
  std::printf("%s\n", c.output.c_str());
  EXPECT_EQ(j["header"], "path,label,mask,contrast2");
  EXPECT_EQ(j["spacing"], nlohmann::json({3.0, 3.0, 3.0}));
  EXPECT_EQ(j["normals"], 2);
  EXPECT_EQ(j["lesions"], 2);
  EXPECT_LT(j["remap_err"].get<double>(), 1e-4) << "contrast2 is the documented remapping of the T1 channel";
  EXPECT_GT(j["ratio_min"].get<double>(), 3.0) << "the lesion stands out several times more on the second contrast";
  EXPECT_LT(j["t1_max"].get<double>(), 0.3) << "and is subtle on T1 (nominal 0.09; the ring takes in other tissue at 3 mm)";
  // A gain list that does not match the channels is refused before anything is written.
  const test::CommandResult bad = test::run_medlens({"synth-lesions", "--background", ch2(), "--second-contrast", "t2-like",
                                                     "--channel-gain", "1;2;3", "--count", "1", "--out", tmp.file("bad")});
  EXPECT_EQ(bad.status, 2) << bad.error;
  EXPECT_FALSE(fs::exists(tmp.file("bad")));
  const test::CommandResult unknown = test::run_medlens({"synth-lesions", "--background", ch2(), "--second-contrast", "flair",
                                                         "--count", "1", "--out", tmp.file("bad")});
  EXPECT_EQ(unknown.status, 2);
  EXPECT_NE(unknown.error.find("t2-like"), std::string::npos) << unknown.error;
}

}  // namespace
}  // namespace medlens
