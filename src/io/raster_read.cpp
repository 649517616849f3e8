// Reading PNG, JPEG, TIFF and BMP through OpenCV's codecs (torch-free: the fuzz build links
// it). Before OpenCV sees a file we read its header ourselves: to refuse sizes above max_voxels() (OpenCV's own CV_IO_MAX_IMAGE_PIXELS
// is 2^30 pixels and would allocate first), and to catch truncation that the codecs only warn
// about (libjpeg fills a truncated JPEG with grey; OpenCV's BMP reader does not check size).

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "io/file_util.h"
#include "io/raster_format.h"
#include "io/read.h"

namespace medlens {

namespace raster {

const char* label_of(Kind k) {
  switch (k) {
    case Kind::kPng: return "PNG";
    case Kind::kJpeg: return "JPEG";
    case Kind::kTiff: return "TIFF";
    case Kind::kBmp: return "BMP";
    case Kind::kUnknown: break;
  }
  return "image";
}

Kind kind_from_extension(const std::string& path) {
  const std::string ext = extension_of(path);
  if (ext == ".png") return Kind::kPng;
  if (ext == ".jpg" || ext == ".jpeg") return Kind::kJpeg;
  if (ext == ".tif" || ext == ".tiff") return Kind::kTiff;
  if (ext == ".bmp") return Kind::kBmp;
  return Kind::kUnknown;
}

// OpenCV's error text without its source location, on one line.
std::string cv_reason(const cv::Exception& e) {
  std::string s = e.err.empty() ? e.what() : e.err;
  std::replace(s.begin(), s.end(), '\n', ' ');
  return s;
}

}  // namespace raster

namespace {

using raster::Kind;
using raster::kind_from_extension;
using raster::label_of;
using raster::cv_reason;

const char* format_of(Kind k) {
  switch (k) {
    case Kind::kPng: return "png";
    case Kind::kJpeg: return "jpeg";
    case Kind::kTiff: return "tiff";
    case Kind::kBmp: return "bmp";
    case Kind::kUnknown: break;
  }
  return "raster";
}

Kind kind_from_magic(const std::vector<uint8_t>& b) {
  auto at = [&](const char* magic, size_t n) {
    return b.size() >= n && std::memcmp(b.data(), magic, n) == 0;
  };
  if (at("\x89PNG\r\n\x1a\n", 8)) return Kind::kPng;
  if (at("\xff\xd8\xff", 3)) return Kind::kJpeg;
  if (at("II*\0", 4) || at("MM\0*", 4) || at("II+\0", 4) || at("MM\0+", 4)) return Kind::kTiff;
  if (at("BM", 2)) return Kind::kBmp;
  return Kind::kUnknown;
}

uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t be32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | uint32_t{p[3]};
}
uint16_t le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }
uint32_t le32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

// What a header claims: pixels and the channels medlens will keep (1 or 3).
struct Claim {
  int64_t width = 0, height = 0, channels = 3;
};

// Reads the header (and for PNG/JPEG/TIFF/BMP the file's structure) before OpenCV does.
// Throws InputError for a size above max_voxels() or a file that is visibly truncated.
class HeaderCheck {
 public:
  HeaderCheck(const std::vector<uint8_t>& b, Kind kind, const std::string& path)
      : b_(b), kind_(kind), path_(path) {}

  void run() {
    switch (kind_) {
      case Kind::kPng: png(); break;
      case Kind::kJpeg: jpeg(); break;
      case Kind::kTiff: tiff(); break;
      case Kind::kBmp: bmp(); break;
      case Kind::kUnknown: break;
    }
  }
  /// PNG with a tRNS chunk: transparency that OpenCV drops without a word for palette and
  /// grey/RGB images.
  bool png_transparency() const { return png_trns_; }

 private:
  [[noreturn]] void fail(const std::string& why) const {
    throw InputError(path_, std::string("cannot decode ") + label_of(kind_) + ": " + why);
  }
  bool has(size_t off, size_t n) const { return off <= b_.size() && n <= b_.size() - off; }

  // Refuses an empty size or more than max_voxels() values, before anything is decoded.
  void check(const Claim& c) const {
    if (c.width <= 0 || c.height <= 0)
      fail("the header gives an empty size " + std::to_string(c.width) + "x" +
           std::to_string(c.height));
    if (c.width > max_voxels() / (c.height * c.channels))  // w*h*c > limit, without overflow
      fail("the header claims " + std::to_string(c.width) + "x" + std::to_string(c.height) +
           " pixels, more than the limit of " + std::to_string(max_voxels()) +
           " values (MEDLENS_MAX_VOXELS)");
  }

  // IHDR gives the size; then every chunk up to IEND must be whole (libpng decodes the
  // pixels without reading on to IEND, so a cut tail would pass unnoticed).
  void png() {
    if (!has(8, 25) || std::memcmp(b_.data() + 12, "IHDR", 4) != 0 || be32(&b_[8]) < 13)
      fail("the IHDR header is missing or truncated");
    const int colour = b_[25];
    check(Claim{be32(&b_[16]), be32(&b_[20]), colour == 0 || colour == 4 ? 1 : 3});
    for (size_t i = 8;;) {
      if (!has(i, 12)) fail("the file is truncated (no IEND chunk)");
      const uint32_t len = be32(&b_[i]);
      if (len > b_.size() - i - 12)
        fail("the file is truncated (the " + std::string(b_.begin() + i + 4, b_.begin() + i + 8) +
             " chunk runs past the end)");
      if (std::memcmp(&b_[i + 4], "tRNS", 4) == 0) png_trns_ = true;
      if (std::memcmp(&b_[i + 4], "IEND", 4) == 0) break;
      i += 12 + len;
    }
  }

  // Walks the markers: SOF gives the size, and the scan data must reach an EOI marker, since
  // libjpeg only warns about a truncated file and pads it with grey.
  void jpeg() const {
    size_t i = 2;
    bool in_scan = false, have_size = false;
    while (true) {
      if (in_scan) {  // entropy-coded data: FF00 is a stuffed byte, FFD0-D7 restart markers
        while (i + 1 < b_.size() &&
               !(b_[i] == 0xff && b_[i + 1] != 0x00 && !(b_[i + 1] >= 0xd0 && b_[i + 1] <= 0xd7)))
          ++i;
        in_scan = false;
      }
      while (i + 1 < b_.size() && b_[i] == 0xff && b_[i + 1] == 0xff) ++i;  // fill bytes
      if (!has(i, 2)) fail("the file is truncated (no end-of-image marker)");
      if (b_[i] != 0xff) fail("corrupt marker structure at byte " + std::to_string(i));
      const uint8_t m = b_[i + 1];
      i += 2;
      if (m == 0xd9) break;                                 // EOI
      if (m == 0x01 || (m >= 0xd0 && m <= 0xd8)) continue;  // markers without a length
      if (!has(i, 2)) fail("the file is truncated (no end-of-image marker)");
      const size_t len = be16(&b_[i]);
      if (len < 2 || !has(i, len)) fail("the file is truncated (no end-of-image marker)");
      const bool sof = m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc;
      if (sof && len >= 8 && !have_size) {
        check(Claim{be16(&b_[i + 5]), be16(&b_[i + 3]), b_[i + 7] == 1 ? 1 : 3});
        have_size = true;
      }
      i += len;
      if (m == 0xda) in_scan = true;  // SOS: scan data follows its header
    }
  }

  // First IFD, classic or BigTIFF: ImageWidth (256), ImageLength (257), SamplesPerPixel
  // (277), Photometric (262); and the strips or tiles it points at must lie in the file
  // (libtiff decodes a cut LZW strip as far as it goes).
  void tiff() const {
    if (!has(0, 8)) fail("the header is truncated");
    const bool big_endian = b_[0] == 'M';
    auto u = [&](size_t off, int n) -> uint64_t {
      uint64_t v = 0;
      for (int k = 0; k < n; ++k)
        v |= uint64_t{b_[off + (big_endian ? n - 1 - k : k)]} << (8 * k);
      return v;
    };
    const bool bigtiff = u(2, 2) == 43;
    if (bigtiff && !has(0, 16)) fail("the header is truncated");
    const uint64_t ifd = bigtiff ? u(8, 8) : u(4, 4);
    const size_t count_size = bigtiff ? 8 : 2, entry_size = bigtiff ? 20 : 12,
                 inline_size = bigtiff ? 8 : 4;
    if (ifd > b_.size() || !has(static_cast<size_t>(ifd), count_size))
      fail("the first image directory lies outside the file (truncated?)");
    const uint64_t n = u(static_cast<size_t>(ifd), static_cast<int>(count_size));
    const size_t first = static_cast<size_t>(ifd) + count_size;
    // n entries, then the next directory's offset.
    if (n > (b_.size() - first) / entry_size || !has(first + n * entry_size, inline_size))
      fail("the image directory is truncated");

    // The values of one entry (SHORT, LONG or LONG8), inline or at an offset; empty if odd.
    auto values = [&](size_t e) -> std::vector<uint64_t> {
      const uint64_t type = u(e + 2, 2), count = u(e + 4, bigtiff ? 8 : 4);
      const size_t width = type == 3 ? 2 : type == 4 ? 4 : type == 16 ? 8 : 0;
      if (width == 0 || count == 0 || count > b_.size() / width) return {};
      const size_t field = e + (bigtiff ? 12 : 8);
      size_t at = field;
      if (count * width > inline_size) {
        const uint64_t off = u(field, static_cast<int>(inline_size));
        if (off > b_.size() || !has(static_cast<size_t>(off), count * width))
          fail("an image directory entry points outside the file (truncated?)");
        at = static_cast<size_t>(off);
      }
      std::vector<uint64_t> v(static_cast<size_t>(count));
      for (size_t k = 0; k < v.size(); ++k) v[k] = u(at + k * width, static_cast<int>(width));
      return v;
    };
    Claim c;
    c.channels = 1;
    std::vector<uint64_t> offsets, counts;
    for (uint64_t k = 0; k < n; ++k) {
      const size_t e = first + static_cast<size_t>(k) * entry_size;
      const uint64_t tag = u(e, 2);
      if (tag != 256 && tag != 257 && tag != 262 && tag != 277 && tag != 273 && tag != 279 &&
          tag != 324 && tag != 325)
        continue;
      const std::vector<uint64_t> v = values(e);
      if (v.empty()) continue;
      const int64_t first_value = static_cast<int64_t>(std::min<uint64_t>(v[0], 1u << 30));
      if (tag == 256) c.width = first_value;
      if (tag == 257) c.height = first_value;
      if (tag == 277 && v[0] >= 3) c.channels = 3;  // 1 grey, 2 grey+alpha, 3+ colour
      // Photometric RGB, palette or YCbCr.
      if (tag == 262 && (v[0] == 2 || v[0] == 3 || v[0] == 6)) c.channels = 3;
      if (tag == 273 || tag == 324) offsets = v;
      if (tag == 279 || tag == 325) counts = v;
    }
    if (c.width == 0 || c.height == 0) return;  // let libtiff report what is missing
    check(c);
    for (size_t k = 0; k < std::min(offsets.size(), counts.size()); ++k)
      if (offsets[k] > b_.size() || counts[k] > b_.size() - offsets[k])
        fail("image data extends past the end of the file (truncated?)");
  }

  void bmp() const {
    if (!has(0, 26)) fail("the header is truncated");
    const uint32_t data_offset = le32(&b_[10]), dib = le32(&b_[14]);
    int64_t w = 0, h = 0;
    int bits = 0;
    uint32_t compression = 0;
    if (dib == 12) {  // BITMAPCOREHEADER
      w = le16(&b_[18]);
      h = le16(&b_[20]);
      bits = le16(&b_[24]);
    } else if (dib >= 40 && has(0, 34)) {
      w = static_cast<int32_t>(le32(&b_[18]));
      h = static_cast<int32_t>(le32(&b_[22]));  // negative: rows stored top-down
      bits = le16(&b_[28]);
      compression = le32(&b_[30]);
    } else {
      fail("unsupported or truncated bitmap header");
    }
    h = std::abs(h);
    if (bits <= 0 || bits > 32) fail("bad bit count " + std::to_string(bits) + " in the header");
    check(Claim{w, h, 3});
    // Uncompressed (BI_RGB, BI_BITFIELDS): rows padded to 4 bytes must all be present.
    if (compression == 0 || compression == 3) {
      const uint64_t stride = (static_cast<uint64_t>(w) * bits + 31) / 32 * 4;
      const uint64_t needed = data_offset + stride * static_cast<uint64_t>(h);
      if (needed > b_.size())
        fail("the pixel data is truncated (" + std::to_string(b_.size()) + " bytes, " +
             std::to_string(needed) + " expected)");
    }
  }

  const std::vector<uint8_t>& b_;
  Kind kind_;
  const std::string& path_;
  bool png_trns_ = false;
};

const char* bit_depth(int depth) {
  switch (depth) {
    case CV_8U: case CV_8S: return "8";
    case CV_16U: case CV_16S: return "16";
    case CV_32S: case CV_32F: return "32";
    default: return "64";
  }
}

}  // namespace

VoxelBuffer read_raster(const std::string& path, const ReadOptions& options) {
  // cv::imdecode takes at most INT_MAX bytes; refuse larger files before reading them.
  std::error_code ec;
  const auto file_size = std::filesystem::file_size(path, ec);
  if (!ec && file_size > static_cast<uintmax_t>(INT_MAX))
    throw InputError(path, "cannot decode " + std::string(label_of(kind_from_extension(path))) +
                               ": the file is larger than OpenCV's 2 GiB limit");
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  const Kind kind = kind_from_magic(bytes);
  if (kind == Kind::kUnknown) {
    const Kind named = kind_from_extension(path);
    throw InputError(path, std::string("cannot decode ") + label_of(named) + ": " +
                               (bytes.empty() ? "the file is empty"
                                              : "the file does not start with a PNG, JPEG, "
                                                "TIFF or BMP signature"));
  }
  const std::string label = label_of(kind);
  HeaderCheck header(bytes, kind, path);
  header.run();

  // imdecode rather than imread: the bytes are already here (the header check needed them),
  // and the same file read cannot change between the check and the decode.
  cv::Mat m;
  try {
    m = cv::imdecode(cv::Mat(1, static_cast<int>(bytes.size()), CV_8U,
                             const_cast<uint8_t*>(bytes.data())),
                     cv::IMREAD_UNCHANGED);
  } catch (const cv::Exception& e) {
    throw InputError(path, "cannot decode " + label + ": " + cv_reason(e));
  }
  if (m.empty() || m.dims != 2)
    throw InputError(path, "cannot decode " + label +
                               ": the decoder rejected the data (corrupt or truncated file)");

  VoxelBuffer b;
  Metadata& md = b.metadata;
  const int cn = m.channels();
  // OpenCV orders colour as BGR(A): pick R, G, B; grey+alpha and BGRA lose the alpha.
  std::vector<int> pick;
  if (cn == 1 || cn == 2) pick = {0};
  else if (cn == 3 || cn == 4) pick = {2, 1, 0};
  else throw InputError(path, "cannot decode " + label + ": " + std::to_string(cn) +
                                  " channels (1, 3 or 4 supported)");
  if (cn == 2 || cn == 4 || header.png_transparency())
    md.warnings.push_back("alpha channel dropped");

  const int64_t rows = m.rows, cols = m.cols, plane = rows * cols;
  if (plane * static_cast<int64_t>(pick.size()) > max_voxels())  // headers we could not read
    throw InputError(path, "cannot decode " + label + ": " + std::to_string(cols) + "x" +
                               std::to_string(rows) + " pixels exceed the limit of " +
                               std::to_string(max_voxels()) + " values (MEDLENS_MAX_VOXELS)");
  cv::Mat f;
  m.convertTo(f, CV_MAKETYPE(CV_32F, cn));  // exact for 8/16-bit and float data
  std::vector<float> planes(static_cast<size_t>(plane) * pick.size());
  for (int64_t y = 0; y < rows; ++y) {
    const float* row = f.ptr<float>(static_cast<int>(y));
    for (size_t c = 0; c < pick.size(); ++c) {
      float* dst = planes.data() + c * plane + y * cols;
      for (int64_t x = 0; x < cols; ++x) dst[x] = row[x * cn + pick[c]];
    }
  }
  int64_t channels = static_cast<int64_t>(pick.size());
  const auto first = planes.begin();
  if (channels == 3 && std::equal(first, first + plane, first + plane) &&
      std::equal(first, first + plane, first + 2 * plane)) {
    planes.resize(static_cast<size_t>(plane));  // grey stored as RGB
    channels = 1;
    md.tags["ChannelsCollapsed"] = "RGB->grey";
  }
  b.data = std::move(planes);
  b.shape = Shape{channels, 1, rows, cols};
  md.photometric = channels == 3 ? "RGB" : "MONOCHROME2";
  md.source_format = format_of(kind);
  md.source_path = path;
  md.modality = "";
  md.tags["BitDepth"] = bit_depth(m.depth());
  return b;
}

}  // namespace medlens
