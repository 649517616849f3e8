// Errors that cross module boundaries. Every failure a user can cause names the file and the
// reason in one line; the CLI maps the kind to the documented exit status.
#pragma once

#include <stdexcept>
#include <string>

namespace medlens {

/// What went wrong, mapped by the CLI to exit status: kBadUsage 2, kBadInput 3, kInternal 1.
enum class ErrorKind { kBadUsage, kBadInput, kInternal };

/// Exit status for an error kind (contract shared by every subcommand).
int exit_status(ErrorKind kind);

/// Base error: a kind, and a message that is a single line meant for the user.
class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

/// The input (a file, a folder, a value inside them) cannot be used. Message: "PATH: reason".
class InputError : public Error {
 public:
  InputError(const std::string& path, const std::string& reason)
      : Error(ErrorKind::kBadInput, path.empty() ? reason : path + ": " + reason),
        path_(path), reason_(reason) {}
  const std::string& path() const { return path_; }
  const std::string& reason() const { return reason_; }

 private:
  std::string path_;
  std::string reason_;
};

/// The caller asked for something that does not make sense (bad option, bad value).
class UsageError : public Error {
 public:
  explicit UsageError(const std::string& message) : Error(ErrorKind::kBadUsage, message) {}
};

}  // namespace medlens
