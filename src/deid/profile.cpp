#include "deid/profile.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "core/error.h"

namespace medlens::deid {

namespace {

const ProfileRow kRows[] = {
#include "deid/profile_table.inc"
};

// Option column of each option in ProfileRow::options, or -1 (Clean Pixel Data has none).
int option_column(Option o) {
  switch (o) {
    case Option::kRetainSafePrivate: return 0;
    case Option::kRetainUids: return 1;
    case Option::kRetainDeviceIdentity: return 2;
    case Option::kRetainInstitutionIdentity: return 3;
    case Option::kRetainPatientCharacteristics: return 4;
    case Option::kRetainLongFullDates: return 5;
    case Option::kRetainLongModifiedDates: return 6;
    case Option::kCleanDescriptors: return 7;
    case Option::kCleanStructuredContent: return 8;
    case Option::kCleanGraphics: return 9;
    case Option::kCleanPixelData: return -1;
  }
  return -1;
}

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

}  // namespace

const std::vector<OptionInfo>& option_infos() {
  static const std::vector<OptionInfo> infos = {
      {Option::kRetainLongFullDates, "retain-long-full-dates", "113106",
       "Retain Longitudinal Temporal Information Full Dates Option"},
      {Option::kRetainLongModifiedDates, "retain-long-modified-dates", "113107",
       "Retain Longitudinal Temporal Information Modified Dates Option"},
      {Option::kRetainPatientCharacteristics, "retain-patient-chars", "113108",
       "Retain Patient Characteristics Option"},
      {Option::kRetainDeviceIdentity, "retain-device-id", "113109", "Retain Device Identity Option"},
      {Option::kRetainInstitutionIdentity, "retain-institution-id", "113112",
       "Retain Institution Identity Option"},
      {Option::kRetainUids, "retain-uids", "113110", "Retain UIDs Option"},
      {Option::kRetainSafePrivate, "retain-safe-private", "113111", "Retain Safe Private Option"},
      {Option::kCleanDescriptors, "clean-descriptors", "113105", "Clean Descriptors Option"},
      {Option::kCleanStructuredContent, "clean-structured-content", "113104",
       "Clean Structured Content Option"},
      {Option::kCleanGraphics, "clean-graphics", "113103", "Clean Graphics Option"},
      {Option::kCleanPixelData, "clean-pixel-data", "113101", "Clean Pixel Data Option"},
  };
  return infos;
}

const OptionInfo& option_info(Option option) {
  for (const auto& i : option_infos())
    if (i.option == option) return i;
  throw Error(ErrorKind::kInternal, "unknown de-identification option");
}

std::set<Option> parse_options(const std::string& list) {
  std::set<Option> out;
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find(',', start);
    if (end == std::string::npos) end = list.size();
    std::string name = list.substr(start, end - start);
    while (!name.empty() && name.back() == ' ') name.pop_back();
    while (!name.empty() && name.front() == ' ') name.erase(name.begin());
    start = end + 1;
    if (name.empty()) continue;
    bool found = false;
    for (const auto& i : option_infos())
      if (name == i.name) {
        out.insert(i.option);
        found = true;
      }
    if (!found) {
      std::string names;
      for (const auto& i : option_infos()) names += std::string(names.empty() ? "" : ", ") + i.name;
      throw UsageError("unknown de-identification option '" + name + "'; options are: " + names);
    }
  }
  if (out.count(Option::kRetainLongFullDates) && out.count(Option::kRetainLongModifiedDates))
    throw UsageError("retain-long-full-dates and retain-long-modified-dates exclude each other");
  return out;
}

std::string ProfileRow::tag_text() const {
  if (is_private_row()) return "(gggg,eeee) odd";
  char buf[32];
  auto hex = [](uint16_t v, uint16_t mask, char* out) {
    for (int i = 0; i < 4; ++i) {
      const int shift = 12 - 4 * i;
      if (((mask >> shift) & 0xF) == 0)
        out[i] = 'x';
      else
        out[i] = "0123456789ABCDEF"[(v >> shift) & 0xF];
    }
    out[4] = 0;
  };
  char g[5], e[5];
  hex(group, group_mask, g);
  hex(element, element_mask, e);
  std::snprintf(buf, sizeof buf, "(%s,%s)", g, e);
  return buf;
}

std::span<const ProfileRow> profile_rows() { return {kRows, sizeof kRows / sizeof kRows[0]}; }

const ProfileRow* find_row(uint16_t group, uint16_t element) {
  // Rows are sorted by (group, element); the few repeating-group rows are scanned after.
  const auto rows = profile_rows();
  const auto key = std::make_pair(group, element);
  auto it = std::lower_bound(rows.begin(), rows.end(), key,
                             [](const ProfileRow& r, const std::pair<uint16_t, uint16_t>& k) {
                               return std::make_pair(r.group, r.element) < k;
                             });
  for (; it != rows.end() && it->group == group && it->element == element; ++it)
    if (it->group_mask == 0xFFFF && it->element_mask == 0xFFFF) return &*it;
  static const std::vector<const ProfileRow*> repeating = [] {
    std::vector<const ProfileRow*> out;
    for (const ProfileRow& r : profile_rows())
      if ((r.group_mask != 0xFFFF || r.element_mask != 0xFFFF) && !r.is_private_row()) out.push_back(&r);
    return out;
  }();
  for (const ProfileRow* r : repeating)
    if (r->matches(group, element)) return r;
  return nullptr;
}

IodFamily iod_family(const std::string& uid) {
  const std::string s = uid;
  auto is = [&](const char* u) { return s == u; };
  auto under = [&](const char* prefix) { return starts_with(s, prefix); };
  if (is("1.2.840.10008.5.1.4.1.1.2")) return IodFamily::kCt;
  if (is("1.2.840.10008.5.1.4.1.1.4")) return IodFamily::kMr;
  if (is("1.2.840.10008.5.1.4.1.1.6.1") || is("1.2.840.10008.5.1.4.1.1.3.1")) return IodFamily::kUs;
  if (is("1.2.840.10008.5.1.4.1.1.7") || under("1.2.840.10008.5.1.4.1.1.7.")) return IodFamily::kSc;
  if (under("1.2.840.10008.5.1.4.1.1.88.")) return IodFamily::kSr;
  if (is("1.2.840.10008.5.1.4.1.1.66.4")) return IodFamily::kSeg;
  if (is("1.2.840.10008.5.1.4.1.1.30")) return IodFamily::kParametricMap;
  if (is("1.2.840.10008.5.1.4.1.1.77.1.6")) return IodFamily::kWsi;
  if (is("1.2.840.10008.5.1.4.1.1.128")) return IodFamily::kPet;
  if (is("1.2.840.10008.5.1.4.1.1.481.5")) return IodFamily::kRtPlan;
  if (under("1.2.840.10008.5.1.4.1.1.481.")) return IodFamily::kRtOther;
  if (under("1.2.840.10008.5.1.4.1.1.11.")) return IodFamily::kPresentation;
  // Enhanced multi-frame IODs carry the Enhanced General Equipment and Multi-frame Functional
  // Groups modules: CT, MR (incl. colour and legacy converted), US volume, XA, XRF, breast
  // tomosynthesis, PET.
  for (const char* u : {"1.2.840.10008.5.1.4.1.1.2.1", "1.2.840.10008.5.1.4.1.1.2.2",
                        "1.2.840.10008.5.1.4.1.1.4.1", "1.2.840.10008.5.1.4.1.1.4.3",
                        "1.2.840.10008.5.1.4.1.1.4.4", "1.2.840.10008.5.1.4.1.1.6.2",
                        "1.2.840.10008.5.1.4.1.1.12.1.1", "1.2.840.10008.5.1.4.1.1.12.2.1",
                        "1.2.840.10008.5.1.4.1.1.13.1.3", "1.2.840.10008.5.1.4.1.1.130",
                        "1.2.840.10008.5.1.4.1.1.128.1"})
    if (is(u)) return IodFamily::kEnhanced;
  return IodFamily::kOther;
}

int attribute_type(uint16_t g, uint16_t e, const Context& c) {
  const uint32_t tag = (uint32_t{g} << 16) | e;
  const IodFamily f = c.family;
  const bool multiframe = f == IodFamily::kEnhanced || f == IodFamily::kSeg ||
                          f == IodFamily::kParametricMap || f == IodFamily::kWsi;
  switch (tag) {
    case 0x00180010:  // Contrast/Bolus Agent: Contrast/Bolus module, Type 2
      return 2;
    case 0x00181000:  // Device Serial Number: Enhanced General Equipment, Type 1
      return multiframe ? 1 : 3;
    case 0x00080023:  // Content Date: SR Document General / Multi-frame Functional Groups: 1
    case 0x00080033:  // Content Time; General Image: 2C
      return (f == IodFamily::kSr || multiframe) ? 1 : 2;
    case 0x0008002A:  // Acquisition DateTime: enhanced image modules, Type 1C
      return f == IodFamily::kEnhanced ? 1 : 3;
    case 0x00400555:  // Acquisition Context Sequence: Acquisition Context module, Type 2
      return f == IodFamily::kEnhanced ? 2 : 3;
    case 0x00081111:  // Referenced Performed Procedure Step Sequence: SR/KOS Document Series, 2
      return f == IodFamily::kSr ? 2 : 3;
    case 0x00080021:  // Series Date / Time: PET Series module, Type 1
    case 0x00080031:
      return f == IodFamily::kPet ? 1 : 3;
    case 0x300A0006:  // RT Plan Date / Time: RT General Plan, Type 2
    case 0x300A0007:
      return f == IodFamily::kRtPlan ? 2 : 3;
    case 0x00700084:  // Content Creator's Name: Content Identification macro, Type 2
      return (f == IodFamily::kSeg || f == IodFamily::kPresentation || f == IodFamily::kParametricMap) ? 2 : 3;
    case 0x00102203:  // Patient's Sex Neutered: Type 2C when the patient is an animal
      return c.animal ? 2 : 3;
    case 0x300E0008:  // Reviewer Name: Approval module, Type 2C when reviewed
      return c.approval ? 2 : 3;
    case 0x00100020:  // Patient ID: Patient module, Type 2 (medlens writes a pseudonym)
      return 2;
    default:
      return 3;
  }
}

Action resolve(const ProfileRow& row, const std::set<Option>& options, const Context& context) {
  // 1. Options.
  bool keep = false, clean = false;
  for (Option o : options) {
    const int col = option_column(o);
    if (col < 0) continue;
    const char a = row.options[col];
    keep |= a == 'K';
    clean |= a == 'C';
  }
  if (clean) return Action::kClean;
  if (keep) return Action::kKeep;

  // 2. Basic Profile.
  const std::string b = row.basic;
  if (b == "X") return Action::kRemove;
  if (b == "Z") return Action::kZero;
  if (b == "D") return Action::kDummy;
  if (b == "U") return Action::kUid;
  if (b == "K") return Action::kKeep;
  if (b == "C") return Action::kClean;
  if (context.nested) {
    if (b == "X/Z") return Action::kZero;
    if (b == "X/Z/U*") return Action::kUidSequence;
    return Action::kDummy;  // Z/D, X/D, X/Z/D
  }
  const int type = row.group_mask == 0xFFFF && row.element_mask == 0xFFFF
                       ? attribute_type(row.group, row.element, context)
                       : 3;
  if (b == "Z/D") return type == 1 ? Action::kDummy : Action::kZero;
  if (b == "X/Z") return type <= 2 ? Action::kZero : Action::kRemove;
  if (b == "X/D") return type <= 2 ? Action::kDummy : Action::kRemove;
  if (b == "X/Z/D") return type == 1 ? Action::kDummy : type == 2 ? Action::kZero : Action::kRemove;
  if (b == "X/Z/U*") return type == 1 ? Action::kUidSequence : type == 2 ? Action::kZero : Action::kRemove;
  return Action::kRemove;  // unknown: the most protective
}

}  // namespace medlens::deid
