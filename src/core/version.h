#pragma once
namespace medlens {
/// medlens version, from CMake's project(VERSION).
const char* version();
}  // namespace medlens
