// libFuzzer target: the DICOM reader must turn any byte string into an image or an
// InputError, never a crash, a leak or undefined behaviour. The bytes go through a file so the
// fuzzer exercises exactly the path users take (DCMTK loads large values lazily from files).
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "fuzz_input_file.h"
#include "io/read.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = medlens::fuzz::input_file(data, size, ".dcm");
  if (path.empty()) return 0;
  try {
    medlens::read_dicom_file(path);
  } catch (const medlens::Error&) {
  }
  return 0;
}
