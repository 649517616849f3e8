// The optimised inference graph (nn/inference_graph.h) and Model::forward's use of it: the same
// logits and OOD features as the eager modules, for any batch size, re-traced when the weights
// change, and a clear error (not a crash) for a batch that does not fit.
#include <gtest/gtest.h>

#include "core/error.h"
#include "infer/model.h"
#include "nn/card.h"
#include "nn/ensemble.h"
#include "nn/inference_graph.h"
#include "nn/network.h"
#include "nn/resnet.h"

namespace medlens {
namespace {

double max_diff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

// Gives every batch norm non-trivial running statistics, as a trained network has: folding them
// into the convolutions is part of what the graph does.
void randomise_norms(torch::nn::Module& net) {
  torch::NoGradGuard no_grad;
  auto params = net.named_parameters();
  for (auto& b : net.named_buffers()) {
    const std::string& key = b.key();
    const size_t at = key.rfind("running_mean");
    if (at == std::string::npos) {
      if (key.find("running_var") != std::string::npos) b.value().uniform_(0.5, 2.0);
      continue;
    }
    b.value().uniform_(-0.5, 0.5);
    const std::string norm = key.substr(0, at);
    params[norm + "weight"].uniform_(0.5, 1.5);
    params[norm + "bias"].uniform_(-0.2, 0.2);
  }
}

ModelCard classifier_card(int64_t dims, int64_t side, const nlohmann::json& architecture) {
  return ModelCard::from_json({{"name", "graph-test"},
                               {"version", "1"},
                               {"task", "classify"},
                               {"classes", {"a", "b", "c"}},
                               {"input", {{"dims", dims}, {"channels", 2}, {"size", std::vector<int64_t>(dims, side)}}},
                               {"architecture", architecture}});
}

// Model::forward's logits and features with the graph on, then with the eager modules.
struct Both {
  at::Tensor graph_logits, graph_features, eager_logits, eager_features;
};
Both both_ways(const Model& m, const at::Tensor& x) {
  Both r;
  set_inference_graphs(true);
  r.graph_logits = m.forward(x, &r.graph_features);
  set_inference_graphs(false);
  r.eager_logits = m.forward(x, &r.eager_features);
  set_inference_graphs(true);
  return r;
}

TEST(InferenceGraph, TracedResNetGivesTheEagerLogitsForAnyBatchSize) {
  torch::manual_seed(1);
  auto net = std::make_shared<ResNet>(ResNetOptions(2, 3).width(8).dropout(0.5));
  randomise_norms(*net);
  net->eval();
  const at::Tensor example = at::randn({4, 2, 48, 48});
  const InferenceGraph graph([&](const at::Tensor& x) { return std::vector<at::Tensor>{net->forward(x)}; }, example,
                             *net);
  torch::NoGradGuard no_grad;
  for (int64_t n : {1, 4, 7}) {
    SCOPED_TRACE(n);
    const at::Tensor x = at::randn({n, 2, 48, 48});
    ASSERT_TRUE(graph.accepts(x));
    const std::vector<at::Tensor> out = graph.run(x);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].sizes(), (std::vector<int64_t>{n, 3}));
    EXPECT_LT(max_diff(out[0], net->forward(x)), 1e-4);
    // The same batch twice gives the same bits.
    EXPECT_TRUE(at::equal(out[0], graph.run(x)[0]));
  }
  // Tracing lifted requires_grad from the weights; it is back, so the network still trains.
  for (const auto& p : net->parameters()) EXPECT_TRUE(p.requires_grad());
  // Another sample shape or channel count is not what was traced.
  EXPECT_FALSE(graph.accepts(at::randn({4, 2, 40, 48})));
  EXPECT_FALSE(graph.accepts(at::randn({4, 1, 48, 48})));
  EXPECT_FALSE(graph.accepts(at::randn({4, 2, 48, 48}).to(at::kDouble)));
  EXPECT_THROW(graph.run(at::randn({4, 1, 48, 48})), UsageError);
}

TEST(InferenceGraph, ModelForwardMatchesTheEagerModulesIn2dAnd3dAndForEnsembles) {
  torch::manual_seed(2);
  struct Case {
    std::string name;
    nlohmann::json architecture;
    int64_t dims, side;
  };
  const nlohmann::json resnet2 = {{"name", "resnet"}, {"in_channels", 2}, {"num_classes", 3}, {"dims", 2},
                                  {"blocks", {1, 1, 1}}, {"width", 8}, {"dropout", 0.3}};
  nlohmann::json resnet3 = resnet2;
  resnet3["dims"] = 3;
  resnet3["small_input"] = true;
  const std::vector<Case> cases = {{"resnet 2-D", resnet2, 2, 48},
                                   {"resnet 3-D", resnet3, 3, 12},
                                   {"ensemble", {{"name", "ensemble"}, {"members", {resnet2, resnet2}}}, 2, 48}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    NetworkPtr net = make_network(c.architecture);
    randomise_norms(*net);
    const Model m = Model::from_parts(classifier_card(c.dims, c.side, c.architecture), net);
    std::vector<int64_t> shape{5, 2};
    for (int64_t d = 0; d < c.dims; ++d) shape.push_back(c.side);
    const at::Tensor x = at::randn(shape);
    const Both b = both_ways(m, x);
    EXPECT_EQ(b.graph_logits.sizes(), b.eager_logits.sizes());
    EXPECT_EQ(b.graph_features.sizes(), b.eager_features.sizes());
    EXPECT_LT(max_diff(b.graph_logits, b.eager_logits), 1e-4);
    // The features (every stage's per-channel mean and SD) feed the Mahalanobis OOD score.
    EXPECT_LT(max_diff(b.graph_features, b.eager_features), 1e-4);
    // Logits alone are a second graph; they agree with the pass that also gives features.
    EXPECT_LT(max_diff(m.forward(x), b.graph_logits), 1e-5);
    // A batch of another size goes through the same graph, row by row the same answer.
    const at::Tensor part = x.slice(0, 1, 3);
    EXPECT_LT(max_diff(m.forward(part), b.graph_logits.slice(0, 1, 3)), 1e-5);
  }
}

TEST(InferenceGraph, ModelForwardRetracesWhenTheWeightsChange) {
  torch::manual_seed(3);
  const nlohmann::json arch = {{"name", "resnet"}, {"in_channels", 2}, {"num_classes", 3},
                               {"blocks", {1, 1}},  {"width", 8},       {"small_input", true}};
  NetworkPtr net = make_network(arch);
  randomise_norms(*net);
  const Model m = Model::from_parts(classifier_card(2, 16, arch), net);
  const at::Tensor x = at::randn({3, 2, 16, 16});
  // Both graphs (logits; logits and features) are built before the change.
  at::Tensor features;
  const at::Tensor before = m.forward(x, &features);
  EXPECT_TRUE(at::equal(m.forward(x), m.forward(x)));
  {
    // What an optimiser step, fine-tuning or load_weights does: the weights change in place.
    torch::NoGradGuard no_grad;
    for (auto& p : net->parameters()) p.mul_(1.5);
  }
  const Both after = both_ways(m, x);
  EXPECT_GT(max_diff(after.graph_logits, before), 1e-2);  // not the stale graph's answer
  EXPECT_LT(max_diff(after.graph_logits, after.eager_logits), 1e-4);
  EXPECT_LT(max_diff(m.forward(x), after.eager_logits), 1e-4);
}

TEST(InferenceGraph, ModelForwardRefusesABatchThatDoesNotFitWithTheNetworksError) {
  const nlohmann::json arch = {{"name", "resnet"}, {"in_channels", 2}, {"num_classes", 3},
                               {"blocks", {1}},     {"width", 8},       {"small_input", true}};
  const Model m = Model::from_parts(classifier_card(2, 16, arch), make_network(arch));
  EXPECT_THROW(m.forward(at::randn({2, 1, 16, 16})), InputError);  // one channel, not two
  EXPECT_THROW(m.forward(at::randn({2, 2, 4, 16, 16})), InputError);  // a 3-D batch for a 2-D network
  // After the refusals the model still answers.
  at::Tensor features;
  EXPECT_EQ(m.forward(at::randn({2, 2, 16, 16}), &features).sizes(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(features.size(0), 2);
}

TEST(InferenceGraph, WeightsVersionChangesWithAnyInPlaceEditOrReplacement) {
  ResNet net(ResNetOptions(1, 2).blocks({1}).width(4).small_input(true));
  const uint64_t v0 = weights_version(net);
  EXPECT_EQ(weights_version(net), v0);
  {
    torch::NoGradGuard no_grad;
    net.named_buffers()["stem.1.running_mean"].add_(1);
  }
  const uint64_t v1 = weights_version(net);
  EXPECT_NE(v1, v0);
  {
    torch::NoGradGuard no_grad;
    net.named_parameters()["fc.weight"].zero_();
  }
  EXPECT_NE(weights_version(net), v1);
}

}  // namespace
}  // namespace medlens
