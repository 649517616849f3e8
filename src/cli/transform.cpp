// medlens transform IN OUT (--pipeline SPEC.json | --op NAME[:key=value,...]...): runs a
// preprocessing/augmentation chain, the same one model cards and training use.
#include <nlohmann/json.hpp>

#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"
#include "core/image.h"
#include "io/read.h"
#include "io/write.h"
#include "transforms/registry.h"

namespace medlens::cli {

Run add_transform(CLI::App& app) {
  auto* cmd = app.add_subcommand("transform", "Apply a transform pipeline (JSON spec or --op chain) to an image");
  struct Args {
    std::string in, out, pipeline, label, label_out;
    std::vector<std::string> ops;
    uint64_t seed = 0;
    bool list = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("IN", args->in, "Input image");
  cmd->add_option("OUT", args->out, "Output image (format by extension)");
  cmd->add_option("--pipeline", args->pipeline, "Pipeline spec: {\"transforms\": [{\"op\": NAME, ...}]}");
  cmd->add_option("--op", args->ops, "A step NAME[:key=value,...]; repeat for a chain (lists: a;b;c)");
  cmd->add_option("--seed", args->seed, "Seed for random steps (same seed, same output)");
  cmd->add_option("--label", args->label, "A label map in the same geometry, moved by spatial steps");
  cmd->add_option("--label-out", args->label_out, "Where to write the transformed label map");
  cmd->add_flag("--list", args->list, "List every transform with its parameters and exit");
  return [args]() {
    if (args->list) {
      for (const auto& t : transforms().list())
        std::printf("%-22s %-10s %s\n", t.name.c_str(), t.family.c_str(), t.summary.c_str());
      return 0;
    }
    if (args->in.empty() || args->out.empty()) throw UsageError("transform needs IN and OUT (or --list)");
    if (args->pipeline.empty() == args->ops.empty())
      throw UsageError("give either --pipeline SPEC.json or one or more --op");
    if (args->label.empty() != args->label_out.empty())
      throw UsageError("--label and --label-out go together");
    Compose chain;
    if (!args->pipeline.empty()) {
      chain = load_pipeline_file(args->pipeline);
    } else {
      std::vector<TransformPtr> steps;
      for (const auto& op : args->ops) steps.push_back(parse_op(op));
      chain = Compose(steps);
    }
    Sample sample{read_image(args->in), std::nullopt};
    if (!args->label.empty()) sample.label = read_image(args->label);
    Rng rng(args->seed);
    Sample out = chain.apply(std::move(sample), rng);
    write_image(out.image, args->out);
    if (out.label) write_image(*out.label, args->label_out);
    std::printf("wrote %s\n", args->out.c_str());
    return 0;
  };
}

}  // namespace medlens::cli
