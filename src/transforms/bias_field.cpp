// Transforms of the bias_field family (being written).
#include "transforms/registry.h"

namespace medlens {

void register_bias_field(TransformRegistry& r) { (void)r; }

}  // namespace medlens
