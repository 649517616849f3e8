// Transforms of the morphology family (being written).
#include "transforms/registry.h"

namespace medlens {

void register_morphology(TransformRegistry& r) { (void)r; }

}  // namespace medlens
