// Shared by the benchmark programs: run Google Benchmark cases, run a Python peer on the same
// data in the same process tree, and print ratios.
#pragma once

#include <benchmark/benchmark.h>

#include <map>
#include <string>
#include <vector>

namespace medlens::bench {

/// Seconds per iteration of every benchmark that ran, by name (real time).
class CapturingReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override;
  std::map<std::string, double> seconds;
};

/// Runs /usr/bin/python3 SCRIPT ARGS... and parses its stdout lines "name seconds [peak_mb]".
/// Throws std::runtime_error when the peer fails.
std::map<std::string, std::pair<double, double>> run_peer(const std::string& script,
                                                          const std::vector<std::string>& args);

/// Peak resident memory of this process so far, in MiB.
double peak_rss_mb();

/// Prints "| task | medlens | peer | speed-up |" rows (Markdown) for README tables.
struct Row {
  std::string task, peer_name;
  double medlens_s = 0, peer_s = 0;
};
void print_table(const std::string& title, const std::vector<Row>& rows);

}  // namespace medlens::bench
