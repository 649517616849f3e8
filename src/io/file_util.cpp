#include "io/file_util.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "core/error.h"

namespace fs = std::filesystem;

namespace medlens {

std::string extension_of(const std::string& path) {
  std::string name = fs::path(path).filename().string();
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  for (const char* dbl : {".nii.gz", ".tar.gz"}) {
    const std::string d = dbl;
    if (name.size() > d.size() && name.compare(name.size() - d.size(), d.size(), d) == 0) return d;
  }
  const auto dot = name.rfind('.');
  return dot == std::string::npos || dot == 0 ? "" : name.substr(dot);
}

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw InputError(path, "is a folder, expected a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, "cannot open file");
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0) throw InputError(path, "cannot determine file size");
  in.seekg(0);
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  if (size > 0 && !in.read(reinterpret_cast<char*>(bytes.data()), size))
    throw InputError(path, "read error");
  return bytes;
}

MappedFile::MappedFile(const std::string& path, bool populate) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw InputError(path, "is a folder, expected a file");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) throw InputError(path, "no such file");
    throw InputError(path, std::string("cannot open file: ") + std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
    void* m = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ,
                     MAP_PRIVATE | (populate ? MAP_POPULATE : 0), fd, 0);
    if (m != MAP_FAILED) {
      map_ = m;
      size_ = static_cast<size_t>(st.st_size);
    }
  }
  ::close(fd);
  if (!map_) copy_ = read_file_bytes(path);
}

MappedFile::~MappedFile() {
  if (map_) ::munmap(map_, size_);
}

std::vector<uint8_t> read_file_head(const std::string& path, size_t n) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, "cannot open file");
  std::vector<uint8_t> bytes(n);
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(n));
  bytes.resize(static_cast<size_t>(in.gcount()));
  return bytes;
}

namespace {
std::string temp_sibling(const std::string& destination) {
  static std::atomic<unsigned> counter{0};
  fs::path dest(destination);
  // Keep the full extension (".nii.gz") at the end so writers that pick format by name agree.
  std::string name = dest.filename().string();
  std::string ext = extension_of(name);
  std::string stem = name.substr(0, name.size() - ext.size());
  if (ext.empty() || ext.size() == name.size()) {
    stem = name;
  } else {
    ext = name.substr(name.size() - ext.size());  // original case
  }
  const std::string tmp = "." + stem + ".medlens-tmp-" + std::to_string(::getpid()) + "-" +
                          std::to_string(counter++) + ext;
  return (dest.parent_path() / tmp).string();
}
}  // namespace

AtomicOutput::AtomicOutput(const std::string& destination, bool is_folder)
    : destination_(destination), is_folder_(is_folder) {
  std::string d = destination;
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  destination_ = d;
  const fs::path parent = fs::path(destination_).parent_path();
  std::error_code ec;
  if (!parent.empty() && !fs::is_directory(parent, ec))
    throw InputError(destination_, "output folder " + parent.string() + " does not exist");
  temp_ = temp_sibling(destination_);
  if (is_folder_) {
    if (!fs::create_directory(temp_, ec))
      throw InputError(destination_, "cannot create output folder: " + ec.message());
  }
}

AtomicOutput::~AtomicOutput() {
  if (committed_) return;
  std::error_code ec;
  fs::remove_all(temp_, ec);
}

void AtomicOutput::commit() {
  std::error_code ec;
  if (is_folder_ && fs::exists(destination_, ec)) {
    // Move the old folder aside first so the swap cannot leave a half-replaced folder.
    const std::string old = temp_ + ".old";
    fs::rename(destination_, old, ec);
    if (ec) throw InputError(destination_, "cannot replace existing folder: " + ec.message());
    fs::rename(temp_, destination_, ec);
    if (ec) {
      fs::rename(old, destination_);
      throw InputError(destination_, "cannot move output into place: " + ec.message());
    }
    fs::remove_all(old, ec);
  } else {
    fs::rename(temp_, destination_, ec);
    if (ec) throw InputError(destination_, "cannot move output into place: " + ec.message());
  }
  committed_ = true;
}

}  // namespace medlens
