#include "tools/test_util.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

extern char** environ;

namespace fs = std::filesystem;

namespace medlens::test {

std::string pydicom_files() { return "/usr/lib/python3/dist-packages/pydicom/data/test_files"; }
std::string nibabel_data() { return "/usr/lib/python3/dist-packages/nibabel/tests/data"; }
std::string mricron_templates() { return "/usr/share/mricron/templates"; }
std::string itk_examples() { return "/usr/share/doc/insighttoolkit5-examples/examples/Data"; }
std::string skimage_data() { return "/usr/lib/python3/dist-packages/skimage/data"; }
std::string vendored_samples() { return std::string(MEDLENS_SOURCE_DIR) + "/data/samples"; }
std::string medlens_bin() { return std::string(MEDLENS_BINARY_DIR) + "/bin/medlens"; }

TempDir::TempDir() {
  std::random_device rd;
  path_ = fs::temp_directory_path() / ("medlens-test-" + std::to_string(::getpid()) + "-" +
                                       std::to_string(rd()));
  fs::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

CommandResult run(const std::vector<std::string>& argv) {
  CommandResult r;
  TempDir tmp;
  const std::string out = tmp.file("stdout"), err = tmp.file("stderr");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  if (posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ) != 0) {
    posix_spawn_file_actions_destroy(&fa);
    r.error = "cannot start " + argv[0];
    return r;
  }
  posix_spawn_file_actions_destroy(&fa);
  int status = 0;
  waitpid(pid, &status, 0);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.output = read_text(out);
  r.error = read_text(err);
  return r;
}

CommandResult run_medlens(const std::vector<std::string>& args) {
  std::vector<std::string> argv{medlens_bin()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv);
}

CommandResult run_oracle(const std::string& script, const std::vector<std::string>& args) {
  std::vector<std::string> argv{"/usr/bin/python3",
                                std::string(MEDLENS_SOURCE_DIR) + "/tests/oracles/" + script};
  argv.insert(argv.end(), args.begin(), args.end());
  CommandResult r = run(argv);
  if (r.status != 0) ADD_FAILURE() << script << " failed (" << r.status << "): " << r.error;
  return r;
}

std::vector<float> read_f32(const std::string& path) {
  const std::string bytes = read_text(path);
  std::vector<float> v(bytes.size() / 4);
  std::memcpy(v.data(), bytes.data(), v.size() * 4);
  return v;
}

}  // namespace medlens::test
