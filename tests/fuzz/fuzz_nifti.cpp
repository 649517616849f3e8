// libFuzzer target: NIfTI-1/-2 decoding (plain and gzip'd) from memory. Only medlens::Error is
// expected; anything else (a crash, a sanitizer report, another exception) is a bug.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "io/nifti.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    medlens::decode_nifti_memory(data, size, "fuzz.nii");
  } catch (const medlens::Error&) {
  }
  return 0;
}
