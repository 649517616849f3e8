// Perturbation-based attributions (being written).
#include "explain/methods.h"

namespace medlens::explain_detail {

void add_perturbation_methods(std::vector<std::pair<std::string, Method>>& table) { (void)table; }

}  // namespace medlens::explain_detail
