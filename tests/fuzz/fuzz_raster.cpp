// libFuzzer target for the PNG/JPEG/TIFF/BMP reader: medlens's own header and truncation checks
// (PNG chunks, JPEG markers, TIFF IFDs, BMP headers), then OpenCV's codecs on what passes them.
// Any byte string must give an image or an InputError, never a crash, a leak or undefined
// behaviour. The bytes go through a file, the path users take.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "fuzz_input_file.h"
#include "io/read.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = medlens::fuzz::input_file(data, size, ".png");
  if (path.empty()) return 0;
  try {
    medlens::read_raster(path);
  } catch (const medlens::Error&) {
  }
  return 0;
}
