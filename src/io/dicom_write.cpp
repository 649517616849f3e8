// DICOM writing with DCMTK: MR and CT image series (one file per slice) and Secondary Capture.
// Values are stored as 16-bit integers, losslessly when they are integers in range, else
// through a rescale slope/intercept chosen from the value range.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "core/error.h"
#include "core/image.h"
#include "core/version.h"
#include "io/dicom_common.h"
#include "io/file_util.h"
#include "io/write.h"

namespace fs = std::filesystem;

namespace medlens {
using namespace dicom;

namespace {

constexpr const char* kMrStorage = "1.2.840.10008.5.1.4.1.1.4";
constexpr const char* kCtStorage = "1.2.840.10008.5.1.4.1.1.2";
constexpr const char* kScStorage = "1.2.840.10008.5.1.4.1.1.7";

// How float voxels become stored integers: stored = round((value - intercept) / slope).
struct Encoding {
  bool is_signed = true;
  int bits = 16;
  double slope = 1.0, intercept = 0.0;
  bool rescaled = false;  // slope/intercept differ from identity
};

Encoding choose_encoding(const float* v, int64_t n, bool allow_8bit) {
  double lo = INFINITY, hi = -INFINITY;
  bool integral = true;
  for (int64_t i = 0; i < n; ++i) {
    const double x = v[i];
    if (!std::isfinite(x)) continue;
    lo = std::min(lo, x);
    hi = std::max(hi, x);
    integral = integral && x == std::nearbyint(x);
  }
  if (!std::isfinite(lo)) lo = hi = 0;
  Encoding e;
  if (integral && allow_8bit && lo >= 0 && hi <= 255) {
    e.is_signed = false;
    e.bits = 8;
  } else if (integral && lo >= -32768 && hi <= 32767) {
    e.is_signed = true;
  } else if (integral && lo >= 0 && hi <= 65535) {
    e.is_signed = false;
  } else if (integral && hi - lo <= 65535) {
    e.is_signed = false;
    e.intercept = lo;
    e.rescaled = true;
  } else {
    // Spread the range over the unsigned 16-bit codes.
    e.is_signed = false;
    e.intercept = lo;
    e.slope = hi > lo ? (hi - lo) / 65535.0 : 1.0;
    e.rescaled = true;
  }
  return e;
}

template <typename T>
std::vector<T> encode(const float* v, int64_t n, const Encoding& e) {
  std::vector<T> out(static_cast<size_t>(n));
  const double lo = e.is_signed ? -(1 << (e.bits - 1)) : 0;
  const double hi = e.is_signed ? (1 << (e.bits - 1)) - 1 : (1 << e.bits) - 1;
  for (int64_t i = 0; i < n; ++i) {
    const double x = std::isfinite(v[i]) ? v[i] : e.intercept;
    out[static_cast<size_t>(i)] =
        static_cast<T>(std::clamp(std::nearbyint((x - e.intercept) / e.slope), lo, hi));
  }
  return out;
}

std::string ds_value(double v) {
  // DS holds at most 16 characters.
  char buf[32];
  for (int precision = 10; precision >= 1; --precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, v);
    if (std::strlen(buf) <= 16) break;
  }
  return buf;
}

std::string now_date_time(bool date) {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, date ? "%Y%m%d" : "%H%M%S", &tm);
  return buf;
}

bool valid_uid(const std::string& uid) {
  if (uid.empty() || uid.size() > 64) return false;
  for (char c : uid)
    if (!(std::isdigit(static_cast<unsigned char>(c)) || c == '.')) return false;
  return true;
}

void put(DcmItem* ds, const DcmTagKey& tag, const std::string& value) {
  OFCondition st = ds->putAndInsertString(tag, value.c_str());
  if (st.bad())
    throw Error(ErrorKind::kInternal, std::string("cannot set DICOM attribute ") +
                                          DcmTag(tag).getTagName() + ": " + st.text());
}

std::string identity(const Metadata& m, const char* key) {
  auto it = m.identity.find(key);
  return it == m.identity.end() ? std::string() : it->second;
}

// Attributes every instance of the series shares: patient, study, series, equipment.
struct SeriesContext {
  std::string modality, sop_class, study_uid, series_uid, frame_uid, study_date, study_time,
      series_date, series_time;
  int series_number = 1000;
};

SeriesContext make_context(const Image& image, const std::string& modality, const std::string& sop_class) {
  const Metadata& m = image.metadata();
  SeriesContext c;
  c.modality = modality;
  c.sop_class = sop_class;
  c.study_uid = valid_uid(m.study_uid) ? m.study_uid : make_uid();
  c.series_uid = make_uid();  // derived data is always a new series
  c.frame_uid = valid_uid(m.frame_of_reference_uid) ? m.frame_of_reference_uid : make_uid();
  c.series_date = now_date_time(true);
  c.series_time = now_date_time(false);
  c.study_date = identity(m, "StudyDate");
  c.study_time = identity(m, "StudyTime");
  return c;
}

void put_common(DcmItem* ds, const Image& image, const SeriesContext& c, int instance,
                const std::string& sop_uid) {
  const Metadata& m = image.metadata();
  put(ds, DCM_SOPClassUID, c.sop_class);
  put(ds, DCM_SOPInstanceUID, sop_uid);
  put(ds, DCM_InstanceCreationDate, c.series_date);
  put(ds, DCM_InstanceCreationTime, c.series_time);
  // Patient (type 2: present, possibly empty).
  put(ds, DCM_PatientName, identity(m, "PatientName"));
  put(ds, DCM_PatientID, identity(m, "PatientID"));
  put(ds, DCM_PatientBirthDate, identity(m, "PatientBirthDate"));
  put(ds, DCM_PatientSex, identity(m, "PatientSex"));
  // General Study.
  put(ds, DCM_StudyInstanceUID, c.study_uid);
  put(ds, DCM_StudyDate, c.study_date);
  put(ds, DCM_StudyTime, c.study_time);
  put(ds, DCM_ReferringPhysicianName, identity(m, "ReferringPhysicianName"));
  put(ds, DCM_StudyID, identity(m, "StudyID"));
  put(ds, DCM_AccessionNumber, identity(m, "AccessionNumber"));
  // General Series.
  put(ds, DCM_Modality, c.modality);
  put(ds, DCM_SeriesInstanceUID, c.series_uid);
  put(ds, DCM_Laterality, "");  // type 2C: unknown for derived images
  put(ds, DCM_SeriesNumber, std::to_string(c.series_number));
  put(ds, DCM_SeriesDate, c.series_date);
  put(ds, DCM_SeriesTime, c.series_time);
  std::string description = m.series_description.empty() ? "medlens" : m.series_description;
  if (description.size() > 64) description.resize(64);
  put(ds, DCM_SeriesDescription, description);
  if (!m.body_part.empty() && m.body_part.size() <= 16) put(ds, DCM_BodyPartExamined, m.body_part);
  // General Equipment.
  put(ds, DCM_Manufacturer, "medlens");
  put(ds, DCM_SoftwareVersions, version());
  // General Image.
  put(ds, DCM_InstanceNumber, std::to_string(instance));
  put(ds, DCM_ContentDate, c.series_date);
  put(ds, DCM_ContentTime, c.series_time);
}

void put_pixels(DcmItem* ds, const float* v, int64_t rows, int64_t cols, int64_t channels,
                const Encoding& e, const std::string& photometric) {
  const int64_t n = rows * cols * channels;
  put(ds, DCM_SamplesPerPixel, std::to_string(channels));
  put(ds, DCM_PhotometricInterpretation, photometric);
  if (channels > 1) put(ds, DCM_PlanarConfiguration, "1");  // planes, as medlens holds them
  ds->putAndInsertUint16(DCM_Rows, static_cast<Uint16>(rows));
  ds->putAndInsertUint16(DCM_Columns, static_cast<Uint16>(cols));
  ds->putAndInsertUint16(DCM_BitsAllocated, static_cast<Uint16>(e.bits));
  ds->putAndInsertUint16(DCM_BitsStored, static_cast<Uint16>(e.bits));
  ds->putAndInsertUint16(DCM_HighBit, static_cast<Uint16>(e.bits - 1));
  ds->putAndInsertUint16(DCM_PixelRepresentation, e.is_signed ? 1 : 0);
  OFCondition st;
  if (e.bits == 8) {
    auto bytes = encode<uint8_t>(v, n, e);
    st = ds->putAndInsertUint8Array(DCM_PixelData, bytes.data(), static_cast<unsigned long>(bytes.size()));
  } else if (e.is_signed) {
    auto words = encode<int16_t>(v, n, e);
    st = ds->putAndInsertUint16Array(DCM_PixelData, reinterpret_cast<const Uint16*>(words.data()),
                                     static_cast<unsigned long>(words.size()));
  } else {
    auto words = encode<uint16_t>(v, n, e);
    st = ds->putAndInsertUint16Array(DCM_PixelData, words.data(), static_cast<unsigned long>(words.size()));
  }
  if (st.bad()) throw Error(ErrorKind::kInternal, std::string("cannot store pixel data: ") + st.text());
}

void put_window(DcmItem* ds, const Image& image) {
  if (image.metadata().window) {
    put(ds, DCM_WindowCenter, ds_value(image.metadata().window->center));
    put(ds, DCM_WindowWidth, ds_value(std::max(1.0, image.metadata().window->width)));
  }
}

// Image Plane module for slice z.
void put_plane(DcmItem* ds, const Geometry& g, int64_t z) {
  const Vec3 p = g.index_to_lps({0, 0, static_cast<double>(z)});
  put(ds, DCM_ImagePositionPatient, ds_value(p[0]) + "\\" + ds_value(p[1]) + "\\" + ds_value(p[2]));
  std::string iop;
  for (int n = 0; n < 2; ++n)
    for (int r = 0; r < 3; ++r) iop += (iop.empty() ? "" : "\\") + ds_value(g.direction[r * 3 + n]);
  put(ds, DCM_ImageOrientationPatient, iop);
  put(ds, DCM_PixelSpacing, ds_value(g.spacing[1]) + "\\" + ds_value(g.spacing[0]));
  put(ds, DCM_SliceThickness, ds_value(g.spacing[2]));
  const Vec3 normal = cross(g.axis(0), g.axis(1));
  put(ds, DCM_SliceLocation, ds_value(dot(p, normal)));
}

void put_modality_module(DcmItem* ds, const std::string& modality, const Encoding& e, const Geometry& g,
                         const Metadata& m) {
  auto pp = m.tags.find("PatientPosition");
  put(ds, DCM_PatientPosition, pp == m.tags.end() ? "" : pp->second);  // type 2C for CT/MR
  if (modality == "MR") {
    put(ds, DCM_ImageType, "DERIVED\\SECONDARY\\OTHER");
    put(ds, DCM_ScanningSequence, "RM");  // research mode: the acquisition is not known
    put(ds, DCM_SequenceVariant, "NONE");
    put(ds, DCM_ScanOptions, "");
    put(ds, DCM_MRAcquisitionType, "3D");
    put(ds, DCM_RepetitionTime, "");  // type 2C: unknown for derived images
    put(ds, DCM_EchoTime, "");
    put(ds, DCM_EchoTrainLength, "");
    put(ds, DCM_SpacingBetweenSlices, ds_value(g.spacing[2]));
    if (e.rescaled) {  // not in the MR module, but widely read (as Philips writes it)
      put(ds, DCM_RescaleIntercept, ds_value(e.intercept));
      put(ds, DCM_RescaleSlope, ds_value(e.slope));
    }
  } else {  // CT
    put(ds, DCM_ImageType, "DERIVED\\SECONDARY\\AXIAL");
    put(ds, DCM_KVP, "");
    put(ds, DCM_AcquisitionNumber, "");
    put(ds, DCM_RescaleIntercept, ds_value(e.intercept));
    put(ds, DCM_RescaleSlope, ds_value(e.slope));
    put(ds, DCM_RescaleType, "HU");
  }
}

void save(DcmFileFormat& file, const std::string& path) {
  OFCondition st = file.saveFile(path.c_str(), EXS_LittleEndianExplicit, EET_ExplicitLength,
                                 EGL_recalcGL, EPD_noChange);
  if (st.bad()) throw InputError(path, std::string("cannot write DICOM file: ") + st.text());
}

std::string pick_modality(const Image& image, const WriteOptions& options, bool volume) {
  std::string m = options.dicom_modality;
  for (auto& ch : m) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  if (m.empty()) {
    const std::string own = image.metadata().modality;
    if (own == "MR" || own == "CT") return own;
    if (volume)
      throw UsageError("the image's modality is '" + own +
                       "': say which DICOM series to write with --modality MR or CT");
    return "SC";
  }
  if (m != "MR" && m != "CT" && m != "SC")
    throw UsageError("DICOM output modality must be MR, CT or SC, not '" + m + "'");
  if (m == "SC" && volume)
    throw UsageError("Secondary Capture holds one 2-D image: write a volume as an MR or CT series");
  return m;
}

void check_size(const Image& image, const std::string& path) {
  if (image.height() > 65535 || image.width() > 65535)
    throw InputError(path, "image is too large for DICOM rows/columns (65535 at most)");
}

}  // namespace

void write_dicom_series(const Image& image, const std::string& folder, const WriteOptions& options) {
  init_dcmtk();
  const std::string modality = pick_modality(image, options, true);
  if (modality == "SC") throw UsageError("a DICOM series is written as MR or CT");
  if (image.channels() != 1)
    throw UsageError("MR and CT series hold one channel; this image has " +
                     std::to_string(image.channels()));
  check_size(image, folder);
  AtomicOutput out(folder, /*is_folder=*/true);
  const SeriesContext ctx = make_context(image, modality, modality == "MR" ? kMrStorage : kCtStorage);
  const int64_t plane = image.height() * image.width();
  // One encoding for the whole series, so every slice means the same thing.
  const Encoding e = choose_encoding(image.data(), image.depth() * plane, false);
  const int digits = std::max<int>(4, static_cast<int>(std::to_string(image.depth()).size()));
  for (int64_t z = 0; z < image.depth(); ++z) {
    DcmFileFormat file;
    DcmDataset* ds = file.getDataset();
    put_common(ds, image, ctx, static_cast<int>(z + 1), make_uid());
    put(ds, DCM_FrameOfReferenceUID, ctx.frame_uid);
    put(ds, DCM_PositionReferenceIndicator, "");
    put_plane(ds, image.geometry(), z);
    put_modality_module(ds, modality, e, image.geometry(), image.metadata());
    put_pixels(ds, image.data() + z * plane, image.height(), image.width(), 1, e, "MONOCHROME2");
    put_window(ds, image);
    std::string number = std::to_string(z + 1);
    number.insert(0, static_cast<size_t>(std::max<int>(0, digits - static_cast<int>(number.size()))), '0');
    save(file, (fs::path(out.temp_path()) / ("IM" + number + ".dcm")).string());
  }
  out.commit();
}

void write_dicom_file(const Image& image, const std::string& path, const WriteOptions& options) {
  init_dcmtk();
  if (image.is_3d())
    throw UsageError("a .dcm file holds one 2-D image; write a volume as a series to a folder "
                     "(OUT ending in /)");
  check_size(image, path);
  std::string modality = pick_modality(image, options, false);
  if ((modality == "MR" || modality == "CT") && image.channels() != 1) modality = "SC";
  if (image.channels() != 1 && image.channels() != 3)
    throw UsageError("DICOM holds 1 (grey) or 3 (RGB) channels; this image has " +
                     std::to_string(image.channels()));
  AtomicOutput out(path);
  DcmFileFormat file;
  DcmDataset* ds = file.getDataset();
  const int64_t n = image.shape().elements();
  if (modality == "SC") {
    SeriesContext ctx = make_context(image, image.metadata().modality.empty() ? "OT" : image.metadata().modality, kScStorage);
    put_common(ds, image, ctx, 1, make_uid());
    put(ds, DCM_ConversionType, "WSD");  // workstation: derived by software
    put(ds, DCM_PatientOrientation, "");
    const bool rgb = image.channels() == 3;
    Encoding e = choose_encoding(image.data(), n, true);
    if (rgb && e.bits != 8) {
      // Colour SC is 8-bit: map through the display window.
      std::vector<float> mapped(static_cast<size_t>(n));
      const auto [lo, hi] = value_range(image);
      const Window w = image.metadata().window.value_or(Window{(lo + hi) / 2.0, std::max(1.0, double(hi - lo))});
      for (int64_t i = 0; i < n; ++i) mapped[i] = apply_window(image.data()[i], w);
      e = Encoding{false, 8, 1.0, 0.0, false};
      put_pixels(ds, mapped.data(), image.height(), image.width(), 3, e, "RGB");
    } else {
      put_pixels(ds, image.data(), image.height(), image.width(), image.channels(), e,
                 rgb ? "RGB" : "MONOCHROME2");
      if (e.rescaled) {
        put(ds, DCM_RescaleIntercept, ds_value(e.intercept));
        put(ds, DCM_RescaleSlope, ds_value(e.slope));
        put(ds, DCM_RescaleType, image.metadata().units == "HU" ? "HU" : "US");
      }
    }
    if (!rgb) put_window(ds, image);
    // A Secondary Capture has no patient-space geometry, only a pixel size when one is known.
    if (image.geometry().spacing[0] != 1.0 || image.geometry().spacing[1] != 1.0)
      put(ds, DCM_PixelSpacing, ds_value(image.geometry().spacing[1]) + "\\" +
                                    ds_value(image.geometry().spacing[0]));
  } else {
    const SeriesContext ctx = make_context(image, modality, modality == "MR" ? kMrStorage : kCtStorage);
    const Encoding e = choose_encoding(image.data(), n, false);
    put_common(ds, image, ctx, 1, make_uid());
    put(ds, DCM_FrameOfReferenceUID, ctx.frame_uid);
    put(ds, DCM_PositionReferenceIndicator, "");
    put_plane(ds, image.geometry(), 0);
    put_modality_module(ds, modality, e, image.geometry(), image.metadata());
    put_pixels(ds, image.data(), image.height(), image.width(), 1, e, "MONOCHROME2");
    put_window(ds, image);
  }
  save(file, out.temp_path());
  out.commit();
}

}  // namespace medlens
