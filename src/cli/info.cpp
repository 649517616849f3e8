// medlens info PATH [--json]: what an image or a folder of DICOM series holds.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "cli/json_util.h"
#include "io/describe.h"

namespace medlens::cli {

Run add_info(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "Describe an image file or a folder of DICOM series");
  struct Args {
    std::string path, series;
    bool json = false;
    int wsi_level = -1;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("PATH", args->path, "Image file or folder")->required();
  cmd->add_flag("--json", args->json, "Print JSON (one object with a list of images)");
  cmd->add_option("--level", args->wsi_level, "Whole-slide: pyramid level to summarise");
  return [args]() {
    ReadOptions o;
    o.wsi_level = args->wsi_level;
    const std::vector<ImageSummary> all = describe(args->path, o);
    if (args->json) {
      nlohmann::json j;
      j["path"] = args->path;
      j["images"] = nlohmann::json::array();
      for (const auto& s : all) j["images"].push_back(summary_json(s));
      std::cout << j.dump(2) << "\n";
      return 0;
    }
    for (size_t i = 0; i < all.size(); ++i) {
      if (all.size() > 1) std::printf("== series %zu of %zu ==\n", i + 1, all.size());
      print_summary(all[i]);
    }
    return 0;
  };
}

}  // namespace medlens::cli
