// medlens command-line entry: dispatches to subcommands and turns errors into the documented
// exit statuses (0 ok, 1 internal error, 2 bad usage, 3 bad input).
#include <cstdio>
#include <iostream>
#include <map>
#include <new>
#include <string>

#include "cli/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "core/parallel.h"
#include "core/version.h"
#include "io/read.h"

int main(int argc, char** argv) {
  CLI::App app{"medlens: computer-aided diagnosis on medical images you can trust"};
  app.set_version_flag("--version", std::string("medlens ") + medlens::version());
  app.require_subcommand(1);
  std::string log_level;
  app.add_option("--log", log_level, "Log level: trace, debug, info, warn (default), error, off");

  std::map<CLI::App*, medlens::cli::Run> runs;
  auto reg = [&](medlens::cli::Run (*add)(CLI::App&)) {
    const size_t before = app.get_subcommands({}).size();
    medlens::cli::Run run = add(app);
    runs[app.get_subcommands({})[before]] = std::move(run);
  };
  reg(medlens::cli::add_info);
  reg(medlens::cli::add_convert);
  reg(medlens::cli::add_transform);
  reg(medlens::cli::add_corrupt);
  reg(medlens::cli::add_synth_lesions);
  reg(medlens::cli::add_train);
  reg(medlens::cli::add_evaluate);
  reg(medlens::cli::add_predict);
  reg(medlens::cli::add_analyze);
  reg(medlens::cli::add_calibrate);
  reg(medlens::cli::add_attack);
  reg(medlens::cli::add_audit);
  reg(medlens::cli::add_deid);
  reg(medlens::cli::add_explain);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  try {
    medlens::log::init();
    if (!log_level.empty()) medlens::log::set_level(log_level);
    medlens::init_threads();
    medlens::init_itk_threads();
    for (auto& [sub, run] : runs)
      if (sub->parsed()) return run();
  } catch (const medlens::Error& e) {
    std::fprintf(stderr, "medlens: %s\n", e.what());
    return medlens::exit_status(e.kind());
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "medlens: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    // One line for the user (LibTorch appends a multi-line backtrace to its messages); the
    // whole message at debug level.
    const std::string what = e.what();
    std::fprintf(stderr, "medlens: internal error: %s\n", what.substr(0, what.find('\n')).c_str());
    medlens::log::debug(what);
    return 1;
  }
  return 1;
}
