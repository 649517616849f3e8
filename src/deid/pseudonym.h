// Keyed pseudonyms: UIDs, patient IDs and accession numbers mapped by HMAC-SHA-256 under a site
// key, and a per-patient date shift from the same key. The same input and key give the same
// output on every run and machine; without the key the outputs cannot be linked to the inputs
// or to outputs made under another key.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace medlens::deid {

class Pseudonymizer {
 public:
  /// `key`: the site key's bytes. Empty: a random key for this process only (outputs are then
  /// consistent within one run but not reproducible).
  explicit Pseudonymizer(std::string key = {});

  /// Reads a key file (its raw bytes, at least 16). InputError naming the file otherwise.
  static std::string read_key_file(const std::string& path);

  bool ephemeral() const { return ephemeral_; }
  /// 16 hex digits identifying the key (an HMAC of a constant): tells two runs used the same
  /// key without revealing it.
  std::string fingerprint() const;

  /// "2.25." + the decimal of the first 128 bits of HMAC(key, "uid:" + uid): a valid UID of at
  /// most 44 characters.
  std::string uid(const std::string& original) const;
  /// 24 upper-case hex digits of HMAC(key, "patient-id:" + id); "" stays "".
  std::string patient_id(const std::string& original) const;
  /// 16 upper-case hex digits (fits SH) of HMAC(key, "accession:" + number); "" stays "".
  std::string accession_number(const std::string& original) const;
  /// Days to add to every date of this patient: negative, a whole number of weeks (weekdays
  /// are kept), between 364 and 3647 days back. `patient` is the original Patient ID (or name
  /// when there is no ID).
  int date_shift_days(const std::string& patient) const;

 private:
  std::string hex(const std::string& domain, const std::string& value, size_t digits) const;
  std::string key_;
  bool ephemeral_ = false;
  mutable std::mutex mutex_;
  mutable std::unordered_map<std::string, std::string> uid_cache_;
};

/// Adds `days` to a DA value (YYYYMMDD, or the old YYYY.MM.DD); nullopt when it is not a date.
std::optional<std::string> shift_date(const std::string& da, int days);
/// Adds `days` to the date part of a DT value (YYYY[MM[DD[HHMMSS[.F][&ZZXX]]]]), keeping its
/// precision and the rest; nullopt when it is not a date-time.
std::optional<std::string> shift_datetime(const std::string& dt, int days);
/// An AS age ("nnnD/W/M/Y") over 89 years becomes "090Y"; others are returned unchanged.
std::string cap_age(const std::string& as);

}  // namespace medlens::deid
