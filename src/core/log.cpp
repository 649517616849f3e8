#include "core/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <mutex>

namespace medlens::log {
namespace {
std::shared_ptr<spdlog::logger> logger() {
  static std::shared_ptr<spdlog::logger> l = [] {
    auto lg = spdlog::stderr_color_mt("medlens");
    lg->set_pattern("medlens %^%l%$: %v");
    const char* env = std::getenv("MEDLENS_LOG");
    lg->set_level(env ? spdlog::level::from_str(env) : spdlog::level::warn);
    return lg;
  }();
  return l;
}
}  // namespace

void init() { logger(); }
void set_level(const std::string& level) { logger()->set_level(spdlog::level::from_str(level)); }
void debug(const std::string& m) { logger()->debug(m); }
void info(const std::string& m) { logger()->info(m); }
void warn(const std::string& m) { logger()->warn(m); }
void error(const std::string& m) { logger()->error(m); }

}  // namespace medlens::log
