// Training end to end on real chest X-rays: the loss falls, a checkpoint resumes to exactly the
// same state, and the bundle it writes loads and predicts deterministically.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "infer/calibrate.h"
#include "infer/model.h"
#include "infer/predict.h"
#include "io/manifest.h"
#include "io/read.h"
#include "nn/ensemble.h"
#include "nn/network.h"
#include "train/mixup.h"
#include "train/trainer.h"
#include "tools/test_util.h"

namespace fs = std::filesystem;

namespace medlens {
namespace {

// A manifest over the vendored PneumoniaMNIST images: 200 for training, 70 for validation,
// both classes in each.
std::string make_manifest(const test::TempDir& tmp) {
  const Manifest m = load_manifest(test::vendored_samples() + "/pneumoniamnist/manifest.csv");
  std::ofstream f(tmp.file("manifest.csv"));
  f << "path,label,split\n";
  int seen[2] = {0, 0};
  for (const auto& r : m.rows) {
    const int c = r.label == "pneumonia";
    f << r.path << "," << r.label << "," << (seen[c]++ < 100 ? "train" : "val") << "\n";
  }
  return tmp.file("manifest.csv");
}

TrainOptions tiny(const std::string& manifest, const std::string& out) {
  TrainOptions o;
  o.manifest = manifest;
  o.out = out;
  o.arch = "resnet-compact";
  o.architecture = {{"width", 8}};
  o.preprocessing = {{"transforms", {{{"op", "zscore"}}}}};
  o.augmentation = {{"transforms", {{{"op", "random-flip"}, {"p", 0.5}, {"axes", "x"}}}}};
  o.epochs = 4;
  o.batch_size = 32;
  o.lr = 3e-3;
  o.seed = 11;
  o.bootstrap_rounds = 100;
  o.quiet = true;
  o.card = {{"name", "tiny"}, {"positive_class", "pneumonia"}};
  return o;
}

TEST(Trainer, LossFallsAndTheBundleIsComplete) {
  test::TempDir tmp;
  const TrainResult r = train_model(tiny(make_manifest(tmp), tmp.file("model")));
  ASSERT_EQ(r.history.size(), 4u);
  EXPECT_LT(r.history.back().train_loss, r.history.front().train_loss * 0.9);
  EXPECT_GT(r.best_metric, 0.7) << "val AUC after a few epochs on real X-rays";
  for (const char* f : {"card.json", "weights.pt", "metrics.csv", "training_curve.png"})
    EXPECT_TRUE(fs::exists(tmp.file(std::string("model/") + f))) << f;
  const ModelCard card = load_card(tmp.file("model"));
  EXPECT_EQ(card.classes, (std::vector<std::string>{"normal", "pneumonia"}));
  EXPECT_EQ(card.input.size, (std::vector<int64_t>{28, 28}));
  EXPECT_GT(card.temperature, 0.0);
  const auto& auc = card.metrics["val"]["auc"];
  EXPECT_LE(auc["ci95"][0].get<double>(), auc["value"].get<double>());
  EXPECT_TRUE(card.thresholds.contains("operating_point"));
  EXPECT_EQ(card.training["train_cases"], 200);
}

TEST(Trainer, ResumingFromACheckpointGivesExactlyTheUninterruptedRun) {
  test::TempDir tmp;
  const std::string manifest = make_manifest(tmp);
  TrainOptions straight = tiny(manifest, tmp.file("straight"));
  straight.epochs = 2;
  train_model(straight);

  TrainOptions first = tiny(manifest, tmp.file("resumed"));
  first.epochs = 2;
  first.max_steps = 7;  // 200 cases / 32 = 7 steps: stop after epoch 1
  const TrainResult half = train_model(first);
  EXPECT_EQ(half.history.size(), 1u);
  TrainOptions second = first;
  second.max_steps = -1;
  second.resume = true;
  const TrainResult rest = train_model(second);
  EXPECT_EQ(rest.history.size(), 2u);

  auto a = make_network(load_card(tmp.file("straight")).architecture);
  auto b = make_network(load_card(tmp.file("resumed")).architecture);
  load_weights(*a, tmp.file("straight/checkpoint/state.pt"));
  load_weights(*b, tmp.file("resumed/checkpoint/state.pt"));
  const auto pa = a->named_parameters(), pb = b->named_parameters();
  for (const auto& p : pa) EXPECT_TRUE(at::equal(p.value(), pb[p.key()])) << p.key();
  // The shipped weights are byte-identical too: a bundle is reproducible from its recipe.
  EXPECT_EQ(test::read_text(tmp.file("straight/weights.pt")), test::read_text(tmp.file("resumed/weights.pt")));
}

TEST(Trainer, BadInputIsRefusedClearly) {
  test::TempDir tmp;
  std::ofstream(tmp.file("bad.csv")) << "file,label\nx.png,a\n";
  EXPECT_THROW(train_model(tiny(tmp.file("bad.csv"), tmp.file("m"))), InputError);
  std::ofstream(tmp.file("one.csv")) << "path,label,split\n" << test::vendored_samples()
                                     << "/pneumoniamnist/val_00000.png,pneumonia,train\n";
  EXPECT_THROW(train_model(tiny(tmp.file("one.csv"), tmp.file("m"))), InputError);
  EXPECT_THROW(TrainOptions::from_json({{"epoch", 3}}), UsageError);
}

TEST(Mixup, BlendingMixesEachImageWithItsPartnerByLambda) {
  torch::manual_seed(3);
  const at::Tensor original = torch::randn({8, 1, 12, 12});
  MixupOptions o;  // alpha 0.4, every batch, no CutMix
  at::Tensor x = original.clone(), partner;
  const double lambda = mix_batch(x, partner, o, 42);
  ASSERT_TRUE(partner.defined());
  ASSERT_GT(lambda, 0.0);
  ASSERT_LT(lambda, 1.0);
  EXPECT_TRUE(torch::allclose(x, original * lambda + original.index_select(0, partner) * (1 - lambda), 1e-6, 1e-6));
  // Seeded: the same seed mixes the same way, another seed differently.
  at::Tensor again = original.clone(), partner2;
  EXPECT_EQ(mix_batch(again, partner2, o, 42), lambda);
  EXPECT_TRUE(at::equal(again, x));
  at::Tensor other = original.clone(), partner3;
  EXPECT_NE(mix_batch(other, partner3, o, 43), lambda);
}

TEST(Mixup, CutMixPastesOneBoxAndLambdaIsTheShareKept) {
  torch::manual_seed(4);
  const at::Tensor original = torch::randn({6, 2, 20, 16});
  MixupOptions o;
  o.alpha = 1.0;
  o.cutmix = 1.0;
  int boxes = 0;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    at::Tensor x = original.clone(), partner;
    const double lambda = mix_batch(x, partner, o, seed);
    ASSERT_TRUE(partner.defined());
    const at::Tensor other = original.index_select(0, partner);
    const at::Tensor kept = (x == original), pasted = (x == other);
    // Every value is either its own or its partner's (never a blend) ...
    EXPECT_TRUE((kept | pasted).all().item<bool>()) << "seed " << seed;
    // ... and for a sample mixed with another one, the pasted share is exactly 1 - lambda, the
    // same box in every channel.
    for (int64_t i = 0; i < x.size(0); ++i) {
      if (partner[i].item<int64_t>() == i) continue;
      const double share = pasted[i].logical_and(kept[i].logical_not()).to(at::kDouble).mean().item<double>();
      EXPECT_NEAR(share, 1 - lambda, 1e-12) << "seed " << seed << " sample " << i;
      EXPECT_TRUE(at::equal(pasted[i][0], pasted[i][1]));
    }
    boxes += lambda < 1;
  }
  EXPECT_GT(boxes, 10) << "most draws paste a non-empty box";
}

TEST(Mixup, OptionsAreCheckedByName) {
  EXPECT_THROW(MixupOptions::from_json({{"beta", 1}}), UsageError);
  EXPECT_THROW(MixupOptions::from_json({{"alpha", 0}}), UsageError);
  EXPECT_THROW(MixupOptions::from_json({{"p", 1.5}}), UsageError);
  EXPECT_THROW(MixupOptions::from_json({{"cutmix", "yes"}}), UsageError);
  EXPECT_EQ(MixupOptions::from_json({{"cutmix", 0.5}}).cutmix, 0.5);
  EXPECT_THROW(TrainOptions::from_json({{"ema", 1.0}}), UsageError);
  EXPECT_THROW(TrainOptions::from_json({{"mixup", 0.4}}), UsageError);
}

TEST(Trainer, WeightAverageAndMixupResumeExactlyAndTheAverageIsWhatShips) {
  test::TempDir tmp;
  const std::string manifest = make_manifest(tmp);
  auto recipe = [&](const std::string& out) {
    TrainOptions o = tiny(manifest, tmp.file(out));
    o.epochs = 2;
    o.ema = 0.9;
    o.schedule = "constant";  // the live weights keep moving to the end: the average lags them
    o.mixup = {{"alpha", 0.4}, {"cutmix", 0.5}};
    return o;
  };
  const TrainResult straight = train_model(recipe("straight"));
  TrainOptions first = recipe("resumed");
  first.max_steps = 7;  // stop after epoch 1
  train_model(first);
  TrainOptions second = recipe("resumed");
  second.resume = true;
  train_model(second);
  EXPECT_EQ(test::read_text(tmp.file("straight/checkpoint/ema.pt")), test::read_text(tmp.file("resumed/checkpoint/ema.pt")));
  EXPECT_EQ(test::read_text(tmp.file("straight/weights.pt")), test::read_text(tmp.file("resumed/weights.pt")));

  // The shipped weights are the average at the best epoch (best.pt, stored in float16), not
  // the last optimiser step (state.pt).
  const auto arch = load_card(tmp.file("straight")).architecture;
  auto shipped = make_network(arch), best = make_network(arch), live = make_network(arch);
  load_weights(*shipped, tmp.file("straight/weights.pt"));
  load_weights(*best, tmp.file("straight/checkpoint/best.pt"));
  load_weights(*live, tmp.file("straight/checkpoint/state.pt"));
  const auto ps = shipped->named_parameters(), pb = best->named_parameters(), pl = live->named_parameters();
  double to_best = 0, to_live = 0;
  for (const auto& p : ps) {
    // float16 keeps 11 significant bits: a relative error of at most 2^-11.
    to_best = std::max(to_best, ((p.value() - pb[p.key()]).abs() - pb[p.key()].abs() / 2048).max().item<double>());
    to_live = std::max(to_live, ((p.value() - pl[p.key()]).abs() - pl[p.key()].abs() / 2048).max().item<double>());
  }
  EXPECT_LT(to_best, 1e-6) << "float16 rounding only";
  EXPECT_GT(to_live, 1e-3) << "the average differs from the last step by more than rounding";

  // Mixup is really on: without it the same seed trains different weights.
  TrainOptions plain = recipe("plain");
  plain.mixup = nlohmann::json::object();
  train_model(plain);
  EXPECT_NE(test::read_text(tmp.file("plain/weights.pt")), test::read_text(tmp.file("straight/weights.pt")));
  EXPECT_GT(straight.best_metric, 0.6) << "val AUC with mixup and the average after two epochs";
}

TEST(Trainer, EnsembleMembersTrainIndependentlyAndShipAsOneAveragedNetwork) {
  test::TempDir tmp;
  TrainOptions o = tiny(make_manifest(tmp), tmp.file("model"));
  o.epochs = 2;
  o.members = 2;
  train_model(o);
  const ModelCard card = load_card(tmp.file("model"));
  ASSERT_EQ(card.training["members"].size(), 2u);
  EXPECT_NE(card.training["members"][0]["seed"], card.training["members"][1]["seed"]);
  std::ifstream csv(tmp.file("model/metrics.csv"));
  std::string header, line;
  std::getline(csv, header);
  int rows[2] = {0, 0};
  while (std::getline(csv, line)) rows[line[0] - '0']++;
  EXPECT_EQ(rows[0], 2);
  EXPECT_EQ(rows[1], 2);

  // The shipped network is the mean of its members' logits.
  const Model m = Model::load(tmp.file("model"));
  auto* ens = dynamic_cast<Ensemble*>(m.network().get());
  ASSERT_NE(ens, nullptr);
  ASSERT_EQ(ens->members().size(), 2u);
  torch::NoGradGuard ng;
  ens->eval();
  const auto x = torch::randn({3, 1, 28, 28});
  const auto mean = (ens->members()[0]->forward(x) + ens->members()[1]->forward(x)) / 2;
  EXPECT_TRUE(torch::allclose(ens->forward(x), mean, 1e-5, 1e-6));
  EXPECT_FALSE(torch::allclose(ens->members()[0]->forward(x), ens->members()[1]->forward(x)))
      << "members start from different seeds";
}

TEST(Ensemble, CapturingManyLayersInOnePassMatchesCapturingEachAlone) {
  torch::manual_seed(6);
  std::vector<NetworkPtr> members;
  for (int k = 0; k < 2; ++k) members.push_back(make_network(preset_architecture("resnet-compact", 2, 1, 2)));
  auto ens = std::make_shared<Ensemble>(members);
  torch::NoGradGuard ng;
  const auto x = torch::randn({2, 1, 28, 28});
  for (NetworkPtr net : {members[0], NetworkPtr(ens)}) {
    net->eval();
    const auto layers = net->layers();
    std::vector<at::Tensor> acts;
    const auto y = net->forward_capture_many(x, layers, acts);
    ASSERT_EQ(acts.size(), layers.size());
    EXPECT_TRUE(torch::allclose(y, net->forward(x), 1e-5, 1e-6));
    for (size_t i = 0; i < layers.size(); ++i) {
      at::Tensor a;
      net->forward_capture(x, layers[i], a);
      EXPECT_TRUE(torch::equal(acts[i], a)) << layers[i];
    }
  }
}

TEST(Ensemble, CapturedActivationIsInTheGraphOfTheAveragedScore) {
  torch::manual_seed(5);
  std::vector<NetworkPtr> members;
  for (int k = 0; k < 2; ++k)
    members.push_back(make_network(preset_architecture("resnet-compact", 2, 1, 3)));
  Ensemble ens(members);
  ens.eval();
  const auto x = torch::randn({2, 1, 28, 28});
  at::Tensor act;
  const auto y = ens.forward_capture(x, ens.default_cam_layer(), act);
  EXPECT_TRUE(torch::allclose(y, ens.forward(x), 1e-5, 1e-6));
  // Grad-CAM needs d score / d activation: it must exist and be the members' gradients, each
  // scaled by 1/2 (the average).
  const auto g = torch::autograd::grad({y.select(1, 1).sum()}, {act})[0];
  const int64_t c = act.size(1) / 2;
  for (int k = 0; k < 2; ++k) {
    at::Tensor a;
    const auto yk = members[k]->forward_capture(x, ens.default_cam_layer(), a);
    const auto gk = torch::autograd::grad({yk.select(1, 1).sum()}, {a})[0];
    EXPECT_TRUE(torch::allclose(g.narrow(1, k * c, c), gk / 2, 1e-5, 1e-7)) << "member " << k;
  }
}

TEST(Inference, TheSameInputAndBundleGiveBitIdenticalOutputs) {
  test::TempDir tmp;
  TrainOptions o = tiny(make_manifest(tmp), tmp.file("model"));
  o.epochs = 1;
  train_model(o);
  const Model a = Model::load(tmp.file("model")), b = Model::load(tmp.file("model"));
  const Image img = read_image(test::vendored_samples() + "/pneumoniamnist/val_00000.png");
  const Prediction p1 = predict({a}, img), p2 = predict({b}, img), p3 = predict({a}, img);
  EXPECT_EQ(p1.probabilities, p2.probabilities);
  EXPECT_EQ(p1.probabilities, p3.probabilities);
  EXPECT_EQ(a.hash(), b.hash());
  EXPECT_EQ(a.hash().size(), 64u);
  PredictOptions mc;
  mc.mc_samples = 8;
  mc.tta = true;
  const Prediction u1 = predict({a}, img, mc), u2 = predict({a}, img, mc);
  EXPECT_EQ(u1.probabilities, u2.probabilities) << "Monte-Carlo dropout is seeded";
  EXPECT_EQ(u1.passes, 16);
  EXPECT_GT(u1.mutual_information, 0.0);
}

TEST(Calibration, TemperatureScalingLowersNllAndKeepsArgmax) {
  // Over-confident logits: the right class wins 70% of the time but with margin 6.
  torch::manual_seed(3);
  const int64_t n = 400;
  at::Tensor labels = at::randint(0, 2, {n}, at::kLong);
  at::Tensor correct = at::rand({n}) < 0.7;
  at::Tensor predicted = at::where(correct, labels, 1 - labels);
  at::Tensor logits = at::zeros({n, 2});
  logits.scatter_(1, predicted.unsqueeze(1), 6.0);
  const double t = fit_temperature(logits, labels);
  EXPECT_GT(t, 2.0);
  EXPECT_LT(at::cross_entropy_loss(logits / t, labels).item<double>(), at::cross_entropy_loss(logits, labels).item<double>());
  EXPECT_TRUE(at::equal((logits / t).argmax(1), logits.argmax(1)));
}

}  // namespace
}  // namespace medlens
