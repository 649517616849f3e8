// libFuzzer target: the DICOM reader must turn any byte string into an image or an
// InputError, never a crash, a leak or undefined behaviour. The bytes go through a file so the
// fuzzer exercises exactly the path users take (DCMTK loads large values lazily from files).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "core/error.h"
#include "io/read.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/dev/shm/medlens-fuzz-" + std::to_string(::getpid()) + ".dcm";
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  try {
    medlens::read_dicom_file(path);
  } catch (const medlens::Error&) {
  }
  return 0;
}
