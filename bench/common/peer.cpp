#include "common/peer.h"

#include <sys/resource.h>

#include <cstdio>
#include <memory>
#include <sstream>
#include <stdexcept>

namespace medlens::bench {

void CapturingReporter::ReportRuns(const std::vector<Run>& runs) {
  for (const auto& r : runs)
    if (r.iterations > 0)
      seconds[r.run_name.function_name] = r.real_accumulated_time / static_cast<double>(r.iterations);
  ConsoleReporter::ReportRuns(runs);
}

std::map<std::string, std::pair<double, double>> run_peer(const std::string& script,
                                                          const std::vector<std::string>& args) {
  std::string cmd = "/usr/bin/python3 '" + script + "'";
  for (const auto& a : args) cmd += " '" + a + "'";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
  if (!pipe) throw std::runtime_error("cannot start " + cmd);
  std::map<std::string, std::pair<double, double>> out;
  char line[512];
  while (fgets(line, sizeof line, pipe.get())) {
    std::istringstream in(line);
    std::string name;
    double s = 0, mb = 0;
    if (in >> name >> s) {
      in >> mb;
      out[name] = {s, mb};
    }
  }
  if (out.empty()) throw std::runtime_error("peer produced no timings: " + cmd);
  return out;
}

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

void print_table(const std::string& title, const std::vector<Row>& rows) {
  std::printf("\n%s\n\n| task | medlens | %s | speed-up |\n|---|---:|---:|---:|\n", title.c_str(),
              rows.empty() ? "peer" : rows.front().peer_name.c_str());
  for (const auto& r : rows)
    std::printf("| %s | %.1f ms | %.1f ms | %.2fx |\n", r.task.c_str(), r.medlens_s * 1e3,
                r.peer_s * 1e3, r.peer_s / r.medlens_s);
}

}  // namespace medlens::bench
