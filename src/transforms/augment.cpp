// Transforms of the augment family (being written).
#include "transforms/registry.h"

namespace medlens {

void register_augment(TransformRegistry& r) { (void)r; }

}  // namespace medlens
