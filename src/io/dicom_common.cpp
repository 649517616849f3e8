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
    DJDecoderRegistration::registerCodecs();
    DJLSDecoderRegistration::registerCodecs();
    DcmRLEDecoderRegistration::registerCodecs();
  });
}

std::string get_string(DcmItem* item, const DcmTagKey& tag, unsigned long pos) {
  OFString v;
  if (item && item->findAndGetOFString(tag, v, pos).good()) return std::string(v.c_str());
  return {};
}

std::string get_all(DcmItem* item, const DcmTagKey& tag) {
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
