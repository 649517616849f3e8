// medlens corrupt (being written)
#include "cli/commands.h"
#include "core/error.h"
namespace medlens::cli {
Run add_corrupt(CLI::App& app) {
  app.add_subcommand("corrupt", "Simulate noise and artefacts (being written)");
  return []() -> int { throw UsageError("corrupt is not available yet"); };
}
}  // namespace medlens::cli
