#include "deid/pseudonym.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <random>

#include "core/error.h"
#include "core/hash.h"
#include "io/file_util.h"

namespace medlens::deid {

namespace {

// Days since 1970-01-01 of a civil date, and back (H. Hinnant's algorithms, proleptic Gregorian).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

void civil_from_days(int64_t z, int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
}

bool all_digits(const std::string& s) {
  for (char c : s)
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  return !s.empty();
}

unsigned days_in_month(int64_t y, unsigned m) {
  static const unsigned n[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : n[m - 1];
}

// Shifts YYYYMMDD (digits only); nullopt if not a valid date.
std::optional<std::string> shift_ymd(const std::string& s, int days) {
  if (s.size() != 8 || !all_digits(s)) return std::nullopt;
  const int64_t y = std::stoll(s.substr(0, 4));
  const unsigned m = static_cast<unsigned>(std::stoul(s.substr(4, 2)));
  const unsigned d = static_cast<unsigned>(std::stoul(s.substr(6, 2)));
  if (m < 1 || m > 12 || d < 1 || d > days_in_month(y, m)) return std::nullopt;
  int64_t ny = 0;
  unsigned nm = 0, nd = 0;
  civil_from_days(days_from_civil(y, m, d) + days, ny, nm, nd);
  if (ny < 1 || ny > 9999) return std::nullopt;
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04lld%02u%02u", static_cast<long long>(ny), nm, nd);
  return std::string(buf);
}

}  // namespace

Pseudonymizer::Pseudonymizer(std::string key) : key_(std::move(key)) {
  if (key_.empty()) {
    ephemeral_ = true;
    std::random_device rd;
    for (int i = 0; i < 8; ++i) {
      const uint32_t v = rd();
      key_.append(reinterpret_cast<const char*>(&v), sizeof v);
    }
  }
}

std::string Pseudonymizer::read_key_file(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  if (bytes.size() < 16)
    throw InputError(path, "a de-identification key file needs at least 16 bytes (make one with "
                           "`head -c 32 /dev/urandom > KEYFILE`), this one has " +
                               std::to_string(bytes.size()));
  return std::string(bytes.begin(), bytes.end());
}

std::string Pseudonymizer::hex(const std::string& domain, const std::string& value, size_t digits) const {
  const std::vector<uint8_t> mac = hmac_sha256(key_, domain + ":" + value);
  std::string out;
  for (size_t i = 0; i < mac.size() && out.size() < digits; ++i) {
    char b[3];
    std::snprintf(b, sizeof b, "%02X", mac[i]);
    out += b;
  }
  out.resize(digits);
  return out;
}

std::string Pseudonymizer::fingerprint() const {
  std::string h = hex("medlens-deid-key-fingerprint", "", 16);
  for (auto& c : h) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return h;
}

std::string Pseudonymizer::uid(const std::string& original) const {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = uid_cache_.find(original);
    if (it != uid_cache_.end()) return it->second;
  }
  const std::vector<uint8_t> mac = hmac_sha256(key_, "uid:" + original);
  __extension__ typedef unsigned __int128 u128;
  u128 v = 0;
  for (int i = 0; i < 16; ++i) v = (v << 8) | mac[static_cast<size_t>(i)];
  std::string digits;
  if (v == 0) digits = "0";
  while (v > 0) {
    digits.insert(digits.begin(), static_cast<char>('0' + static_cast<int>(v % 10)));
    v /= 10;
  }
  std::string out = "2.25." + digits;
  std::lock_guard<std::mutex> lock(mutex_);
  if (uid_cache_.size() > 1000000) uid_cache_.clear();
  uid_cache_.emplace(original, out);
  return out;
}

std::string Pseudonymizer::patient_id(const std::string& original) const {
  return original.empty() ? std::string() : hex("patient-id", original, 24);
}

std::string Pseudonymizer::accession_number(const std::string& original) const {
  return original.empty() ? std::string() : hex("accession", original, 16);
}

int Pseudonymizer::date_shift_days(const std::string& patient) const {
  const std::vector<uint8_t> mac = hmac_sha256(key_, "date-shift:" + patient);
  const uint32_t v = (uint32_t{mac[0]} << 24) | (uint32_t{mac[1]} << 16) | (uint32_t{mac[2]} << 8) | mac[3];
  return -7 * static_cast<int>(52 + v % 470);  // 364 .. 3647 days back
}

std::optional<std::string> shift_date(const std::string& da, int days) {
  std::string s = da;
  while (!s.empty() && s.back() == ' ') s.pop_back();
  if (s.size() == 10 && s[4] == '.' && s[7] == '.') s = s.substr(0, 4) + s.substr(5, 2) + s.substr(8, 2);
  return shift_ymd(s, days);
}

std::optional<std::string> shift_datetime(const std::string& dt, int days) {
  std::string s = dt;
  while (!s.empty() && s.back() == ' ') s.pop_back();
  // The date part: the leading digits, at most 8.
  size_t n = 0;
  while (n < s.size() && n < 8 && std::isdigit(static_cast<unsigned char>(s[n]))) ++n;
  if (n != 4 && n != 6 && n != 8) return std::nullopt;
  std::string ymd = s.substr(0, n);
  if (n == 4) ymd += "0101";
  if (n == 6) ymd += "01";
  auto shifted = shift_ymd(ymd, days);
  if (!shifted) return std::nullopt;
  return shifted->substr(0, n) + s.substr(n);
}

std::string cap_age(const std::string& as) {
  std::string s = as;
  while (!s.empty() && s.back() == ' ') s.pop_back();
  if (s.size() != 4 || !all_digits(s.substr(0, 3))) return as;
  const double n = std::stod(s.substr(0, 3));
  double years = 0;
  switch (s[3]) {
    case 'D': years = n / 365.25; break;
    case 'W': years = n * 7 / 365.25; break;
    case 'M': years = n / 12; break;
    case 'Y': years = n; break;
    default: return as;
  }
  return std::floor(years + 1e-9) >= 90 ? std::string("090Y") : as;
}

}  // namespace medlens::deid
