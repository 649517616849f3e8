// Reading a transform's parameters from JSON (pipeline specs, `--op name:key=value`) with
// defaults, range checks and a clear error for unknown keys.
#pragma once

#include <nlohmann/json.hpp>

#include <initializer_list>
#include <set>
#include <string>
#include <vector>

namespace medlens {

class ParamReader {
 public:
  /// `op` names the transform in error messages.
  ParamReader(std::string op, const nlohmann::json& params);
  double number(const std::string& key, double fallback);
  /// A number that must lie in [lo, hi].
  double number_in(const std::string& key, double fallback, double lo, double hi);
  int64_t integer(const std::string& key, int64_t fallback);
  /// A size, radius or iteration count: a whole number in [0, 10^6] (the transform checks
  /// its own tighter range).
  int count(const std::string& key, int fallback);
  bool boolean(const std::string& key, bool fallback);
  std::string text(const std::string& key, const std::string& fallback);
  /// One of `choices`.
  std::string choice(const std::string& key, const std::string& fallback,
                     std::initializer_list<const char*> choices);
  /// A list of numbers; a single number is accepted as a list of one.
  std::vector<double> numbers(const std::string& key, std::vector<double> fallback);
  /// A list of names: a JSON array of strings or one string separated by ';'.
  std::vector<std::string> texts(const std::string& key, std::vector<std::string> fallback);
  /// Throws UsageError naming any key that no getter asked for. Call last.
  void finish() const;

 private:
  [[noreturn]] void fail(const std::string& key, const std::string& why) const;
  std::string op_;
  nlohmann::json params_;
  std::set<std::string> seen_;
};

/// "a;b;c" as {"a", "b", "c"} (empty items dropped).
std::vector<std::string> split_list(const std::string& text);

/// Parses "key=value,key=value" (values: numbers, true/false, text, or lists "a;b;c") into a
/// JSON object. Throws UsageError on malformed text.
nlohmann::json parse_key_values(const std::string& text);

}  // namespace medlens
