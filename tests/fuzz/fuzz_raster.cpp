// libFuzzer target for the PNG/JPEG/TIFF/BMP reader: medlens's own header and truncation checks
// (PNG chunks, JPEG markers, TIFF IFDs, BMP headers), then OpenCV's codecs on what passes them.
// Any byte string must give an image or an InputError, never a crash, a leak or undefined
// behaviour. The bytes go through a file, the path users take.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "core/error.h"
#include "io/read.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/dev/shm/medlens-fuzz-" + std::to_string(::getpid()) + ".png";
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  try {
    medlens::read_raster(path);
  } catch (const medlens::Error&) {
  }
  return 0;
}
