# Every third-party dependency is found here once and exposed as an INTERFACE target, so a stage
# states which heavy headers it needs (LibTorch, ITK, DCMTK) and nothing else pays for them.

find_package(Threads REQUIRED)
find_package(ZLIB REQUIRED)
find_package(OpenSSL REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(spdlog REQUIRED)

# LibTorch (Debian's libtorch-dev). Torch's own config pulls CUDA probes we do not need; the
# library and headers are at fixed Debian paths, so declare them directly.
find_library(TORCH_LIB torch REQUIRED)
find_library(TORCH_CPU_LIB torch_cpu REQUIRED)
find_library(C10_LIB c10 REQUIRED)
add_library(medlens_torch INTERFACE)
target_include_directories(medlens_torch SYSTEM INTERFACE /usr/include /usr/include/torch/csrc/api/include)
target_link_libraries(medlens_torch INTERFACE ${TORCH_LIB} ${TORCH_CPU_LIB} ${C10_LIB})
target_compile_definitions(medlens_torch INTERFACE _GLIBCXX_USE_CXX11_ABI=1)

# OpenCV's codecs read PNG/JPEG/TIFF/BMP, so the fuzz build needs it too (uninstrumented).
find_package(OpenCV REQUIRED COMPONENTS core imgproc imgcodecs photo)
add_library(medlens_opencv INTERFACE)
target_include_directories(medlens_opencv SYSTEM INTERFACE ${OpenCV_INCLUDE_DIRS})
target_link_libraries(medlens_opencv INTERFACE ${OpenCV_LIBS})

if(NOT MEDLENS_FUZZ)
  find_package(CLI11 REQUIRED)

  find_package(ITK 5.2 REQUIRED COMPONENTS ITKCommon ITKIOImageBase ITKIONRRD ITKIOMeta
               ITKAnisotropicSmoothing ITKBiasCorrection ITKImageGrid ITKMetricsv4 ITKOptimizersv4
               ITKRegistrationMethodsv4 ITKSmoothing ITKStatistics ITKThresholding ITKTransform)
  add_library(medlens_itk INTERFACE)
  target_include_directories(medlens_itk SYSTEM INTERFACE ${ITK_INCLUDE_DIRS})
  target_link_libraries(medlens_itk INTERFACE ${ITK_LIBRARIES})

  find_package(GDCM REQUIRED)
  add_library(medlens_gdcm INTERFACE)
  target_include_directories(medlens_gdcm SYSTEM INTERFACE ${GDCM_INCLUDE_DIRS})
  target_link_libraries(medlens_gdcm INTERFACE gdcmMSFF gdcmDSED gdcmCommon)

  find_package(PkgConfig REQUIRED)
  pkg_check_modules(OPENSLIDE REQUIRED IMPORTED_TARGET openslide)
endif()

find_package(DCMTK REQUIRED NO_MODULE)
add_library(medlens_dcmtk INTERFACE)
target_include_directories(medlens_dcmtk SYSTEM INTERFACE ${DCMTK_INCLUDE_DIRS})
target_link_libraries(medlens_dcmtk INTERFACE DCMTK::dcmdata DCMTK::dcmjpeg DCMTK::dcmjpls DCMTK::ofstd DCMTK::oflog)
