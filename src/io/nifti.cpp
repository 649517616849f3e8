// NIfTI-1 and NIfTI-2 with zlib, no ITK: .nii, .nii.gz, .hdr/.img pairs (either part may be
// gzip'd), either byte order. The affine is chosen and computed exactly as nibabel's img.affine
// (sform, else qform, else nibabel's centred fallback), so medlens and Python tools agree on
// where every voxel is. Headers are never trusted for allocation sizes: claims are bounded by
// max_voxels() and, for gzip, by the bytes that actually decompress. Writing: float32 NIfTI-1
// (NIfTI-2 past int16 dims) with sform and qform; .nii.gz is deflated in parallel blocks.

#include "io/nifti.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cctype>
#include <cerrno>
#include <cfloat>
#include <climits>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <new>
#include <thread>
#include <type_traits>

#include "core/error.h"
#include "core/image.h"
#include "core/parallel.h"
#include "io/file_util.h"
#include "io/read.h"

namespace fs = std::filesystem;

namespace medlens {
namespace {

constexpr size_t kNifti1Size = 348, kNifti2Size = 540;
constexpr int64_t kParallelValues = int64_t{1} << 20;  // below this, threads cost more than they save

// ---------------------------------------------------------------------------------------------
// Bytes

template <class T>
T byteswapped(T v) {
  static_assert(std::is_trivially_copyable_v<T>);
  if constexpr (sizeof(T) == 1) {
    return v;
  } else {
    using U = std::conditional_t<sizeof(T) == 2, uint16_t,
                                 std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>>;
    U u;
    std::memcpy(&u, &v, sizeof u);
    if constexpr (sizeof(T) == 2) u = __builtin_bswap16(u);
    else if constexpr (sizeof(T) == 4) u = __builtin_bswap32(u);
    else u = __builtin_bswap64(u);
    std::memcpy(&v, &u, sizeof v);
    return v;
  }
}

// Value of type T at p in file order; `swap` when the file's byte order is not ours.
template <class T>
T load(const uint8_t* p, bool swap) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return swap ? byteswapped(v) : v;
}

// Little-endian store for the writer.
template <class T>
void store_le(uint8_t* p, T v) {
  if constexpr (std::endian::native == std::endian::big) v = byteswapped(v);
  std::memcpy(p, &v, sizeof v);
}

// A fixed-size header string: up to its first NUL, unprintable bytes shown as '?'.
std::string header_string(const uint8_t* p, size_t n) {
  std::string s;
  for (size_t i = 0; i < n && p[i] != 0; ++i)
    s += (p[i] >= 32 && p[i] < 127) ? static_cast<char>(p[i]) : '?';
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

bool is_gzip(const uint8_t* p, size_t n) { return n >= 2 && p[0] == 0x1f && p[1] == 0x8b; }

// Decompresses a gzip stream (several members allowed) into a buffer that grows only as data
// arrive, so a tiny file whose header claims gigabytes fails at its real end, cheaply.
class Inflater {
 public:
  Inflater(const uint8_t* data, size_t size, std::string name)
      : in_(data), in_left_(size), name_(std::move(name)) {
    // 4x the compressed size covers most images in one allocation; realloc grows the rest.
    first_capacity_ = std::clamp<size_t>(size * 4, size_t{1} << 16, size_t{1} << 26);
    if (inflateInit2(&zs_, 15 + 16) != Z_OK) throw InputError(name_, "cannot start zlib");
  }
  ~Inflater() {
    inflateEnd(&zs_);
    std::free(buf_);
  }
  Inflater(const Inflater&) = delete;
  Inflater& operator=(const Inflater&) = delete;

  const uint8_t* data() const { return buf_; }
  size_t size() const { return len_; }
  bool ended() const { return ended_; }

  /// Allocates room for `want` bytes now when that is plausible for the compressed size (what
  /// the first allocation would have been anyway); then fill(<= want) never moves the buffer.
  bool reserve(size_t want) {
    if (want > first_capacity_) return false;
    if (cap_ < want) grow(want);
    return cap_ >= want;
  }

  /// Decompresses until `want` bytes are held or the stream ends (then fewer are held).
  void fill(size_t want) {
    while (len_ < want && !ended_) {
      if (len_ == cap_) grow(want);
      if (zs_.avail_in == 0) feed();
      zs_.next_out = buf_ + len_;
      zs_.avail_out = static_cast<uInt>(std::min<size_t>(cap_ - len_, UINT_MAX));
      const uInt out_before = zs_.avail_out, in_before = zs_.avail_in;
      const int rc = inflate(&zs_, Z_NO_FLUSH);
      len_ += out_before - zs_.avail_out;
      if (rc == Z_STREAM_END) {
        member_end();
      } else if (rc == Z_OK || rc == Z_BUF_ERROR) {
        const bool stuck = out_before == zs_.avail_out && in_before == zs_.avail_in;
        if (zs_.avail_in == 0 && in_left_ == 0 && (stuck || rc == Z_BUF_ERROR))
          ended_ = true;  // the input ran out mid-stream: truncated
        else if (stuck)
          throw InputError(name_, "corrupt gzip data (no progress)");
      } else {
        throw InputError(name_, std::string("corrupt gzip data (") +
                                    (zs_.msg ? zs_.msg : "zlib error " + std::to_string(rc)) +
                                    ")");
      }
    }
  }

  /// After the voxels: decompresses a little further to reach the member's end so its CRC is
  /// checked. Trailing data beyond 1 MiB is ignored, as nibabel ignores it.
  void verify_end() {
    uint8_t scratch[1 << 16];
    for (int i = 0; i < 16 && !ended_ && !member_done_; ++i) {
      if (zs_.avail_in == 0) feed();
      zs_.next_out = scratch;
      zs_.avail_out = sizeof scratch;
      const int rc = inflate(&zs_, Z_NO_FLUSH);
      if (rc == Z_STREAM_END) return;
      if (rc == Z_BUF_ERROR) return;  // trailer missing: the voxels are complete, accept
      if (rc != Z_OK)
        throw InputError(name_, std::string("corrupt gzip data (") +
                                    (zs_.msg ? zs_.msg : "zlib error") + ")");
    }
  }

 private:
  void feed() {
    const size_t n = std::min<size_t>(in_left_, UINT_MAX);
    zs_.next_in = const_cast<Bytef*>(in_);
    zs_.avail_in = static_cast<uInt>(n);
    in_ += n;
    in_left_ -= n;
  }
  void member_end() {
    // Another gzip member may follow (concatenated .gz); anything else is trailing junk.
    if (zs_.avail_in == 0) feed();
    if (zs_.avail_in >= 2 && zs_.next_in[0] == 0x1f && zs_.next_in[1] == 0x8b) {
      inflateReset(&zs_);
    } else {
      ended_ = true;
      member_done_ = true;
    }
  }
  void grow(size_t want) {
    const size_t cap = std::min(std::max(cap_ * 2, first_capacity_), want);
    void* p = std::realloc(buf_, cap);
    if (!p)
      throw InputError(name_, "not enough memory to decompress " + std::to_string(cap) + " bytes");
    buf_ = static_cast<uint8_t*>(p);
    cap_ = cap;
    advise_huge_pages(buf_, cap_);
  }

  z_stream zs_{};
  const uint8_t* in_;
  size_t in_left_;
  std::string name_;
  uint8_t* buf_ = nullptr;
  size_t cap_ = 0, len_ = 0, first_capacity_ = 0;
  bool ended_ = false, member_done_ = false;
};

// ---------------------------------------------------------------------------------------------
// Header

struct Header {
  int version = 1;       // NIfTI-1 or -2
  size_t size = 348;     // bytes of the fixed header
  bool swap = false;     // file byte order differs from ours
  bool pair = false;     // magic ni1/ni2: voxels live in a separate .img file
  int64_t dim[8]{};
  double pixdim[8]{};    // NIfTI-1 floats widened exactly
  int datatype = 0;
  double vox_offset = 0;
  double scl_slope = 0, scl_inter = 0, cal_min = 0, cal_max = 0;
  int qform_code = 0, sform_code = 0, intent_code = 0, xyzt_units = 0;
  int64_t glmin = 0;
  double quatern[3]{}, qoffset[3]{}, srow[3][4]{};
  std::string descrip, intent_name;
};

Header parse_header(const uint8_t* p, size_t n, const std::string& name) {
  if (n == 0) throw InputError(name, "empty file");
  if (n < 4) throw InputError(name, "not a NIfTI file (" + std::to_string(n) + " bytes)");
  Header h;
  const int32_t raw = load<int32_t>(p, false), swapped = byteswapped(raw);
  if (raw == 348 || swapped == 348) {
    h.version = 1;
    h.size = kNifti1Size;
  } else if (raw == 540 || swapped == 540) {
    h.version = 2;
    h.size = kNifti2Size;
  } else {
    throw InputError(name, "not a NIfTI file (sizeof_hdr is " + std::to_string(raw) +
                               ", expected 348 or 540)");
  }
  h.swap = raw != static_cast<int32_t>(h.size);
  if (n < h.size)
    throw InputError(name, "truncated header: " + std::to_string(n) + " bytes, expected " +
                               std::to_string(h.size));
  const bool s = h.swap;
  if (h.version == 1) {
    const uint8_t* m = p + 344;
    if (std::memcmp(m, "n+1\0", 4) == 0) h.pair = false;
    else if (std::memcmp(m, "ni1\0", 4) == 0) h.pair = true;
    else
      throw InputError(name, "not a NIfTI-1 file (no n+1/ni1 magic; plain Analyze 7.5 is not "
                             "supported)");
    for (int i = 0; i < 8; ++i) h.dim[i] = load<int16_t>(p + 40 + 2 * i, s);
    h.intent_code = load<int16_t>(p + 68, s);
    h.datatype = load<int16_t>(p + 70, s);
    for (int i = 0; i < 8; ++i) h.pixdim[i] = load<float>(p + 76 + 4 * i, s);
    h.vox_offset = load<float>(p + 108, s);
    h.scl_slope = load<float>(p + 112, s);
    h.scl_inter = load<float>(p + 116, s);
    h.xyzt_units = p[123];
    h.cal_max = load<float>(p + 124, s);
    h.cal_min = load<float>(p + 128, s);
    h.glmin = load<int32_t>(p + 144, s);
    h.descrip = header_string(p + 148, 80);
    h.qform_code = load<int16_t>(p + 252, s);
    h.sform_code = load<int16_t>(p + 254, s);
    for (int i = 0; i < 3; ++i) h.quatern[i] = load<float>(p + 256 + 4 * i, s);
    for (int i = 0; i < 3; ++i) h.qoffset[i] = load<float>(p + 268 + 4 * i, s);
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 4; ++c) h.srow[r][c] = load<float>(p + 280 + 16 * r + 4 * c, s);
    h.intent_name = header_string(p + 328, 16);
  } else {
    const uint8_t* m = p + 4;
    if (std::memcmp(m, "n+2\0", 4) == 0) h.pair = false;
    else if (std::memcmp(m, "ni2\0", 4) == 0) h.pair = true;
    else throw InputError(name, "not a NIfTI-2 file (no n+2/ni2 magic)");
    static const uint8_t kEol[4] = {13, 10, 26, 10}, kZero[4] = {0, 0, 0, 0};
    if (std::memcmp(p + 8, kEol, 4) != 0 && std::memcmp(p + 8, kZero, 4) != 0)
      throw InputError(name, "NIfTI-2 end-of-line check is damaged: the file was corrupted by a "
                             "text-mode (line ending) conversion");
    h.datatype = load<int16_t>(p + 12, s);
    for (int i = 0; i < 8; ++i) h.dim[i] = load<int64_t>(p + 16 + 8 * i, s);
    for (int i = 0; i < 8; ++i) h.pixdim[i] = load<double>(p + 104 + 8 * i, s);
    h.vox_offset = static_cast<double>(load<int64_t>(p + 168, s));
    h.scl_slope = load<double>(p + 176, s);
    h.scl_inter = load<double>(p + 184, s);
    h.cal_max = load<double>(p + 192, s);
    h.cal_min = load<double>(p + 200, s);
    h.descrip = header_string(p + 240, 80);
    h.qform_code = load<int32_t>(p + 344, s);
    h.sform_code = load<int32_t>(p + 348, s);
    for (int i = 0; i < 3; ++i) h.quatern[i] = load<double>(p + 352 + 8 * i, s);
    for (int i = 0; i < 3; ++i) h.qoffset[i] = load<double>(p + 376 + 8 * i, s);
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 4; ++c) h.srow[r][c] = load<double>(p + 400 + 32 * r + 8 * c, s);
    h.xyzt_units = load<int32_t>(p + 500, s);
    h.intent_code = load<int32_t>(p + 504, s);
    h.intent_name = header_string(p + 508, 16);
  }
  return h;
}

struct DataType {
  int code;
  const char* name;
  int bytes;    // per stored value
  int samples;  // values per voxel: 3 for RGB24, 4 for RGBA32, else 1
};

constexpr DataType kTypes[] = {
    {2, "uint8", 1, 1},     {4, "int16", 2, 1},    {8, "int32", 4, 1},   {16, "float32", 4, 1},
    {64, "float64", 8, 1},  {128, "RGB24", 1, 3},  {256, "int8", 1, 1},  {512, "uint16", 2, 1},
    {768, "uint32", 4, 1},  {1024, "int64", 8, 1}, {1280, "uint64", 8, 1}, {2304, "RGBA32", 1, 4},
};

const DataType& datatype_of(int code, const std::string& name) {
  for (const DataType& t : kTypes)
    if (t.code == code) return t;
  switch (code) {
    case 32: case 1792: case 2048:
      throw InputError(name, std::string("complex datatype (") +
                                 (code == 32     ? "complex64"
                                  : code == 1792 ? "complex128"
                                                 : "complex256") +
                                 ") is not supported: medlens reads real-valued images");
    case 1536: throw InputError(name, "datatype float128 is not supported");
    case 1: throw InputError(name, "datatype 1 (1-bit binary) is not supported");
    default: throw InputError(name, "unknown NIfTI datatype code " + std::to_string(code));
  }
}

// ---------------------------------------------------------------------------------------------
// Plan: everything decided from the header before a voxel is touched.

struct Plan {
  const DataType* type = nullptr;
  int64_t x = 1, y = 1, z = 1, groups = 1;  // groups: product of dims 4..7
  int64_t values = 0;                       // all stored values (incl. colour samples)
  uint64_t bytes = 0, offset = 0;
  double slope = 1.0, inter = 0.0;
  bool scale = false;
  Geometry geometry;
  Metadata metadata;
};

// Product of the dims (and colour samples), refused above max_voxels() before any allocation.
int64_t checked_product(const int64_t (&d)[8], int samples, const std::string& name) {
  const int64_t limit = max_voxels();
  int64_t p = samples;
  long double claimed = samples;
  bool over = false;
  for (int i = 1; i <= 7; ++i) {
    claimed *= static_cast<long double>(d[i]);
    if (!over && p > limit / d[i]) over = true;
    if (!over) p *= d[i];
  }
  if (over || p > limit) {
    std::string dims;
    for (int i = 1; i <= d[0]; ++i) dims += (i > 1 ? "x" : "") + std::to_string(d[i]);
    throw InputError(name, "header claims " + dims + " voxels (" + num(static_cast<double>(claimed)) +
                               " values), more than the limit of " + std::to_string(limit) +
                               " (MEDLENS_MAX_VOXELS)");
  }
  return p;
}

// nibabel's quaternion -> rotation (fillpositive + quat2mat), in long double as numpy's
// longdouble so the affine matches bit for bit.
std::array<long double, 9> quaternion_rotation(const Header& h, const std::string& name) {
  const long double b = h.quatern[0], c = h.quatern[1], d = h.quatern[2];
  const long double w2 = 1.0L - (b * b + c * c + d * d);
  const long double thresh =
      -3.0L * (h.version == 1 ? static_cast<long double>(FLT_EPSILON) : DBL_EPSILON);
  if (!std::isfinite(w2))
    throw InputError(name, "qform quaternion is not finite");
  long double w = 0;
  if (w2 < 0) {
    if (w2 < thresh)
      throw InputError(name, "qform quaternion (b, c, d) = (" + num(h.quatern[0]) + ", " +
                                 num(h.quatern[1]) + ", " + num(h.quatern[2]) +
                                 ") is longer than 1: not a rotation");
  } else {
    w = std::sqrt(w2);
  }
  const long double nq = w * w + b * b + c * c + d * d;
  if (nq < DBL_EPSILON) return {1, 0, 0, 0, 1, 0, 0, 0, 1};
  const long double sc = 2.0L / nq;
  const long double X = b * sc, Y = c * sc, Z = d * sc;
  const long double wX = w * X, wY = w * Y, wZ = w * Z;
  const long double xX = b * X, xY = b * Y, xZ = b * Z;
  const long double yY = c * Y, yZ = c * Z, zZ = d * Z;
  return {1.0L - (yY + zZ), xY - wZ, xZ + wY,
          xY + wZ, 1.0L - (xX + zZ), yZ - wX,
          xZ - wY, yZ + wX, 1.0L - (xX + yY)};
}

const char* unit_name(int code) {
  switch (code) {
    case 1: return "meters";
    case 2: return "mm";
    case 3: return "microns";
    default: return "unknown";
  }
}

// The RAS affine nibabel reports as img.affine, then LPS geometry. Refuses what nibabel refuses
// and, beyond it, zero/negative/NaN spacing on axes that carry data.
void choose_geometry(const Header& h, Plan& P, const std::string& name) {
  Metadata& md = P.metadata;
  const int ndim = static_cast<int>(h.dim[0]);
  // nibabel's header check_fix: unknown xform codes count as 0, qfac other than +-1 as 1.
  auto code = [&](int c, const char* what) {
    if (c >= 0 && c <= 5) return c;
    md.warnings.push_back(std::string(what) + " " + std::to_string(c) +
                          " is not a valid code; ignored");
    return 0;
  };
  const int sform_code = code(h.sform_code, "sform_code");
  const int qform_code = code(h.qform_code, "qform_code");
  double pix[4] = {h.pixdim[0], h.pixdim[1], h.pixdim[2], h.pixdim[3]};
  auto check_pixdims = [&]() {
    for (int i = 1; i <= 3; ++i) {
      if (i <= ndim) {
        if (!(pix[i] > 0) || !std::isfinite(pix[i]))
          throw InputError(name, "zero or negative spacing: pixdim[" + std::to_string(i) +
                                     "] is " + num(pix[i]));
      } else if (pix[i] == 0 || pix[i] < 0) {  // unused axis: nibabel's fix (0 -> 1, abs)
        pix[i] = pix[i] == 0 ? 1.0 : -pix[i];
      }
    }
  };

  std::array<double, 16> a{};
  a[15] = 1.0;
  std::string source;
  if (sform_code != 0) {
    source = "sform";
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 4; ++c) a[r * 4 + c] = h.srow[r][c];
  } else if (qform_code != 0) {
    source = "qform";
    check_pixdims();
    const double qfac = pix[0] == -1.0 ? -1.0 : 1.0;
    const auto R = quaternion_rotation(h, name);
    const long double vox[3] = {pix[1], pix[2], pix[3] * qfac};
    for (int r = 0; r < 3; ++r) {
      for (int c = 0; c < 3; ++c) a[r * 4 + c] = static_cast<double>(R[r * 3 + c] * vox[c]);
      a[r * 4 + 3] = h.qoffset[r];
    }
  } else {
    // nibabel's get_base_affine: centred on the volume, x flipped (radiological storage).
    source = "fallback";
    check_pixdims();
    double shape[3] = {1, 1, 1}, zoom[3] = {1, 1, 1};
    for (int i = 0; i < std::min(ndim, 3); ++i) {
      shape[i] = static_cast<double>(h.dim[i + 1]);
      zoom[i] = pix[i + 1];
    }
    zoom[0] = -zoom[0];
    for (int i = 0; i < 3; ++i) {
      a[i * 4 + i] = zoom[i];
      a[i * 4 + 3] = -((shape[i] - 1) / 2.0) * zoom[i];
    }
    md.warnings.push_back("no sform or qform: using nibabel's default affine (centred on the "
                          "volume, x flipped, pixdim spacing)");
  }

  const int units = h.xyzt_units & 7;
  if (units == 1 || units == 3) {
    const double f = units == 1 ? 1000.0 : 0.001;
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 4; ++c) a[r * 4 + c] *= f;
    md.warnings.push_back(std::string("spatial units are ") + unit_name(units) +
                          "; spacing and origin converted to mm");
  }

  for (int i = 0; i < 12; ++i)
    if (!std::isfinite(a[i])) throw InputError(name, "the " + source + " affine is not finite");
  Geometry g = from_ras_affine(a);
  for (int c = 0; c < 3; ++c)
    if (!(g.spacing[c] > 0))
      throw InputError(name, "zero or negative spacing: column " + std::to_string(c) + " of the " +
                                 source + " affine has length " + num(g.spacing[c]));
  std::string why;
  if (!g.valid(&why)) throw InputError(name, "unusable " + source + " affine: " + why);
  P.geometry = g;
  md.tags["affine"] = source;
}

Plan make_plan(const Header& h, bool single_file, const std::string& name) {
  Plan P;
  Metadata& md = P.metadata;
  P.type = &datatype_of(h.datatype, name);
  const int64_t ndim = h.dim[0];
  if (ndim < 1 || ndim > 7)
    throw InputError(name, "dim[0] is " + std::to_string(ndim) + ", expected 1..7");
  int64_t d[8] = {ndim, 1, 1, 1, 1, 1, 1, 1};
  for (int i = 1; i <= ndim; ++i) d[i] = h.dim[i];
  // nibabel's FreeSurfer conventions: long vectors (-1,1,1 + glmin) and the ico7 surface.
  if (h.version == 1 && ndim >= 3 && d[1] == -1 && d[2] == 1 && d[3] == 1) d[1] = h.glmin;
  else if (h.version == 1 && ndim >= 3 && d[1] == 27307 && d[2] == 1 && d[3] == 6)
    d[1] = 163842, d[3] = 1;
  for (int i = 1; i <= ndim; ++i)
    if (d[i] <= 0)
      throw InputError(name, "dim[" + std::to_string(i) + "] is " + std::to_string(d[i]) +
                                 ": an image needs a positive size on every axis");
  P.x = d[1];
  P.y = d[2];
  P.z = d[3];
  P.values = checked_product(d, P.type->samples, name);
  P.groups = P.values / (P.x * P.y * P.z * P.type->samples);
  P.bytes = static_cast<uint64_t>(P.values) * static_cast<uint64_t>(P.type->bytes);

  // Where the voxels start. nibabel refuses a single-file offset inside the header.
  if (!std::isfinite(h.vox_offset) || h.vox_offset < 0 || h.vox_offset > 9.0e18)
    throw InputError(name, "vox_offset " + num(h.vox_offset) + " is not a valid file offset");
  P.offset = static_cast<uint64_t>(h.vox_offset);  // int(), as nibabel
  const uint64_t min_offset = h.version == 1 ? 352 : 544;
  if (single_file && P.offset < min_offset)
    throw InputError(name, "vox_offset " + std::to_string(P.offset) +
                               " points inside the header (a .nii needs at least " +
                               std::to_string(min_offset) + ")");

  // Scaling exactly as nibabel's get_slope_inter: ignored when slope is 0 or not finite.
  if (h.scl_slope != 0 && std::isfinite(h.scl_slope)) {
    if (!std::isfinite(h.scl_inter))
      throw InputError(name, "scl_inter is " + num(h.scl_inter) + " while scl_slope is set");
    P.slope = h.scl_slope;
    P.inter = h.scl_inter;
  }
  P.scale = P.slope != 1.0 || P.inter != 0.0;
  if (P.scale && P.type->samples > 1) {
    md.warnings.push_back("scl_slope/scl_inter ignored for colour data");
    P.scale = false;
    P.slope = 1.0;
    P.inter = 0.0;
  }

  choose_geometry(h, P, name);

  md.source_format = "nifti";
  md.source_path = name;
  md.modality = "";
  md.photometric = P.type->samples == 3 ? "RGB" : P.type->samples == 4 ? "RGBA" : "MONOCHROME2";
  md.rescale_slope = P.slope;
  md.rescale_intercept = P.inter;
  md.series_description = h.descrip;
  if (std::isfinite(h.cal_min) && std::isfinite(h.cal_max) && h.cal_max > h.cal_min)
    md.window = Window{(h.cal_min + h.cal_max) / 2.0, h.cal_max - h.cal_min};
  if (P.groups > 1)
    md.warnings.push_back("dims 4..7 hold " + std::to_string(P.groups) +
                          " volumes per voxel; read as channels");
  md.tags["nifti_version"] = std::to_string(h.version);
  md.tags["datatype"] = P.type->name;
  md.tags["qform_code"] = std::to_string(h.qform_code);
  md.tags["sform_code"] = std::to_string(h.sform_code);
  md.tags["xyzt_units"] = std::to_string(h.xyzt_units);
  if (!h.descrip.empty()) md.tags["descrip"] = h.descrip;
  if (h.intent_code != 0) md.tags["intent_code"] = std::to_string(h.intent_code);
  if (!h.intent_name.empty()) md.tags["intent_name"] = h.intent_name;
  if (h.swap) md.tags["byte_order"] = std::endian::native == std::endian::little ? "big" : "little";
  return P;
}

// ---------------------------------------------------------------------------------------------
// Voxels

// One pass raw -> float, exactly numpy's arithmetic: widen to double, multiply when the slope is
// not 1, add when the intercept is not 0, round once to float32.
template <class T, bool kSwap, bool kMul, bool kAdd>
void convert_run(const uint8_t* src, float* dst, int64_t n, double slope, double inter) {
  for (int64_t i = 0; i < n; ++i) {
    T v;
    std::memcpy(&v, src + i * static_cast<int64_t>(sizeof(T)), sizeof(T));
    if constexpr (kSwap) v = byteswapped(v);
    if constexpr (!kMul && !kAdd && std::is_same_v<T, float>) {
      dst[i] = v;
    } else {
      double x = static_cast<double>(v);
      if constexpr (kMul) x *= slope;
      if constexpr (kAdd) x += inter;
      dst[i] = static_cast<float>(x);
    }
  }
}

using ConvertFn = void (*)(const uint8_t*, float*, int64_t, double, double);

template <class T>
ConvertFn pick(bool swap, bool mul, bool add) {
  const int k = (swap ? 4 : 0) | (mul ? 2 : 0) | (add ? 1 : 0);
  static constexpr ConvertFn table[8] = {
      convert_run<T, false, false, false>, convert_run<T, false, false, true>,
      convert_run<T, false, true, false>,  convert_run<T, false, true, true>,
      convert_run<T, true, false, false>,  convert_run<T, true, false, true>,
      convert_run<T, true, true, false>,   convert_run<T, true, true, true>};
  return table[k];
}

ConvertFn converter(int code, bool swap, bool mul, bool add) {
  switch (code) {
    case 2: return pick<uint8_t>(false, mul, add);
    case 256: return pick<int8_t>(false, mul, add);
    case 4: return pick<int16_t>(swap, mul, add);
    case 512: return pick<uint16_t>(swap, mul, add);
    case 8: return pick<int32_t>(swap, mul, add);
    case 768: return pick<uint32_t>(swap, mul, add);
    case 1024: return pick<int64_t>(swap, mul, add);
    case 1280: return pick<uint64_t>(swap, mul, add);
    case 16: return pick<float>(swap, mul, add);
    case 64: return pick<double>(swap, mul, add);
    default: return nullptr;
  }
}

VoxelBuffer assemble(const Header& h, Plan& P, const uint8_t* raw) {
  VoxelBuffer b;
  const int64_t samples = P.type->samples;
  b.shape = Shape{P.groups * samples, P.z, P.y, P.x};
  b.data = float_buffer(static_cast<size_t>(P.values));
  float* out = b.data.data();
  if (samples > 1) {
    // Colour is interleaved per voxel; channel = volume * samples + colour.
    const int64_t plane = P.x * P.y * P.z;
    auto channel = [&](int64_t ch) {
      const int64_t g = ch / samples, k = ch % samples;
      const uint8_t* src = raw + g * plane * samples + k;
      float* dst = out + ch * plane;
      for (int64_t p = 0; p < plane; ++p) dst[p] = src[p * samples];
    };
    if (P.values < kParallelValues) {
      for (int64_t ch = 0; ch < P.groups * samples; ++ch) channel(ch);
    } else {
      parallel_for(P.groups * samples, channel);
    }
  } else {
    const ConvertFn fn = converter(P.type->code, h.swap, P.slope != 1.0, P.inter != 0.0);
    const int64_t chunk = kParallelValues;  // one chunk (no threads) for small images
    const int64_t chunks = (P.values + chunk - 1) / chunk;
    const int64_t width = P.type->bytes;
    parallel_for(chunks, [&](int64_t i) {
      const int64_t begin = i * chunk, n = std::min(chunk, P.values - begin);
      fn(raw + begin * width, out + begin, n, P.slope, P.inter);
    });
  }
  b.geometry = P.geometry;
  b.metadata = std::move(P.metadata);
  return b;
}

// For a big gzip'd image of plausible size: converts to float on a second thread while inflate
// runs, so the output allocation and conversion hide behind decompression. Same checks and
// results as voxel_bytes() + assemble(); returns false (nothing done) when not applicable.
bool assemble_while_inflating(const Header& h, Plan& P, Inflater& inf, const std::string& name,
                              VoxelBuffer& b) {
  constexpr size_t kMinBytes = size_t{4} << 20, kStep = size_t{1} << 20;
  if (P.type->samples != 1 || P.bytes < kMinBytes || thread_count() < 2) return false;
  const size_t begin = P.offset, end = P.offset + P.bytes;
  if (!inf.reserve(end)) return false;
  const uint8_t* raw = inf.data();  // fixed from here on: reserve() made room for everything
  const ConvertFn fn = converter(P.type->code, h.swap, P.slope != 1.0, P.inter != 0.0);
  const int64_t width = P.type->bytes;
  std::mutex mutex;
  std::condition_variable cv;
  size_t ready = inf.size();  // bytes decompressed, guarded by mutex
  bool finished = false;      // no more bytes will come
  std::exception_ptr worker_error;
  b.shape = Shape{P.groups, P.z, P.y, P.x};
  std::thread worker([&] {
    try {
      b.data = float_buffer(static_cast<size_t>(P.values));
      int64_t done = 0;
      for (;;) {
        size_t avail;
        bool last;
        {
          std::unique_lock<std::mutex> lock(mutex);
          cv.wait(lock, [&] {
            return finished || (ready > begin && static_cast<int64_t>((ready - begin) / width) > done);
          });
          avail = ready;
          last = finished;
        }
        const int64_t upto =
            avail > begin ? std::min<int64_t>(P.values, static_cast<int64_t>((avail - begin) / width)) : 0;
        if (upto > done) fn(raw + begin + done * width, b.data.data() + done, upto - done, P.slope, P.inter);
        done = std::max(done, upto);
        if (done == P.values || last) break;
      }
    } catch (...) {
      worker_error = std::current_exception();
    }
  });
  auto finish = [&] {
    {
      std::lock_guard<std::mutex> lock(mutex);
      finished = true;
    }
    cv.notify_one();
    worker.join();
  };
  try {
    while (inf.size() < end && !inf.ended()) {
      inf.fill(std::min(end, inf.size() + kStep));
      {
        std::lock_guard<std::mutex> lock(mutex);
        ready = inf.size();
      }
      cv.notify_one();
    }
  } catch (...) {
    finish();
    throw;
  }
  finish();
  if (worker_error) std::rethrow_exception(worker_error);
  if (inf.size() < begin)
    throw InputError(name, "vox_offset " + std::to_string(P.offset) +
                               " is beyond the end of the decompressed data (" +
                               std::to_string(inf.size()) + " bytes)");
  if (inf.size() < end)
    throw InputError(name, "truncated: " + std::to_string(inf.size() - begin) +
                               " bytes of voxel data, expected " + std::to_string(P.bytes));
  inf.verify_end();
  b.geometry = P.geometry;
  b.metadata = std::move(P.metadata);
  return true;
}

// Bytes [offset, offset + bytes) of a voxel file that is plain (`inflater` null) or gzip'd,
// checked against the plan.
const uint8_t* voxel_bytes(const uint8_t* file, size_t file_size, Inflater* inflater,
                           const Plan& P, const std::string& name) {
  const uint8_t* base = file;
  uint64_t avail = file_size;
  if (inflater) {
    inflater->fill(static_cast<size_t>(P.offset + P.bytes));
    base = inflater->data();
    avail = inflater->size();
  }
  if (P.offset > avail)
    throw InputError(name, "vox_offset " + std::to_string(P.offset) + " is beyond the end of the " +
                               (inflater ? "decompressed data" : "file") + " (" +
                               std::to_string(avail) + " bytes)");
  if (avail - P.offset < P.bytes)
    throw InputError(name, "truncated: " + std::to_string(avail - P.offset) +
                               " bytes of voxel data, expected " + std::to_string(P.bytes));
  if (inflater) inflater->verify_end();
  return base + P.offset;
}

// A whole single-file image (.nii or gzip'd .nii) in memory.
VoxelBuffer decode_single(const uint8_t* data, size_t size, const std::string& name) {
  std::unique_ptr<Inflater> inflater;
  const uint8_t* head = data;
  size_t head_size = size;
  if (is_gzip(data, size)) {
    inflater = std::make_unique<Inflater>(data, size, name);
    inflater->fill(kNifti2Size + 4);
    head = inflater->data();
    head_size = inflater->size();
    if (head_size < kNifti1Size && head_size < 4)
      throw InputError(name, "truncated header: " + std::to_string(head_size) +
                                 " bytes after decompression, expected 348");
  }
  const Header h = parse_header(head, head_size, name);
  if (h.pair)
    throw InputError(name, "header-only NIfTI (magic ni" + std::to_string(h.version) +
                               "): its voxels are in a separate .img file; open the .hdr");
  Plan P = make_plan(h, true, name);
  VoxelBuffer b;
  if (inflater && assemble_while_inflating(h, P, *inflater, name, b)) return b;
  const uint8_t* raw = voxel_bytes(data, size, inflater.get(), P, name);
  return assemble(h, P, raw);
}

bool ends_with_ci(const std::string& s, const std::string& suffix) {
  if (s.size() < suffix.size()) return false;
  for (size_t i = 0; i < suffix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(s[s.size() - suffix.size() + i])) != suffix[i])
      return false;
  return true;
}

// For a .hdr/.img(.gz) path: the existing header and image files of the pair.
std::pair<std::string, std::string> pair_paths(const std::string& path) {
  std::string stem, ext;
  for (const char* e : {".hdr.gz", ".img.gz", ".hdr", ".img"}) {
    if (ends_with_ci(path, e)) {
      stem = path.substr(0, path.size() - std::strlen(e));
      ext = path.substr(path.size() - std::strlen(e));
      break;
    }
  }
  const bool upper = ext.size() > 1 && std::isupper(static_cast<unsigned char>(ext[1]));
  const bool gz = ext.size() > 4;
  auto first_existing = [&](const char* lower_ext) {
    std::string e = lower_ext;
    std::vector<std::string> candidates;
    for (bool compressed : {gz, !gz}) {
      std::string x = e + (compressed ? ".gz" : "");
      std::string X = x;
      std::transform(X.begin(), X.end(), X.begin(), [](unsigned char ch) { return std::toupper(ch); });
      candidates.push_back(stem + (upper ? X : x));
      candidates.push_back(stem + (upper ? x : X));
    }
    std::error_code ec;
    for (const auto& c : candidates)
      if (fs::is_regular_file(c, ec)) return c;
    return std::string();
  };
  const bool is_hdr = ends_with_ci(ext, ".hdr") || ends_with_ci(ext, ".hdr.gz");
  std::string hdr = is_hdr ? path : first_existing(".hdr");
  std::string img = is_hdr ? first_existing(".img") : path;
  if (hdr.empty()) throw InputError(path, "no .hdr header beside this .img file");
  if (img.empty())
    throw InputError(path, "no .img file beside this header (the voxels of a .hdr/.img pair "
                           "live in " + fs::path(stem).filename().string() + ".img)");
  return {hdr, img};
}

VoxelBuffer read_pair(const std::string& path) {
  const auto [hdr_path, img_path] = pair_paths(path);
  Header h;
  {
    MappedFile hf(hdr_path);
    if (is_gzip(hf.data(), hf.size())) {
      Inflater inf(hf.data(), hf.size(), hdr_path);
      inf.fill(kNifti2Size);
      h = parse_header(inf.data(), inf.size(), hdr_path);
    } else {
      h = parse_header(hf.data(), hf.size(), hdr_path);
    }
  }
  Plan P = make_plan(h, false, hdr_path);
  MappedFile img(img_path);
  std::unique_ptr<Inflater> inflater;
  if (is_gzip(img.data(), img.size()))
    inflater = std::make_unique<Inflater>(img.data(), img.size(), img_path);
  VoxelBuffer b;
  if (!inflater || !assemble_while_inflating(h, P, *inflater, img_path, b))
    b = assemble(h, P, voxel_bytes(img.data(), img.size(), inflater.get(), P, img_path));
  b.metadata.source_path = path;
  return b;
}

// ---------------------------------------------------------------------------------------------
// Writing

// RAS rotation -> NIfTI quaternion (b, c, d) with a >= 0, as nifti1_io's mat44_to_quatern.
std::array<double, 3> rotation_quaternion(const double R[9]) {
  const double r11 = R[0], r12 = R[1], r13 = R[2], r21 = R[3], r22 = R[4], r23 = R[5],
               r31 = R[6], r32 = R[7], r33 = R[8];
  double a = r11 + r22 + r33 + 1.0, b, c, d;
  if (a > 0.5) {
    a = 0.5 * std::sqrt(a);
    b = 0.25 * (r32 - r23) / a;
    c = 0.25 * (r13 - r31) / a;
    d = 0.25 * (r21 - r12) / a;
  } else {
    const double xd = 1.0 + r11 - (r22 + r33), yd = 1.0 + r22 - (r11 + r33),
                 zd = 1.0 + r33 - (r11 + r22);
    if (xd > 1.0) {
      b = 0.5 * std::sqrt(xd);
      c = 0.25 * (r12 + r21) / b;
      d = 0.25 * (r13 + r31) / b;
      a = 0.25 * (r32 - r23) / b;
    } else if (yd > 1.0) {
      c = 0.5 * std::sqrt(yd);
      b = 0.25 * (r12 + r21) / c;
      d = 0.25 * (r23 + r32) / c;
      a = 0.25 * (r13 - r31) / c;
    } else {
      d = 0.5 * std::sqrt(zd);
      b = 0.25 * (r13 + r31) / d;
      c = 0.25 * (r23 + r32) / d;
      a = 0.25 * (r21 - r12) / d;
    }
    if (a < 0.0) b = -b, c = -c, d = -d;
  }
  return {b, c, d};
}

struct QForm {
  bool ok = false;
  double qfac = 1.0;
  std::array<double, 3> quatern{};
};

// The qform of a geometry, when its direction is a rotation (possibly with a flip).
QForm qform_of(const Geometry& g) {
  QForm q;
  double R[9];
  for (int c = 0; c < 3; ++c) {
    const Vec3 axis = g.axis(c);
    const double len = norm(axis);
    for (int r = 0; r < 3; ++r) R[r * 3 + c] = (r < 2 ? -axis[r] : axis[r]) / len;  // LPS->RAS
  }
  for (int i = 0; i < 3; ++i)
    for (int j = i; j < 3; ++j) {
      double dotp = 0;
      for (int r = 0; r < 3; ++r) dotp += R[r * 3 + i] * R[r * 3 + j];
      if (std::abs(dotp - (i == j ? 1.0 : 0.0)) > 1e-5) return q;  // sheared: sform only
    }
  const double det = R[0] * (R[4] * R[8] - R[5] * R[7]) - R[1] * (R[3] * R[8] - R[5] * R[6]) +
                     R[2] * (R[3] * R[7] - R[4] * R[6]);
  if (det < 0) {
    q.qfac = -1.0;
    for (int r = 0; r < 3; ++r) R[r * 3 + 2] = -R[r * 3 + 2];
  }
  q.quatern = rotation_quaternion(R);
  q.ok = true;
  return q;
}

std::vector<uint8_t> nifti_header(const Shape& shape, const Geometry& g, const Metadata& md,
                                  int version) {
  const auto A = to_ras_affine(g);
  const QForm q = qform_of(g);
  const int64_t dims[8] = {shape.c > 1 ? 4 : 3, shape.x, shape.y, shape.z, shape.c, 1, 1, 1};
  const double pixdim[8] = {q.qfac, g.spacing[0], g.spacing[1], g.spacing[2], 1, 1, 1, 1};
  double cal_min = 0, cal_max = 0;
  if (md.window && md.window->width > 0) {
    cal_min = md.window->center - md.window->width / 2;
    cal_max = md.window->center + md.window->width / 2;
  }
  const char kDescrip[] = "medlens";
  std::vector<uint8_t> h;
  if (version == 1) {
    h.assign(kNifti1Size + 4, 0);  // + the 4-byte "no extensions" flag
    uint8_t* p = h.data();
    store_le<int32_t>(p, 348);
    for (int i = 0; i < 8; ++i) store_le<int16_t>(p + 40 + 2 * i, static_cast<int16_t>(dims[i]));
    store_le<int16_t>(p + 70, 16);  // float32
    store_le<int16_t>(p + 72, 32);
    for (int i = 0; i < 8; ++i) store_le<float>(p + 76 + 4 * i, static_cast<float>(pixdim[i]));
    store_le<float>(p + 108, 352.0f);
    store_le<float>(p + 112, 1.0f);
    store_le<float>(p + 116, 0.0f);
    p[123] = 2;  // NIFTI_UNITS_MM
    store_le<float>(p + 124, static_cast<float>(cal_max));
    store_le<float>(p + 128, static_cast<float>(cal_min));
    std::memcpy(p + 148, kDescrip, sizeof kDescrip - 1);
    store_le<int16_t>(p + 252, q.ok ? 1 : 0);
    store_le<int16_t>(p + 254, 1);
    for (int i = 0; i < 3; ++i) {
      store_le<float>(p + 256 + 4 * i, static_cast<float>(q.quatern[i]));
      store_le<float>(p + 268 + 4 * i, static_cast<float>(A[i * 4 + 3]));
    }
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 4; ++c)
        store_le<float>(p + 280 + 16 * r + 4 * c, static_cast<float>(A[r * 4 + c]));
    std::memcpy(p + 344, "n+1\0", 4);
  } else {
    h.assign(kNifti2Size + 4, 0);
    uint8_t* p = h.data();
    store_le<int32_t>(p, 540);
    std::memcpy(p + 4, "n+2\0\r\n\032\n", 8);
    store_le<int16_t>(p + 12, 16);
    store_le<int16_t>(p + 14, 32);
    for (int i = 0; i < 8; ++i) store_le<int64_t>(p + 16 + 8 * i, dims[i]);
    for (int i = 0; i < 8; ++i) store_le<double>(p + 104 + 8 * i, pixdim[i]);
    store_le<int64_t>(p + 168, 544);
    store_le<double>(p + 176, 1.0);
    store_le<double>(p + 192, cal_max);
    store_le<double>(p + 200, cal_min);
    std::memcpy(p + 240, kDescrip, sizeof kDescrip - 1);
    store_le<int32_t>(p + 344, q.ok ? 1 : 0);
    store_le<int32_t>(p + 348, 1);
    for (int i = 0; i < 3; ++i) {
      store_le<double>(p + 352 + 8 * i, q.quatern[i]);
      store_le<double>(p + 376 + 8 * i, A[i * 4 + 3]);
    }
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 4; ++c) store_le<double>(p + 400 + 32 * r + 8 * c, A[r * 4 + c]);
    store_le<int32_t>(p + 500, 2);
  }
  return h;
}

// An output file; throws InputError naming `path` on any failure.
class OutFile {
 public:
  OutFile(const std::string& temp, const std::string& path) : path_(path) {
    file_ = std::fopen(temp.c_str(), "wb");
    if (!file_) throw InputError(path_, std::string("cannot create file: ") + std::strerror(errno));
  }
  ~OutFile() {
    if (file_) std::fclose(file_);
  }
  OutFile(const OutFile&) = delete;
  OutFile& operator=(const OutFile&) = delete;
  void write(const void* data, size_t n) {
    if (n && std::fwrite(data, 1, n, file_) != n) fail();
  }
  void close() {
    const int rc = std::fclose(file_);
    file_ = nullptr;
    if (rc != 0) fail();
  }
  [[noreturn]] void fail() {
    throw InputError(path_, std::string("write failed: ") + std::strerror(errno));
  }

 private:
  std::string path_;
  FILE* file_ = nullptr;
};

// One raw-deflate block of a larger stream: primed with the preceding 32 KiB (as pigz does, so
// the ratio barely suffers) and ended byte-aligned (sync flush) unless it is the last.
std::vector<uint8_t> deflate_block(const uint8_t* in, size_t n, const uint8_t* dict,
                                   size_t dict_n, bool last, int level, const std::string& path) {
  z_stream zs{};
  if (deflateInit2(&zs, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw InputError(path, "cannot start zlib compression");
  std::vector<uint8_t> out(deflateBound(&zs, n) + 64);
  if (dict_n) deflateSetDictionary(&zs, dict, static_cast<uInt>(dict_n));
  zs.next_in = const_cast<Bytef*>(in);
  zs.avail_in = static_cast<uInt>(n);
  size_t used = 0;
  int rc = Z_OK;
  do {
    if (used == out.size()) out.resize(out.size() * 2);
    zs.next_out = out.data() + used;
    zs.avail_out = static_cast<uInt>(out.size() - used);
    rc = deflate(&zs, last ? Z_FINISH : Z_SYNC_FLUSH);
    used = out.size() - zs.avail_out;
  } while (rc != Z_STREAM_ERROR && (last ? rc != Z_STREAM_END : zs.avail_out == 0));
  deflateEnd(&zs);
  if (rc == Z_STREAM_ERROR) throw InputError(path, "zlib compression failed");
  out.resize(used);
  return out;
}

// Writes `head` then `body` as one standard gzip member. Blocks of 1 MiB are deflated in
// parallel and joined, so a big image compresses on every core.
void write_gzip(OutFile& file, const std::vector<uint8_t>& head, const uint8_t* body,
                size_t body_n, int level, const std::string& path) {
  static const uint8_t kGzipHeader[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
  file.write(kGzipHeader, sizeof kGzipHeader);
  constexpr size_t kBlock = size_t{1} << 20, kWindow = 32768;
  const size_t blocks = (body_n + kBlock - 1) / kBlock;
  uLong crc = crc32(0L, head.data(), static_cast<uInt>(head.size()));
  {
    const auto first = deflate_block(head.data(), head.size(), nullptr, 0, blocks == 0, level, path);
    file.write(first.data(), first.size());
  }
  const size_t batch = static_cast<size_t>(std::max(1, thread_count())) * 4;
  std::vector<std::vector<uint8_t>> out;
  std::vector<uLong> crcs;
  for (size_t b0 = 0; b0 < blocks; b0 += batch) {
    const size_t nb = std::min(batch, blocks - b0);
    out.assign(nb, {});
    crcs.assign(nb, 0);
    auto one = [&](int64_t k) {
      const size_t b = b0 + static_cast<size_t>(k);
      const size_t begin = b * kBlock, n = std::min(kBlock, body_n - begin);
      const uint8_t* dict = b == 0 ? head.data() + head.size() - std::min(head.size(), kWindow)
                                   : body + begin - std::min(begin, kWindow);
      const size_t dict_n = b == 0 ? std::min(head.size(), kWindow) : std::min(begin, kWindow);
      out[k] = deflate_block(body + begin, n, dict, dict_n, b + 1 == blocks, level, path);
      crcs[k] = crc32(0L, body + begin, static_cast<uInt>(n));
    };
    if (nb == 1) one(0);
    else parallel_for(static_cast<int64_t>(nb), one);
    for (size_t k = 0; k < nb; ++k) {
      file.write(out[k].data(), out[k].size());
      const size_t n = std::min(kBlock, body_n - (b0 + k) * kBlock);
      crc = crc32_combine(crc, crcs[k], static_cast<z_off_t>(n));
    }
  }
  const uint64_t total = head.size() + body_n;
  uint8_t trailer[8];
  store_le<uint32_t>(trailer, static_cast<uint32_t>(crc));
  store_le<uint32_t>(trailer + 4, static_cast<uint32_t>(total & 0xffffffffu));
  file.write(trailer, sizeof trailer);
}

}  // namespace

// ---------------------------------------------------------------------------------------------

VoxelBuffer decode_nifti_memory(const uint8_t* data, size_t size, const std::string& name) {
  if (!data && size > 0) throw InputError(name, "no data");
  return decode_single(data, size, name);
}

VoxelBuffer read_nifti(const std::string& path, const ReadOptions& /*options*/) {
  // Non-finite voxels are left to check_voxels (read_voxels) so callers may opt in.
  for (const char* e : {".hdr", ".img", ".hdr.gz", ".img.gz"})
    if (ends_with_ci(path, e)) return read_pair(path);
  MappedFile file(path);
  VoxelBuffer b = decode_single(file.data(), file.size(), path);
  b.metadata.source_path = path;
  return b;
}

void write_nifti_voxels(const float* data, const Shape& shape, const Geometry& geometry,
                        const Metadata& metadata, const std::string& path,
                        const WriteOptions& options) {
  const std::string ext = extension_of(path);
  if (ext != ".nii" && ext != ".nii.gz")
    throw UsageError("NIfTI output must end in .nii or .nii.gz: " + path);
  if (options.gzip_level < 0 || options.gzip_level > 9)
    throw UsageError("gzip level must be 0..9, got " + std::to_string(options.gzip_level));
  if (shape.elements() <= 0 || !data) throw InputError(path, "nothing to write: the image is empty");
  std::string why;
  if (!geometry.valid(&why)) throw InputError(path, "cannot write an invalid geometry: " + why);
  constexpr int64_t kInt16Max = 32767;
  const bool nifti2 = shape.x > kInt16Max || shape.y > kInt16Max || shape.z > kInt16Max ||
                      shape.c > kInt16Max;
  const std::vector<uint8_t> header = nifti_header(shape, geometry, metadata, nifti2 ? 2 : 1);

  AtomicOutput out(path);
  {
    const size_t total = static_cast<size_t>(shape.elements());
    std::vector<float> swapped;  // NIfTI written here is little-endian
    if constexpr (std::endian::native == std::endian::big) {
      swapped.assign(data, data + total);
      for (float& v : swapped) v = byteswapped(v);
      data = swapped.data();
    }
    const auto* body = reinterpret_cast<const uint8_t*>(data);
    OutFile file(out.temp_path(), path);
    if (ext == ".nii.gz") {
      write_gzip(file, header, body, total * sizeof(float), options.gzip_level, path);
    } else {
      file.write(header.data(), header.size());
      file.write(body, total * sizeof(float));
    }
    file.close();
  }
  out.commit();
}

}  // namespace medlens
