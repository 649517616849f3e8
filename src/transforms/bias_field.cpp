#include "transforms/bias_field.h"

#include <ATen/ATen.h>
#include <itkLinearInterpolateImageFunction.h>
#include <itkN4BiasFieldCorrectionImageFilter.h>
#include <itkNearestNeighborExtrapolateImageFunction.h>
#include <itkOtsuThresholdImageFilter.h>
#include <itkResampleImageFilter.h>
#include <itkShrinkImageFilter.h>

#include <cmath>
#include <string>

#include "core/error.h"
#include "io/itk_bridge.h"
#include "transforms/base.h"
#include "transforms/params.h"
#include "transforms/registry.h"

namespace medlens {
namespace {

// Corrects one channel (an ITK view of it) into `out`.
template <typename ItkImage>
void n4_channel(const typename ItkImage::Pointer& in, float* out, const N4Options& o, const std::string& path) {
  constexpr unsigned kDim = ItkImage::ImageDimension;
  using Mask = itk::Image<unsigned char, kDim>;
  auto shrinker = itk::ShrinkImageFilter<ItkImage, ItkImage>::New();
  shrinker->SetInput(in);
  shrinker->SetShrinkFactors(static_cast<unsigned>(o.shrink_));
  shrinker->Update();
  typename ItkImage::Pointer small = shrinker->GetOutput();

  // Foreground: above Otsu's threshold (ITK's "inside" is below it) and positive, since N4
  // works on the log of the intensities.
  typename Mask::Pointer mask;
  if (o.otsu_mask_) {
    auto otsu = itk::OtsuThresholdImageFilter<ItkImage, Mask>::New();
    otsu->SetInput(small);
    otsu->SetInsideValue(0);
    otsu->SetOutsideValue(1);
    otsu->Update();
    mask = otsu->GetOutput();
  } else {
    mask = Mask::New();
    mask->CopyInformation(small);
    mask->SetRegions(small->GetLargestPossibleRegion());
    mask->Allocate();
    mask->FillBuffer(1);
  }
  const float* v = small->GetBufferPointer();
  unsigned char* m = mask->GetBufferPointer();
  const size_t n = small->GetBufferedRegion().GetNumberOfPixels();
  size_t count = 0;
  for (size_t i = 0; i < n; ++i) {
    m[i] = m[i] && v[i] > 0 ? 1 : 0;
    count += m[i];
  }
  if (count < 64)
    throw InputError(path, "'n4' found " + std::to_string(count) +
                               " foreground voxels at shrink " + std::to_string(o.shrink_) +
                               "; it needs positive intensities (e.g. MRI) and enough of them");

  using N4 = itk::N4BiasFieldCorrectionImageFilter<ItkImage, Mask, ItkImage>;
  auto n4 = N4::New();
  n4->SetInput(small);
  n4->SetMaskImage(mask);
  typename N4::VariableSizeArrayType iterations(static_cast<unsigned>(o.iterations_.size()));
  for (size_t i = 0; i < o.iterations_.size(); ++i) iterations[static_cast<unsigned>(i)] = static_cast<unsigned>(o.iterations_[i]);
  n4->SetMaximumNumberOfIterations(iterations);
  typename N4::ArrayType levels, points;
  levels.Fill(static_cast<unsigned>(o.iterations_.size()));
  points.Fill(static_cast<unsigned>(o.control_points_));
  n4->SetNumberOfFittingLevels(levels);
  n4->SetNumberOfControlPoints(points);
  n4->SetConvergenceThreshold(o.convergence_);
  n4->SetNumberOfHistogramBins(static_cast<unsigned>(o.bins_));
  n4->Update();

  // The log field on the shrunk grid, interpolated to every voxel of the input.
  auto log_field = n4->ReconstructBiasField(n4->GetLogBiasFieldControlPointLattice());
  using Real = typename N4::RealImageType;
  auto resample = itk::ResampleImageFilter<Real, Real>::New();
  resample->SetInput(log_field);
  resample->SetOutputParametersFromImage(in);
  resample->SetInterpolator(itk::LinearInterpolateImageFunction<Real, double>::New());
  resample->SetExtrapolator(itk::NearestNeighborExtrapolateImageFunction<Real, double>::New());
  resample->Update();
  const float* field = resample->GetOutput()->GetBufferPointer();
  const float* full = in->GetBufferPointer();
  const size_t total = in->GetBufferedRegion().GetNumberOfPixels();
  for (size_t i = 0; i < total; ++i) out[i] = full[i] / std::exp(field[i]);
}

class N4Correction final : public IntensityTransform {
 public:
  explicit N4Correction(N4Options o) : o_(std::move(o)) {
    if (o_.shrink_ < 1) throw UsageError("'n4': shrink must be >= 1");
    if (o_.iterations_.empty()) throw UsageError("'n4': iterations needs at least one level");
    for (int it : o_.iterations_)
      if (it < 1) throw UsageError("'n4': iterations must be >= 1 per level");
    if (!(o_.convergence_ >= 0)) throw UsageError("'n4': convergence must be >= 0");
    if (o_.control_points_ < 4) throw UsageError("'n4': control_points must be >= 4 (spline order 3 + 1)");
    if (o_.bins_ < 2) throw UsageError("'n4': bins must be >= 2");
  }
  std::string name() const override { return "n4"; }
  nlohmann::json params() const override {
    return {{"shrink", o_.shrink_}, {"iterations", o_.iterations_}, {"convergence", o_.convergence_},
            {"control_points", o_.control_points_}, {"bins", o_.bins_}, {"otsu_mask", o_.otsu_mask_}};
  }

 protected:
  Image transform_image(const Image& image) const override {
    at::Tensor out = at::empty_like(image.voxels());
    const int64_t n = image.shape().voxels();
    const std::string& path = image.metadata().source_path;
    for (int64_t c = 0; c < image.channels(); ++c) {
      float* dst = out.data_ptr<float>() + c * n;
      if (image.is_3d()) n4_channel<ItkImage3>(to_itk3(image, c), dst, o_, path);
      else n4_channel<ItkImage2>(to_itk2(image, 0, c), dst, o_, path);
    }
    return image.with_voxels(out);
  }

 private:
  N4Options o_;
};

}  // namespace

TransformPtr make_n4(const N4Options& o) { return std::make_shared<N4Correction>(o); }

void register_bias_field(TransformRegistry& r) {
  r.add("n4", "intensity",
        "N4 bias-field correction (ITK): shrink=4, iterations=50;50;50;50 (one per level), convergence=0.001, "
        "control_points=4, bins=200, otsu_mask=true",
        [](const nlohmann::json& j) {
          ParamReader p("n4", j);
          N4Options o;
          o.shrink(p.count("shrink", 4))
              .convergence(p.number("convergence", 0.001))
              .control_points(p.count("control_points", 4))
              .bins(p.count("bins", 200))
              .otsu_mask(p.boolean("otsu_mask", true));
          std::vector<int> its;
          for (double v : p.numbers("iterations", {50, 50, 50, 50})) {
            if (v != std::floor(v)) throw UsageError("'n4': iterations must be whole numbers");
            its.push_back(static_cast<int>(v));
          }
          o.iterations(its);
          p.finish();
          return make_n4(o);
        });
}

}  // namespace medlens
