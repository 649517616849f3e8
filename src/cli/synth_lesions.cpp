// medlens synth-lesions (being written)
#include "cli/commands.h"
#include "core/error.h"
namespace medlens::cli {
Run add_synth_lesions(CLI::App& app) {
  app.add_subcommand("synth-lesions", "Insert synthetic lesions into real anatomy (being written)");
  return []() -> int { throw UsageError("synth-lesions is not available yet"); };
}
}  // namespace medlens::cli
