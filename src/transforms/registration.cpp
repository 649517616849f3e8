#include "transforms/registration.h"

#include <ATen/ATen.h>
#include <itkAffineTransform.h>
#include <itkCenteredTransformInitializer.h>
#include <itkCommand.h>
#include <itkEuler2DTransform.h>
#include <itkEuler3DTransform.h>
#include <itkImageRegistrationMethodv4.h>
#include <itkLinearInterpolateImageFunction.h>
#include <itkMattesMutualInformationImageToImageMetricv4.h>
#include <itkRegistrationParameterScalesFromPhysicalShift.h>
#include <itkRegularStepGradientDescentOptimizerv4.h>
#include <itkResampleImageFilter.h>

#include <cstring>
#include <string>

#include "core/error.h"
#include "io/itk_bridge.h"

namespace medlens {
namespace {

template <unsigned D>
struct RigidOf;
template <>
struct RigidOf<2> { using type = itk::Euler2DTransform<double>; };
template <>
struct RigidOf<3> { using type = itk::Euler3DTransform<double>; };

template <typename ItkImage>
typename ItkImage::Pointer view(const Image& image, int64_t channel) {
  if constexpr (ItkImage::ImageDimension == 3) return to_itk3(image, channel);
  else return to_itk2(image, 0, channel);
}

// Counts optimiser iterations over all levels.
class IterationCounter : public itk::Command {
 public:
  using Self = IterationCounter;
  using Pointer = itk::SmartPointer<Self>;
  itkNewMacro(Self)
  void Execute(itk::Object*, const itk::EventObject& event) override {
    if (itk::IterationEvent().CheckEvent(&event)) ++count;
  }
  void Execute(const itk::Object*, const itk::EventObject& event) override {
    if (itk::IterationEvent().CheckEvent(&event)) ++count;
  }
  int count = 0;
};

template <typename ItkImage, typename Transform>
RegistrationResult run(const Image& fixed, const Image& moving, const RegistrationOptions& o) {
  constexpr unsigned kDim = ItkImage::ImageDimension;
  const auto f = view<ItkImage>(fixed, 0);
  const auto m = view<ItkImage>(moving, 0);

  auto transform = Transform::New();
  auto init = itk::CenteredTransformInitializer<Transform, ItkImage, ItkImage>::New();
  init->SetTransform(transform);
  init->SetFixedImage(f);
  init->SetMovingImage(m);
  init->GeometryOn();  // intensity moments mean nothing across modalities
  init->InitializeTransform();

  using Metric = itk::MattesMutualInformationImageToImageMetricv4<ItkImage, ItkImage>;
  auto metric = Metric::New();
  metric->SetNumberOfHistogramBins(static_cast<unsigned>(o.histogram_bins));
  metric->SetUseMovingImageGradientFilter(false);
  metric->SetUseFixedImageGradientFilter(false);

  // Scales from physical shifts: one step moves every parameter by a similar distance in mm.
  auto scales = itk::RegistrationParameterScalesFromPhysicalShift<Metric>::New();
  scales->SetMetric(metric);
  using Optimizer = itk::RegularStepGradientDescentOptimizerv4<double>;
  auto optimizer = Optimizer::New();
  optimizer->SetScalesEstimator(scales);
  optimizer->SetLearningRate(o.learning_rate);
  optimizer->SetMinimumStepLength(o.min_step);
  optimizer->SetRelaxationFactor(0.5);
  optimizer->SetNumberOfIterations(static_cast<itk::SizeValueType>(o.iterations));
  optimizer->SetReturnBestParametersAndValue(true);
  auto counter = IterationCounter::New();
  optimizer->AddObserver(itk::IterationEvent(), counter);

  using Method = itk::ImageRegistrationMethodv4<ItkImage, ItkImage, Transform>;
  auto method = Method::New();
  method->SetFixedImage(f);
  method->SetMovingImage(m);
  method->SetMetric(metric);
  method->SetOptimizer(optimizer);
  method->SetInitialTransform(transform);
  method->InPlaceOn();
  const auto levels = static_cast<unsigned>(o.shrink.size());
  typename Method::ShrinkFactorsArrayType shrink(levels);
  typename Method::SmoothingSigmasArrayType sigmas(levels);
  for (unsigned l = 0; l < levels; ++l) {
    shrink[l] = static_cast<itk::SizeValueType>(o.shrink[l]);
    sigmas[l] = o.shrink[l] / 2.0;
  }
  method->SetNumberOfLevels(levels);
  method->SetShrinkFactorsPerLevel(shrink);
  method->SetSmoothingSigmasPerLevel(sigmas);
  method->SmoothingSigmasAreSpecifiedInPhysicalUnitsOff();
  method->SetMetricSamplingStrategy(Method::MetricSamplingStrategyType::RANDOM);
  method->SetMetricSamplingPercentage(o.sampling);
  method->MetricSamplingReinitializeSeed(static_cast<int>(o.seed));
  try {
    method->Update();
  } catch (const itk::ExceptionObject& e) {
    throw InputError(fixed.metadata().source_path, std::string("registration failed: ") + e.GetDescription());
  }

  RegistrationResult r;
  const auto& matrix = transform->GetMatrix();
  const auto& offset = transform->GetOffset();
  for (unsigned i = 0; i < kDim; ++i) {
    r.offset[i] = offset[i];
    for (unsigned j = 0; j < kDim; ++j) r.matrix[i * 3 + j] = matrix(i, j);
  }
  r.final_metric = optimizer->GetValue();
  r.iterations = counter->count;

  // Every channel of the moving image onto the fixed grid.
  const Shape& fs = fixed.shape();
  at::Tensor out = at::empty({moving.channels(), fs.z, fs.y, fs.x}, at::kFloat);
  for (int64_t c = 0; c < moving.channels(); ++c) {
    auto resample = itk::ResampleImageFilter<ItkImage, ItkImage>::New();
    resample->SetInput(view<ItkImage>(moving, c));
    resample->SetTransform(transform);
    resample->SetOutputParametersFromImage(f);
    resample->SetInterpolator(itk::LinearInterpolateImageFunction<ItkImage, double>::New());
    resample->SetDefaultPixelValue(0);
    resample->Update();
    std::memcpy(out.data_ptr<float>() + c * fs.voxels(), resample->GetOutput()->GetBufferPointer(),
                static_cast<size_t>(fs.voxels()) * sizeof(float));
  }
  r.resampled_moving = Image(out, fixed.geometry(), moving.metadata());
  return r;
}

void check_inputs(const Image& fixed, const Image& moving, const RegistrationOptions& o) {
  if (o.histogram_bins < 5) throw UsageError("registration: histogram_bins must be >= 5");
  if (!(o.sampling > 0 && o.sampling <= 1)) throw UsageError("registration: sampling must lie in (0, 1]");
  if (o.iterations < 1) throw UsageError("registration: iterations must be >= 1");
  if (o.shrink.empty()) throw UsageError("registration: the pyramid needs at least one level");
  if (!(o.learning_rate > 0) || !(o.min_step > 0)) throw UsageError("registration: steps must be positive");
  for (const Image* im : {&fixed, &moving}) {
    const std::string& path = im->metadata().source_path;
    if (im->empty()) throw InputError(path, "registration: the image is empty");
    const auto [lo, hi] = value_range(*im);
    if (!(hi > lo)) throw InputError(path, "registration: the image is constant");
    for (int s : o.shrink) {
      if (s < 1) throw UsageError("registration: shrink factors must be >= 1");
      const int64_t smallest = im->is_3d() ? std::min({im->width(), im->height(), im->depth()})
                                           : std::min(im->width(), im->height());
      if (smallest / s < 4)
        throw InputError(path, "registration: shrink " + std::to_string(s) +
                                   " leaves fewer than 4 voxels along an axis");
    }
  }
  if (fixed.is_3d() != moving.is_3d())
    throw InputError(moving.metadata().source_path, "registration: one image is 2-D and the other 3-D");
}

}  // namespace

Vec3 RegistrationResult::map(const Vec3& p) const {
  Vec3 q = offset;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) q[i] += matrix[i * 3 + j] * p[j];
  return q;
}

RegistrationResult register_images(const Image& fixed, const Image& moving, const RegistrationOptions& o) {
  check_inputs(fixed, moving, o);
  const bool affine = o.kind == RegistrationOptions::kAffine;
  if (fixed.is_3d())
    return affine ? run<ItkImage3, itk::AffineTransform<double, 3>>(fixed, moving, o)
                  : run<ItkImage3, RigidOf<3>::type>(fixed, moving, o);
  return affine ? run<ItkImage2, itk::AffineTransform<double, 2>>(fixed, moving, o)
                : run<ItkImage2, RigidOf<2>::type>(fixed, moving, o);
}

}  // namespace medlens
