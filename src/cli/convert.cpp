// medlens convert IN OUT [--window C,W]: any readable image to any writable format.
#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"
#include "core/image.h"
#include "io/read.h"
#include "io/write.h"

namespace medlens::cli {

Run add_convert(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "convert", "Convert an image: NIfTI, MetaImage, NRRD, PNG/JPEG/TIFF/BMP, DICOM file or "
                 "series folder (OUT ending in /)");
  struct Args {
    std::string in, out, window, modality, series, region;
    bool allow_irregular = false;
    int level = -1;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("IN", args->in, "Input image file or DICOM folder")->required();
  cmd->add_option("OUT", args->out, "Output file; a path ending in / writes a DICOM series")->required();
  cmd->add_option("--window", args->window, "Display window C,W for 8-bit outputs (e.g. 40,400)");
  cmd->add_option("--modality", args->modality, "DICOM output: MR, CT or SC");
  cmd->add_option("--series", args->series, "Folder input: series UID or 1-based index");
  cmd->add_flag("--allow-irregular", args->allow_irregular,
                "Read a series with missing slices or uneven spacing anyway");
  cmd->add_option("--level", args->level, "Whole-slide input: pyramid level");
  cmd->add_option("--region", args->region, "Whole-slide input: region X,Y,W,H in the level's pixels");
  return [args]() {
    WriteOptions w;
    if (!args->window.empty()) {
      double c = 0, width = 0;
      char tail = 0;
      if (std::sscanf(args->window.c_str(), "%lf,%lf%c", &c, &width, &tail) != 2 || !(width > 0))
        throw UsageError("--window expects CENTER,WIDTH with WIDTH > 0, got '" + args->window + "'");
      w.window = Window{c, width};
    }
    w.dicom_modality = args->modality;
    ReadOptions r;
    r.series = args->series;
    r.allow_irregular_series = args->allow_irregular;
    r.wsi_level = args->level;
    if (!args->region.empty()) {
      long long x = 0, y = 0, w = 0, h = 0;
      char tail = 0;
      if (std::sscanf(args->region.c_str(), "%lld,%lld,%lld,%lld%c", &x, &y, &w, &h, &tail) != 4 || w <= 0 || h <= 0)
        throw UsageError("--region expects X,Y,W,H with positive W and H, got '" + args->region + "'");
      r.wsi_region = std::array<int64_t, 4>{x, y, w, h};
    }
    const Image image = read_image(args->in, r);
    write_image(image, args->out, w);
    std::printf("wrote %s\n", args->out.c_str());
    return 0;
  };
}

}  // namespace medlens::cli
