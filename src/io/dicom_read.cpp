// DICOM reading with DCMTK (all transfer syntaxes its codecs decode) and GDCM (JPEG 2000).
// Pixels are decoded here from the raw stored values so that every rule is explicit:
// BitsStored masking, signedness, MONOCHROME1 inversion, YBR to RGB, rescale, multi-frame.

#ifndef MEDLENS_NO_GDCM
#include <gdcmImageReader.h>
#include <gdcmTrace.h>
#endif

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>

#include <dcmtk/dcmdata/dcpxitem.h>

#include "core/error.h"
#include "core/parallel.h"
#include "io/dicom.h"
#include "io/dicom_common.h"
#include "io/read.h"

namespace fs = std::filesystem;

namespace medlens {
using namespace dicom;

namespace {

constexpr double kPi = 3.14159265358979323846;

// ---------------------------------------------------------------------------------------------
// Pixel layout and decoding

struct PixelLayout {
  int64_t rows = 0, cols = 0, frames = 1;
  int spp = 1, bits_allocated = 0, bits_stored = 0, high_bit = 0;
  bool is_signed = false;
  int planar = 0;
  std::string photometric;
  int float_bytes = 0;  // 4 or 8 for Float/DoubleFloatPixelData, else 0
  int64_t values() const { return rows * cols * frames * spp; }
};

struct Rescale {
  double slope = 1.0, intercept = 0.0;
};

// Reads an unsigned integer of `width` bytes in the given byte order.
inline uint64_t load_uint(const uint8_t* p, int width, bool big_endian) {
  uint64_t v = 0;
  if (big_endian)
    for (int i = 0; i < width; ++i) v = (v << 8) | p[i];
  else
    for (int i = width - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Stored value range of the layout, used for MONOCHROME1 inversion.
std::pair<int64_t, int64_t> stored_range(const PixelLayout& L) {
  if (L.is_signed) return {-(int64_t{1} << (L.bits_stored - 1)), (int64_t{1} << (L.bits_stored - 1)) - 1};
  return {0, (int64_t{1} << L.bits_stored) - 1};
}

// Refuses pixel data shorter than the layout needs. Called before anything per frame or per
// pixel is allocated: a 1-pixel, 100-million-frame header over a few bytes is otherwise minutes
// of per-frame work and gigabytes before the shortfall shows.
void require_pixel_bytes(size_t n_bytes, const PixelLayout& L, const std::string& path) {
  const int64_t frame_pixels = L.rows * L.cols;
  const int64_t total = L.values();
  const bool ybr422 = L.photometric == "YBR_FULL_422" && L.spp == 3;
  size_t needed = 0;
  if (L.bits_allocated == 1) {
    needed = static_cast<size_t>((total + 7) / 8);
  } else if (ybr422) {
    needed = static_cast<size_t>(frame_pixels * 2 * L.frames * (L.bits_allocated / 8));
  } else {
    needed = static_cast<size_t>(total * (L.float_bytes ? L.float_bytes : L.bits_allocated / 8));
  }
  if (n_bytes < needed)
    throw InputError(path, "pixel data is truncated: " + std::to_string(n_bytes) + " bytes, " +
                               std::to_string(needed) + " expected for " +
                               std::to_string(L.cols) + "x" + std::to_string(L.rows) + "x" +
                               std::to_string(L.frames) + " pixels");
}

// Decodes `bytes` (file byte order given by big_endian) into float values in (C,Z,Y,X) order,
// applying masking, sign, inversion and per-frame rescale. YBR is converted to RGB after.
// The caller has checked the size with require_pixel_bytes.
void decode_values(const uint8_t* bytes, bool big_endian, const PixelLayout& L,
                   const std::vector<Rescale>& rescale, bool invert, const std::string& path,
                   float* out) {
  const int64_t frame_pixels = L.rows * L.cols;
  const int64_t total = L.values();
  const bool ybr422 = L.photometric == "YBR_FULL_422" && L.spp == 3;

  // Plain variables, not a structured binding: lambdas below capture them.
  const std::pair<int64_t, int64_t> range = stored_range(L);
  const int64_t lo = range.first, hi = range.second;
  const int shift = std::max(0, L.high_bit + 1 - L.bits_stored);
  const uint64_t mask = L.bits_stored >= 64 ? ~uint64_t{0} : ((uint64_t{1} << L.bits_stored) - 1);
  auto convert = [&](int64_t v, int64_t frame) -> float {
    if (invert) v = lo + hi - v;
    const Rescale& r = rescale[static_cast<size_t>(std::min<int64_t>(frame, rescale.size() - 1))];
    return static_cast<float>(static_cast<double>(v) * r.slope + r.intercept);
  };
  auto integer_at = [&](int64_t index) -> int64_t {  // sample `index` in stored order
    const int width = L.bits_allocated / 8;
    uint64_t raw = load_uint(bytes + index * width, width, big_endian);
    raw = (raw >> shift) & mask;
    int64_t v = static_cast<int64_t>(raw);
    if (L.is_signed && L.bits_stored < 64 && (raw >> (L.bits_stored - 1)) & 1)
      v -= int64_t{1} << L.bits_stored;
    return v;
  };

  if (L.float_bytes) {
    for (int64_t i = 0; i < total; ++i) {
      const uint64_t raw = load_uint(bytes + i * L.float_bytes, L.float_bytes, big_endian);
      double v;
      if (L.float_bytes == 4) {
        uint32_t r32 = static_cast<uint32_t>(raw);
        float f;
        std::memcpy(&f, &r32, 4);
        v = f;
      } else {
        std::memcpy(&v, &raw, 8);
      }
      // Stored order is interleaved when spp > 1 and planar == 0.
      const int64_t frame = i / (frame_pixels * L.spp);
      const int64_t within = i % (frame_pixels * L.spp);
      const int64_t c = L.planar ? within / frame_pixels : within % L.spp;
      const int64_t p = L.planar ? within % frame_pixels : within / L.spp;
      const Rescale& r = rescale[static_cast<size_t>(std::min<int64_t>(frame, rescale.size() - 1))];
      out[static_cast<size_t>((c * L.frames + frame) * frame_pixels + p)] =
          static_cast<float>(v * r.slope + r.intercept);
    }
    return;
  }

  if (L.bits_allocated == 1) {
    for (int64_t i = 0; i < total; ++i) {
      const int64_t bit = (bytes[i / 8] >> (i % 8)) & 1;
      const int64_t frame = i / (frame_pixels * L.spp);
      const int64_t within = i % (frame_pixels * L.spp);
      const int64_t c = within % L.spp, p = within / L.spp;
      out[static_cast<size_t>((c * L.frames + frame) * frame_pixels + p)] = convert(bit, frame);
    }
    return;
  }

  if (ybr422) {
    // PS3.3 C.7.6.3.1.2: each pair of pixels is stored Y1 Y2 Cb Cr.
    int64_t s = 0;
    for (int64_t f = 0; f < L.frames; ++f) {
      for (int64_t p = 0; p < frame_pixels; p += 2) {
        const int64_t y1 = integer_at(s), y2 = integer_at(s + 1), cb = integer_at(s + 2),
                      cr = integer_at(s + 3);
        s += 4;
        for (int k = 0; k < 2 && p + k < frame_pixels; ++k) {
          const int64_t idx = f * frame_pixels + p + k;
          out[static_cast<size_t>(0 * L.frames * frame_pixels + idx)] = static_cast<float>(k ? y2 : y1);
          out[static_cast<size_t>(1 * L.frames * frame_pixels + idx)] = static_cast<float>(cb);
          out[static_cast<size_t>(2 * L.frames * frame_pixels + idx)] = static_cast<float>(cr);
        }
      }
    }
    return;
  }

  // Integers, 8/16/32 bits, interleaved or planar samples. Frames are independent: decode in
  // parallel (large multi-frame files are the slow case).
  const int64_t per_frame = frame_pixels * L.spp;
  const bool one_rescale = std::all_of(rescale.begin(), rescale.end(), [&](const Rescale& r) {
    return r.slope == rescale[0].slope && r.intercept == rescale[0].intercept;
  });
  if ((L.bits_allocated == 8 || L.bits_allocated == 16) && one_rescale && L.spp == 1) {
    // The hot case (every CT/MR/X-ray slice): one tight loop per frame with the rules applied
    // arithmetically, identical to convert(integer_at()).
    const double slope = rescale[0].slope, intercept = rescale[0].intercept;
    // Branch-free forms so the loop vectorises: sign extension as (v ^ m) - m, inversion as
    // a * v + b.
    const int64_t m = L.is_signed ? int64_t{1} << (L.bits_stored - 1) : 0;
    const int64_t a = invert ? -1 : 1, b = invert ? lo + hi : 0;
    auto run = [&](auto raw_type) {
      using Raw = decltype(raw_type);
      parallel_for(L.frames, [&](int64_t f) {
        const uint8_t* src = bytes + f * frame_pixels * static_cast<int64_t>(sizeof(Raw));
        float* dst = out + f * frame_pixels;
        auto loop = [&](auto swap) {
          for (int64_t p = 0; p < frame_pixels; ++p) {
            Raw r;
            std::memcpy(&r, src + p * static_cast<int64_t>(sizeof(Raw)), sizeof(Raw));
            if constexpr (decltype(swap)::value) r = static_cast<Raw>((r >> 8) | (r << 8));
            int64_t v = static_cast<int64_t>((static_cast<uint64_t>(r) >> shift) & mask);
            v = a * ((v ^ m) - m) + b;
            dst[p] = static_cast<float>(static_cast<double>(v) * slope + intercept);
          }
        };
        if (sizeof(Raw) == 2 && big_endian) loop(std::true_type{});
        else loop(std::false_type{});
      });
    };
    if (L.bits_allocated == 8) run(uint8_t{});
    else run(uint16_t{});
    return;
  }
  parallel_for(L.frames, [&](int64_t f) {
    const int64_t base = f * per_frame;
    if (L.spp == 1) {
      float* dst = out + f * frame_pixels;
      for (int64_t p = 0; p < frame_pixels; ++p) dst[p] = convert(integer_at(base + p), f);
      return;
    }
    for (int64_t within = 0; within < per_frame; ++within) {
      const int64_t c = L.planar ? within / frame_pixels : within % L.spp;
      const int64_t p = L.planar ? within % frame_pixels : within / L.spp;
      out[static_cast<size_t>((c * L.frames + f) * frame_pixels + p)] =
          convert(integer_at(base + within), f);
    }
  });
  return;
}

// YBR_FULL -> RGB for 8-bit data, PS3.3 C.7.6.3.1.2, rounded as pydicom and most viewers do.
void ybr_full_to_rgb(float* v, int64_t plane) {
  const float kRCr = 1.402f;
  const float kGCb = static_cast<float>(-0.114 * 1.772 / 0.587);
  const float kGCr = static_cast<float>(-0.299 * 1.402 / 0.587);
  const float kBCb = 1.772f;
  for (int64_t i = 0; i < plane; ++i) {
    const float y = v[i], cb = v[plane + i] - 128.f, cr = v[2 * plane + i] - 128.f;
    const float rgb[3] = {y + cr * kRCr, y + cb * kGCb + cr * kGCr, y + cb * kBCb};
    for (int c = 0; c < 3; ++c)
      v[c * plane + i] = std::clamp(std::floor(rgb[c] + 0.5f), 0.f, 255.f);
  }
}

// ---------------------------------------------------------------------------------------------
// Geometry

std::optional<std::array<double, 6>> orientation_of(DcmItem* item) {
  auto v = get_doubles(item, DCM_ImageOrientationPatient);
  if (v.size() != 6) return std::nullopt;
  std::array<double, 6> o;
  std::copy(v.begin(), v.end(), o.begin());
  const Vec3 r{o[0], o[1], o[2]}, c{o[3], o[4], o[5]};
  if (!(norm(r) > 0.5 && norm(c) > 0.5)) return std::nullopt;
  return o;
}

std::optional<Vec3> position_of(DcmItem* item) {
  auto v = get_doubles(item, DCM_ImagePositionPatient);
  if (v.size() != 3) return std::nullopt;
  return Vec3{v[0], v[1], v[2]};
}

std::optional<std::array<double, 2>> spacing_of(DcmItem* item) {
  for (const DcmTagKey& tag : {DCM_PixelSpacing, DCM_ImagerPixelSpacing, DCM_NominalScannedPixelSpacing}) {
    auto v = get_doubles(item, tag);
    if (v.size() == 2) return std::array<double, 2>{v[0], v[1]};
  }
  return std::nullopt;
}

Vec3 unit(Vec3 v) {
  const double n = norm(v);
  return n > 0 ? Vec3{v[0] / n, v[1] / n, v[2] / n} : v;
}

// Builds the geometry of a stack of slices at `positions` (in stack order) with in-plane axes
// from `orientation`, and reports what is irregular. `blocking` turns true for issues that make
// a single regular grid wrong (missing slices, duplicates, uneven spacing).
Geometry stack_geometry(const std::vector<Vec3>& positions, const std::array<double, 6>& o,
                        const std::array<double, 2>& pixel_spacing, double slice_thickness,
                        std::vector<std::string>& issues, bool& blocking) {
  Geometry g;
  const Vec3 row = unit({o[0], o[1], o[2]}), col = unit({o[3], o[4], o[5]});
  const Vec3 normal = unit(cross(row, col));
  g.spacing = {pixel_spacing[1], pixel_spacing[0], slice_thickness > 0 ? slice_thickness : 1.0};
  Vec3 zaxis = normal;
  if (!positions.empty()) g.origin = positions.front();
  const size_t n = positions.size();
  if (n >= 2) {
    std::vector<double> steps;
    for (size_t i = 0; i + 1 < n; ++i) {
      Vec3 d{positions[i + 1][0] - positions[i][0], positions[i + 1][1] - positions[i][1],
             positions[i + 1][2] - positions[i][2]};
      steps.push_back(dot(d, normal));
    }
    std::vector<double> mags;
    for (double s : steps) mags.push_back(std::abs(s));
    std::vector<double> sorted = mags;
    std::nth_element(sorted.begin(), sorted.begin() + sorted.size() / 2, sorted.end());
    const double median = sorted[sorted.size() / 2];
    int duplicates = 0;
    for (double m : mags) duplicates += m < 1e-3;
    bool sign_change = false;
    for (double s : steps) sign_change |= (s > 1e-3) != (steps.front() > 1e-3) && std::abs(s) > 1e-3;
    if (duplicates > 0) {
      issues.push_back(std::to_string(duplicates) +
                       " slice(s) share a position with another slice (several stacks, echoes "
                       "or time points in one series?)");
      blocking = true;
    } else if (sign_change) {
      issues.push_back("slice positions are not in order along the slice normal");
      blocking = true;
    } else {
      for (size_t i = 0; i < mags.size(); ++i) {
        if (mags[i] > 1.5 * median) {
          char buf[200];
          std::snprintf(buf, sizeof buf,
                        "missing slice(s): gap of %.3g mm between slices %zu and %zu where the "
                        "spacing is %.3g mm",
                        mags[i], i + 1, i + 2, median);
          issues.push_back(buf);
          blocking = true;
        }
      }
      const double tol = std::max(0.01, 0.02 * median);
      double worst = 0;
      for (double m : mags)
        if (m <= 1.5 * median) worst = std::max(worst, std::abs(m - median));
      if (worst > tol) {
        char buf[160];
        std::snprintf(buf, sizeof buf, "uneven slice spacing: steps differ by up to %.3g mm from %.3g mm",
                      worst, median);
        issues.push_back(buf);
        blocking = true;
      }
    }
    const Vec3 span{positions.back()[0] - positions.front()[0],
                    positions.back()[1] - positions.front()[1],
                    positions.back()[2] - positions.front()[2]};
    const double len = norm(span);
    if (len > 1e-6 && duplicates == 0) {
      zaxis = unit(span);
      g.spacing[2] = len / static_cast<double>(n - 1);
      const double angle = std::acos(std::min(1.0, std::abs(dot(zaxis, normal)))) * 180.0 / kPi;
      if (angle > 0.1) {
        char buf[200];
        std::snprintf(buf, sizeof buf,
                      "gantry tilt: slices are offset %.2f degrees from the slice normal; the "
                      "geometry keeps the shear (axes not orthogonal)",
                      angle);
        issues.push_back(buf);
      }
    }
  }
  for (int r = 0; r < 3; ++r) {
    g.direction[r * 3 + 0] = row[r];
    g.direction[r * 3 + 1] = col[r];
    g.direction[r * 3 + 2] = zaxis[r];
  }
  return g;
}

// ---------------------------------------------------------------------------------------------
// Loading

struct Loaded {
  DcmFileFormat file;
  DcmDataset* ds = nullptr;
  E_TransferSyntax original = EXS_Unknown;
  std::string ts_uid;
  uintmax_t file_size = 0;
};

std::string ts_label(const std::string& uid);

void finish_load(Loaded& L, const std::string& path, OFCondition st);

void load(Loaded& L, const std::string& path, bool header_only) {
  init_dcmtk();
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw InputError(path, "is a folder, expected a DICOM file");
  OFCondition st = header_only
                       ? L.file.loadFileUntilTag(path.c_str(), EXS_Unknown, EGL_noChange,
                                                 DCM_MaxReadLength, ERM_autoDetect, DCM_PixelData)
                       : L.file.loadFile(path.c_str(), EXS_Unknown, EGL_noChange,
                                         DCM_MaxReadLength, ERM_autoDetect);
  L.file_size = fs::file_size(path, ec);
  finish_load(L, path, st);
}

void finish_load(Loaded& L, const std::string& path, OFCondition st) {
  L.ds = L.file.getDataset();
  // Only a meta header states a transfer syntax; without one DCMTK's guess is no fact to report
  // about a file that failed to parse (it may be text).
  L.ts_uid = get_string(L.file.getMetaInfo(), DCM_TransferSyntaxUID);
  std::string where = L.ts_uid.empty() ? "" : " [" + ts_label(L.ts_uid) + "]";
  if (st.bad())
    throw InputError(path, std::string("not a readable DICOM file (") + st.text() + ")" + where);
  if (L.ds && L.ts_uid.empty() && L.ds->getOriginalXfer() != EXS_Unknown)
    L.ts_uid = DcmXfer(L.ds->getOriginalXfer()).getXferID();
  where = L.ts_uid.empty() ? "" : " [" + ts_label(L.ts_uid) + "]";
  if (!L.ds) throw InputError(path, "not a readable DICOM file (no dataset)");
  L.original = L.ds->getOriginalXfer();
  // A file whose dataset holds nothing recognisable is not DICOM (DCMTK accepts random bytes
  // as an implicit-VR dataset of garbage elements).
  if (get_string(L.ds, DCM_SOPClassUID).empty() && get_string(L.ds, DCM_Modality).empty() &&
      !L.ds->tagExists(DCM_PixelData) && get_string(L.ds, DCM_SOPInstanceUID).empty() &&
      get_string(L.ds, DCM_Rows).empty())
    throw InputError(path, "not a DICOM image file (no SOP class, modality or pixel data)" + where);
}

DicomFileHeader header_from(Loaded& L, const std::string& path) {
  DicomFileHeader h;
  DcmDataset* ds = L.ds;
  h.path = path;
  h.sop_class_uid = get_string(ds, DCM_SOPClassUID);
  h.sop_instance_uid = get_string(ds, DCM_SOPInstanceUID);
  h.study_uid = get_string(ds, DCM_StudyInstanceUID);
  h.series_uid = get_string(ds, DCM_SeriesInstanceUID);
  h.frame_of_reference_uid = get_string(ds, DCM_FrameOfReferenceUID);
  h.modality = get_string(ds, DCM_Modality);
  h.series_description = get_string(ds, DCM_SeriesDescription);
  h.transfer_syntax = L.ts_uid;
  h.series_number = static_cast<int>(get_int(ds, DCM_SeriesNumber).value_or(0));
  h.instance_number = static_cast<int>(get_int(ds, DCM_InstanceNumber).value_or(0));
  h.rows = static_cast<int>(get_int(ds, DCM_Rows).value_or(0));
  h.columns = static_cast<int>(get_int(ds, DCM_Columns).value_or(0));
  h.frames = static_cast<int>(std::max<long>(1, get_int(ds, DCM_NumberOfFrames).value_or(1)));
  h.samples_per_pixel = static_cast<int>(get_int(ds, DCM_SamplesPerPixel).value_or(1));
  // The header scan stops before the pixel data, so an image is recognised by its Image Pixel
  // module; a full load also sees the element itself.
  h.has_pixels = ds->tagExists(DCM_PixelData) || ds->tagExists(DCM_FloatPixelData) ||
                 ds->tagExists(DCM_DoubleFloatPixelData) ||
                 (h.rows > 0 && h.columns > 0 && ds->tagExists(DCM_BitsAllocated));
  // Enhanced multi-frame keeps geometry in functional groups.
  DcmItem* shared = sequence_item(ds, DCM_SharedFunctionalGroupsSequence);
  DcmItem* frame0 = sequence_item(ds, DCM_PerFrameFunctionalGroupsSequence);
  auto in_groups = [&](const DcmTagKey& seq) -> DcmItem* {
    if (DcmItem* it = sequence_item(frame0, seq)) return it;
    return sequence_item(shared, seq);
  };
  h.position = position_of(ds);
  if (!h.position) h.position = position_of(in_groups(DCM_PlanePositionSequence));
  h.orientation = orientation_of(ds);
  if (!h.orientation) h.orientation = orientation_of(in_groups(DCM_PlaneOrientationSequence));
  h.pixel_spacing = spacing_of(ds);
  if (!h.pixel_spacing) h.pixel_spacing = spacing_of(in_groups(DCM_PixelMeasuresSequence));
  h.gantry_tilt = get_double(ds, DCM_GantryDetectorTilt).value_or(0.0);
  h.echo_time = get_double(ds, DCM_EchoTime).value_or(0.0);
  h.temporal_position = get_double(ds, DCM_TemporalPositionIdentifier).value_or(0.0);
  return h;
}

bool is_jpeg2000(E_TransferSyntax x) {
  return x == EXS_JPEG2000LosslessOnly || x == EXS_JPEG2000 ||
         x == EXS_JPEG2000MulticomponentLosslessOnly || x == EXS_JPEG2000Multicomponent;
}

std::string ts_label(const std::string& uid) {
  return "transfer syntax " + transfer_syntax_name(uid) + " (" + uid + ")";
}

PixelLayout layout_from(DcmDataset* ds, const std::string& path) {
  PixelLayout L;
  L.rows = get_int(ds, DCM_Rows).value_or(0);
  L.cols = get_int(ds, DCM_Columns).value_or(0);
  L.frames = std::max<long>(1, get_int(ds, DCM_NumberOfFrames).value_or(1));
  L.spp = static_cast<int>(get_int(ds, DCM_SamplesPerPixel).value_or(1));
  L.bits_allocated = static_cast<int>(get_int(ds, DCM_BitsAllocated).value_or(0));
  L.bits_stored = static_cast<int>(get_int(ds, DCM_BitsStored).value_or(L.bits_allocated));
  L.high_bit = static_cast<int>(get_int(ds, DCM_HighBit).value_or(L.bits_stored - 1));
  L.is_signed = get_int(ds, DCM_PixelRepresentation).value_or(0) == 1;
  L.planar = static_cast<int>(get_int(ds, DCM_PlanarConfiguration).value_or(0));
  L.photometric = get_string(ds, DCM_PhotometricInterpretation);
  if (L.photometric.empty()) L.photometric = L.spp == 3 ? "RGB" : "MONOCHROME2";
  if (ds->tagExists(DCM_FloatPixelData)) L.float_bytes = 4, L.bits_allocated = 32;
  if (ds->tagExists(DCM_DoubleFloatPixelData)) L.float_bytes = 8, L.bits_allocated = 64;

  auto bad = [&](const std::string& why) { throw InputError(path, why); };
  if (L.rows <= 0 || L.cols <= 0) bad("Rows/Columns missing or zero");
  if (L.spp != 1 && L.spp != 3)
    bad("SamplesPerPixel " + std::to_string(L.spp) + " is not supported (1 or 3)");
  if (!L.float_bytes && L.bits_allocated != 1 && L.bits_allocated != 8 &&
      L.bits_allocated != 16 && L.bits_allocated != 32)
    bad("BitsAllocated " + std::to_string(L.bits_allocated) + " is not supported");
  if (!L.float_bytes && (L.bits_stored < 1 || L.bits_stored > L.bits_allocated ||
                         L.high_bit < L.bits_stored - 1 || L.high_bit >= L.bits_allocated))
    bad("inconsistent BitsStored " + std::to_string(L.bits_stored) + " / HighBit " +
        std::to_string(L.high_bit) + " for BitsAllocated " + std::to_string(L.bits_allocated));
  if (L.planar != 0 && L.planar != 1) bad("PlanarConfiguration must be 0 or 1");
  // Refuse before any decompression allocates: the header alone decides the size.
  const double claimed = static_cast<double>(L.rows) * L.cols * L.frames * L.spp;
  if (claimed > static_cast<double>(max_voxels()))
    bad("header claims " + std::to_string(static_cast<long long>(claimed)) +
        " pixel values, more than the limit of " + std::to_string(max_voxels()) +
        " (set MEDLENS_MAX_VOXELS to raise it)");
  return L;
}

// Rescale per frame: enhanced per-frame groups, shared groups, the dataset, RT dose scaling.
std::vector<Rescale> rescale_from(DcmDataset* ds, const PixelLayout& L, Metadata& m) {
  auto from_item = [](DcmItem* item) -> std::optional<Rescale> {
    auto s = get_double(item, DCM_RescaleSlope);
    auto i = get_double(item, DCM_RescaleIntercept);
    if (!s && !i) return std::nullopt;
    Rescale r;
    r.slope = s.value_or(1.0);
    r.intercept = i.value_or(0.0);
    if (r.slope == 0.0 || !std::isfinite(r.slope) || !std::isfinite(r.intercept)) return std::nullopt;
    return r;
  };
  std::vector<Rescale> out;
  DcmItem* shared = sequence_item(ds, DCM_SharedFunctionalGroupsSequence);
  const auto shared_r = from_item(sequence_item(shared, DCM_PixelValueTransformationSequence));
  bool per_frame = false;
  for (int64_t f = 0; f < L.frames; ++f) {
    DcmItem* pf = sequence_item(ds, DCM_PerFrameFunctionalGroupsSequence, static_cast<unsigned long>(f));
    auto r = from_item(sequence_item(pf, DCM_PixelValueTransformationSequence));
    if (r) per_frame = true;
    out.push_back(r ? *r : shared_r.value_or(Rescale{}));
  }
  if (!per_frame && !shared_r) {
    out.assign(1, from_item(ds).value_or(Rescale{}));
    if (get_string(ds, DCM_Modality) == "RTDOSE") {
      if (auto g = get_double(ds, DCM_DoseGridScaling); g && *g > 0) {
        out[0].slope *= *g;
        m.units = get_string(ds, DCM_DoseUnits) == "CGY" ? "cGy" : "Gy";
      }
    }
  }
  m.rescale_slope = out[0].slope;
  m.rescale_intercept = out[0].intercept;
  return out;
}

// Raw pixel bytes after decompression, in file byte order, plus whether that order is big
// endian. DCMTK keeps values in host order, swapped by the VR's unit width; undo that so the
// layout's BitsAllocated decides how bytes group into values.
struct RawPixels {
  std::vector<uint8_t> owned;
  const uint8_t* data = nullptr;
  size_t size = 0;
  bool big_endian = false;
};

RawPixels raw_from_dcmtk(DcmDataset* ds, const DcmTagKey& tag, bool source_big_endian,
                         uintmax_t file_size, const std::string& path) {
  RawPixels raw;
  DcmElement* elem = nullptr;
  if (ds->findAndGetElement(tag, elem).bad() || !elem)
    throw InputError(path, "has no pixel data");
  const Uint32 length = elem->getLength();
  // DCMTK loads large values lazily and would allocate whatever the length field claims:
  // a file cannot hold more bytes than its size.
  if (file_size > 0 && length > file_size)
    throw InputError(path, "pixel data claims " + std::to_string(length) +
                               " bytes but the file holds only " + std::to_string(file_size) +
                               " (truncated or corrupt)");
  const DcmEVR vr = elem->getVR();
  const uint8_t* host = nullptr;
  size_t unit = 1;
  if (vr == EVR_OB || vr == EVR_UN) {
    Uint8* p = nullptr;
    if (elem->getUint8Array(p).bad() || !p) throw InputError(path, "cannot access pixel data");
    host = p;
  } else if (vr == EVR_OF) {
    Float32* p = nullptr;
    if (elem->getFloat32Array(p).bad() || !p) throw InputError(path, "cannot access float pixel data");
    host = reinterpret_cast<const uint8_t*>(p);
    unit = 4;
  } else if (vr == EVR_OD) {
    Float64* p = nullptr;
    if (elem->getFloat64Array(p).bad() || !p) throw InputError(path, "cannot access float pixel data");
    host = reinterpret_cast<const uint8_t*>(p);
    unit = 8;
  } else {
    Uint16* p = nullptr;
    if (elem->getUint16Array(p).bad() || !p) throw InputError(path, "cannot access pixel data");
    host = reinterpret_cast<const uint8_t*>(p);
    unit = 2;
  }
  raw.size = length;
  if (unit == 1) {
    raw.data = host;
    raw.big_endian = source_big_endian;
    return raw;
  }
  // Host (little-endian) order by `unit`; values of that width are now little endian.
  if (!source_big_endian || unit > 2) {
    raw.data = host;
    raw.big_endian = false;
    return raw;
  }
  // Big-endian source with OW: restore file order (each 16-bit word big endian), then let the
  // decoder read values of BitsAllocated width in big-endian order (correct for 8 and 32 bits).
  raw.owned.resize(length);
  for (size_t i = 0; i + 1 < length; i += 2) {
    raw.owned[i] = host[i + 1];
    raw.owned[i + 1] = host[i];
  }
  raw.data = raw.owned.data();
  raw.big_endian = true;
  return raw;
}

// What a JPEG, JPEG-LS or JPEG 2000 codestream states in its header (SOF or SIZ marker).
struct CodestreamHeader {
  int64_t rows = 0, cols = 0, components = 0;
  uint8_t sof = 0;  // the JPEG SOF marker's second byte (0xF7: JPEG-LS), 0 for JPEG 2000
};

// One pixel data fragment's codestream: its header when the fragment starts one (SOI or SOC),
// and whether DCMTK 3.6.7's JPEG decoder would never return on it.
struct FragmentScan {
  std::optional<CodestreamHeader> header;
  bool stuck_on_tem = false;
};

// JPEG 2000 (SOC then SIZ: the image is (Xsiz - XOsiz) x (Ysiz - YOsiz), ISO 15444-1 A.5.1) is
// read directly. JPEG and JPEG-LS are walked marker by marker the way DCMTK's scan for the frame
// header walks them (DJCodecDecoder::scanJpegDataForBitDepth), up to the first SOF or the first
// byte that scan calls an error, so the header checked is the one DCMTK decodes with. That scan
// never steps past a TEM marker (FF01): for DCMTK's JPEG codecs it is reported, not skipped.
FragmentScan scan_fragment(const uint8_t* p, size_t n, bool jpeg_ls) {
  auto u16 = [&](size_t i) { return (int64_t{p[i]} << 8) | p[i + 1]; };
  auto u32 = [&](size_t i) { return (u16(i) << 16) | u16(i + 2); };
  if (n >= 42 && p[0] == 0xFF && p[1] == 0x4F && p[2] == 0xFF && p[3] == 0x51)
    return {CodestreamHeader{u32(12) - u32(20), u32(8) - u32(16), u16(40), 0}, false};
  const bool starts_codestream = n >= 2 && p[0] == 0xFF && p[1] == 0xD8;  // SOI
  size_t offset = 0;
  while (offset + 4 < n) {
    const int64_t m = u16(offset);
    const bool sof = (m >= 0xFFC0 && m <= 0xFFCF && m != 0xFFC4 && m != 0xFFC8 && m != 0xFFCC) ||
                     (jpeg_ls && m == 0xFFF7);  // SOF55
    if (sof) {
      if (!starts_codestream || offset + 10 > n) return {};
      return {CodestreamHeader{u16(offset + 5), u16(offset + 7), int64_t{p[offset + 9]},
                               static_cast<uint8_t>(m & 0xFF)}, false};
    }
    if (m == 0xFF01) {
      if (!jpeg_ls) return {std::nullopt, true};
      offset += 2;
    } else if (m == 0xFFFF) {
      offset += 1;
    } else if (m >= 0xFFD0 && m <= 0xFFD9) {  // RSTn, SOI, EOI
      offset += 2;
    } else if (m == 0xFFC4 || m == 0xFFC8 || m == 0xFFCC || (m >= 0xFFDA && m <= 0xFFFE)) {
      offset += static_cast<size_t>(u16(offset + 2)) + 2;
    } else if (p[offset] == 0xFF && p[offset + 1] > 2 && p[offset + 1] <= 0xBF) {  // reserved
      offset += 2;
    } else {
      return {};
    }
  }
  return {};
}

// The fewest bits a frame can take in a Huffman-coded sequential JPEG, or 0 where no useful
// bound exists (progressive EOB runs, arithmetic coding, JPEG-LS run mode, JPEG 2000). Every
// Huffman code is at least 1 bit: a DCT block needs a DC and an EOB code (the luminance blocks
// alone are counted), a lossless sample one code (ITU T.81 F.1.2, H.1.2).
uint64_t fewest_bits(const CodestreamHeader& h) {
  const auto rows = static_cast<uint64_t>(h.rows), cols = static_cast<uint64_t>(h.cols);
  if (h.sof == 0xC0 || h.sof == 0xC1) return 2 * ((rows + 7) / 8) * ((cols + 7) / 8);
  if (h.sof == 0xC3) return rows * cols;
  return 0;
}

// What the header claims must be what the compressed stream can hold, checked before any
// decoder allocates the decompressed image. Otherwise a few kilobytes claiming 12000x12000
// pixels make a JPEG decoder fill a gigabyte-sized, mostly empty image (seconds of work and a
// wrong image), and an RLE file claiming a million frames allocates them all before failing.
void check_encapsulated_claims(DcmDataset* ds, const PixelLayout& L, E_TransferSyntax xfer,
                               uintmax_t file_size, const std::string& path) {
  DcmElement* elem = nullptr;
  if (ds->findAndGetElement(DCM_PixelData, elem).bad() || !elem) return;
  auto* pixels = OFdynamic_cast(DcmPixelData*, elem);
  DcmPixelSequence* sequence = nullptr;
  if (!pixels || pixels->getEncapsulatedRepresentation(xfer, nullptr, sequence).bad() || !sequence)
    return;  // not encapsulated after all: the decoder reports it
  const unsigned long items = sequence->card();
  const int64_t fragments = items > 0 ? static_cast<int64_t>(items) - 1 : 0;  // item 0: offsets
  // PS3.5 A.4: every frame starts a fragment of its own.
  if (fragments < L.frames)
    throw InputError(path, "header claims " + std::to_string(L.frames) +
                               " frames but the compressed pixel data holds " +
                               std::to_string(fragments) + " fragments");
  const bool rle = xfer == EXS_RLELossless;
  const bool jpeg_ls = xfer == EXS_JPEGLSLossless || xfer == EXS_JPEGLSLossy;
  const bool dcmtk_jpeg = xfer >= EXS_JPEGProcess1 && xfer <= EXS_JPEGProcess14SV1;
  const bool jpeg = dcmtk_jpeg || jpeg_ls || is_jpeg2000(xfer);
  uint64_t compressed = 0, least_bits = 0;
  bool bounded = jpeg;
  int64_t frame = 0;
  for (unsigned long k = 1; k < items; ++k) {
    DcmPixelItem* item = nullptr;
    if (sequence->getItem(item, k).bad() || !item) continue;
    const Uint32 length = item->getLength();
    if (file_size > 0 && length > file_size)
      throw InputError(path, "a pixel data fragment claims " + std::to_string(length) +
                                 " bytes but the file holds only " + std::to_string(file_size) +
                                 " (truncated or corrupt)");
    compressed += length;
    if (!jpeg || length == 0) continue;
    Uint8* data = nullptr;
    if (item->getUint8Array(data).bad() || !data) continue;
    const FragmentScan scan = scan_fragment(data, length, jpeg_ls);
    if (dcmtk_jpeg && scan.stuck_on_tem)
      throw InputError(path, "pixel data fragment " + std::to_string(k) +
                                 " holds a JPEG TEM marker (FF01) before any frame header: corrupt "
                                 "(the DICOM toolkit's decoder would never return)");
    const std::optional<CodestreamHeader>& h = scan.header;
    if (!h) continue;
    ++frame;
    // A height of 0 is legal JPEG (a DNL marker gives it later).
    if ((h->rows != 0 && h->rows != L.rows) || h->cols != L.cols || h->components != L.spp)
      throw InputError(path, "frame " + std::to_string(frame) + " is compressed as " +
                                 std::to_string(h->cols) + "x" + std::to_string(h->rows) + " with " +
                                 std::to_string(h->components) + " component(s) but the header says " +
                                 std::to_string(L.cols) + "x" + std::to_string(L.rows) + " with " +
                                 std::to_string(L.spp));
    const uint64_t bits = fewest_bits(CodestreamHeader{L.rows, L.cols, h->components, h->sof});
    if (bits == 0) bounded = false;
    least_bits += bits;
  }
  // A stream too short for its frames is truncated: the JPEG decoder would pad it with grey.
  if (bounded && frame > 0 && compressed * 8 < least_bits)
    throw InputError(path, "the compressed pixel data holds " + std::to_string(compressed) +
                               " bytes, fewer than the " + std::to_string((least_bits + 7) / 8) +
                               " its " + std::to_string(frame) + " frame(s) of " +
                               std::to_string(L.cols) + "x" + std::to_string(L.rows) +
                               " need at the least (truncated or corrupt)");
  if (rle) {
    // An RLE replicate run turns 2 bytes into at most 128: nothing decodes to more than 64
    // times its compressed size (PS3.5 G.3.1).
    const uint64_t values = static_cast<uint64_t>(L.values());
    const uint64_t decoded = L.bits_allocated == 1 ? (values + 7) / 8
                                                   : values * static_cast<uint64_t>(L.bits_allocated / 8);
    if (decoded > 64 * compressed)
      throw InputError(path, "header claims " + std::to_string(decoded) +
                                 " bytes of pixels but RLE cannot expand the " +
                                 std::to_string(compressed) + " compressed bytes to more than " +
                                 std::to_string(64 * compressed));
  }
}

// JPEG 2000 through GDCM. The stream decides bits and signedness; GDCM reconciles them with
// the header (e.g. a PixelRepresentation that disagrees with the codestream).
RawPixels raw_from_gdcm(const std::string& path, PixelLayout& L) {
#ifdef MEDLENS_NO_GDCM
  (void)L;
  throw InputError(path, "JPEG 2000 decoding is not built into this binary");
#else
  static std::once_flag quiet;
  std::call_once(quiet, [] { gdcm::Trace::WarningOff(); gdcm::Trace::ErrorOff(); gdcm::Trace::DebugOff(); });
  gdcm::ImageReader reader;
  reader.SetFileName(path.c_str());
  if (!reader.Read()) throw InputError(path, "GDCM cannot read this JPEG 2000 file");
  const gdcm::Image& image = reader.GetImage();
  const gdcm::PixelFormat& pf = image.GetPixelFormat();
  L.bits_allocated = pf.GetBitsAllocated();
  L.bits_stored = pf.GetBitsStored();
  L.high_bit = pf.GetHighBit();
  L.is_signed = pf.GetPixelRepresentation() == 1;
  L.spp = pf.GetSamplesPerPixel();
  L.planar = static_cast<int>(image.GetPlanarConfiguration());
  std::string pi = gdcm::PhotometricInterpretation::GetPIString(
      image.GetPhotometricInterpretation().GetType());
  while (!pi.empty() && pi.back() == ' ') pi.pop_back();  // DICOM pads to even length
  if (!pi.empty()) L.photometric = pi;
  // GDCM's J2K decoder returns colour as RGB (the codestream's colour transform undone).
  if (L.photometric == "YBR_ICT" || L.photometric == "YBR_RCT") L.photometric = "RGB";
  const double claimed = static_cast<double>(L.rows) * L.cols * L.frames * L.spp;
  if (claimed > static_cast<double>(max_voxels())) throw InputError(path, "image too large");
  RawPixels raw;
  raw.owned.resize(image.GetBufferLength());
  if (!image.GetBuffer(reinterpret_cast<char*>(raw.owned.data())))
    throw InputError(path, "JPEG 2000 pixel data cannot be decoded");
  raw.data = raw.owned.data();
  raw.size = raw.owned.size();
  raw.big_endian = false;
  return raw;
#endif
}

void fill_metadata(DcmDataset* ds, const Loaded& L, Metadata& m) {
  m.modality = get_string(ds, DCM_Modality);
  m.body_part = get_string(ds, DCM_BodyPartExamined);
  m.study_uid = get_string(ds, DCM_StudyInstanceUID);
  m.series_uid = get_string(ds, DCM_SeriesInstanceUID);
  m.frame_of_reference_uid = get_string(ds, DCM_FrameOfReferenceUID);
  m.series_description = get_string(ds, DCM_SeriesDescription);
  m.transfer_syntax = L.ts_uid;
  m.source_format = "dicom";
  if (m.modality == "CT" && m.units.empty()) {
    const std::string type = get_string(ds, DCM_RescaleType);
    if (type.empty() || type == "HU") m.units = "HU";
  }
  static const std::pair<const char*, DcmTagKey> kKeyTags[] = {
      {"SOPClassUID", DCM_SOPClassUID},
      {"Manufacturer", DCM_Manufacturer},
      {"ManufacturerModelName", DCM_ManufacturerModelName},
      {"SeriesNumber", DCM_SeriesNumber},
      {"ImageType", DCM_ImageType},
      {"SliceThickness", DCM_SliceThickness},
      {"KVP", DCM_KVP},
      {"ConvolutionKernel", DCM_ConvolutionKernel},
      {"RepetitionTime", DCM_RepetitionTime},
      {"EchoTime", DCM_EchoTime},
      {"MagneticFieldStrength", DCM_MagneticFieldStrength},
      {"PatientPosition", DCM_PatientPosition},
      {"ViewPosition", DCM_ViewPosition},
      {"Laterality", DCM_ImageLaterality},
      {"BitsStored", DCM_BitsStored},
      {"PixelRepresentation", DCM_PixelRepresentation},
      {"PhotometricInterpretation", DCM_PhotometricInterpretation},
      {"BurnedInAnnotation", DCM_BurnedInAnnotation},
  };
  for (const auto& [name, tag] : kKeyTags) {
    std::string v = get_all(ds, tag);
    if (!v.empty()) m.tags[name] = v;
  }
  m.tags["TransferSyntax"] = transfer_syntax_name(L.ts_uid);
  static const std::pair<const char*, DcmTagKey> kIdentity[] = {
      {"PatientName", DCM_PatientName}, {"PatientID", DCM_PatientID},
      {"PatientBirthDate", DCM_PatientBirthDate}, {"PatientSex", DCM_PatientSex},
      {"PatientAge", DCM_PatientAge}, {"StudyDate", DCM_StudyDate}, {"StudyTime", DCM_StudyTime},
      {"AccessionNumber", DCM_AccessionNumber}, {"StudyID", DCM_StudyID},
      {"ReferringPhysicianName", DCM_ReferringPhysicianName}};
  for (const auto& [name, tag] : kIdentity) {
    std::string v = get_all(ds, tag);
    if (!v.empty()) m.identity[name] = v;
  }
}

// Geometry of a single file: one slice, or a multi-frame stack.
Geometry file_geometry(DcmDataset* ds, const PixelLayout& L, Metadata& m) {
  DcmItem* shared = sequence_item(ds, DCM_SharedFunctionalGroupsSequence);
  auto group = [&](int64_t frame, const DcmTagKey& seq) -> DcmItem* {
    DcmItem* pf = sequence_item(ds, DCM_PerFrameFunctionalGroupsSequence, static_cast<unsigned long>(frame));
    if (DcmItem* it = sequence_item(pf, seq)) return it;
    return sequence_item(shared, seq);
  };
  auto orientation = orientation_of(ds);
  if (!orientation) orientation = orientation_of(group(0, DCM_PlaneOrientationSequence));
  auto spacing = spacing_of(ds);
  DcmItem* measures = group(0, DCM_PixelMeasuresSequence);
  if (!spacing) spacing = spacing_of(measures);
  double thickness = get_double(ds, DCM_SliceThickness).value_or(0.0);
  if (thickness <= 0) thickness = get_double(measures, DCM_SliceThickness).value_or(0.0);
  double between = get_double(ds, DCM_SpacingBetweenSlices).value_or(0.0);
  if (between <= 0) between = get_double(measures, DCM_SpacingBetweenSlices).value_or(0.0);

  if (!spacing) {
    spacing = std::array<double, 2>{1.0, 1.0};
    m.warnings.push_back("no pixel spacing in the header: assuming 1 mm");
  } else if (!((*spacing)[0] > 0 && (*spacing)[1] > 0 && std::isfinite((*spacing)[0]) &&
               std::isfinite((*spacing)[1]))) {
    throw InputError(m.source_path, "pixel spacing " + std::to_string((*spacing)[0]) + "\\" +
                                        std::to_string((*spacing)[1]) + " is not positive");
  }
  const bool have_plane = orientation.has_value();
  const std::array<double, 6> o = orientation.value_or(std::array<double, 6>{1, 0, 0, 0, 1, 0});

  std::vector<Vec3> positions;
  if (L.frames > 1) {
    for (int64_t f = 0; f < L.frames; ++f) {
      auto p = position_of(group(f, DCM_PlanePositionSequence));
      if (!p) break;
      positions.push_back(*p);
    }
    if (static_cast<int64_t>(positions.size()) != L.frames) {
      positions.clear();
      auto origin = position_of(ds);
      auto offsets = get_doubles(ds, DCM_GridFrameOffsetVector);
      const Vec3 normal = unit(cross({o[0], o[1], o[2]}, {o[3], o[4], o[5]}));
      if (origin && static_cast<int64_t>(offsets.size()) == L.frames) {
        for (double off : offsets)
          positions.push_back({(*origin)[0] + off * normal[0], (*origin)[1] + off * normal[1],
                               (*origin)[2] + off * normal[2]});
      } else if (origin && between > 0) {
        for (int64_t f = 0; f < L.frames; ++f)
          positions.push_back({(*origin)[0] + f * between * normal[0],
                               (*origin)[1] + f * between * normal[1],
                               (*origin)[2] + f * between * normal[2]});
      }
    }
  } else if (auto p = position_of(ds)) {
    positions.push_back(*p);
  } else if (auto p2 = position_of(group(0, DCM_PlanePositionSequence))) {
    positions.push_back(*p2);
  }
  if (L.frames > 1 && positions.empty())
    m.warnings.push_back("frames carry no positions: Z is the frame index (1 mm apart)");
  bool blocking = false;
  Geometry g = stack_geometry(positions, o, *spacing, L.frames > 1 ? between : thickness,
                              m.warnings, blocking);
  if (!have_plane && L.frames == 1 && positions.empty()) g.origin = {0, 0, 0};
  return g;
}

// Decodes a loaded file. With `into`, the voxels go there (exactly `capacity` values, else the
// file is refused) and the returned buffer's data stays empty: series decode straight into the
// volume without a per-slice allocation and copy.
VoxelBuffer decode_file(Loaded& L, const std::string& path, const ReadOptions& options,
                        float* into = nullptr, int64_t capacity = 0);

VoxelBuffer read_dicom_file_into(const std::string& path, const ReadOptions& options,
                                 float* into, int64_t capacity);

}  // namespace

// ---------------------------------------------------------------------------------------------
// Public entry points

std::string transfer_syntax_name(const std::string& uid) {
  DcmXfer x(uid.c_str());
  if (x.getXfer() == EXS_Unknown) return "unknown transfer syntax";
  return x.getXferName();
}

DicomFileHeader read_dicom_header(const std::string& path) {
  Loaded L;
  load(L, path, /*header_only=*/true);
  return header_from(L, path);
}

VoxelBuffer read_dicom_file(const std::string& path, const ReadOptions& options) {
  return read_dicom_file_into(path, options, nullptr, 0);
}

namespace {
VoxelBuffer read_dicom_file_into(const std::string& path, const ReadOptions& options,
                                 float* into, int64_t capacity) {
  Loaded L;
  load(L, path, /*header_only=*/false);
  // Every refusal past this point names the transfer syntax: it is the first thing a user
  // needs to know about a file that will not decode.
  try {
    return decode_file(L, path, options, into, capacity);
  } catch (const InputError& e) {
    throw InputError(path, e.reason() + (e.reason().find("transfer syntax") == std::string::npos
                                             ? " [" + ts_label(L.ts_uid) + "]" : ""));
  }
}

VoxelBuffer decode_file(Loaded& L, const std::string& path, const ReadOptions& options,
                        float* into, int64_t capacity) {
  DcmDataset* ds = L.ds;
  const bool has_pixels = ds->tagExists(DCM_PixelData) || ds->tagExists(DCM_FloatPixelData) ||
                          ds->tagExists(DCM_DoubleFloatPixelData);
  if (!has_pixels) {
    const std::string modality = get_string(ds, DCM_Modality);
    throw InputError(path, "has no pixel data (" + (modality.empty() ? std::string("no modality") : "modality " + modality) +
                               ": not an image)");
  }
  VoxelBuffer b;
  b.metadata.source_path = path;
  PixelLayout layout = layout_from(ds, path);
  const DcmXfer xfer(L.original);

  RawPixels raw;
  const DcmTagKey pixel_tag = layout.float_bytes == 4 ? DCM_FloatPixelData
                              : layout.float_bytes == 8 ? DCM_DoubleFloatPixelData
                                                        : DCM_PixelData;
  if (xfer.isEncapsulated()) {
    check_encapsulated_claims(ds, layout, L.original, L.file_size, path);
    if (is_jpeg2000(L.original)) {
      raw = raw_from_gdcm(path, layout);
    } else {
      OFCondition st = ds->chooseRepresentation(EXS_LittleEndianExplicit, nullptr);
      if (st.bad() || !ds->canWriteXfer(EXS_LittleEndianExplicit))
        throw InputError(path, "cannot decode pixel data in " + ts_label(L.ts_uid) +
                                   (st.bad() ? std::string(": ") + st.text() : std::string()));
      // The decoder may have changed colour model and planar configuration.
      const PixelLayout after = layout_from(ds, path);
      layout.photometric = after.photometric;
      layout.planar = after.planar;
      layout.bits_allocated = after.bits_allocated;
      raw = raw_from_dcmtk(ds, pixel_tag, false, 0, path);
    }
  } else {
    if (L.original == EXS_Unknown)
      throw InputError(path, "unsupported " + ts_label(L.ts_uid));
    // A deflated dataset can hold more than the file's size.
    const uintmax_t bound = L.original == EXS_DeflatedLittleEndianExplicit ? 0 : L.file_size;
    raw = raw_from_dcmtk(ds, pixel_tag, xfer.isBigEndian(), bound, path);
  }

  std::string pi = layout.photometric;
  const bool mono1 = pi == "MONOCHROME1";
  const bool mono = mono1 || pi == "MONOCHROME2";
  const bool rgb_like = pi == "RGB" || pi == "YBR_FULL" || pi == "YBR_FULL_422";
  if (layout.spp == 1 && !mono && pi != "PALETTE COLOR")
    throw InputError(path, "photometric interpretation " + pi + " with one sample is not supported");
  if (pi == "PALETTE COLOR")
    b.metadata.warnings.push_back("PALETTE COLOR: palette indices are kept, not the colours");
  if (layout.spp == 3 && !rgb_like)
    throw InputError(path, "photometric interpretation " + pi + " is not supported");
  if ((pi == "YBR_FULL" || pi == "YBR_FULL_422") && layout.bits_allocated != 8)
    throw InputError(path, pi + " with " + std::to_string(layout.bits_allocated) + " bits is not supported");

  require_pixel_bytes(raw.size, layout, path);
  fill_metadata(ds, L, b.metadata);
  const std::vector<Rescale> rescale = rescale_from(ds, layout, b.metadata);
  float* out = into;
  if (into) {
    if (layout.values() != capacity)
      throw InputError(path, "slice size differs from the rest of the series");
  } else {
    b.data.resize(static_cast<size_t>(layout.values()));
    out = b.data.data();
  }
  decode_values(raw.data, raw.big_endian, layout, rescale, mono1, path, out);
  const int64_t plane = layout.rows * layout.cols * layout.frames;
  if (pi == "YBR_FULL" || pi == "YBR_FULL_422") ybr_full_to_rgb(out, plane);

  b.shape = {layout.spp, layout.frames, layout.rows, layout.cols};
  b.metadata.photometric = layout.spp == 3 ? "RGB" : "MONOCHROME2";
  if (mono1) b.metadata.tags["PhotometricInterpretationOriginal"] = "MONOCHROME1";
  b.geometry = file_geometry(ds, layout, b.metadata);

  auto center = get_double(ds, DCM_WindowCenter);
  auto width = get_double(ds, DCM_WindowWidth);
  if (center && width && *width > 0) {
    Window w{*center, *width};
    if (mono1) {  // the window was given for the stored (uninverted) values
      const auto [lo, hi] = stored_range(layout);
      w.center = rescale[0].slope * static_cast<double>(lo + hi) + 2 * rescale[0].intercept - w.center;
    }
    b.metadata.window = w;
  }
  const std::string sop = get_string(ds, DCM_SOPInstanceUID);
  b.metadata.sop_uids.assign(static_cast<size_t>(layout.frames), sop);
  (void)options;
  return b;
}
}  // namespace

std::vector<DicomSeriesInfo> scan_dicom_folder(const std::string& folder, int* skipped) {
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) throw InputError(folder, "is not a folder");
  std::vector<std::string> paths;
  try {
    for (auto it = fs::recursive_directory_iterator(folder, fs::directory_options::skip_permission_denied);
         it != fs::recursive_directory_iterator(); ++it) {
      const std::string name = it->path().filename().string();
      if (it->is_directory()) {
        if (!name.empty() && name[0] == '.') it.disable_recursion_pending();
        continue;
      }
      if (!it->is_regular_file() || name.empty() || name[0] == '.' || name == "DICOMDIR") continue;
      paths.push_back(it->path().string());
    }
  } catch (const fs::filesystem_error& e) {
    throw InputError(folder, std::string("cannot read folder: ") + e.code().message());
  }
  std::sort(paths.begin(), paths.end());
  std::vector<std::optional<DicomFileHeader>> headers(paths.size());
  parallel_for(static_cast<int64_t>(paths.size()), [&](int64_t i) {
    try {
      headers[i] = read_dicom_header(paths[i]);
    } catch (const InputError&) {
    }
  });
  int skip = 0;
  std::map<std::string, std::vector<DicomFileHeader>> by_series;
  std::vector<std::string> order;
  for (auto& h : headers) {
    if (!h) { ++skip; continue; }
    const std::string key = h->series_uid.empty() ? "(no SeriesInstanceUID)" : h->series_uid;
    if (!by_series.count(key)) order.push_back(key);
    by_series[key].push_back(*h);
  }
  if (skipped) *skipped = skip;
  if (by_series.empty())
    throw InputError(folder, paths.empty() ? "folder is empty" : "folder holds no DICOM file");

  std::vector<DicomSeriesInfo> out;
  for (const std::string& key : order) {
    auto& files = by_series[key];
    DicomSeriesInfo s;
    const DicomFileHeader& first = files.front();
    s.series_uid = first.series_uid;
    s.study_uid = first.study_uid;
    s.modality = first.modality;
    s.description = first.series_description;
    s.series_number = first.series_number;
    s.rows = first.rows;
    s.columns = first.columns;
    s.frames_per_file = first.frames;
    s.samples_per_pixel = first.samples_per_pixel;
    s.has_pixels = std::all_of(files.begin(), files.end(), [](auto& f) { return f.has_pixels; });
    if (!s.has_pixels) {
      s.issues.push_back("not an image series (no pixel data)");
      s.blocking = true;
      for (auto& f : files) s.files.push_back(f.path);
      out.push_back(std::move(s));
      continue;
    }
    // One stack needs one size, one orientation, one frame count.
    std::map<std::string, int> stacks;
    for (auto& f : files) {
      char key2[160];
      auto o = f.orientation.value_or(std::array<double, 6>{});
      std::snprintf(key2, sizeof key2, "%dx%d %d frame(s) orientation %.3f,%.3f,%.3f,%.3f,%.3f,%.3f",
                    f.columns, f.rows, f.frames, o[0], o[1], o[2], o[3], o[4], o[5]);
      stacks[key2]++;
    }
    if (stacks.size() > 1) {
      std::string what = "mixed series: " + std::to_string(stacks.size()) + " different stacks (";
      bool firstk = true;
      for (auto& [k, n] : stacks) {
        what += (firstk ? "" : "; ") + std::to_string(n) + " x " + k;
        firstk = false;
      }
      s.issues.push_back(what + ")");
      s.blocking = true;
    }
    if (files.size() > 1 && first.frames > 1) {
      s.issues.push_back("several multi-frame files in one series: read each file on its own");
      s.blocking = true;
    }
    const bool geometry_known = std::all_of(files.begin(), files.end(), [](auto& f) {
      return f.position.has_value() && f.orientation.has_value();
    });
    if (files.size() > 1 && !geometry_known) {
      std::sort(files.begin(), files.end(),
                [](auto& a, auto& b) { return a.instance_number < b.instance_number; });
      s.issues.push_back("slices lack ImagePositionPatient/ImageOrientationPatient: ordered by "
                         "InstanceNumber, spacing unknown");
    } else if (files.size() > 1 && stacks.size() == 1) {
      const auto& o = *first.orientation;
      const Vec3 normal = unit(cross({o[0], o[1], o[2]}, {o[3], o[4], o[5]}));
      std::stable_sort(files.begin(), files.end(), [&](auto& a, auto& b) {
        return dot(*a.position, normal) < dot(*b.position, normal);
      });
      std::vector<Vec3> positions;
      for (auto& f : files) positions.push_back(*f.position);
      bool blocking = false;
      stack_geometry(positions, o, first.pixel_spacing.value_or(std::array<double, 2>{1, 1}), 0,
                     s.issues, blocking);
      s.blocking |= blocking;
    }
    for (auto& f : files) s.files.push_back(f.path);
    out.push_back(std::move(s));
  }
  return out;
}

VoxelBuffer read_dicom_folder(const std::string& folder, const ReadOptions& options) {
  int skipped = 0;
  std::vector<DicomSeriesInfo> all = scan_dicom_folder(folder, &skipped);
  std::vector<const DicomSeriesInfo*> images;
  for (auto& s : all)
    if (s.has_pixels) images.push_back(&s);
  if (images.empty()) throw InputError(folder, "folder holds no DICOM image series");
  const DicomSeriesInfo* chosen = nullptr;
  if (!options.series.empty()) {
    for (auto* s : images)
      if (s->series_uid == options.series) chosen = s;
    if (!chosen) {
      char* end = nullptr;
      const long idx = std::strtol(options.series.c_str(), &end, 10);
      if (end && *end == '\0' && idx >= 1 && idx <= static_cast<long>(images.size()))
        chosen = images[static_cast<size_t>(idx - 1)];
    }
    if (!chosen) throw InputError(folder, "no series " + options.series + " in this folder");
  } else if (images.size() > 1) {
    throw InputError(folder, "folder holds " + std::to_string(images.size()) +
                                 " image series; choose one with --series (see medlens info)");
  } else {
    chosen = images.front();
  }
  const DicomSeriesInfo& s = *chosen;
  if (s.blocking && !options.allow_irregular_series) {
    std::string why = s.issues.empty() ? "series cannot be read as one volume" : s.issues.front();
    throw InputError(folder, "series " + s.series_uid + ": " + why +
                                 " (use --allow-irregular to read it anyway)");
  }
  if (s.files.size() == 1) {
    VoxelBuffer b = read_dicom_file(s.files.front(), options);
    b.metadata.source_path = folder;
    return b;
  }
  // Decode every slice in parallel straight into its place in the volume (one allocation, no
  // per-slice copies). Colour series are rare: decode those per slice and interleave planes.
  const int64_t z = static_cast<int64_t>(s.files.size());
  const int64_t c = s.samples_per_pixel, y = s.rows, x = s.columns;
  if (y <= 0 || x <= 0) throw InputError(folder, "series " + s.series_uid + " has no Rows/Columns");
  if (static_cast<double>(c) * z * y * x > static_cast<double>(max_voxels()))
    throw InputError(folder, "series holds more voxels than the limit of " +
                                 std::to_string(max_voxels()) + " (set MEDLENS_MAX_VOXELS to raise it)");
  VoxelBuffer b;
  b.shape = {c, z, y, x};
  b.data = float_buffer(static_cast<size_t>(b.shape.elements()));
  std::vector<VoxelBuffer> slices(s.files.size());
  parallel_for(z, [&](int64_t k) {
    if (c == 1) {
      slices[k] = read_dicom_file_into(s.files[k], options, b.data.data() + k * y * x, y * x);
      return;
    }
    slices[k] = read_dicom_file(s.files[k], options);
    if (slices[k].shape != b.shape.with_z(1))  // a slice of this series' size
      throw InputError(s.files[k], "slice size differs from the rest of the series");
    for (int64_t ch = 0; ch < c; ++ch)
      std::copy_n(slices[k].data.data() + ch * y * x, y * x, b.data.data() + (ch * z + k) * y * x);
    slices[k].data = {};
  });
  const VoxelBuffer& first = slices.front();
  b.metadata = first.metadata;
  b.metadata.warnings.clear();
  b.metadata.sop_uids.clear();
  for (auto& sl : slices) b.metadata.sop_uids.push_back(sl.metadata.sop_uids.empty() ? "" : sl.metadata.sop_uids[0]);
  b.metadata.source_path = folder;
  for (const auto& issue : s.issues) b.metadata.warnings.push_back(issue);
  // Geometry of the sorted stack.
  std::vector<Vec3> positions;
  for (auto& sl : slices) positions.push_back(sl.geometry.origin);
  std::array<double, 6> o{first.geometry.direction[0], first.geometry.direction[3],
                          first.geometry.direction[6], first.geometry.direction[1],
                          first.geometry.direction[4], first.geometry.direction[7]};
  std::vector<std::string> ignored;
  bool blocking = false;
  b.geometry = stack_geometry(positions, o, {first.geometry.spacing[1], first.geometry.spacing[0]},
                              first.geometry.spacing[2], ignored, blocking);
  // Rescale differs per slice in some series (PET): keep what was applied to the first.
  bool varying = false;
  for (auto& sl : slices)
    varying |= sl.metadata.rescale_slope != first.metadata.rescale_slope ||
               sl.metadata.rescale_intercept != first.metadata.rescale_intercept;
  if (varying) b.metadata.tags["RescaleVariesPerSlice"] = "YES";
  if (skipped > 0)
    b.metadata.warnings.push_back(std::to_string(skipped) + " non-DICOM file(s) in the folder were skipped");
  return b;
}

}  // namespace medlens
