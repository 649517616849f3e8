// bench/explain: the lesion localisation benchmark. Synthetic lesions (medlens's synth-lesions
// model) in 64x64 windows of real anatomy: axial slices of mricron's ch2 T1 and the 20 normal
// BUSI breast ultrasound images vendored in data/samples (tests/explain/lesion_bench.h says how
// the cases are made); a lesion-vs-normal classifier trained by medlens on each; every method
// scored on the held-out lesion images the classifier gets right:
//
//   pointing     the map's maximum lies inside the lesion mask (no tolerance)
//   mass         relevance mass accuracy: share of the positive attribution inside the mask
//   del / ins    deletion / insertion AUC of the calibrated probability (blur baseline),
//                against the mean of 2 random orders (del below random, ins above: faithful)
//   random.      cascading model-parameter randomisation: share of images where the fully
//                randomised model's map differs (|Spearman| and SSIM < 0.5)
//   max-sens.    max-sensitivity under uniform noise of 2% of the range (4 copies)
//   time         mean seconds per explanation on these 64x64 images
//
// Then the time per explanation of each method (default parameters, 2 threads) on a 256x256
// image (compact 2-D ResNet) and a 96^3 volume (3-D ResNet with a strided stem), untrained
// networks of the shapes medlens trains; and Grad-CAM on the busi default model when it exists.
//
// usage: bench_explain [--gallery FILE.html] [--images N] [--quick] [--timing-only]
//   --quick        a smaller classifier, one randomisation image, no 96^3 timings
//   --timing-only  only the time-per-explanation table (2-D and 3-D)
#include <ATen/ATen.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/parallel.h"
#include "explain/evaluate.h"
#include "explain/explain.h"
#include "explain/lesion_bench.h"
#include "io/read.h"
#include "nn/card.h"
#include "nn/network.h"
#include "report/html.h"
#include "report/render.h"

namespace fs = std::filesystem;
using namespace medlens;

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

struct Score {
  int images = 0, hits = 0, random_passed = 0, random_checked = 0;
  double mass = 0, del = 0, del_random = 0, ins = 0, ins_random = 0, sensitivity = 0, seconds = 0;
  int sensitivity_n = 0;
};

std::vector<const test::LesionCase*> correct_lesions(const test::LesionBench& b) {
  std::vector<const test::LesionCase*> out;
  ExplainOptions o;
  o.method = "saliency";
  for (const auto& c : b.test)
    if (c.lesion && explain(b.model, c.image, o).target == "lesion") out.push_back(&c);
  return out;
}

Score score_method(const test::LesionBench& b, const std::vector<const test::LesionCase*>& cases, const std::string& m,
                   int checks) {
  Score s;
  ExplainOptions o;
  o.method = m;
  o.target = "lesion";
  o.batch_size = 32;
  CurveOptions curves;
  curves.steps = 16;
  curves.random_orders = 2;
  curves.batch_size = 32;
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto* c = cases[i];
    const Explanation e = explain(b.model, c->image, o);
    s.seconds += e.seconds;
    const LocalisationResult l = localisation(e.attribution, c->mask);
    s.hits += l.hit;
    s.mass += l.mass_accuracy;
    const FaithfulnessResult f = deletion_insertion(b.model, c->image, e, curves);
    s.del += f.deletion.auc;
    s.del_random += f.deletion_random.auc;
    s.ins += f.insertion.auc;
    s.ins_random += f.insertion_random.auc;
    ++s.images;
    if (static_cast<int>(i) < checks) {
      const RandomisationResult r = randomisation_check(b.model, c->image, method_explainer(o));
      s.random_passed += r.passed;
      ++s.random_checked;
      StabilityOptions so;
      so.samples = 4;
      s.sensitivity += max_sensitivity(b.model, c->image, method_explainer(o), so);
      ++s.sensitivity_n;
    }
  }
  return s;
}

void print_row(const std::string& m, const Score& s) {
  const double n = s.images;
  std::printf("| %s | %.2f | %.2f | %.3f / %.3f | %.3f / %.3f | %d/%d | %.2f | %.3f |\n", m.c_str(), s.hits / n, s.mass / n,
              s.del / n, s.del_random / n, s.ins / n, s.ins_random / n, s.random_passed, s.random_checked,
              s.sensitivity_n ? s.sensitivity / s.sensitivity_n : 0.0, s.seconds / n);
  std::fflush(stdout);
}

Model untrained(int dims, int64_t side, bool small_input) {
  nlohmann::json arch = {{"name", "resnet"}, {"in_channels", 1}, {"num_classes", 2}, {"dims", dims},
                         {"blocks", {1, 1, 1, 1}}, {"width", 16}, {"small_input", small_input}, {"dropout", 0.0}};
  const ModelCard card = ModelCard::from_json({{"name", "timing"}, {"version", "1"}, {"task", "classify"},
                                               {"classes", {"a", "b"}},
                                               {"input", {{"dims", dims}, {"channels", 1},
                                                          {"size", std::vector<int64_t>(static_cast<size_t>(dims), side)}}},
                                               {"architecture", arch}});
  torch::manual_seed(0);
  NetworkPtr net = make_network(arch);
  net->eval();
  return Model::from_parts(card, net);
}

double time_method(const Model& model, const Image& image, const std::string& m, int reps) {
  ExplainOptions o;
  o.method = m;
  explain(model, image, o);  // warm-up (allocations, first-touch)
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const double t0 = now();
    explain(model, image, o);
    best = std::min(best, now() - t0);
  }
  return best;
}

std::string seconds_text(double s) {
  char b[32];
  if (s < 1) std::snprintf(b, sizeof b, "%.0f ms", 1000 * s);
  else std::snprintf(b, sizeof b, "%.1f s", s);
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  std::string gallery = "explain_gallery.html";
  int max_images = 20;
  bool quick = false, timing_only = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--gallery") && i + 1 < argc) gallery = argv[++i];
    else if (!std::strcmp(argv[i], "--images") && i + 1 < argc) max_images = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--quick")) quick = true;
    else if (!std::strcmp(argv[i], "--timing-only")) timing_only = true;
    else {
      std::fprintf(stderr, "usage: bench_explain [--gallery FILE.html] [--images N] [--quick] [--timing-only]\n");
      return 2;
    }
  }
  init_threads();
  const auto methods = explanation_methods();
  HtmlReport page("medlens explanation gallery: synthetic lesions in real anatomy");
  page.paragraph("Held-out lesion images the benchmark's classifier gets right; the lesion mask is outlined. Maps are "
                 "each method's, for the class 'lesion', with default parameters.");

  for (const std::string source : {"ch2", "busi"}) {
    if (timing_only) break;  // only the time-per-explanation table below
    test::LesionBenchOptions lo;
    lo.source = source;
    if (quick) lo.train_cases = 200;
    const test::LesionBench b = test::build_lesion_bench(lo);
    auto cases = correct_lesions(b);
    const size_t found = cases.size();
    if (static_cast<int>(cases.size()) > max_images) cases.resize(static_cast<size_t>(max_images));
    std::printf("\n### %s: %s lesions in 64x64 windows; classifier val AUC %.3f (trained in %.0f s); %zu of %d held-out "
                "lesion images correctly classified, %zu scored\n\n",
                source.c_str(), source == "ch2" ? "bright MR" : "hypoechoic US", b.val_auc, b.train_seconds, found,
                lo.test_cases / 2, cases.size());
    std::printf("| method | pointing | mass | deletion AUC / random | insertion AUC / random | randomisation passed | "
                "max-sens. | s / map |\n|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for (const auto& m : methods) print_row(m, score_method(b, cases, m, quick ? 1 : 3));

    page.heading(source == "ch2" ? "ch2 T1 (MR), bright lesions" : "BUSI normals (US), hypoechoic lesions");
    for (size_t k = 0; k < std::min<size_t>(3, cases.size()); ++k) {
      const auto* c = cases[k];
      RenderOptions ro;
      ro.outlines.push_back(&c->mask);
      ro.max_side = 192;
      page.image_png(render_png(c->image, ro), "case " + std::to_string(k + 1) + ": input", 150);
      for (const auto& m : methods) {
        ExplainOptions o;
        o.method = m;
        o.target = "lesion";
        const Explanation e = explain(b.model, c->image, o);
        RenderOptions hm = ro;
        hm.heatmap = &e.attribution;
        page.image_png(render_png(c->image, hm), m, 150);
      }
      page.raw("<br>");
    }
  }
  if (!timing_only) {
    page.save(gallery);
    std::printf("\ngallery: %s\n", fs::absolute(gallery).c_str());
  }

  // Time per explanation at clinical sizes.
  const Model flat = untrained(2, 256, true);
  const Model vol = untrained(3, 96, false);
  Geometry g;
  Metadata meta;
  const Image image(at::rand({1, 1, 256, 256}), g, meta);
  const Image volume(at::rand({1, 96, 96, 96}), g, meta);
  std::printf("\n| method | 256x256 image | 96^3 volume |\n|---|---:|---:|\n");
  for (const auto& m : methods) {
    const double t2 = time_method(flat, image, m, 3);
    const double t3 = quick ? 0.0 : time_method(vol, volume, m, 1);
    std::printf("| %s | %s | %s |\n", m.c_str(), seconds_text(t2).c_str(), quick ? "-" : seconds_text(t3).c_str());
    std::fflush(stdout);
  }
  const std::string busi = std::string(MEDLENS_SOURCE_DIR) + "/models/busi";
  if (fs::exists(busi + "/card.json")) {
    const Model model = Model::load(busi);
    Image us = read_image(std::string(MEDLENS_SOURCE_DIR) + "/data/samples/busi/benign_103.png");
    std::printf("\nGrad-CAM on the busi default model (%s), one 256x256 image: %s\n", model.card().id().c_str(),
                seconds_text(time_method(model, us, "gradcam", 5)).c_str());
  } else {
    std::printf("\nmodels/busi is not trained yet: no timing for the busi default model\n");
  }
  return 0;
}
