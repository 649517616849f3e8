// Each subcommand registers itself on the app and returns the function that runs it after
// parsing. Commands are thin: parse, call the library, print.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace medlens::cli {

using Run = std::function<int()>;

Run add_info(CLI::App& app);
Run add_convert(CLI::App& app);
Run add_transform(CLI::App& app);
Run add_corrupt(CLI::App& app);
Run add_synth_lesions(CLI::App& app);
Run add_train(CLI::App& app);
Run add_evaluate(CLI::App& app);
Run add_predict(CLI::App& app);
Run add_analyze(CLI::App& app);
Run add_calibrate(CLI::App& app);
Run add_attack(CLI::App& app);
Run add_audit(CLI::App& app);
Run add_deid(CLI::App& app);
Run add_explain(CLI::App& app);

}  // namespace medlens::cli
