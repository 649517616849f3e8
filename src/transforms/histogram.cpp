// Transforms of the histogram family (being written).
#include "transforms/registry.h"

namespace medlens {

void register_histogram(TransformRegistry& r) { (void)r; }

}  // namespace medlens
