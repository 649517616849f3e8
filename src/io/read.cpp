#include "io/read.h"

#include <cmath>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/image.h"
#include "io/file_util.h"

namespace fs = std::filesystem;

namespace medlens {

bool is_whole_slide(const std::string& path);  // io/wsi.cpp

const char* format_name(Format f) {
  switch (f) {
    case Format::kDicom: return "dicom";
    case Format::kDicomFolder: return "dicom-folder";
    case Format::kNifti: return "nifti";
    case Format::kNrrd: return "nrrd";
    case Format::kMetaImage: return "metaimage";
    case Format::kRaster: return "raster";
    case Format::kNpz: return "npz";
    case Format::kWsi: return "wsi";
    case Format::kUnknown: break;
  }
  return "unknown";
}

namespace {
bool starts_with(const std::vector<uint8_t>& b, const char* magic, size_t len, size_t at = 0) {
  return b.size() >= at + len && std::memcmp(b.data() + at, magic, len) == 0;
}
}  // namespace

Format detect_format(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw InputError(path, "no such file or folder");
  if (fs::is_directory(path, ec)) return Format::kDicomFolder;
  const auto head = read_file_head(path, 552);
  const std::string ext = extension_of(path);
  if (starts_with(head, "DICM", 4, 128)) return Format::kDicom;
  if (starts_with(head, "n+1\0", 4, 344) || starts_with(head, "ni1\0", 4, 344) ||
      starts_with(head, "n+2\0", 4, 4))
    return Format::kNifti;
  if (starts_with(head, "\x1f\x8b", 2) && (ext == ".nii.gz" || ext == ".gz")) return Format::kNifti;
  if (starts_with(head, "NRRD", 4)) return Format::kNrrd;
  if (starts_with(head, "PK\x03\x04", 4) || starts_with(head, "PK\x05\x06", 4))
    return ext == ".npz" ? Format::kNpz : Format::kUnknown;
  const bool tiff = starts_with(head, "II*\0", 4) || starts_with(head, "MM\0*", 4) ||
                    starts_with(head, "II+\0", 4) || starts_with(head, "MM\0+", 4);
  static const char* kSlideExt[] = {".svs", ".ndpi", ".scn", ".mrxs", ".vms", ".vmu", ".bif",
                                    ".svslide"};
  for (const char* e : kSlideExt)
    if (ext == e) return Format::kWsi;
  if (tiff) return is_whole_slide(path) ? Format::kWsi : Format::kRaster;
  if (starts_with(head, "\x89PNG", 4) || starts_with(head, "\xff\xd8\xff", 3) ||
      starts_with(head, "BM", 2))
    return Format::kRaster;
  if (ext == ".mha" || ext == ".mhd") return Format::kMetaImage;
  if (ext == ".nrrd" || ext == ".nhdr") return Format::kNrrd;
  if (ext == ".nii" || ext == ".hdr") return Format::kNifti;
  if (ext == ".npz") return Format::kNpz;
  if (ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp" || ext == ".tif" ||
      ext == ".tiff")
    return Format::kRaster;
  // DICOM without the 128-byte preamble (old ACR-NEMA style): starts with a group 0002 or
  // 0008 element in little endian.
  if (ext == ".dcm" || ext.empty() || starts_with(head, "\x08\x00", 2) ||
      starts_with(head, "\x02\x00", 2))
    return Format::kDicom;
  return Format::kUnknown;
}

void check_voxels(const VoxelBuffer& b, const std::string& path, bool allow_non_finite) {
  if (b.shape.elements() <= 0) throw InputError(path, "image has no voxels");
  if (static_cast<int64_t>(b.data.size()) != b.shape.elements())
    throw InputError(path, "decoded voxel count does not match the image size");
  std::string why;
  if (!b.geometry.valid(&why)) throw InputError(path, why);
  if (!allow_non_finite) {
    int64_t bad = 0;
    for (float v : b.data) bad += !std::isfinite(v);
    if (bad > 0)
      throw InputError(path, std::to_string(bad) + " voxel(s) are NaN or infinite");
  }
}

VoxelBuffer read_voxels(const std::string& path, const ReadOptions& options) {
  VoxelBuffer b;
  const Format f = detect_format(path);
  // Options meant for another kind of input are refused rather than silently ignored: a user
  // who asked for a region or a series must not get the whole image without a word.
  if (f != Format::kUnknown) {
    if (f != Format::kWsi && (options.wsi_level != -1 || options.wsi_region))
      throw UsageError(path + ": a pyramid level or region applies to whole-slide images; this input reads as " +
                       format_name(f));
    if (f != Format::kDicomFolder && !options.series.empty())
      throw UsageError(path + ": choosing a series applies to a folder of DICOM files; this input reads as " + format_name(f));
    if (f != Format::kNpz && (!options.npz_key.empty() || options.npz_index != 0))
      throw UsageError(path + ": an array name or index applies to .npz files; this input reads as " + format_name(f));
  }
  switch (f) {
    case Format::kDicom: b = read_dicom_file(path, options); break;
    case Format::kDicomFolder: b = read_dicom_folder(path, options); break;
    case Format::kNifti: b = read_nifti(path, options); break;
    case Format::kNrrd:
    case Format::kMetaImage: b = read_itk(path, options); break;
    case Format::kRaster: b = read_raster(path, options); break;
    case Format::kNpz: b = read_npz(path, options); break;
    case Format::kWsi: b = read_wsi(path, options); break;
    case Format::kUnknown: throw InputError(path, "unrecognised file format");
  }
  if (b.metadata.source_path.empty()) b.metadata.source_path = path;
  if (b.metadata.source_format.empty()) b.metadata.source_format = format_name(f);
  check_voxels(b, path, options.allow_non_finite);
  return b;
}

Image read_image(const std::string& path, const ReadOptions& options) {
  return Image::from_buffer(read_voxels(path, options));
}

}  // namespace medlens
