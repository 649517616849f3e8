// Transforms of the denoise family (being written).
#include "transforms/registry.h"

namespace medlens {

void register_denoise(TransformRegistry& r) { (void)r; }

}  // namespace medlens
