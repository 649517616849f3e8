// The PS3.15 Annex E Table E.1-1 confidentiality profile as data, its options, and the rule that
// turns a row's actions into the one action medlens applies. Torch-free and DCMTK-free.
#pragma once

#include <cstdint>
#include <set>
#include <span>
#include <string>
#include <vector>

namespace medlens::deid {

/// The profile options medlens implements (PS3.15 E.3), each with its CID 7050 code.
enum class Option {
  kRetainLongFullDates,       ///< 113106 Retain Longitudinal Temporal Information Full Dates
  kRetainLongModifiedDates,   ///< 113107 ... Modified Dates (per-patient keyed date shift)
  kRetainPatientCharacteristics,  ///< 113108 (ages over 89 capped at 090Y)
  kRetainDeviceIdentity,      ///< 113109
  kRetainInstitutionIdentity, ///< 113112
  kRetainUids,                ///< 113110
  kRetainSafePrivate,         ///< 113111 (a whitelist of private attributes)
  kCleanDescriptors,          ///< 113105
  kCleanStructuredContent,    ///< 113104
  kCleanGraphics,             ///< 113103
  kCleanPixelData,            ///< 113101 (burned-in text detection and blanking)
};

struct OptionInfo {
  Option option;
  const char* name;          ///< command-line name, e.g. "retain-uids"
  const char* code_value;    ///< CID 7050 code value (DCM), e.g. "113110"
  const char* code_meaning;  ///< e.g. "Retain UIDs Option"
};

/// Every option, in the order above.
const std::vector<OptionInfo>& option_infos();
const OptionInfo& option_info(Option option);
/// Parses a comma-separated list of option names ("" gives none). UsageError for an unknown
/// name or for both longitudinal options at once.
std::set<Option> parse_options(const std::string& list);

/// One row of Table E.1-1 (generated into profile_table.inc from the innolitics JSON).
struct ProfileRow {
  uint16_t group, element;            ///< with the repeating digits (xx) zero
  uint16_t group_mask, element_mask;  ///< 0xFFFF exact; 0xFF00 for 50xx/60xx; private row: odd groups
  const char* name;
  const char* basic;       ///< Basic Profile action: X, Z, D, U, Z/D, X/Z, X/D, X/Z/D, X/Z/U*
  bool in_standard_iod;    ///< "in standard composite IOD" column
  const char* vr;          ///< VR for attributes DCMTK 3.6.7 does not know, else ""
  const char* keyword;     ///< their keyword, else ""
  /// One character per option column ('-', 'K', 'C'): Retain Safe Private, Retain UIDs, Retain
  /// Device Identity, Retain Institution Identity, Retain Patient Characteristics, Retain
  /// Longitudinal Full Dates, Retain Longitudinal Modified Dates, Clean Descriptors, Clean
  /// Structured Content, Clean Graphics.
  const char* options;

  bool matches(uint16_t g, uint16_t e) const {
    return (g & group_mask) == group && (e & element_mask) == element;
  }
  bool is_private_row() const { return group_mask == 0x0001; }
  /// "(0010,0010)", "(60xx,3000)", "(gggg,eeee) odd"
  std::string tag_text() const;
};

/// All 621 rows, sorted by tag.
std::span<const ProfileRow> profile_rows();
/// The row for a standard tag (exact or repeating-group match), or nullptr. Private tags are
/// handled by the caller (the private row has no exact tag).
const ProfileRow* find_row(uint16_t group, uint16_t element);

/// What medlens does to one attribute.
enum class Action : char {
  kKeep = 'K',
  kRemove = 'X',
  kZero = 'Z',      ///< zero-length value (empty sequence)
  kDummy = 'D',     ///< a dummy value of the VR (a sequence: kept, its strings dummied)
  kClean = 'C',     ///< cleaned: dates shifted, text filtered through the safe vocabulary
  kUid = 'U',       ///< replaced by the keyed pseudonym UID
  kUidSequence = 'S',  ///< U* of X/Z/U*: the sequence is kept with every UID in it replaced
};

/// The IOD family of an instance, from its SOP Class UID: decides the Type of the attributes
/// that carry compound actions.
enum class IodFamily {
  kOther, kCt, kMr, kUs, kSc, kSr, kSeg, kEnhanced, kPet, kRtPlan, kRtOther, kPresentation,
  kParametricMap, kWsi
};
IodFamily iod_family(const std::string& sop_class_uid);

/// Where an attribute sits, for resolving compound actions.
struct Context {
  IodFamily family = IodFamily::kOther;
  bool nested = false;          ///< inside a sequence item (not the top-level dataset)
  bool animal = false;          ///< PatientSpeciesDescription/CodeSequence present (2C rules)
  bool approval = false;        ///< ApprovalStatus present (Approval module, 2C rules)
};

/// The Type (1, 2, or 3 for optional/absent) of a top-level attribute in an IOD family, for
/// the attributes with compound actions. medlens carries this for the IODs it reads and
/// writes; an attribute it has no entry for counts as Type 3.
int attribute_type(uint16_t group, uint16_t element, const Context& context);

/// The resolution rule (docs/DEID.md):
/// 1. Options: if an enabled option's column names the attribute, that action wins; when
///    several enabled options name it and disagree, C (clean) wins over K (keep).
/// 2. Otherwise the Basic Profile action. A compound action is resolved by the attribute's
///    Type in the instance's IOD: at the top level Type 1 gives D (or U* for X/Z/U*), Type 2
///    gives Z, Type 3 or absent gives X; an alternative the compound lacks falls to the next
///    more conservative one that keeps the IOD valid (X/D with Type 2 gives D, Z/D with Type 3
///    gives Z). Inside sequence items, where the enclosing macro usually requires what is
///    present, the most conformant alternative is used (D, U*, or Z for X/Z).
Action resolve(const ProfileRow& row, const std::set<Option>& options, const Context& context);

/// The CID 7050 code of the Basic Application Confidentiality Profile.
inline constexpr const char* kBasicProfileCode = "113100";
inline constexpr const char* kBasicProfileMeaning = "Basic Application Confidentiality Profile";

}  // namespace medlens::deid
