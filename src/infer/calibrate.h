// Temperature scaling (Guo et al. 2017): one scalar T, fitted on validation logits by
// minimising the negative log-likelihood, divides every logit. Accuracy is unchanged (arg-max
// is invariant); confidence becomes honest.
#pragma once

namespace at {
class Tensor;
}

namespace medlens {

/// T > 0 minimising the mean NLL of softmax(logits / T) for `labels` (N,), over T in
/// [0.05, 20] by golden-section search on log T.
double fit_temperature(const at::Tensor& logits, const at::Tensor& labels);

}  // namespace medlens
