// The de-identification engine: walks every element of a dataset at every sequence depth and
// applies the resolved action of its Table E.1-1 row (deid/profile.h), maps every UID through
// the keyed pseudonymizer, removes private attributes, overlays, curves and icons, cleans
// burned-in text, adds the markers and writes a fresh file (new preamble and meta header).
#include "deid/deid.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmdata/dcdicent.h>
#include <dcmtk/dcmdata/dcxfer.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/hash.h"
#include "core/version.h"
#include "deid/burned_text.h"
#include "deid/pseudonym.h"
#include "deid/text_clean.h"
#include "io/dicom_common.h"
#include "io/file_util.h"

namespace fs = std::filesystem;

namespace medlens::deid {

namespace {

constexpr const char* kDummyText = "ANONYMIZED";
constexpr const char* kDummyDate = "19000101";
constexpr const char* kDummyTime = "000000";
constexpr const char* kDummyDateTime = "19000101000000";

// ---------------------------------------------------------------------------------------------
// DCMTK set-up: the rows DCMTK 3.6.7 does not know are added to its dictionary once, so files
// with implicit VR read them with the right VR.
void init() {
  dicom::init_dcmtk();
  static std::once_flag once;
  std::call_once(once, [] {
    DcmDataDictionary& dict = dcmDataDict.wrlock();
    for (const ProfileRow& r : profile_rows()) {
      if (!*r.vr) continue;
      if (dict.findEntry(DcmTagKey(r.group, r.element), nullptr)) continue;
      dict.addEntry(new DcmDictEntry(r.group, r.element, DcmVR(r.vr), r.keyword, 1, 1, "DICOM",
                                     OFTrue, nullptr));
    }
    dcmDataDict.wrunlock();
  });
}

std::string tag_text(const DcmTagKey& t) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "(%04X,%04X)", t.getGroup(), t.getElement());
  return buf;
}

bool is_string_vr(DcmEVR vr) {
  switch (vr) {
    case EVR_AE: case EVR_AS: case EVR_CS: case EVR_DA: case EVR_DS: case EVR_DT: case EVR_IS:
    case EVR_LO: case EVR_LT: case EVR_PN: case EVR_SH: case EVR_ST: case EVR_TM: case EVR_UC:
    case EVR_UI: case EVR_UR: case EVR_UT:
      return true;
    default:
      return false;
  }
}

bool is_free_text_vr(DcmEVR vr) {
  return vr == EVR_LO || vr == EVR_SH || vr == EVR_ST || vr == EVR_LT || vr == EVR_UT || vr == EVR_UC;
}

// The value of an element as text (UN: its raw bytes).
std::string value_of(DcmElement* e) {
  if (e->getVR() == EVR_UN || e->getVR() == EVR_OB) {
    Uint8* b = nullptr;
    if (e->getUint8Array(b).bad() || !b) return {};
    std::string s(reinterpret_cast<const char*>(b), e->getLength());
    while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
    return s;
  }
  OFString v;
  if (e->getOFStringArray(v).bad()) return {};
  return std::string(v.c_str());
}

void set_value(DcmElement* e, const std::string& value) {
  if (e->getVR() == EVR_UN || e->getVR() == EVR_OB) {
    std::string s = value;
    if (s.size() % 2) s += ' ';
    e->putUint8Array(reinterpret_cast<const Uint8*>(s.data()), static_cast<unsigned long>(s.size()));
    return;
  }
  if (e->putString(value.c_str()).bad()) e->clear();
}

std::vector<std::string> split_values(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t end = s.find('\\', start);
    out.push_back(s.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

std::string join_values(const std::vector<std::string>& v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? "\\" : "") + v[i];
  return out;
}

// UI attributes that name classes (SOP classes, transfer syntaxes, coding schemes), not
// instances: kept as they are.
bool is_class_uid_tag(const DcmTagKey& t) {
  static const std::set<std::pair<uint16_t, uint16_t>> tags = {
      {0x0002, 0x0002}, {0x0002, 0x0010}, {0x0002, 0x0012}, {0x0002, 0x0100}, {0x0004, 0x1510},
      {0x0004, 0x1512}, {0x0008, 0x0016}, {0x0008, 0x001A}, {0x0008, 0x001B}, {0x0008, 0x0062},
      {0x0008, 0x010C}, {0x0008, 0x010D}, {0x0008, 0x0118}, {0x0008, 0x1150}, {0x0008, 0x1152},
      {0x0008, 0x9123}, {0x0400, 0x0010}, {0x0400, 0x0510},
      {0x0000, 0x0002}, {0x0000, 0x0003},
  };
  return tags.count({t.getGroup(), t.getElement()}) > 0;
}

bool is_well_known_uid(const std::string& uid) { return uid.rfind("1.2.840.10008.", 0) == 0; }

// Coding schemes whose codes are standard concepts, not local identifiers.
bool is_standard_scheme(const std::string& s) {
  static const std::set<std::string> schemes = {
      "DCM", "SCT", "SRT", "SNM3", "LN", "UCUM", "RADLEX", "RID", "FMA", "NCIt", "NCIT", "MDC",
      "I10", "ICD10", "ICD-10", "I9C", "UMLS", "NEU", "MSH", "ACR", "NCDR", "BARI", "CAS", "PUBCHEM_CID"};
  return schemes.count(s) > 0;
}

bool is_code_element(const DcmTagKey& t) {
  return t == DCM_CodeValue || t == DCM_CodingSchemeDesignator || t == DCM_CodingSchemeVersion ||
         t == DCM_CodeMeaning || t == DCM_LongCodeValue || t == DCM_URNCodeValue;
}

bool risky_for_burned_in_text(const std::string& modality, const std::string& sop_class) {
  static const std::set<std::string> modalities = {"US", "IVUS", "XC", "ES", "GM", "OP", "OT",
                                                   "DOC", "SC", "SM", "IO", "PX"};
  const IodFamily f = iod_family(sop_class);
  return modalities.count(modality) || f == IodFamily::kSc || f == IodFamily::kUs ||
         sop_class.rfind("1.2.840.10008.5.1.4.1.1.77.", 0) == 0 ||
         sop_class == "1.2.840.10008.5.1.4.1.1.6.2";
}

std::string get(DcmItem* item, const DcmTagKey& tag) { return dicom::get_all(item, tag); }

// ---------------------------------------------------------------------------------------------

struct Session {
  const Options& options;
  Pseudonymizer pseudo;
  std::vector<SafePrivate> safe;
  explicit Session(const Options& o) : options(o), pseudo(o.key) {
    if (o.options.count(Option::kRetainSafePrivate)) {
      safe = safe_private_whitelist();
      safe.insert(safe.end(), o.safe_private.begin(), o.safe_private.end());
    }
  }
  bool has(Option o) const { return options.options.count(o) > 0; }
};

enum class Mode { kNormal, kDummyStrings, kCleanStrings };

class Instance {
 public:
  Instance(Session& s, InstanceReport& r, const std::string& path) : s_(s), report_(r), path_(path) {}

  void run(DcmDataset* ds);

 private:
  void walk(DcmItem* item, Mode mode, bool nested, const std::string& prefix);
  void record(const std::string& path, const std::string& name, char action) {
    report_.actions.push_back({path, name, action});
    ++report_.counts[action];
  }
  std::string map_uids(const std::string& value, const DcmTagKey& tag) const;
  void dummy(DcmElement* e, const DcmTagKey& tag);
  void clean(DcmElement* e);
  void date_rule(DcmElement* e, const std::string& path, const std::string& name);
  void overlays(DcmDataset* ds);
  void pixels(DcmDataset* ds);
  void markers(DcmDataset* ds);

  Session& s_;
  InstanceReport& report_;
  std::string path_;
  Context ctx_;
  std::string patient_id_;  // original, to derive pseudonyms and the date shift
  int shift_ = 0;
};

std::string element_name(const DcmTagKey& t, const ProfileRow* row) {
  if (row) return row->name;
  if (t.getGroup() & 1) return "private attribute";
  const DcmDataDictionary& dict = dcmDataDict.rdlock();
  const DcmDictEntry* entry = dict.findEntry(t, nullptr);
  std::string name = entry && entry->getTagName() ? entry->getTagName() : "unknown attribute";
  dcmDataDict.rdunlock();
  return name;
}

std::string Instance::map_uids(const std::string& value, const DcmTagKey& tag) const {
  if (is_class_uid_tag(tag)) return value;
  std::vector<std::string> parts = split_values(value);
  for (auto& p : parts) {
    while (!p.empty() && (p.back() == ' ' || p.back() == '\0')) p.pop_back();
    if (!is_well_known_uid(p)) p = s_.pseudo.uid(p);
  }
  return join_values(parts);
}

void Instance::dummy(DcmElement* e, const DcmTagKey& tag) {
  switch (e->getVR()) {
    case EVR_UI:
      set_value(e, map_uids(value_of(e), tag));
      return;
    case EVR_DA: set_value(e, kDummyDate); return;
    case EVR_TM: set_value(e, kDummyTime); return;
    case EVR_DT: set_value(e, kDummyDateTime); return;
    case EVR_AS: set_value(e, "000Y"); return;
    case EVR_DS: case EVR_IS: set_value(e, "0"); return;
    case EVR_US: case EVR_SS: case EVR_UL: case EVR_SL: case EVR_FL: case EVR_FD: case EVR_UV:
    case EVR_SV:
      e->clear();
      e->putString("0");
      return;
    case EVR_OW: {
      const Uint16 zero[1] = {0};
      e->putUint16Array(zero, 1);
      return;
    }
    case EVR_OB: case EVR_UN: {
      if (e->getVR() == EVR_UN) {
        set_value(e, kDummyText);
        return;
      }
      const Uint8 zero[2] = {0, 0};
      e->putUint8Array(zero, 2);
      return;
    }
    default:
      if (is_string_vr(e->getVR()))
        set_value(e, kDummyText);
      else
        e->clear();
  }
}

void Instance::clean(DcmElement* e) {
  const DcmEVR vr = e->getVR();
  const std::string v = value_of(e);
  if (vr == EVR_DA || vr == EVR_DT) {
    // Modified dates: the patient's shift. (Full dates never reach here: they are K.)
    std::vector<std::string> parts = split_values(v);
    for (auto& p : parts) {
      if (p.empty()) continue;
      auto shifted = vr == EVR_DA ? shift_date(p, shift_) : shift_datetime(p, shift_);
      p = shifted ? *shifted : std::string(vr == EVR_DA ? kDummyDate : kDummyDateTime);
    }
    set_value(e, join_values(parts));
  } else if (vr == EVR_TM) {
    // Shifting by whole days keeps the time of day.
  } else if (vr == EVR_AS) {
    set_value(e, cap_age(v));
  } else if (vr == EVR_UI) {
    set_value(e, map_uids(v, e->getTag()));
  } else if (vr == EVR_AE || vr == EVR_PN || vr == EVR_UR) {
    if (!v.empty()) set_value(e, kDummyText);
  } else if (is_free_text_vr(vr) || vr == EVR_CS || vr == EVR_UN) {
    std::vector<std::string> parts = split_values(v);
    for (auto& p : parts) p = clean_text(p);
    std::string joined = join_values(parts);
    if (vr == EVR_CS || vr == EVR_SH) {
      for (auto& c : joined) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      if (joined.size() > 16) joined.resize(16);
    }
    if (joined.find_first_not_of('\\') == std::string::npos) joined.clear();
    if (joined.empty())
      e->clear();
    else
      set_value(e, joined);
  }
  // Numbers and binary values carry no text to clean.
}

// Dates, times and date-times met inside a dummied sequence: removed in the Basic Profile
// (dummy), shifted under Modified Dates, kept under Full Dates.
void Instance::date_rule(DcmElement* e, const std::string& path, const std::string& name) {
  if (s_.has(Option::kRetainLongFullDates)) return;
  if (s_.has(Option::kRetainLongModifiedDates)) {
    clean(e);
    record(path, name, 'C');
  } else {
    dummy(e, e->getTag());
    record(path, name, 'D');
  }
}

void Instance::walk(DcmItem* item, Mode mode, bool nested, const std::string& prefix) {
  // Private creators of this item, and whether the item holds a standard coded entry.
  std::map<std::pair<uint16_t, uint8_t>, std::string> creators;
  std::set<std::pair<uint16_t, uint8_t>> creators_used;
  for (unsigned long i = 0; i < item->card(); ++i) {
    DcmElement* e = item->getElement(i);
    const DcmTag& t = e->getTag();
    if ((t.getGroup() & 1) && t.getElement() >= 0x0010 && t.getElement() <= 0x00FF)
      creators[{t.getGroup(), static_cast<uint8_t>(t.getElement())}] = value_of(e);
  }
  const bool standard_code = is_standard_scheme(get(item, DCM_CodingSchemeDesignator));

  Context ctx = ctx_;
  ctx.nested = nested;
  for (unsigned long i = 0; i < item->card();) {
    DcmElement* e = item->getElement(i);
    const DcmTagKey t = e->getTag();
    const uint16_t g = t.getGroup(), el = t.getElement();
    const std::string path = prefix + tag_text(t);
    auto remove = [&](const std::string& name) {
      delete item->remove(i);
      record(path, name, 'X');
    };

    // Group lengths (recomputed on writing) and command/meta groups (no place in a dataset).
    if (el == 0x0000 || g == 0x0000 || g == 0x0002) {
      if (g == 0x0000 && find_row(g, el)) {
        remove(find_row(g, el)->name);
      } else {
        delete item->remove(i);
      }
      continue;
    }

    // Private attributes: removed unless whitelisted under Retain Safe Private.
    if (g & 1) {
      if (el >= 0x0010 && el <= 0x00FF) {
        ++i;  // creators: decided after their elements
        continue;
      }
      if (el < 0x0010) {  // not a valid private element
        remove("private attribute");
        continue;
      }
      const auto block = std::make_pair(g, static_cast<uint8_t>(el >> 8));
      bool keep = false;
      if (s_.has(Option::kRetainSafePrivate)) {
        auto c = creators.find(block);
        if (c != creators.end())
          for (const SafePrivate& sp : s_.safe)
            if (sp.group == g && sp.element == (el & 0xFF) && sp.creator == c->second) keep = true;
      }
      if (keep) {
        creators_used.insert(block);
        record(path, "private attribute (safe)", 'K');
        if (e->getVR() == EVR_SQ) {
          auto* sq = static_cast<DcmSequenceOfItems*>(e);
          for (unsigned long k = 0; k < sq->card(); ++k)
            walk(sq->getItem(k), mode, true, path + "[" + std::to_string(k) + "]/");
        }
        ++i;
      } else {
        remove("private attribute");
      }
      continue;
    }

    // Curves (50xx) always; overlays (60xx) unless Clean Graphics keeps them cleaned.
    if (g >= 0x5000 && g <= 0x501E) {
      remove(el == 0x3000 ? "Curve Data" : "curve attribute");
      continue;
    }
    if (g >= 0x6000 && g <= 0x601E) {
      if (!s_.has(Option::kCleanGraphics) || nested) {
        remove(el == 0x3000 ? "Overlay Data" : el == 0x4000 ? "Overlay Comments" : "overlay attribute");
        continue;
      }
      if (el == 0x4000 || el == 0x0022 || el == 0x1500) {  // comments, description, label
        clean(e);
        record(path, el == 0x4000 ? "Overlay Comments" : "overlay text", 'C');
      }
      ++i;  // Overlay Data: cleaned by overlays()
      continue;
    }

    const ProfileRow* row = find_row(g, el);
    const DcmEVR vr = e->getVR();
    const std::string name = element_name(t, row);

    // Identity pseudonyms, at any depth.
    if (t == DCM_PatientID || t == DCM_PatientName || t == DCM_AccessionNumber) {
      const std::string v = value_of(e);
      std::string p;
      if (t == DCM_AccessionNumber)
        p = s_.pseudo.accession_number(v);
      else
        p = s_.pseudo.patient_id(t == DCM_PatientID ? v : (patient_id_.empty() ? v : patient_id_));
      if (p.empty())
        e->clear();
      else
        set_value(e, p);
      record(path, name, 'P');
      ++i;
      continue;
    }

    if (row) {
      const Action a = resolve(*row, s_.options.options, ctx);
      switch (a) {
        case Action::kRemove:
          remove(name);
          continue;
        case Action::kZero:
          if (vr == EVR_SQ)
            static_cast<DcmSequenceOfItems*>(e)->clear();
          else
            e->clear();
          record(path, name, 'Z');
          break;
        case Action::kDummy:
          if (vr == EVR_SQ) {
            record(path, name, 'D');
            auto* sq = static_cast<DcmSequenceOfItems*>(e);
            for (unsigned long k = 0; k < sq->card(); ++k)
              walk(sq->getItem(k), Mode::kDummyStrings, true, path + "[" + std::to_string(k) + "]/");
          } else {
            dummy(e, t);
            record(path, name, vr == EVR_UI ? 'U' : 'D');
          }
          break;
        case Action::kClean:
          record(path, name, 'C');
          if (vr == EVR_SQ) {
            auto* sq = static_cast<DcmSequenceOfItems*>(e);
            for (unsigned long k = 0; k < sq->card(); ++k)
              walk(sq->getItem(k), Mode::kCleanStrings, true, path + "[" + std::to_string(k) + "]/");
          } else {
            clean(e);
          }
          break;
        case Action::kUid:
          if (vr == EVR_SQ) {
            auto* sq = static_cast<DcmSequenceOfItems*>(e);
            for (unsigned long k = 0; k < sq->card(); ++k)
              walk(sq->getItem(k), mode, true, path + "[" + std::to_string(k) + "]/");
          } else {
            set_value(e, map_uids(value_of(e), t));
          }
          record(path, name, 'U');
          break;
        case Action::kUidSequence:
        case Action::kKeep:
          record(path, name, a == Action::kKeep ? 'K' : 'U');
          if (vr == EVR_SQ) {
            auto* sq = static_cast<DcmSequenceOfItems*>(e);
            for (unsigned long k = 0; k < sq->card(); ++k)
              walk(sq->getItem(k), a == Action::kKeep ? Mode::kNormal : mode, true,
                   path + "[" + std::to_string(k) + "]/");
          } else if (vr == EVR_AS) {
            set_value(e, cap_age(value_of(e)));  // Retain Patient Characteristics: over 89 capped
          } else if (vr == EVR_UI && a == Action::kUidSequence) {
            set_value(e, map_uids(value_of(e), t));
          }
          break;
      }
      ++i;
      continue;
    }

    // Not in the table.
    if (vr == EVR_SQ) {
      if (t == DCM_IconImageSequence) {  // listed in the table; here for safety at any depth
        remove("Icon Image Sequence");
        continue;
      }
      auto* sq = static_cast<DcmSequenceOfItems*>(e);
      for (unsigned long k = 0; k < sq->card(); ++k)
        walk(sq->getItem(k), mode, true, path + "[" + std::to_string(k) + "]/");
      ++i;
      continue;
    }
    if (vr == EVR_UI) {
      if (!s_.has(Option::kRetainUids)) {
        const std::string v = value_of(e);
        const std::string m = map_uids(v, t);
        if (m != v) {
          set_value(e, m);
          record(path, name, 'U');
        }
      }
      ++i;
      continue;
    }
    if (mode != Mode::kNormal && !(standard_code && is_code_element(t)) && e->getLength() > 0) {
      if (vr == EVR_DA || vr == EVR_DT || vr == EVR_TM) {
        date_rule(e, path, name);
      } else if (mode == Mode::kDummyStrings && is_string_vr(vr) && vr != EVR_CS && vr != EVR_AS &&
                 vr != EVR_DS && vr != EVR_IS) {
        dummy(e, t);
        record(path, name, 'D');
      } else if (mode == Mode::kCleanStrings && (is_free_text_vr(vr) || vr == EVR_PN || vr == EVR_AE ||
                                                  vr == EVR_UR)) {
        clean(e);
        record(path, name, 'C');
      }
    }
    ++i;
  }

  // Private creators of blocks none of whose elements were kept.
  for (unsigned long i = 0; i < item->card();) {
    DcmElement* e = item->getElement(i);
    const DcmTagKey t = e->getTag();
    if ((t.getGroup() & 1) && t.getElement() >= 0x0010 && t.getElement() <= 0x00FF &&
        !creators_used.count({t.getGroup(), static_cast<uint8_t>(t.getElement())})) {
      delete item->remove(i);
      record(prefix + tag_text(t), "private creator", 'X');
      continue;
    }
    ++i;
  }
}

// Overlays kept under Clean Graphics: burned-in text in the overlay planes is cleared.
void Instance::overlays(DcmDataset* ds) {
  for (uint16_t g = 0x6000; g <= 0x601E; g += 2) {
    DcmElement* data = nullptr;
    if (ds->findAndGetElement(DcmTagKey(g, 0x3000), data).bad() || !data) continue;
    const auto rows = dicom::get_int(ds, DcmTagKey(g, 0x0010)).value_or(0);
    const auto cols = dicom::get_int(ds, DcmTagKey(g, 0x0011)).value_or(0);
    const auto frames = std::max(1L, dicom::get_int(ds, DcmTagKey(g, 0x0015)).value_or(1));
    Uint8* bits = nullptr;
    if (rows <= 0 || cols <= 0 || data->getUint8Array(bits).bad() || !bits) continue;
    const size_t plane = static_cast<size_t>(rows) * static_cast<size_t>(cols);
    if (data->getLength() * 8ull < plane * static_cast<size_t>(frames)) continue;
    for (long f = 0; f < frames; ++f) {
      std::vector<uint8_t> img(plane);
      for (size_t p = 0; p < plane; ++p) {
        const size_t bit = static_cast<size_t>(f) * plane + p;
        img[p] = (bits[bit / 8] >> (bit % 8)) & 1 ? 255 : 0;
      }
      for (const TextRegion& t : find_text_regions(img.data(), static_cast<int>(rows), static_cast<int>(cols),
                                                   static_cast<size_t>(cols))) {
        for (int y = t.y; y < t.y + t.height; ++y)
          for (int x = t.x; x < t.x + t.width; ++x) {
            const size_t bit = static_cast<size_t>(f) * plane + static_cast<size_t>(y) * cols + x;
            bits[bit / 8] = static_cast<Uint8>(bits[bit / 8] & ~(1u << (bit % 8)));
          }
        ++report_.overlay_regions_blanked;
        record(tag_text(DcmTagKey(g, 0x3000)), "Overlay Data", 'C');
      }
    }
  }
}

// Clean Pixel Data: burned-in text found in any frame is blanked (to the frame's black) in
// every frame, where it stays in cine loops.
void Instance::pixels(DcmDataset* ds) {
  DcmElement* pd = nullptr;
  if (ds->findAndGetElement(DCM_PixelData, pd).bad() || !pd) return;
  const E_TransferSyntax xfer = ds->getOriginalXfer();
  if (DcmXfer(xfer).isEncapsulated()) {
    if (ds->chooseRepresentation(EXS_LittleEndianExplicit, nullptr).bad() ||
        !ds->canWriteXfer(EXS_LittleEndianExplicit))
      throw ReviewNeeded(path_, "pixel data in " + std::string(DcmXfer(xfer).getXferName()) +
                                    " cannot be decoded to clean burned-in text");
    ds->findAndGetElement(DCM_PixelData, pd);
  }
  const long rows = dicom::get_int(ds, DCM_Rows).value_or(0);
  const long cols = dicom::get_int(ds, DCM_Columns).value_or(0);
  const long spp = dicom::get_int(ds, DCM_SamplesPerPixel).value_or(1);
  const long bits = dicom::get_int(ds, DCM_BitsAllocated).value_or(0);
  const long stored = dicom::get_int(ds, DCM_BitsStored).value_or(bits);
  const bool is_signed = dicom::get_int(ds, DCM_PixelRepresentation).value_or(0) == 1;
  const long planar = dicom::get_int(ds, DCM_PlanarConfiguration).value_or(0);
  const long frames = std::max(1L, dicom::get_int(ds, DCM_NumberOfFrames).value_or(1));
  const std::string photometric = get(ds, DCM_PhotometricInterpretation);
  if (rows <= 0 || cols <= 0 || (spp != 1 && spp != 3) || (bits != 8 && bits != 16) || stored < 1 ||
      stored > bits || photometric.rfind("YBR_FULL_422", 0) == 0)
    throw ReviewNeeded(path_, "pixel data layout (" + std::to_string(bits) + "-bit, " + std::to_string(spp) +
                                  " samples, " + photometric + ") cannot be cleaned of burned-in text");
  const size_t plane = static_cast<size_t>(rows) * static_cast<size_t>(cols);
  const size_t per_frame = plane * static_cast<size_t>(spp);
  const size_t total = per_frame * static_cast<size_t>(frames);
  Uint8* b8 = nullptr;
  Uint16* b16 = nullptr;
  if (bits == 8 ? (pd->getUint8Array(b8).bad() || !b8) : (pd->getUint16Array(b16).bad() || !b16))
    throw ReviewNeeded(path_, "pixel data cannot be read to clean burned-in text");
  if (pd->getLength() < total * static_cast<size_t>(bits / 8))
    throw InputError(path_, "pixel data is shorter than Rows x Columns x Samples x Frames");
  const uint32_t mask = stored >= 32 ? 0xFFFFFFFFu : (1u << stored) - 1u;
  auto sample = [&](size_t index) -> double {
    uint32_t raw = bits == 8 ? b8[index] : b16[index];
    raw &= mask;
    if (is_signed && (raw >> (stored - 1)) & 1u) return static_cast<double>(static_cast<int64_t>(raw) - (int64_t{1} << stored));
    return static_cast<double>(raw);
  };
  // Index of sample s of pixel p in frame f.
  auto at = [&](long f, size_t p, long s) {
    return static_cast<size_t>(f) * per_frame + (planar == 1 ? static_cast<size_t>(s) * plane + p : p * spp + static_cast<size_t>(s));
  };
  std::vector<TextRegion> regions;
  std::vector<double> lo(static_cast<size_t>(frames)), hi(static_cast<size_t>(frames));
  for (long f = 0; f < frames; ++f) {
    std::vector<double> values(per_frame);
    double l = INFINITY, h = -INFINITY;
    for (size_t p = 0; p < plane; ++p)
      for (long s = 0; s < spp; ++s) {
        const double v = sample(at(f, p, s));
        values[p * spp + static_cast<size_t>(s)] = v;
        l = std::min(l, v);
        h = std::max(h, v);
      }
    lo[static_cast<size_t>(f)] = l;
    hi[static_cast<size_t>(f)] = h;
    std::vector<uint8_t> grey = to_grey8(values.data(), static_cast<int>(rows), static_cast<int>(cols), static_cast<int>(spp));
    for (const TextRegion& t : find_text_regions(grey.data(), static_cast<int>(rows), static_cast<int>(cols),
                                                 static_cast<size_t>(cols))) {
      regions.push_back(t);
      report_.blanked.push_back({static_cast<int>(f), t.x, t.y, t.width, t.height});
    }
  }
  if (!regions.empty()) {
    const bool inverted = photometric == "MONOCHROME1";
    for (long f = 0; f < frames; ++f) {
      const double black = spp == 3 ? 0.0 : (inverted ? hi[static_cast<size_t>(f)] : lo[static_cast<size_t>(f)]);
      const int64_t code = static_cast<int64_t>(black) & static_cast<int64_t>(mask);
      for (const TextRegion& t : regions)
        for (int y = t.y; y < t.y + t.height; ++y)
          for (int x = t.x; x < t.x + t.width; ++x)
            for (long s = 0; s < spp; ++s) {
              const size_t idx = at(f, static_cast<size_t>(y) * cols + x, s);
              if (bits == 8)
                b8[idx] = static_cast<Uint8>(code);
              else
                b16[idx] = static_cast<Uint16>((b16[idx] & ~mask) | static_cast<uint32_t>(code));
            }
    }
    record(tag_text(DCM_PixelData), "Pixel Data (burned-in text)", 'C');
  }
  ds->putAndInsertString(DCM_BurnedInAnnotation, "NO");
  record(tag_text(DCM_BurnedInAnnotation), "Burned In Annotation", 'A');
}

void Instance::markers(DcmDataset* ds) {
  ds->putAndInsertString(DCM_PatientIdentityRemoved, "YES");
  std::string method = kBasicProfileMeaning;
  std::vector<const OptionInfo*> applied;
  for (const auto& i : option_infos())
    if (s_.has(i.option)) {
      applied.push_back(&i);
      method += std::string("\\") + i.code_meaning;
    }
  ds->putAndInsertString(DCM_DeidentificationMethod, method.c_str());
  ds->findAndDeleteElement(DCM_DeidentificationMethodCodeSequence);
  auto add_code = [&](const char* value, const char* meaning) {
    DcmItem* item = nullptr;
    if (ds->findOrCreateSequenceItem(DCM_DeidentificationMethodCodeSequence, item, -2).good() && item) {
      item->putAndInsertString(DCM_CodeValue, value);
      item->putAndInsertString(DCM_CodingSchemeDesignator, "DCM");
      item->putAndInsertString(DCM_CodeMeaning, meaning);
    }
  };
  add_code(kBasicProfileCode, kBasicProfileMeaning);
  for (const OptionInfo* i : applied) add_code(i->code_value, i->code_meaning);
  ds->putAndInsertString(DCM_LongitudinalTemporalInformationModified,
                         s_.has(Option::kRetainLongFullDates)       ? "UNMODIFIED"
                         : s_.has(Option::kRetainLongModifiedDates) ? "MODIFIED"
                                                                    : "REMOVED");
  for (const DcmTagKey& t : {DCM_PatientIdentityRemoved, DCM_DeidentificationMethod,
                             DCM_DeidentificationMethodCodeSequence, DCM_LongitudinalTemporalInformationModified})
    record(tag_text(t), element_name(t, nullptr), 'A');
}

void Instance::run(DcmDataset* ds) {
  const std::string sop_class = get(ds, DCM_SOPClassUID);
  ctx_.family = iod_family(sop_class);
  ctx_.animal = ds->tagExists(DCM_PatientSpeciesDescription) || ds->tagExists(DCM_PatientSpeciesCodeSequence);
  ctx_.approval = ds->tagExists(DCM_ApprovalStatus);
  patient_id_ = get(ds, DCM_PatientID);
  shift_ = s_.pseudo.date_shift_days(patient_id_.empty() ? get(ds, DCM_PatientName) : patient_id_);
  report_.sop_class = sop_class;
  report_.modality = get(ds, DCM_Modality);
  if (ds->loadAllDataIntoMemory().bad()) throw InputError(path_, "cannot read the whole DICOM file");
  walk(ds, Mode::kNormal, false, "");
  if (s_.has(Option::kCleanGraphics)) overlays(ds);
  if (s_.has(Option::kCleanPixelData)) pixels(ds);
  markers(ds);
}

// ---------------------------------------------------------------------------------------------

std::string review_reason_of(DcmDataset* ds, const std::set<Option>& options) {
  if (options.count(Option::kCleanPixelData) || !ds->tagExists(DCM_PixelData)) return {};
  std::string burned = get(ds, DCM_BurnedInAnnotation);
  for (auto& c : burned) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const std::string modality = get(ds, DCM_Modality);
  const std::string sop_class = get(ds, DCM_SOPClassUID);
  if (burned == "YES")
    return "BurnedInAnnotation is YES: burned-in text must be cleaned (--options clean-pixel-data) "
           "or reviewed";
  if (burned.empty() && risky_for_burned_in_text(modality, sop_class))
    return "BurnedInAnnotation is missing on a " + (modality.empty() ? std::string("secondary capture") : modality) +
           " image, which often carries burned-in text: clean it (--options clean-pixel-data) or review it";
  return {};
}

struct Loaded {
  DcmFileFormat file;
  DcmDataset* ds = nullptr;
};

bool is_dicomdir(Loaded& l) {
  return get(l.file.getMetaInfo(), DCM_MediaStorageSOPClassUID) == "1.2.840.10008.1.3.10" ||
         l.ds->tagExists(DCM_DirectoryRecordSequence);
}

// Loads a file; InputError naming it when it is not readable DICOM (or, with `instance`, not
// a composite instance).
void load(Loaded& l, const std::string& path, bool instance = true) {
  const OFCondition st = l.file.loadFile(path.c_str(), EXS_Unknown, EGL_noChange, DCM_MaxReadLength, ERM_autoDetect);
  if (st.bad()) throw InputError(path, std::string("not a readable DICOM file: ") + st.text());
  l.ds = l.file.getDataset();
  if (instance && is_dicomdir(l))
    throw InputError(path, "is a DICOMDIR, which indexes identities: de-identify the instances and rebuild it");
  if (instance && (get(l.ds, DCM_SOPInstanceUID).empty() || get(l.ds, DCM_SOPClassUID).empty()))
    throw InputError(path, "not a DICOM instance: no SOP Class or SOP Instance UID");
}

void load_check_instance(Loaded& l, const std::string& path) {
  if (get(l.ds, DCM_SOPInstanceUID).empty() || get(l.ds, DCM_SOPClassUID).empty())
    throw InputError(path, "not a DICOM instance: no SOP Class or SOP Instance UID");
}

bool has_dicm_magic(const std::string& path) {
  const std::vector<uint8_t> head = read_file_head(path, 132);
  return head.size() == 132 && std::memcmp(head.data() + 128, "DICM", 4) == 0;
}

struct Written {
  InstanceReport report;
  std::string study, series, sop;
};

// De-identifies one loaded instance and writes it to `dest` (a temporary path).
void process(Session& s, Loaded& l, const std::string& path, Written& w) {
  w.report.input_sha256 = sha256_file(path);
  Instance inst(s, w.report, path);
  inst.run(l.ds);
  w.study = get(l.ds, DCM_StudyInstanceUID);
  w.series = get(l.ds, DCM_SeriesInstanceUID);
  w.sop = get(l.ds, DCM_SOPInstanceUID);
}

void save(Loaded& l, const std::string& dest, const std::string& path) {
  DcmDataset* ds = l.file.getAndRemoveDataset();
  DcmFileFormat fresh(ds, OFFalse);  // new meta header and a zero preamble
  const E_TransferSyntax original = ds->getOriginalXfer();
  E_TransferSyntax xfer = EXS_LittleEndianExplicit;
  if (DcmXfer(original).isEncapsulated() && ds->canWriteXfer(original)) xfer = original;
  const OFCondition st = fresh.saveFile(dest.c_str(), xfer, EET_ExplicitLength, EGL_withoutGL, EPD_noChange,
                                        0, 0, EWM_createNewMeta);
  if (st.bad()) throw InputError(path, std::string("cannot write the de-identified file: ") + st.text());
}

std::string sanitize_uid_name(const std::string& uid) {
  std::string out;
  for (char c : uid)
    if (std::isdigit(static_cast<unsigned char>(c)) || c == '.') out += c;
  return out.empty() ? "unknown" : out;
}

}  // namespace

const std::vector<SafePrivate>& safe_private_whitelist() {
  static const std::vector<SafePrivate> list = {
      {"SIEMENS MR HEADER", 0x0019, 0x0A, "number of images in mosaic"},
      {"SIEMENS MR HEADER", 0x0019, 0x0B, "slice measurement duration"},
      {"SIEMENS MR HEADER", 0x0019, 0x0C, "diffusion b-value"},
      {"SIEMENS MR HEADER", 0x0019, 0x0D, "diffusion directionality"},
      {"SIEMENS MR HEADER", 0x0019, 0x0E, "diffusion gradient direction"},
      {"SIEMENS MR HEADER", 0x0019, 0x27, "diffusion b-matrix"},
      {"GEMS_ACQU_01", 0x0019, 0xBB, "diffusion gradient direction x"},
      {"GEMS_ACQU_01", 0x0019, 0xBC, "diffusion gradient direction y"},
      {"GEMS_ACQU_01", 0x0019, 0xBD, "diffusion gradient direction z"},
      {"GEMS_PARM_01", 0x0043, 0x39, "diffusion b-value (slop_int_6..9)"},
      {"Philips MR Imaging DD 001", 0x2001, 0x03, "diffusion b-factor"},
      {"Philips MR Imaging DD 001", 0x2001, 0x04, "diffusion direction"},
      {"Philips Imaging DD 001", 0x2001, 0x03, "diffusion b-factor"},
      {"Philips Imaging DD 001", 0x2001, 0x04, "diffusion direction"},
  };
  return list;
}

std::string review_reason(const std::string& path, const std::set<Option>& options) {
  init();
  Loaded l;
  load(l, path);
  return review_reason_of(l.ds, options);
}

std::string Report::audit_line(const InstanceReport& r) {
  std::string line = "deid " + r.status + " " + (r.output.empty() ? std::string("-") : r.output);
  for (char a : std::string("XZDUPCKA")) {
    auto it = r.counts.find(a);
    line += " " + std::string(1, a) + "=" + std::to_string(it == r.counts.end() ? 0 : it->second);
  }
  line += " text-regions=" + std::to_string(r.blanked.size());
  line += " input-sha256=" + r.input_sha256.substr(0, 16);
  if (!r.reason.empty()) line += " reason: " + r.reason;
  return line;
}

std::string Report::to_json() const {
  nlohmann::json j;
  j["profile"] = profile;
  j["options"] = options;
  j["key_fingerprint"] = key_fingerprint;
  j["skipped_non_dicom"] = skipped_non_dicom;
  j["skipped_dicomdir"] = skipped_dicomdir;
  j["review"] = review;
  nlohmann::json list = nlohmann::json::array();
  for (const InstanceReport& r : instances) {
    nlohmann::json i;
    i["output"] = r.output;
    i["input_sha256"] = r.input_sha256;
    i["sop_class_uid"] = r.sop_class;
    i["modality"] = r.modality;
    i["status"] = r.status;
    if (!r.reason.empty()) i["reason"] = r.reason;
    nlohmann::json counts = nlohmann::json::object();
    for (const auto& [a, n] : r.counts) counts[std::string(1, a)] = n;
    i["counts"] = counts;
    nlohmann::json actions = nlohmann::json::array();
    for (const ActionRecord& a : r.actions)
      actions.push_back({{"path", a.path}, {"name", a.name}, {"action", std::string(1, a.action)}});
    i["actions"] = actions;
    nlohmann::json regions = nlohmann::json::array();
    for (const auto& b : r.blanked)
      regions.push_back({{"frame", b.frame}, {"x", b.x}, {"y", b.y}, {"width", b.width}, {"height", b.height}});
    i["text_regions_blanked"] = regions;
    if (r.overlay_regions_blanked) i["overlay_regions_blanked"] = r.overlay_regions_blanked;
    list.push_back(i);
  }
  j["instances"] = list;
  return j.dump(2);
}

Report deidentify(const std::string& in, const std::string& out, const Options& options) {
  init();
  Session s(options);
  Report report;
  for (const auto& i : option_infos())
    if (options.options.count(i.option)) report.options.push_back(i.name);
  report.key_fingerprint = s.pseudo.ephemeral() ? "ephemeral" : s.pseudo.fingerprint();

  std::error_code ec;
  if (!fs::exists(in, ec)) throw InputError(in, "no such file or folder");
  if (out.empty()) throw UsageError("OUT is empty");
  if (fs::exists(out, ec) && fs::exists(in, ec) && fs::equivalent(in, out, ec))
    throw UsageError("OUT must differ from IN");

  if (!fs::is_directory(in)) {
    Loaded l;
    load(l, in);
    if (std::string reason = review_reason_of(l.ds, options.options); !reason.empty())
      throw ReviewNeeded(in, reason);
    Written w;
    process(s, l, in, w);
    std::string dest = out;
    if (out.back() == '/' || fs::is_directory(out, ec)) {
      fs::create_directories(out, ec);
      dest = (fs::path(out) / (sanitize_uid_name(w.sop) + ".dcm")).string();
    }
    AtomicOutput ao(dest);
    save(l, ao.temp_path(), in);
    ao.commit();
    w.report.output = dest;
    report.instances.push_back(std::move(w.report));
    return report;
  }

  // A folder: every regular file, in a fixed order.
  const fs::path out_path = fs::weakly_canonical(fs::path(out));
  const fs::path in_path = fs::weakly_canonical(fs::path(in));
  {
    const std::string o = out_path.string() + "/", i = in_path.string() + "/";
    if (o.rfind(i, 0) == 0) throw UsageError("OUT must not lie inside IN");
  }
  if (fs::exists(out_path, ec) && (!fs::is_directory(out_path, ec) || !fs::is_empty(out_path, ec)))
    throw UsageError(out + ": exists and is not an empty folder");
  std::vector<std::string> files;
  for (auto it = fs::recursive_directory_iterator(in, fs::directory_options::skip_permission_denied, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) throw InputError(in, "cannot list the folder: " + ec.message());
    if (it->is_regular_file(ec)) files.push_back(it->path().string());
  }
  std::sort(files.begin(), files.end());

  AtomicOutput ao(out, /*is_folder=*/true);
  fs::create_directories(ao.temp_path());
  std::set<std::string> written;
  for (const std::string& f : files) {
    Loaded l;
    if (!has_dicm_magic(f)) {
      // Without the DICOM magic a file counts as DICOM only if it parses as a dataset with
      // SOP UIDs (old files without preamble); anything else is not copied.
      try {
        load(l, f);
      } catch (const InputError&) {
        ++report.skipped_non_dicom;
        continue;
      }
    } else {
      load(l, f, /*instance=*/false);
      if (is_dicomdir(l)) {
        ++report.skipped_dicomdir;
        continue;
      }
      load_check_instance(l, f);
    }
    Written w;
    if (std::string reason = review_reason_of(l.ds, options.options); !reason.empty()) {
      if (!options.allow_review) throw ReviewNeeded(f, reason);
      w.report.status = "review";
      w.report.reason = reason;
      w.report.input_sha256 = sha256_file(f);
      w.report.sop_class = get(l.ds, DCM_SOPClassUID);
      w.report.modality = get(l.ds, DCM_Modality);
      ++report.review;
      report.instances.push_back(std::move(w.report));
      continue;
    }
    try {
      process(s, l, f, w);
    } catch (const ReviewNeeded& e) {
      if (!options.allow_review) throw;
      w.report = InstanceReport{};
      w.report.status = "review";
      w.report.reason = e.reason();
      w.report.input_sha256 = sha256_file(f);
      ++report.review;
      report.instances.push_back(std::move(w.report));
      continue;
    }
    const std::string rel = sanitize_uid_name(w.study) + "/" + sanitize_uid_name(w.series) + "/" +
                            sanitize_uid_name(w.sop) + ".dcm";
    if (!written.insert(rel).second)
      throw InputError(f, "holds the same SOP Instance UID as another file of the folder");
    const fs::path dest = fs::path(ao.temp_path()) / rel;
    fs::create_directories(dest.parent_path(), ec);
    save(l, dest.string(), f);
    w.report.output = rel;
    report.instances.push_back(std::move(w.report));
  }
  if (written.empty() && report.review == 0) throw InputError(in, "no DICOM file found");
  ao.commit();
  return report;
}

}  // namespace medlens::deid
