#include "io/dicom_common.h"

#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <dcmtk/oflog/oflog.h>

#include <cstdlib>
#include <mutex>
#include <random>

namespace medlens::dicom {

void init_dcmtk() {
  static std::once_flag once;
  std::call_once(once, [] {
    OFLog::configure(OFLogger::FATAL_LOG_LEVEL);
    // Trust the dataset over a meta header that declares the wrong transfer syntax (seen in
    // the wild, e.g. explicit VR declared, implicit VR written).
    dcmAutoDetectDatasetXfer.set(OFTrue);
    DJDecoderRegistration::registerCodecs();
    DJLSDecoderRegistration::registerCodecs();
    DcmRLEDecoderRegistration::registerCodecs();
  });
}

namespace {
// An element written with VR UN (explicit VR files converted from implicit ones) keeps its
// value as raw bytes; for text VRs those bytes are the text itself.
DcmElement* un_element(DcmItem* item, const DcmTagKey& tag) {
  DcmElement* e = nullptr;
  if (item && item->findAndGetElement(tag, e).good() && e && e->getVR() == EVR_UN) return e;
  return nullptr;
}

std::string un_text(DcmElement* e) {
  Uint8* bytes = nullptr;
  if (e->getUint8Array(bytes).bad() || !bytes) return {};
  std::string s(reinterpret_cast<const char*>(bytes), e->getLength());
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
  size_t start = 0;
  while (start < s.size() && s[start] == ' ') ++start;
  return s.substr(start);
}
}  // namespace

std::string get_string(DcmItem* item, const DcmTagKey& tag, unsigned long pos) {
  OFString v;
  if (DcmElement* un = un_element(item, tag)) {
    const std::string all = un_text(un);
    size_t start = 0;
    for (unsigned long i = 0; i < pos; ++i) {
      start = all.find('\\', start);
      if (start == std::string::npos) return {};
      ++start;
    }
    const size_t end = all.find('\\', start);
    return all.substr(start, end == std::string::npos ? std::string::npos : end - start);
  }
  if (item && item->findAndGetOFString(tag, v, pos).good()) return std::string(v.c_str());
  return {};
}

std::string get_all(DcmItem* item, const DcmTagKey& tag) {
  if (DcmElement* un = un_element(item, tag)) return un_text(un);
  OFString v;
  if (item && item->findAndGetOFStringArray(tag, v).good()) return std::string(v.c_str());
  return {};
}

std::optional<double> get_double(DcmItem* item, const DcmTagKey& tag, unsigned long pos) {
  const std::string s = get_string(item, tag, pos);
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str()) return std::nullopt;
  return v;
}

std::vector<double> get_doubles(DcmItem* item, const DcmTagKey& tag) {
  std::vector<double> out;
  const std::string all = get_all(item, tag);
  if (all.empty()) return out;
  size_t start = 0;
  while (start <= all.size()) {
    size_t end = all.find('\\', start);
    if (end == std::string::npos) end = all.size();
    const std::string part = all.substr(start, end - start);
    char* stop = nullptr;
    const double v = std::strtod(part.c_str(), &stop);
    if (stop == part.c_str()) return {};  // one unparsable value spoils the set
    out.push_back(v);
    start = end + 1;
  }
  return out;
}

std::optional<long> get_int(DcmItem* item, const DcmTagKey& tag, unsigned long pos) {
  if (!item) return std::nullopt;
  if (DcmElement* un = un_element(item, tag)) {
    // Binary integer VRs (US/SS/UL) in UN: little endian, 2 or 4 bytes per value.
    Uint8* b = nullptr;
    const Uint32 len = un->getLength();
    const DcmVR dict_vr = DcmTag(tag).getVR();
    if (un->getUint8Array(b).good() && b) {
      if ((dict_vr.getEVR() == EVR_US || dict_vr.getEVR() == EVR_SS || dict_vr.getEVR() == EVR_xs) &&
          len >= 2 * (pos + 1))
        return static_cast<long>(b[2 * pos] | (b[2 * pos + 1] << 8));
      if ((dict_vr.getEVR() == EVR_UL || dict_vr.getEVR() == EVR_SL) && len >= 4 * (pos + 1))
        return static_cast<long>(static_cast<uint32_t>(b[4 * pos]) | (b[4 * pos + 1] << 8) |
                                 (b[4 * pos + 2] << 16) | (static_cast<uint32_t>(b[4 * pos + 3]) << 24));
    }
  }
  Uint16 us;
  if (item->findAndGetUint16(tag, us, pos).good()) return static_cast<long>(us);
  Sint32 sl;
  if (item->findAndGetSint32(tag, sl, pos).good()) return static_cast<long>(sl);
  const std::string s = get_string(item, tag, pos);
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  const long v = std::strtol(s.c_str(), &end, 10);
  if (end == s.c_str()) return std::nullopt;
  return v;
}

DcmItem* sequence_item(DcmItem* item, const DcmTagKey& tag, unsigned long index) {
  DcmItem* out = nullptr;
  if (item && item->findAndGetSequenceItem(tag, out, static_cast<int>(index)).good()) return out;
  return nullptr;
}

std::string make_uid() {
  // 2.25.<128-bit random integer in decimal>, per PS3.5 B.2. Seeded from the OS entropy.
  static std::mutex m;
  static std::random_device rd;
  __extension__ typedef unsigned __int128 u128;
  u128 v = 0;
  {
    std::lock_guard<std::mutex> lock(m);
    for (int i = 0; i < 4; ++i) v = (v << 32) | rd();
  }
  std::string digits;
  if (v == 0) digits = "0";
  while (v > 0) {
    digits.insert(digits.begin(), static_cast<char>('0' + static_cast<int>(v % 10)));
    v /= 10;
  }
  return "2.25." + digits;
}

}  // namespace medlens::dicom
