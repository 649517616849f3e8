// DICOM de-identification to PS3.15 Annex E: the Basic Application Confidentiality Profile and
// its options, table-driven at every sequence depth; keyed pseudonyms that keep references
// resolvable; burned-in text removal; markers, a fresh preamble and file meta. Torch-free;
// DCMTK and OpenCV stay inside the .cpp files. See docs/DEID.md.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "deid/profile.h"

namespace medlens::deid {

/// A private attribute kept under Retain Safe Private: its creator and element byte.
struct SafePrivate {
  std::string creator;      ///< Private Creator value, e.g. "SIEMENS MR HEADER"
  uint16_t group = 0;       ///< odd group
  uint8_t element = 0;      ///< low byte of the element (the xx of gggg,00xx-block)
  const char* what = "";    ///< what it holds
};
/// The built-in whitelist (diffusion and acquisition parameters of common vendors).
const std::vector<SafePrivate>& safe_private_whitelist();

struct Options {
  std::set<Option> options;
  /// Site key bytes (Pseudonymizer::read_key_file). Empty: a random key for this run only.
  std::string key;
  /// Folder input: write the instances that can be de-identified and list the others as
  /// needing review, instead of failing the whole run.
  bool allow_review = false;
  /// Extra private attributes to keep under Retain Safe Private.
  std::vector<SafePrivate> safe_private;
};

/// One action on one attribute. Never holds a value.
struct ActionRecord {
  std::string path;    ///< "(0008,1115)[0]/(0008,1155)"
  std::string name;    ///< attribute name
  char action = 'X';   ///< X removed, Z emptied, D dummy, U pseudonym UID, C cleaned, K kept by an
                       ///< option, P pseudonym ID, A added (markers)
};

struct InstanceReport {
  std::string output;         ///< written file, relative to OUT (folder) or OUT itself
  std::string input_sha256;   ///< of the input file's bytes (identifies it without its name)
  std::string sop_class;      ///< SOP Class UID (a class, not an instance)
  std::string modality;
  std::string status = "ok";  ///< "ok" or "review" (not written)
  std::string reason;         ///< why review is needed
  std::vector<ActionRecord> actions;
  std::map<char, int> counts;  ///< actions by letter
  struct Region {
    int frame, x, y, width, height;
  };
  std::vector<Region> blanked;  ///< burned-in text regions blanked (Clean Pixel Data)
  int overlay_regions_blanked = 0;
};

struct Report {
  std::string profile = kBasicProfileMeaning;
  std::vector<std::string> options;  ///< option names applied
  std::string key_fingerprint;       ///< of the site key; "ephemeral" when none was given
  std::vector<InstanceReport> instances;
  int skipped_non_dicom = 0;  ///< files in an input folder that are not DICOM (not copied)
  int skipped_dicomdir = 0;   ///< DICOMDIR files (not copied: they index identities)
  int review = 0;             ///< instances that need review (not written)
  /// The whole report as JSON (no identifying value anywhere in it).
  std::string to_json() const;
  /// One audit line for an instance: output, status, counts, input hash.
  static std::string audit_line(const InstanceReport& instance);
};

/// An instance that may not be written without review (burned-in annotation risk, pixels that
/// cannot be decoded for cleaning). A kind of InputError: exit status 3.
class ReviewNeeded : public InputError {
 public:
  using InputError::InputError;
};

/// De-identifies IN (a DICOM file or a folder searched recursively) into OUT. A file gives a
/// file (OUT, or OUT/<new SOP Instance UID>.dcm when OUT is a folder or ends in "/"); a folder
/// gives a folder OUT/<study>/<series>/<instance>.dcm named by the new UIDs. Nothing is written
/// unless everything succeeds (a folder is swapped in whole). Throws InputError naming the
/// file for malformed DICOM, ReviewNeeded for instances that need review (unless
/// allow_review), UsageError for a bad destination.
Report deidentify(const std::string& in, const std::string& out, const Options& options);

/// Decides, without writing, whether an instance needs review under these options, and why
/// ("" when it does not). Reads the file's header only.
std::string review_reason(const std::string& path, const std::set<Option>& options);

}  // namespace medlens::deid
