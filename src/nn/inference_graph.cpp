#include "nn/inference_graph.h"

#include <torch/csrc/jit/frontend/tracer.h>
#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/frozen_graph_optimizations.h>
#include <torch/csrc/jit/passes/frozen_linear_transpose.h>
#include <torch/csrc/jit/passes/frozen_ops_to_mkldnn.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/csrc/jit/runtime/interpreter.h>
#include <torch/torch.h>

#include "core/error.h"

namespace medlens {

struct InferenceGraph::Impl {
  std::unique_ptr<torch::jit::Code> code;
  std::vector<int64_t> sample_shape;  // the example's shape less the batch dimension
  at::ScalarType dtype = at::kFloat;
};

InferenceGraph::InferenceGraph(const Pass& pass, const at::Tensor& example, torch::nn::Module& owner)
    : impl_(std::make_unique<Impl>()) {
  if (example.dim() < 2) throw UsageError("InferenceGraph needs a batch (N,C,...) to trace");
  impl_->sample_shape = example.sizes().slice(1).vec();
  impl_->dtype = example.scalar_type();

  // The tracer bakes every tensor it has not seen as an input into the graph as a constant, but
  // refuses tensors that require grad: lift that flag for the trace, and put it back after.
  std::vector<at::Tensor> lifted;
  for (auto& p : owner.parameters())
    if (p.requires_grad()) {
      p.set_requires_grad(false);
      lifted.push_back(p);
    }
  struct Restore {
    std::vector<at::Tensor>& lifted;
    ~Restore() {
      for (auto& p : lifted) p.set_requires_grad(true);
    }
  } restore{lifted};

  torch::NoGradGuard no_grad;
  const auto traced = torch::jit::tracer::trace(
      {example},
      [&](torch::jit::Stack inputs) {
        torch::jit::Stack out;
        for (auto& t : pass(inputs.at(0).toTensor())) out.emplace_back(std::move(t));
        return out;
      },
      [](const at::Tensor&) { return std::string(); }, /*strict=*/false);
  std::shared_ptr<torch::jit::Graph> graph = traced.first->graph;

  // torch.jit.freeze + optimize_for_inference, on a graph whose weights are already constants.
  torch::jit::ConstantPropagation(graph);
  torch::jit::OptimizeFrozenGraph(graph, /*optimize_numerics=*/true);
  torch::jit::ConvertFrozenOpsToMKLDNN(graph);
  torch::jit::FrozenLinearTranspose(graph);
  torch::jit::EliminateDeadCode(graph);
  // Run as it stands by the interpreter: a graph executor would profile the first runs and
  // re-optimise (no CPU fusers here to gain from), costing time on the first batches.
  torch::jit::runRequiredPasses(graph);
  impl_->code = std::make_unique<torch::jit::Code>(graph, "inference");
}

InferenceGraph::~InferenceGraph() = default;

bool InferenceGraph::accepts(const at::Tensor& x) const {
  return x.defined() && x.dim() >= 1 && x.sizes().slice(1).vec() == impl_->sample_shape &&
         x.scalar_type() == impl_->dtype && x.device().is_cpu();
}

std::vector<at::Tensor> InferenceGraph::run(const at::Tensor& x) const {
  if (!accepts(x))
    throw UsageError("InferenceGraph::run: the batch differs from the traced one in shape (beyond batch size) or dtype");
  torch::NoGradGuard no_grad;
  torch::jit::Stack stack{x.contiguous()};
  torch::jit::InterpreterState(*impl_->code).run(stack);
  std::vector<at::Tensor> out;
  // One output comes back as itself, several as a tuple.
  if (stack.size() == 1 && stack[0].isTuple()) {
    for (const auto& v : stack[0].toTupleRef().elements()) out.push_back(v.toTensor());
  } else {
    for (const auto& v : stack) out.push_back(v.toTensor());
  }
  return out;
}

uint64_t weights_version(const torch::nn::Module& module) {
  // Each tensor's storage and in-place version: changes when a weight is modified (optimiser
  // steps, copy_, load_weights) or replaced by another tensor.
  uint64_t v = 1469598103934665603ULL;
  const auto mix = [&v](uint64_t x) { v = (v ^ x) * 1099511628211ULL; };
  for (const auto& tensors : {module.parameters(), module.buffers()})
    for (const auto& t : tensors) {
      mix(reinterpret_cast<uintptr_t>(t.data_ptr()));
      mix(t._version());
    }
  return v;
}

}  // namespace medlens
