// libFuzzer target for the .npz reader: zip directory, zip64 fields, inflate, CRC, .npy
// header and the image selection. Anything but a medlens::Error escaping is a bug.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "io/npz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    medlens::list_npz_memory(data, size, "fuzz.npz");
  } catch (const medlens::Error&) {
  }
  // The default array, then a later image of a stack (exercises skipping and Fortran order).
  for (int64_t index : {0, 1}) {
    try {
      medlens::decode_npz_memory(data, size, "fuzz.npz", "", index);
    } catch (const medlens::Error&) {
    }
  }
  return 0;
}
