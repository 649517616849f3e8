// Content hashes for provenance (bundle and input hashes in findings) and keyed hashes for
// pseudonyms. SHA-256 through OpenSSL.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace medlens {

/// Lower-case hex SHA-256 of bytes.
std::string sha256_hex(const void* data, size_t size);
std::string sha256_hex(const std::string& bytes);
/// SHA-256 of a file's bytes; InputError naming the file when unreadable.
std::string sha256_file(const std::string& path);
/// HMAC-SHA-256 of `message` under `key`, raw 32 bytes.
std::vector<uint8_t> hmac_sha256(const std::string& key, const std::string& message);

}  // namespace medlens
