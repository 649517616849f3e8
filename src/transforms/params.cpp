#include "transforms/params.h"

#include <cmath>
#include <cstdlib>

#include "core/error.h"

namespace medlens {

ParamReader::ParamReader(std::string op, const nlohmann::json& params) : op_(std::move(op)) {
  if (!params.is_null() && !params.is_object())
    throw UsageError("parameters of '" + op_ + "' must be a JSON object");
  params_ = params.is_null() ? nlohmann::json::object() : params;
}

void ParamReader::fail(const std::string& key, const std::string& why) const {
  throw UsageError("'" + op_ + "': parameter '" + key + "' " + why);
}

double ParamReader::number(const std::string& key, double fallback) {
  seen_.insert(key);
  if (!params_.contains(key)) return fallback;
  const auto& v = params_[key];
  if (!v.is_number()) fail(key, "must be a number");
  const double d = v.get<double>();
  if (!std::isfinite(d)) fail(key, "must be finite");
  return d;
}

double ParamReader::number_in(const std::string& key, double fallback, double lo, double hi) {
  const double d = number(key, fallback);
  if (d < lo || d > hi)
    fail(key, "must lie in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + std::to_string(d));
  return d;
}

int64_t ParamReader::integer(const std::string& key, int64_t fallback) {
  seen_.insert(key);
  if (!params_.contains(key)) return fallback;
  const auto& v = params_[key];
  if (!v.is_number() || v.get<double>() != std::floor(v.get<double>())) fail(key, "must be an integer");
  // A whole number written as a float (1e30) past int64 would make the conversion undefined.
  if (v.is_number_float() && std::abs(v.get<double>()) >= 9.2e18) fail(key, "is out of range");
  return v.get<int64_t>();
}

int ParamReader::count(const std::string& key, int fallback) {
  const int64_t v = integer(key, fallback);
  if (v < 0 || v > 1000000) fail(key, "must be a whole number from 0 to 1000000");
  return static_cast<int>(v);
}

bool ParamReader::boolean(const std::string& key, bool fallback) {
  seen_.insert(key);
  if (!params_.contains(key)) return fallback;
  const auto& v = params_[key];
  if (!v.is_boolean()) fail(key, "must be true or false");
  return v.get<bool>();
}

std::string ParamReader::text(const std::string& key, const std::string& fallback) {
  seen_.insert(key);
  if (!params_.contains(key)) return fallback;
  const auto& v = params_[key];
  if (!v.is_string()) fail(key, "must be text");
  return v.get<std::string>();
}

std::string ParamReader::choice(const std::string& key, const std::string& fallback,
                                std::initializer_list<const char*> choices) {
  const std::string v = text(key, fallback);
  std::string all;
  for (const char* c : choices) {
    if (v == c) return v;
    all += (all.empty() ? "" : ", ") + std::string(c);
  }
  fail(key, "must be one of " + all + ", got '" + v + "'");
}

std::vector<double> ParamReader::numbers(const std::string& key, std::vector<double> fallback) {
  seen_.insert(key);
  if (!params_.contains(key)) return fallback;
  const auto& v = params_[key];
  if (v.is_number()) return {v.get<double>()};
  if (!v.is_array()) fail(key, "must be a number or a list of numbers");
  std::vector<double> out;
  for (const auto& x : v) {
    if (!x.is_number()) fail(key, "must be a list of numbers");
    out.push_back(x.get<double>());
  }
  return out;
}

std::vector<std::string> ParamReader::texts(const std::string& key, std::vector<std::string> fallback) {
  seen_.insert(key);
  if (!params_.contains(key)) return fallback;
  const auto& v = params_[key];
  if (v.is_string()) return split_list(v.get<std::string>());
  if (!v.is_array()) fail(key, "must be a name or a list of names");
  std::vector<std::string> out;
  for (const auto& x : v) {
    if (!x.is_string()) fail(key, "must be a list of names");
    out.push_back(x.get<std::string>());
  }
  return out;
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = std::min(text.find(';', start), text.size());
    if (end > start) out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

void ParamReader::finish() const {
  for (auto it = params_.begin(); it != params_.end(); ++it) {
    if (it.key() == "op") continue;
    if (!seen_.count(it.key())) {
      std::string known;
      for (const auto& k : seen_) known += (known.empty() ? "" : ", ") + k;
      throw UsageError("'" + op_ + "' has no parameter '" + it.key() + "'" +
                       (known.empty() ? " (it takes none)" : " (known: " + known + ")"));
    }
  }
}

namespace {
nlohmann::json parse_scalar(const std::string& s) {
  if (s == "true") return true;
  if (s == "false") return false;
  char* end = nullptr;
  const double d = std::strtod(s.c_str(), &end);
  if (!s.empty() && end == s.c_str() + s.size()) {
    if (d == std::floor(d) && std::abs(d) < 9e15 && s.find_first_of(".eE") == std::string::npos)
      return static_cast<int64_t>(d);
    return d;
  }
  return s;
}
}  // namespace

nlohmann::json parse_key_values(const std::string& text) {
  nlohmann::json out = nlohmann::json::object();
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    const std::string item = text.substr(start, end - start);
    const size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      throw UsageError("expected key=value, got '" + item + "' in '" + text + "'");
    const std::string key = item.substr(0, eq), value = item.substr(eq + 1);
    if (value.find(';') != std::string::npos) {
      nlohmann::json list = nlohmann::json::array();
      size_t s2 = 0;
      while (s2 <= value.size()) {
        size_t e2 = value.find(';', s2);
        if (e2 == std::string::npos) e2 = value.size();
        list.push_back(parse_scalar(value.substr(s2, e2 - s2)));
        s2 = e2 + 1;
      }
      out[key] = list;
    } else {
      out[key] = parse_scalar(value);
    }
    start = end + 1;
  }
  return out;
}

}  // namespace medlens
