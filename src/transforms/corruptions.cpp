// Transforms of the corruptions family (being written).
#include "transforms/registry.h"

namespace medlens {

void register_corruptions(TransformRegistry& r) { (void)r; }

}  // namespace medlens
