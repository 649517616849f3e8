// The transform framework: registry, parameters, pipeline specs, seeds, labels.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <memory>
#include <new>

#include "core/error.h"
#include "transforms/params.h"
#include "transforms/registry.h"
#include "transforms/spatial.h"
#include "tools/test_util.h"

namespace medlens {
namespace {

Image ramp(int64_t c = 1, int64_t z = 1, int64_t y = 6, int64_t x = 8) {
  return Image(at::arange(c * z * y * x, at::kFloat).reshape({c, z, y, x}), Geometry{}, Metadata{});
}

TEST(TransformRegistry, EveryTransformRebuildsFromItsOwnParams) {
  ASSERT_FALSE(transforms().list().empty());
  for (const auto& info : transforms().list()) {
    SCOPED_TRACE(info.name);
    TransformPtr t = make_transform(info.name, nlohmann::json::object());  // defaults are valid
    EXPECT_EQ(t->name(), info.name);
    TransformPtr again = make_transform(info.name, t->params());
    EXPECT_EQ(again->params(), t->params());
  }
}

TEST(TransformRegistry, UnknownNamesAndParametersAreUsageErrors) {
  try {
    make_transform("no-such-op", {});
    ADD_FAILURE();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("known:"), std::string::npos);
  }
  try {
    make_transform("window", {{"centre", 3}});
    ADD_FAILURE();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("'centre'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(make_transform("window", {{"width", -1}}), UsageError);
  EXPECT_THROW(make_transform("window", {{"center", "forty"}}), UsageError);
  EXPECT_THROW(parse_op("window:center"), UsageError);
}

TEST(Pipeline, SpecRoundTripsAndOpTextParses) {
  const Compose a = load_pipeline(nlohmann::json::parse(
      R"({"transforms": [{"op": "clip", "min": -100, "max": 300},
                         {"op": "window", "center": 100, "width": 400},
                         {"op": "random-flip", "p": 0.5, "axes": "xy"}]})"));
  ASSERT_EQ(a.steps().size(), 3u);
  const Compose b = load_pipeline(a.params());
  EXPECT_EQ(a.params(), b.params());
  EXPECT_TRUE(a.random());
  EXPECT_FALSE(a.deterministic().random());
  EXPECT_EQ(a.deterministic().steps().size(), 2u);
  const TransformPtr op = parse_op("window:center=40,width=400,out_min=-1");
  EXPECT_EQ(op->params()["out_min"], -1.0);
  EXPECT_EQ(parse_key_values("axes=xy,sigma=1;2;3")["sigma"], nlohmann::json({1, 2, 3}));
}

TEST(Pipeline, FileErrorsNameTheFile) {
  test::TempDir tmp;
  std::ofstream(tmp.file("bad.json")) << "{not json";
  try {
    load_pipeline_file(tmp.file("bad.json"));
    ADD_FAILURE();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.json"), std::string::npos);
  }
  std::ofstream(tmp.file("unknown.json")) << R"({"transforms": [{"op": "nope"}]})";
  EXPECT_THROW(load_pipeline_file(tmp.file("unknown.json")), InputError);
  EXPECT_THROW(load_pipeline_file(tmp.file("missing.json")), InputError);
}

// A step that cannot get its memory, as a huge size or radius would make it.
class Greedy final : public Transform {
 public:
  std::string name() const override { return "greedy"; }
  nlohmann::json params() const override { return nlohmann::json::object(); }
  Sample apply(Sample, Rng&) const override { throw std::bad_alloc(); }
};

TEST(Pipeline, AStepThatRunsOutOfMemoryIsNamed) {
  // Not std::bad_alloc escaping as an internal error: a UsageError naming the step and the size
  // of the image it was given.
  const Compose pipeline({parse_op("zscore"), std::make_shared<Greedy>()});
  const Image image = ramp(1, 1, 6, 5);
  try {
    pipeline(image);
    ADD_FAILURE();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("'greedy': out of memory on a 5x6x1 image"), std::string::npos) << e.what();
  }
  // The registered steps with a size knob refuse absurd values themselves, before allocating
  // (each of these used to exhaust memory, abort inside OpenCV or LibTorch, or run for hours).
  for (const char* op : {"median:radius=100000", "median:radius_mm=1e300", "erode:radius=100000", "open:radius=1e9",
                         "bilateral:sigma_spatial=1e6"}) {
    try {
      (*parse_op(op))(image);
      ADD_FAILURE() << op;
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find("is too large"), std::string::npos) << e.what();
    }
  }
  for (const char* op : {"anisotropic-diffusion:iterations=1e9", "speckle:iterations=20000",
                         "repeat-channels:n=1e9", "median:radius=1e12"})
    EXPECT_THROW(parse_op(op), UsageError) << op;
  // Sensible sizes still run.
  EXPECT_EQ((*parse_op("median:radius=2"))(image).shape(), image.shape());
  EXPECT_EQ((*parse_op("erode:radius=2"))(image).shape(), image.shape());
}

TEST(RandomTransforms, SameSeedSameOutputDifferentSeedsDiffer) {
  const TransformPtr t = make_random_flip(0.5, {true, true, false});
  const Image img = ramp();
  int differing = 0;
  for (uint64_t seed = 0; seed < 16; ++seed) {
    Rng r1(seed), r2(seed), r3(seed + 100);
    const Image a = (*t)(img, r1), b = (*t)(img, r2), c = (*t)(img, r3);
    EXPECT_TRUE(at::equal(a.voxels(), b.voxels()));
    differing += !at::equal(a.voxels(), c.voxels());
  }
  EXPECT_GT(differing, 3) << "different seeds should give different flips";
}

TEST(SpatialTransforms, LabelsFollowTheImage) {
  const Image img = ramp();
  at::Tensor mask = at::zeros({1, 1, 6, 8});
  mask.index_put_({0, 0, 1, 2}, 1.0);
  Sample s{img, Image(mask, Geometry{}, Metadata{})};
  Rng rng(0);
  Sample out = make_flip({true, false, false})->apply(s, rng);
  // The masked voxel moved with the image: it still marks the value 1*8+2 = 10.
  at::Tensor hit = out.label->voxels() > 0.5;
  EXPECT_EQ(out.image.voxels().masked_select(hit).item<float>(), 10.f);
  EXPECT_EQ(out.image.geometry(), img.geometry());
}

}  // namespace
}  // namespace medlens
