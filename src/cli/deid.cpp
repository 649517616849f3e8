// medlens deid IN OUT [--options NAME,...] [--key KEYFILE] [--json]: DICOM de-identification to
// PS3.15 Annex E (docs/DEID.md). Prints an audit line per instance (stdout, or stderr with
// --json, which prints the full report). Never prints an identifying value.
#include <cstdio>
#include <fstream>

#include "cli/commands.h"
#include "core/error.h"
#include "deid/deid.h"
#include "deid/pseudonym.h"
#include "io/file_util.h"

namespace medlens::cli {

Run add_deid(CLI::App& app) {
  std::string names;
  for (const auto& i : deid::option_infos()) names += std::string(names.empty() ? "" : ", ") + i.name;
  auto* cmd = app.add_subcommand(
      "deid", "De-identify DICOM files or folders to PS3.15 Annex E (Basic Profile + options), "
              "with keyed pseudonyms that keep references resolvable");
  struct Args {
    std::string in, out, options, key, report;
    bool json = false, allow_review = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("IN", args->in, "DICOM file or folder (searched recursively)")->required();
  cmd->add_option("OUT", args->out,
                  "Output file, or folder (OUT/<study>/<series>/<instance>.dcm by the new UIDs)")
      ->required();
  cmd->add_option("--options", args->options, "Profile options, comma-separated: " + names);
  cmd->add_option("--key", args->key,
                  "Site key file (at least 16 bytes, e.g. head -c 32 /dev/urandom): the same key "
                  "gives the same pseudonyms on every run; without it they are random per run");
  cmd->add_flag("--json", args->json, "Print the JSON report of every action (audit lines go to stderr)");
  cmd->add_option("--report", args->report, "Also write the JSON report to this file");
  cmd->add_flag("--allow-review", args->allow_review,
                "Folder input: write what can be de-identified and list instances that need "
                "review (burned-in text risk) instead of failing");
  return [args]() {
    deid::Options o;
    o.options = deid::parse_options(args->options);
    if (!args->key.empty()) o.key = deid::Pseudonymizer::read_key_file(args->key);
    o.allow_review = args->allow_review;
    const deid::Report report = deid::deidentify(args->in, args->out, o);
    FILE* audit = args->json ? stderr : stdout;
    for (const auto& i : report.instances) std::fprintf(audit, "%s\n", deid::Report::audit_line(i).c_str());
    const std::string json = report.to_json();
    if (!args->report.empty()) {
      AtomicOutput out(args->report);
      std::ofstream f(out.temp_path(), std::ios::binary);
      f << json << "\n";
      f.close();
      if (!f) throw InputError(args->report, "cannot write the report");
      out.commit();
    }
    if (args->json) {
      std::printf("%s\n", json.c_str());
    } else {
      size_t ok = 0;
      for (const auto& i : report.instances) ok += i.status == "ok";
      std::printf("de-identified %zu instance(s) into %s", ok, args->out.c_str());
      if (report.review) std::printf(", %d need review (not written)", report.review);
      if (report.skipped_non_dicom) std::printf(", %d non-DICOM file(s) not copied", report.skipped_non_dicom);
      if (report.skipped_dicomdir) std::printf(", %d DICOMDIR not copied", report.skipped_dicomdir);
      std::printf("; key %s\n", report.key_fingerprint.c_str());
    }
    return 0;
  };
}

}  // namespace medlens::cli
