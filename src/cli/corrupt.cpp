// medlens corrupt IN OUT --kind NAME --severity 1..5 [--seed N], or --list [--json]: simulated
// noise and acquisition artefacts (docs/CORRUPTIONS.md), the same ones pipeline specs apply.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "core/image.h"
#include "io/read.h"
#include "io/write.h"
#include "transforms/corruptions.h"

namespace medlens::cli {
namespace {

// "key=value, key=value" in the table's key order, values as JSON writes them.
std::string parameter_text(const nlohmann::json& parameters) {
  std::string text;
  for (const auto& [key, value] : parameters.items())
    text += (text.empty() ? "" : ", ") + key + "=" + value.dump();
  return text;
}

// Every kind with its description and parameters per severity.
nlohmann::json table_json() {
  nlohmann::json kinds = nlohmann::json::array();
  for (const auto& kind : corruption_kinds())
    kinds.push_back({{"kind", kind},
                     {"random", corruption_is_random(kind)},
                     {"how", corruption_description(kind)},
                     {"severities", nlohmann::json::array()}});
  for (const auto& level : corruption_table())
    for (auto& k : kinds)
      if (k["kind"] == level.kind)
        k["severities"].push_back({{"severity", level.severity}, {"parameters", level.parameters}});
  return {{"kinds", kinds}};
}

// The window 8-bit outputs of `image` are shown through, as the writers choose it: its own,
// identity for 0..255 integers, else its value range. Corrupted outputs keep it, so a brightness
// shift is not undone by mapping the new value range to 0..255.
Window display_window(const Image& image) {
  if (image.metadata().window) return *image.metadata().window;
  const auto [lo, hi] = value_range(image);
  const float* v = image.data();
  bool bytes = lo >= 0 && hi <= 255;
  for (int64_t i = 0; bytes && i < image.shape().elements(); ++i) bytes = v[i] == std::floor(v[i]);
  if (bytes) return Window{128, 256};
  return Window{(static_cast<double>(lo) + hi) / 2 + 0.5, static_cast<double>(hi) - lo + 1};
}

void print_table() {
  const nlohmann::json table = table_json();
  for (const auto& k : table["kinds"]) {
    std::printf("%s%s: %s\n", k["kind"].get<std::string>().c_str(),
                k["random"].get<bool>() ? " (random)" : "", k["how"].get<std::string>().c_str());
    for (const auto& s : k["severities"])
      std::printf("  %d: %s\n", s["severity"].get<int>(), parameter_text(s["parameters"]).c_str());
  }
}

}  // namespace

Run add_corrupt(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "corrupt", "Simulate noise or an acquisition artefact at severity 1..5 (--list shows them)");
  struct Args {
    std::string in, out, kind;
    int severity = 0;
    uint64_t seed = 0;
    bool list = false, json = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("IN", args->in, "Input image");
  cmd->add_option("OUT", args->out, "Output image (format by extension)");
  cmd->add_option("--kind", args->kind, "Corruption kind, e.g. gaussian, mri-motion, ct-metal (see --list)");
  cmd->add_option("--severity", args->severity, "1 (mild) .. 5 (severe)");
  cmd->add_option("--seed", args->seed, "Seed for the random draws (same seed, same output)");
  cmd->add_flag("--list", args->list, "List every kind with its parameters per severity and exit");
  cmd->add_flag("--json", args->json, "With --list: print the table as JSON");
  return [args]() {
    if (args->list) {
      if (args->json)
        std::cout << table_json().dump(2) << "\n";
      else
        print_table();
      return 0;
    }
    if (args->json) throw UsageError("--json goes with --list");
    if (args->in.empty() || args->out.empty()) throw UsageError("corrupt needs IN and OUT (or --list)");
    if (args->kind.empty()) throw UsageError("corrupt needs --kind (see medlens corrupt --list)");
    if (args->severity == 0) throw UsageError("corrupt needs --severity 1..5");
    const TransformPtr corruption = make_corruption(args->kind, args->severity);  // checks both first
    const Image image = read_image(args->in);
    Rng rng(args->seed);
    Image out = (*corruption)(image, rng);
    out.metadata().window = display_window(image);
    write_image(out, args->out);
    std::printf("wrote %s (%s:%d)\n", args->out.c_str(), args->kind.c_str(), args->severity);
    return 0;
  };
}

}  // namespace medlens::cli
