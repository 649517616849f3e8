#include "infer/calibrate.h"

#include <ATen/ATen.h>

#include <cmath>

namespace medlens {

double fit_temperature(const at::Tensor& logits, const at::Tensor& labels) {
  const at::Tensor z = logits.detach().to(at::kDouble);
  auto nll = [&](double log_t) {
    return at::cross_entropy_loss(z / std::exp(log_t), labels).item<double>();
  };
  // NLL is unimodal in log T for a fixed set of logits: golden-section search.
  double a = std::log(0.05), b = std::log(20.0);
  const double g = (std::sqrt(5.0) - 1) / 2;
  double c = b - g * (b - a), d = a + g * (b - a);
  double fc = nll(c), fd = nll(d);
  for (int i = 0; i < 80 && b - a > 1e-6; ++i) {
    if (fc < fd) {
      b = d, d = c, fd = fc;
      c = b - g * (b - a);
      fc = nll(c);
    } else {
      a = c, c = d, fc = fd;
      d = a + g * (b - a);
      fd = nll(d);
    }
  }
  return std::exp((a + b) / 2);
}

}  // namespace medlens
