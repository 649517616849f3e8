// .npz reading: a small zip reader (PKWARE APPNOTE 6.3: end record, zip64 end record and
// extra fields, central directory, local headers; stored and raw-deflate members, CRC-32
// checked) and a .npy parser (numpy/lib/format.py, versions 1.0 to 3.0). The input is
// untrusted: every offset and size is checked against the buffer before it is used, and array
// sizes against max_voxels() before anything is allocated. Members are streamed, so only the
// chosen image of a stack is held in memory even when the archive is large.

#include "io/npz.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string_view>

#include "core/error.h"
#include "io/file_util.h"
#include "io/read.h"

namespace medlens {
namespace {

uint16_t le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }
uint32_t le32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}
uint64_t le64(const uint8_t* p) { return uint64_t{le32(p)} | uint64_t{le32(p + 4)} << 32; }

constexpr uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEndSig = 0x06054b50,
                   kEnd64Sig = 0x06064b50, kEnd64LocatorSig = 0x07064b50;
constexpr size_t kEndSize = 22, kCentralSize = 46, kLocalSize = 30;
constexpr uInt kZlibChunk = 1u << 30;  // zlib counts in uInt; feed it at most this at a time

// ---------------------------------------------------------------------------------------------
// Zip

struct ZipEntry {
  std::string name;
  uint16_t flags = 0, method = 0;
  uint32_t crc = 0;
  uint64_t csize = 0, usize = 0, local_offset = 0;
};

// The central directory of a zip archive held in memory.
class ZipArchive {
 public:
  ZipArchive(const uint8_t* data, size_t size, const std::string& path)
      : data_(data), size_(size), path_(path) {
    parse();
  }
  const std::vector<ZipEntry>& entries() const { return entries_; }
  const std::string& path() const { return path_; }
  [[noreturn]] void fail(const std::string& why) const { throw InputError(path_, why); }

  // Start of the entry's compressed bytes; the whole range is checked to lie in the buffer.
  const uint8_t* entry_data(const ZipEntry& e) const {
    const std::string who = "member '" + e.name + "'";
    if (e.flags & 1) fail(who + " is encrypted");
    if (e.method != 0 && e.method != 8)
      fail(who + " uses compression method " + std::to_string(e.method) +
           " (only stored and deflate are supported)");
    if (e.method == 0 && e.csize != e.usize)
      fail(who + " is stored but its compressed and uncompressed sizes differ");
    const uint64_t off = e.local_offset;
    if (off > size_ || size_ - off < kLocalSize || le32(data_ + off) != kLocalSig)
      fail(who + ": local header missing or outside the file (truncated?)");
    const uint64_t start = off + kLocalSize + le16(data_ + off + 26) + le16(data_ + off + 28);
    if (start > size_ || e.csize > size_ - start)
      fail(who + ": data extends past the end of the file (truncated?)");
    return data_ + start;
  }

 private:
  void parse() {
    if (size_ == 0) fail("file is empty");
    if (size_ < kEndSize) fail("not a zip archive (too short)");
    // The end record sits in the last 22 + 65535 (comment) bytes: search backwards.
    size_t end = std::numeric_limits<size_t>::max();
    const size_t lowest = size_ > kEndSize + 65535 ? size_ - kEndSize - 65535 : 0;
    for (size_t pos = size_ - kEndSize + 1; pos-- > lowest;) {
      if (le32(data_ + pos) == kEndSig && pos + kEndSize + le16(data_ + pos + 20) <= size_) {
        end = pos;
        break;
      }
    }
    if (end == std::numeric_limits<size_t>::max())
      fail("not a zip archive: no end-of-central-directory record (truncated?)");
    const uint8_t* e = data_ + end;
    uint64_t count = le16(e + 10), cd_size = le32(e + 12), cd_offset = le32(e + 16);
    // zip64: a locator right before the end record points at the 64-bit end record, which
    // holds the real count, size and offset.
    if (end >= 20 && le32(data_ + end - 20) == kEnd64LocatorSig) {
      const uint64_t off = le64(data_ + end - 20 + 8);
      if (off > size_ || size_ - off < 56 || le32(data_ + off) != kEnd64Sig)
        fail("corrupt zip64 end-of-central-directory record");
      count = le64(data_ + off + 32);
      cd_size = le64(data_ + off + 40);
      cd_offset = le64(data_ + off + 48);
    }
    if (cd_offset > size_ || cd_size > size_ - cd_offset)
      fail("central directory lies outside the file (truncated?)");
    if (count > cd_size / kCentralSize)
      fail("central directory is too small for its " + std::to_string(count) + " entries");
    entries_.reserve(static_cast<size_t>(count));
    const uint8_t* p = data_ + cd_offset;
    const uint8_t* const cd_end = p + cd_size;
    for (uint64_t i = 0; i < count; ++i) {
      if (static_cast<size_t>(cd_end - p) < kCentralSize || le32(p) != kCentralSig)
        fail("corrupt central directory (entry " + std::to_string(i) + ")");
      ZipEntry z;
      z.flags = le16(p + 8);
      z.method = le16(p + 10);
      z.crc = le32(p + 16);
      z.csize = le32(p + 20);
      z.usize = le32(p + 24);
      const size_t nlen = le16(p + 28), elen = le16(p + 30), clen = le16(p + 32);
      z.local_offset = le32(p + 42);
      if (static_cast<size_t>(cd_end - p) - kCentralSize < nlen + elen + clen)
        fail("corrupt central directory (entry " + std::to_string(i) + " overruns it)");
      z.name.assign(reinterpret_cast<const char*>(p + kCentralSize), nlen);
      read_zip64_extra(p + kCentralSize + nlen, elen, z);
      p += kCentralSize + nlen + elen + clen;
      entries_.push_back(std::move(z));
    }
  }

  // Zip64 extended information (id 0x0001): 64-bit values for the fields that hold
  // 0xFFFFFFFF, in the order usize, csize, offset.
  void read_zip64_extra(const uint8_t* x, size_t left, ZipEntry& z) const {
    while (left >= 4) {
      const uint16_t id = le16(x);
      const size_t sz = le16(x + 2);
      if (sz > left - 4) fail("member '" + z.name + "': corrupt extra field");
      if (id == 0x0001) {
        const uint8_t* v = x + 4;
        size_t vl = sz;
        auto take = [&](uint64_t& field) {
          if (field != 0xFFFFFFFFu) return;
          if (vl < 8) fail("member '" + z.name + "': zip64 extra field too short");
          field = le64(v);
          v += 8;
          vl -= 8;
        };
        take(z.usize);
        take(z.csize);
        take(z.local_offset);
      }
      x += 4 + sz;
      left -= 4 + sz;
    }
  }

  const uint8_t* data_;
  size_t size_;
  std::string path_;
  std::vector<ZipEntry> entries_;
};

// Streams one member's uncompressed bytes, keeping the CRC-32 of everything produced so that
// verify() can check it once the member has been read to its end.
class EntryReader {
 public:
  EntryReader(const ZipArchive& zip, const ZipEntry& e) : zip_(zip), e_(e) {
    in_ = zip.entry_data(e);
    in_left_ = e.csize;
    if (e.method == 8) {
      std::memset(&zs_, 0, sizeof zs_);
      if (inflateInit2(&zs_, -MAX_WBITS) != Z_OK) fail("cannot start zlib");  // raw deflate
      inflating_ = true;
    }
  }
  ~EntryReader() {
    if (inflating_) inflateEnd(&zs_);
  }
  EntryReader(const EntryReader&) = delete;
  EntryReader& operator=(const EntryReader&) = delete;

  uint64_t position() const { return pos_; }
  uint64_t remaining() const { return e_.usize - pos_; }
  [[noreturn]] void fail(const std::string& why) const {
    zip_.fail("member '" + e_.name + "': " + why);
  }

  // Exactly n next bytes, or InputError.
  void read(uint8_t* dst, uint64_t n) {
    if (n > remaining()) fail("truncated (the member is shorter than its array)");
    while (n > 0) {
      const size_t got = produce(dst, n);
      if (got == 0) fail("compressed data ends early (truncated or corrupt)");
      dst += got;
      n -= got;
    }
  }

  void skip(uint64_t n) {
    uint8_t scratch[1 << 16];
    while (n > 0) {
      const uint64_t k = std::min<uint64_t>(n, sizeof scratch);
      read(scratch, k);
      n -= k;
    }
  }

  // Reads to the end and checks the size and CRC-32 the central directory records.
  void verify() {
    skip(remaining());
    if (inflating_ && !ended_) {
      uint8_t extra = 0;
      if (inflate_some(&extra, 1) != 0) fail("holds more data than its directory entry says");
      if (!ended_) fail("compressed data ends early (truncated or corrupt)");
    }
    if (crc_ != e_.crc) fail("CRC-32 mismatch (the archive is corrupt)");
  }

 private:
  // Up to n (<= remaining()) bytes; fewer only when the data runs out.
  size_t produce(uint8_t* dst, uint64_t n) {
    size_t got = 0;
    if (!inflating_) {
      got = static_cast<size_t>(n);  // stored: csize == usize, checked inside the buffer
      std::memcpy(dst, in_ + pos_, got);
    } else {
      got = inflate_some(dst, n);
    }
    for (size_t done = 0; done < got;) {
      const uInt k = static_cast<uInt>(std::min<size_t>(got - done, kZlibChunk));
      crc_ = crc32(crc_, dst + done, k);
      done += k;
    }
    pos_ += got;
    return got;
  }

  size_t inflate_some(uint8_t* dst, uint64_t n) {
    const uInt want = static_cast<uInt>(std::min<uint64_t>(n, kZlibChunk));
    zs_.next_out = dst;
    zs_.avail_out = want;
    while (zs_.avail_out > 0 && !ended_) {
      if (zs_.avail_in == 0 && in_left_ > 0) {
        const uInt k = static_cast<uInt>(std::min<uint64_t>(in_left_, kZlibChunk));
        zs_.next_in = const_cast<Bytef*>(in_);
        zs_.avail_in = k;
        in_ += k;
        in_left_ -= k;
      }
      const int rc = inflate(&zs_, Z_NO_FLUSH);
      if (rc == Z_STREAM_END) {
        ended_ = true;
      } else if (rc == Z_BUF_ERROR && zs_.avail_in == 0 && in_left_ == 0) {
        break;  // input exhausted: the caller reports the truncation
      } else if (rc != Z_OK) {
        fail(std::string("corrupt compressed data (") + (zs_.msg ? zs_.msg : "inflate failed") +
             ")");
      }
    }
    return want - zs_.avail_out;
  }

  const ZipArchive& zip_;
  const ZipEntry& e_;
  const uint8_t* in_ = nullptr;  // stored: start of data; deflate: next unread input
  uint64_t in_left_ = 0;
  uint64_t pos_ = 0;
  uLong crc_ = crc32(0, nullptr, 0);
  z_stream zs_{};
  bool inflating_ = false, ended_ = false;
};

// ---------------------------------------------------------------------------------------------
// .npy header

struct NpyDtype {
  char kind = 0;  // 'b' bool, 'i' signed, 'u' unsigned, 'f' float
  int size = 0;   // bytes per value
  bool big_endian = false;
  std::string name;  // as numpy's str(dtype)
};

struct NpyHeader {
  NpyDtype dtype;
  bool fortran = false;
  std::vector<int64_t> shape;
  uint64_t count = 0;       // values
  uint64_t data_bytes = 0;  // count * dtype.size
};

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

// The header is a Python dict literal, e.g. {'descr': '<f4', 'fortran_order': False,
// 'shape': (3, 4), } padded with spaces and a newline. Only the literals numpy writes are
// understood: strings, True/False/None, integers and tuples of integers.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, const EntryReader& r) : s_(text), r_(r) {}

  NpyHeader parse() {
    std::string descr;
    bool have_descr = false, have_fortran = false, have_shape = false;
    NpyHeader h;
    ws();
    expect('{');
    ws();
    while (peek() != '}') {
      const std::string key = string_literal();
      ws();
      expect(':');
      ws();
      if (key == "descr") {
        if (peek() == '[') bad("structured dtypes (a list 'descr') are not supported");
        descr = string_literal();
        have_descr = true;
      } else if (key == "fortran_order") {
        h.fortran = boolean();
        have_fortran = true;
      } else if (key == "shape") {
        h.shape = tuple();
        have_shape = true;
      } else {
        skip_value();
      }
      ws();
      if (peek() == ',') {
        ++i_;
        ws();
      } else if (peek() != '}') {
        bad("expected ',' or '}'");
      }
    }
    ++i_;
    ws();
    if (i_ != s_.size()) bad("unexpected text after the dictionary");
    if (!have_descr || !have_fortran || !have_shape)
      bad("'descr', 'fortran_order' and 'shape' are required");
    h.dtype = parse_dtype(descr);
    return h;
  }

 private:
  [[noreturn]] void bad(const std::string& why) const {
    r_.fail("bad .npy header at column " + std::to_string(i_ + 1) + ": " + why);
  }
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r'))
      ++i_;
  }
  void expect(char c) {
    if (peek() != c) bad(std::string("expected '") + c + "'");
    ++i_;
  }
  std::string string_literal() {
    const char q = peek();
    if (q != '\'' && q != '"') bad("expected a quoted string");
    ++i_;
    std::string out;
    while (i_ < s_.size() && s_[i_] != q) {
      if (s_[i_] == '\\' && i_ + 1 < s_.size()) ++i_;
      out += s_[i_++];
    }
    expect(q);
    return out;
  }
  bool word(std::string_view w) {
    if (s_.substr(i_, w.size()) != w) return false;
    i_ += w.size();
    return true;
  }
  bool boolean() {
    if (word("True")) return true;
    if (word("False")) return false;
    bad("expected True or False");
  }
  int64_t integer() {
    if (peek() == '-') bad("negative dimension");
    if (peek() < '0' || peek() > '9') bad("expected an integer");
    int64_t v = 0;
    while (peek() >= '0' && peek() <= '9') {
      const int d = peek() - '0';
      if (v > (std::numeric_limits<int64_t>::max() - d) / 10) bad("dimension too large");
      v = v * 10 + d;
      ++i_;
    }
    if (peek() == 'L' || peek() == 'l') ++i_;  // Python 2 long
    return v;
  }
  std::vector<int64_t> tuple() {
    expect('(');
    std::vector<int64_t> out;
    ws();
    while (peek() != ')') {
      if (out.size() >= 32) bad("too many dimensions");
      out.push_back(integer());
      ws();
      if (peek() == ',') {
        ++i_;
        ws();
      } else if (peek() != ')') {
        bad("expected ',' or ')' in the shape");
      }
    }
    ++i_;
    return out;
  }
  void skip_value() {
    const char c = peek();
    if (c == '\'' || c == '"') {
      string_literal();
    } else if (c == '(') {
      tuple();
    } else if (c >= '0' && c <= '9') {
      integer();
    } else if (!word("True") && !word("False") && !word("None")) {
      bad("unsupported value");
    }
  }

  NpyDtype parse_dtype(const std::string& descr) const {
    NpyDtype t;
    std::string_view d = descr;
    char order = '=';
    if (!d.empty() && (d[0] == '<' || d[0] == '>' || d[0] == '|' || d[0] == '=')) {
      order = d[0];
      d.remove_prefix(1);
    }
    const auto unsupported = [&]() -> NpyDtype {
      r_.fail("dtype '" + descr + "' is not supported (bool, integer or float only)");
    };
    if (d.size() != 2 || d[1] < '1' || d[1] > '8') return unsupported();
    t.kind = d[0];
    t.size = d[1] - '0';
    const bool ok = (t.kind == 'b' && t.size == 1) ||
                    ((t.kind == 'i' || t.kind == 'u') &&
                     (t.size == 1 || t.size == 2 || t.size == 4 || t.size == 8)) ||
                    (t.kind == 'f' && (t.size == 2 || t.size == 4 || t.size == 8));
    if (!ok) return unsupported();
    if (order == '|' && t.size > 1) return unsupported();  // numpy never writes this
    // '=' is native; medlens only builds on little-endian machines.
    t.big_endian = order == '>' && t.size > 1;
    if (t.big_endian) {
      t.name = std::string(">") + t.kind + static_cast<char>('0' + t.size);
    } else if (t.kind == 'b') {
      t.name = "bool";
    } else {
      t.name = std::string(t.kind == 'i' ? "int" : t.kind == 'u' ? "uint" : "float") +
               std::to_string(8 * t.size);
    }
    return t;
  }

  std::string_view s_;
  size_t i_ = 0;
  const EntryReader& r_;
};

// Reads the magic, version and header of the .npy at the reader's start, leaving the reader
// at the first data byte; checks that the member holds all the data the header promises.
NpyHeader read_npy_header(EntryReader& r) {
  uint8_t pre[8];
  if (r.remaining() < 10) r.fail("too short for a .npy array");
  r.read(pre, 8);
  if (std::memcmp(pre, "\x93NUMPY", 6) != 0) r.fail("not a .npy array (bad magic)");
  const int major = pre[6], minor = pre[7];
  uint64_t len = 0;
  if (major == 1) {
    uint8_t b[2];
    r.read(b, 2);
    len = le16(b);
  } else if (major == 2 || major == 3) {  // 3.0: the same, but the header is UTF-8
    uint8_t b[4];
    r.read(b, 4);
    len = le32(b);
  } else {
    r.fail("unsupported .npy format version " + std::to_string(major) + "." +
           std::to_string(minor));
  }
  if (len > (1u << 20)) r.fail("bad .npy header: " + std::to_string(len) + " bytes long");
  if (len > r.remaining()) r.fail("the .npy header is truncated");
  std::string text(static_cast<size_t>(len), '\0');
  r.read(reinterpret_cast<uint8_t*>(text.data()), len);
  NpyHeader h = HeaderParser(text, r).parse();
  uint64_t count = 1;
  for (int64_t d : h.shape) {
    if (d != 0 && count > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) /
                              static_cast<uint64_t>(d))
      r.fail("shape " + shape_text(h.shape) + " is too large");
    count *= static_cast<uint64_t>(d);
  }
  if (count > std::numeric_limits<uint64_t>::max() / 8)
    r.fail("shape " + shape_text(h.shape) + " is too large");
  h.count = count;
  h.data_bytes = count * static_cast<uint64_t>(h.dtype.size);
  if (h.data_bytes > r.remaining())
    r.fail("array data is truncated: shape " + shape_text(h.shape) + " " + h.dtype.name +
           " needs " + std::to_string(h.data_bytes) + " bytes, the member holds " +
           std::to_string(r.remaining()));
  return h;
}

// ---------------------------------------------------------------------------------------------
// Values

template <typename T>
T load(const uint8_t* p, bool big_endian) {
  uint8_t b[sizeof(T)];
  std::memcpy(b, p, sizeof(T));
  if (big_endian) std::reverse(b, b + sizeof(T));
  T v;
  std::memcpy(&v, b, sizeof(T));
  return v;
}

double half_to_double(uint16_t h) {
  const int exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  const double sign = (h & 0x8000) ? -1.0 : 1.0;
  if (exp == 0) return sign * std::ldexp(mant, -24);  // subnormal
  if (exp == 31) return mant ? std::numeric_limits<double>::quiet_NaN()
                             : sign * std::numeric_limits<double>::infinity();
  return sign * std::ldexp(1024 + mant, exp - 25);
}

// Converts n values of dtype t at src to double.
void convert(const uint8_t* src, size_t n, const NpyDtype& t, double* dst) {
  const bool be = t.big_endian;
  auto run = [&](auto tag) {
    using T = decltype(tag);
    for (size_t i = 0; i < n; ++i) dst[i] = static_cast<double>(load<T>(src + i * sizeof(T), be));
  };
  switch (t.kind) {
    case 'b':
      for (size_t i = 0; i < n; ++i) dst[i] = src[i] != 0;
      return;
    case 'i':
      if (t.size == 1) return run(int8_t{});
      if (t.size == 2) return run(int16_t{});
      if (t.size == 4) return run(int32_t{});
      return run(int64_t{});
    case 'u':
      if (t.size == 1) return run(uint8_t{});
      if (t.size == 2) return run(uint16_t{});
      if (t.size == 4) return run(uint32_t{});
      return run(uint64_t{});
    default:
      if (t.size == 4) return run(float{});
      if (t.size == 8) return run(double{});
      for (size_t i = 0; i < n; ++i) dst[i] = half_to_double(load<uint16_t>(src + 2 * i, be));
  }
}

// How an array's shape maps onto (C,Z,Y,X) images.
struct ImageLayout {
  bool stack = false;  // first axis indexes images
  int64_t n = 1;       // images in the array
  int64_t c = 1, z = 1, y = 1, x = 1;
  int64_t elements() const { return c * z * y * x; }
};

ImageLayout layout_of(const NpyHeader& h, const EntryReader& r, const std::string& name) {
  const auto& s = h.shape;
  ImageLayout L;
  const auto refuse = [&]() -> ImageLayout {
    r.fail("array '" + name + "' of shape " + shape_text(s) +
           " is not an image: expected (H,W), (H,W,3), (N,H,W), (N,H,W,3), (N,H,W,1) or "
           "(N,D,H,W)");
  };
  if (s.size() == 2) {
    L.y = s[0], L.x = s[1];
  } else if (s.size() == 3 && s[2] == 3) {  // RGB, even if meant as 3-pixel-wide grey images
    L.y = s[0], L.x = s[1], L.c = 3;
  } else if (s.size() == 3) {
    L.stack = true, L.n = s[0], L.y = s[1], L.x = s[2];
  } else if (s.size() == 4 && (s[3] == 3 || s[3] == 1)) {
    L.stack = true, L.n = s[0], L.y = s[1], L.x = s[2], L.c = s[3];
  } else if (s.size() == 4) {  // MedMNIST 3-D: (N,28,28,28)
    L.stack = true, L.n = s[0], L.z = s[1], L.y = s[2], L.x = s[3];
  } else {
    return refuse();
  }
  if (h.count == 0) r.fail("array '" + name + "' of shape " + shape_text(s) + " is empty");
  return L;
}

// Reads image `index` of the array whose data starts at the reader's position, handing each
// value to sink(position in (C,Z,Y,X), value); then reads on to verify the member's CRC.
template <typename Sink>
void read_image_values(EntryReader& r, const NpyHeader& h, const ImageLayout& L, int64_t index,
                       Sink&& sink) {
  const int64_t per_image = L.elements();
  const int64_t plane = L.z * L.y * L.x;
  constexpr size_t kChunk = 1 << 14;  // values per conversion chunk
  std::vector<uint8_t> raw(kChunk * static_cast<size_t>(h.dtype.size));
  std::vector<double> vals(kChunk);
  // k: position of a value in the image's C order (channels last); where it goes in (C,Z,Y,X).
  const auto place = [&](int64_t k, double v) {
    sink(L.c == 1 ? k : (k % L.c) * plane + k / L.c, v);
  };
  if (!h.fortran) {
    r.skip(static_cast<uint64_t>(index) * static_cast<uint64_t>(per_image) * h.dtype.size);
    for (int64_t k0 = 0; k0 < per_image; k0 += kChunk) {
      const size_t n = static_cast<size_t>(std::min<int64_t>(kChunk, per_image - k0));
      r.read(raw.data(), n * h.dtype.size);
      convert(raw.data(), n, h.dtype, vals.data());
      for (size_t i = 0; i < n; ++i) place(k0 + static_cast<int64_t>(i), vals[i]);
    }
  } else {
    // Fortran order: the first axis varies fastest, so one image is spread over the whole
    // array. Stream everything, keeping the values whose first index is `index`.
    const auto& s = h.shape;
    const size_t nd = s.size();
    std::vector<int64_t> idx(nd, 0);
    const size_t first_image_axis = L.stack ? 1 : 0;
    for (uint64_t f0 = 0; f0 < h.count; f0 += kChunk) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, h.count - f0));
      r.read(raw.data(), n * h.dtype.size);
      convert(raw.data(), n, h.dtype, vals.data());
      for (size_t i = 0; i < n; ++i) {
        if (!L.stack || idx[0] == index) {
          int64_t k = 0;
          for (size_t a = first_image_axis; a < nd; ++a) k = k * s[a] + idx[a];
          place(k, vals[i]);
        }
        for (size_t a = 0; a < nd && ++idx[a] == s[a]; ++a) idx[a] = 0;  // odometer
      }
    }
  }
  r.verify();
}

// ---------------------------------------------------------------------------------------------
// Archive level

struct ArrayRecord {
  const ZipEntry* entry;
  NpyArrayInfo info;
  NpyHeader header;
};

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Every .npy member with its parsed header (other members, such as folders, are ignored, as
// numpy.load does for the array listing).
std::vector<ArrayRecord> scan_arrays(const ZipArchive& zip) {
  std::vector<ArrayRecord> out;
  for (const ZipEntry& e : zip.entries()) {
    if (!ends_with(e.name, ".npy")) continue;
    EntryReader r(zip, e);
    ArrayRecord a{&e, {}, read_npy_header(r)};
    a.info.name = e.name.substr(0, e.name.size() - 4);
    a.info.dtype = a.header.dtype.name;
    a.info.shape = a.header.shape;
    out.push_back(std::move(a));
  }
  if (out.empty()) zip.fail("no .npy arrays in the archive");
  return out;
}

const ArrayRecord* find_array(const std::vector<ArrayRecord>& arrays, const std::string& key) {
  for (const auto& a : arrays)
    if (a.info.name == key || a.entry->name == key) return &a;
  return nullptr;
}

const ArrayRecord& choose_array(const ZipArchive& zip, const std::vector<ArrayRecord>& arrays,
                                const std::string& key) {
  if (!key.empty()) {
    if (const ArrayRecord* a = find_array(arrays, key)) return *a;
    std::string names;
    for (const auto& a : arrays) names += (names.empty() ? "" : ", ") + a.info.name;
    zip.fail("no array named '" + key + "' (arrays: " + names + ")");
  }
  for (const auto& a : arrays)
    if (a.info.name == "images" || ends_with(a.info.name, "_images")) return a;
  for (const auto& a : arrays)
    if (a.info.shape.size() >= 2) return a;
  zip.fail("no image-like array (none has two or more dimensions)");
}

std::string format_value(double v) {
  char buf[32];
  if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 1e15)
    std::snprintf(buf, sizeof buf, "%.0f", v);
  else
    std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

// MedMNIST pairs "<split>_images" with "<split>_labels" of the same length: the label row of
// the chosen image, as text ("3" or "0 1 0"). Empty when there is none.
std::string label_of(const ZipArchive& zip, const std::vector<ArrayRecord>& arrays,
                     const ArrayRecord& images, int64_t index, int64_t n) {
  const std::string& name = images.info.name;
  std::string labels_name;
  if (name == "images") labels_name = "labels";
  else if (ends_with(name, "_images")) labels_name = name.substr(0, name.size() - 7) + "_labels";
  const ArrayRecord* lab = labels_name.empty() ? nullptr : find_array(arrays, labels_name);
  if (!lab || lab->header.shape.empty() || lab->header.shape[0] != n) return "";
  const int64_t row = n > 0 ? static_cast<int64_t>(lab->header.count) / n : 0;
  if (row <= 0 || row > 64) return "";
  EntryReader r(zip, *lab->entry);
  const NpyHeader h = read_npy_header(r);
  ImageLayout L;  // one row, values in C order
  L.stack = true;
  L.n = n;
  L.x = row;
  std::vector<double> values(static_cast<size_t>(row));
  read_image_values(r, h, L, index,
                    [&](int64_t i, double v) { values[static_cast<size_t>(i)] = v; });
  std::string s;
  for (double v : values) s += (s.empty() ? "" : " ") + format_value(v);
  return s;
}

}  // namespace

std::vector<NpyArrayInfo> list_npz_memory(const uint8_t* data, size_t size,
                                          const std::string& name) {
  const ZipArchive zip(data, size, name);
  std::vector<NpyArrayInfo> out;
  for (auto& a : scan_arrays(zip)) out.push_back(std::move(a.info));
  return out;
}

std::vector<NpyArrayInfo> list_npz(const std::string& path) {
  const MappedFile bytes(path, /*populate=*/false);
  return list_npz_memory(bytes.data(), bytes.size(), path);
}

VoxelBuffer decode_npz_memory(const uint8_t* data, size_t size, const std::string& name,
                              const std::string& key, int64_t index) {
  const ZipArchive zip(data, size, name);
  const std::vector<ArrayRecord> arrays = scan_arrays(zip);
  const ArrayRecord& chosen = choose_array(zip, arrays, key);

  EntryReader r(zip, *chosen.entry);
  const NpyHeader h = read_npy_header(r);
  const ImageLayout L = layout_of(h, r, chosen.info.name);
  if (index < 0 || index >= L.n)
    zip.fail("index " + std::to_string(index) + " is out of range: '" + chosen.info.name +
             "' holds " + (L.stack ? std::to_string(L.n) + " images (0.." +
                                         std::to_string(L.n - 1) + ")"
                                   : std::string("a single image (index 0)")));
  // layout_of's dimensions come from a shape whose product fits in int64, so this is exact.
  if (L.elements() > max_voxels())
    zip.fail("array '" + chosen.info.name + "' image of " + std::to_string(L.elements()) +
             " values exceeds the limit of " + std::to_string(max_voxels()) +
             " (MEDLENS_MAX_VOXELS)");

  VoxelBuffer b;
  b.shape = Shape{L.c, L.z, L.y, L.x};
  b.data.resize(static_cast<size_t>(L.elements()));
  float* out = b.data.data();
  read_image_values(r, h, L, index,
                    [out](int64_t i, double v) { out[i] = static_cast<float>(v); });

  Metadata& m = b.metadata;
  m.source_format = "npz";
  m.photometric = L.c == 3 ? "RGB" : "MONOCHROME2";
  std::string listing;
  for (const auto& a : arrays)
    listing += (listing.empty() ? "" : "; ") + a.info.name + " " + shape_text(a.info.shape) +
               " " + a.info.dtype;
  m.tags["NpzArrays"] = listing;
  m.tags["NpzKey"] = chosen.info.name;
  m.tags["NpzIndex"] = std::to_string(index);
  m.tags["NpzDtype"] = h.dtype.name;
  if (L.stack) {
    try {
      const std::string label = label_of(zip, arrays, chosen, index, L.n);
      if (!label.empty()) m.tags["NpzLabel"] = label;
    } catch (const InputError& e) {  // the image is fine; only its label is unreadable
      m.warnings.push_back("label not read: " + e.reason());
    }
  }
  return b;
}

VoxelBuffer read_npz(const std::string& path, const ReadOptions& options) {
  const MappedFile bytes(path, /*populate=*/false);
  VoxelBuffer b = decode_npz_memory(bytes.data(), bytes.size(), path, options.npz_key,
                                    options.npz_index);
  b.metadata.source_path = path;
  return b;
}

}  // namespace medlens
