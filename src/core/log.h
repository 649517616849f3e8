// Logging to stderr through spdlog. Level from MEDLENS_LOG (trace|debug|info|warn|error|off),
// default warn so that commands print only their results.
#pragma once

#include <string>

namespace medlens::log {

void init();
void set_level(const std::string& level);
void debug(const std::string& message);
void info(const std::string& message);
void warn(const std::string& message);
void error(const std::string& message);

}  // namespace medlens::log
