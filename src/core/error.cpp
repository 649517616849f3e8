#include "core/error.h"

namespace medlens {

int exit_status(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kBadUsage: return 2;
    case ErrorKind::kBadInput: return 3;
    case ErrorKind::kInternal: return 1;
  }
  return 1;
}

}  // namespace medlens
