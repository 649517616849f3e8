// Options and their edges: option parsing, key files, burned-in annotation review, the new
// preamble and file meta, the markers, the keyed date shift and the age cap.
#include <gtest/gtest.h>

#include <filesystem>
#include <opencv2/core.hpp>

#include "core/error.h"
#include "deid/deid.h"
#include "deid/pseudonym.h"
#include "deid/text_clean.h"
#include "deid_util.h"
#include "dicom_builder.h"

namespace fs = std::filesystem;

namespace medlens::deid {
namespace {

using test_util::ImageSpec;
using test_util::read_bytes;
using test_util::write_dicom_image;

const cv::Mat kPlain(32, 32, CV_8U, cv::Scalar(60));

Report run(const std::string& in, const std::string& out, const std::string& options, bool allow_review = false) {
  Options o;
  o.options = parse_options(options);
  o.key = std::string(32, 'k');
  o.allow_review = allow_review;
  return deidentify(in, out, o);
}

std::string get(const std::string& path, const DcmTagKey& tag) {
  DcmFileFormat f;
  EXPECT_TRUE(f.loadFile(path.c_str()).good()) << path;
  OFString v;
  f.getDataset()->findAndGetOFStringArray(tag, v);
  return v.c_str();
}

bool has(const std::string& path, const DcmTagKey& tag) {
  DcmFileFormat f;
  EXPECT_TRUE(f.loadFile(path.c_str()).good()) << path;
  return f.getDataset()->tagExists(tag);
}

TEST(DeidOptions, ParsesNamesAndRefusesUnknownOrContradictory) {
  EXPECT_TRUE(parse_options("").empty());
  EXPECT_EQ(parse_options("retain-uids, clean-pixel-data").size(), 2u);
  EXPECT_EQ(parse_options("retain-uids,clean-pixel-data"), (std::set<Option>{Option::kRetainUids, Option::kCleanPixelData}));
  EXPECT_THROW(parse_options("retain-everything"), UsageError);
  EXPECT_THROW(parse_options("retain-long-full-dates,retain-long-modified-dates"), UsageError);
  for (const auto& i : option_infos()) {
    EXPECT_EQ(parse_options(i.name), std::set<Option>{i.option});
    EXPECT_EQ(std::string(i.code_value).rfind("1131", 0), 0u) << "CID 7050 codes";
  }
}

TEST(DeidOptions, KeyFilesMustExistAndHoldSixteenBytes) {
  test::TempDir dir;
  try {
    Pseudonymizer::read_key_file(dir.file("missing.key"));
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("missing.key"), std::string::npos) << e.what();
  }
  test_util::write_bytes(dir.file("short.key"), "only-ten-b");
  try {
    Pseudonymizer::read_key_file(dir.file("short.key"));
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("short.key"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("16 bytes"), std::string::npos);
  }
  const std::string key = test_util::write_key(dir.file("good.key"), 'g');
  EXPECT_EQ(Pseudonymizer::read_key_file(dir.file("good.key")), key);
  // Keyed outputs are stable and key-dependent; an ephemeral key says so.
  const Pseudonymizer a(key), a2(key), b(std::string(32, 'z')), none;
  EXPECT_EQ(a.uid("1.2.3.4"), a2.uid("1.2.3.4"));
  EXPECT_NE(a.uid("1.2.3.4"), b.uid("1.2.3.4"));
  EXPECT_LE(a.uid("1.2.3.4").size(), 64u);
  EXPECT_EQ(a.fingerprint(), a2.fingerprint());
  EXPECT_NE(a.fingerprint(), b.fingerprint());
  EXPECT_TRUE(none.ephemeral());
  EXPECT_FALSE(a.ephemeral());
  EXPECT_EQ(a.accession_number("ACC1").size(), 16u);
  EXPECT_EQ(a.patient_id(""), "");
}

TEST(DeidOptions, BurnedInAnnotationOnUltrasoundAndCapturesIsRefusedOrRoutedToReview) {
  test::TempDir dir;
  ImageSpec us_yes;  // US with BurnedInAnnotation YES
  ImageSpec us_missing;
  us_missing.burned_in_annotation = "";
  ImageSpec sc_missing;
  sc_missing.sop_class = UID_SecondaryCaptureImageStorage;
  sc_missing.modality = "OT";
  sc_missing.burned_in_annotation = "";
  ImageSpec us_no;
  us_no.burned_in_annotation = "NO";
  ImageSpec ct_missing;
  ct_missing.sop_class = UID_CTImageStorage;
  ct_missing.modality = "CT";
  ct_missing.burned_in_annotation = "";
  fs::create_directories(dir.file("in"));
  int n = 0;
  for (const ImageSpec* spec : {&us_yes, &us_missing, &sc_missing}) {
    const std::string in = dir.file("in/risky" + std::to_string(n++) + ".dcm");
    write_dicom_image(kPlain, in, *spec);
    EXPECT_FALSE(review_reason(in, {}).empty());
    EXPECT_TRUE(review_reason(in, {Option::kCleanPixelData}).empty()) << "cleaning answers the risk";
    EXPECT_THROW(run(in, dir.file("out.dcm"), ""), ReviewNeeded);
    EXPECT_FALSE(fs::exists(dir.file("out.dcm"))) << "nothing written";
    EXPECT_NO_THROW(run(in, dir.file("out.dcm"), "clean-pixel-data"));
    EXPECT_EQ(get(dir.file("out.dcm"), DCM_BurnedInAnnotation), "NO");
    fs::remove(dir.file("out.dcm"));
  }
  write_dicom_image(kPlain, dir.file("in/us_no.dcm"), us_no);
  write_dicom_image(kPlain, dir.file("in/ct.dcm"), ct_missing);
  EXPECT_TRUE(review_reason(dir.file("in/us_no.dcm"), {}).empty());
  EXPECT_TRUE(review_reason(dir.file("in/ct.dcm"), {}).empty()) << "CT rarely carries burned-in text";

  // A folder fails whole without --allow-review; with it, the safe two are written and the
  // three risky ones listed as review.
  EXPECT_THROW(run(dir.file("in"), dir.file("all"), ""), ReviewNeeded);
  EXPECT_FALSE(fs::exists(dir.file("all")));
  const Report r = run(dir.file("in"), dir.file("all"), "", true);
  EXPECT_EQ(r.review, 3);
  int written = 0;
  for (auto& e : fs::recursive_directory_iterator(dir.file("all"))) written += e.is_regular_file();
  EXPECT_EQ(written, 2);
  for (const auto& i : r.instances) {
    if (i.status == "review") {
      EXPECT_TRUE(i.output.empty());
      EXPECT_NE(i.reason.find("BurnedInAnnotation"), std::string::npos);
    }
  }
}

TEST(DeidOptions, PreambleAndFileMetaAreReplacedSoAPolyglotCannotSurvive) {
  test::TempDir dir;
  ImageSpec spec;
  spec.burned_in_annotation = "NO";
  write_dicom_image(kPlain, dir.file("in.dcm"), spec);
  std::string bytes = read_bytes(dir.file("in.dcm"));
  // A PE header in the preamble ("MZ", e_lfanew, "PE\0\0") and a private meta element.
  std::string pe(128, '\0');
  pe[0] = 'M';
  pe[1] = 'Z';
  pe[0x3C] = 0x40;
  pe.replace(0x40, 4, std::string("PE\0\0", 4));
  pe.replace(0x50, 16, "This program can");
  bytes.replace(0, 128, pe);
  test_util::write_bytes(dir.file("in.dcm"), bytes);

  run(dir.file("in.dcm"), dir.file("out.dcm"), "");
  const std::string out = read_bytes(dir.file("out.dcm"));
  EXPECT_EQ(out.substr(0, 128), std::string(128, '\0'));
  EXPECT_EQ(out.substr(128, 4), "DICM");
  EXPECT_EQ(out.find("This program can"), std::string::npos);
  DcmFileFormat f;
  ASSERT_TRUE(f.loadFile(dir.file("out.dcm").c_str()).good());
  OFString meta_sop, sop, xfer;
  f.getMetaInfo()->findAndGetOFString(DCM_MediaStorageSOPInstanceUID, meta_sop);
  f.getDataset()->findAndGetOFString(DCM_SOPInstanceUID, sop);
  f.getMetaInfo()->findAndGetOFString(DCM_TransferSyntaxUID, xfer);
  EXPECT_EQ(meta_sop, sop) << "the meta header names the new instance";
  EXPECT_EQ(std::string(sop.c_str()).rfind("2.25.", 0), 0u);
  EXPECT_EQ(std::string(xfer.c_str()), UID_LittleEndianExplicitTransferSyntax);
}

TEST(DeidOptions, MarkersSayWhatWasDone) {
  test::TempDir dir;
  ImageSpec spec;
  spec.burned_in_annotation = "NO";
  write_dicom_image(kPlain, dir.file("in.dcm"), spec);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "REMOVED"}, {"retain-long-full-dates", "UNMODIFIED"}, {"retain-long-modified-dates", "MODIFIED"}};
  for (const auto& [options, longitudinal] : cases) {
    const std::string out = dir.file("out-" + longitudinal + ".dcm");
    run(dir.file("in.dcm"), out, options);
    EXPECT_EQ(get(out, DCM_PatientIdentityRemoved), "YES");
    EXPECT_EQ(get(out, DCM_LongitudinalTemporalInformationModified), longitudinal) << options;
    const std::string method = get(out, DCM_DeidentificationMethod);
    EXPECT_EQ(method.rfind("Basic Application Confidentiality Profile", 0), 0u) << method;
    DcmFileFormat f;
    ASSERT_TRUE(f.loadFile(out.c_str()).good());
    DcmSequenceOfItems* seq = nullptr;
    ASSERT_TRUE(f.getDataset()->findAndGetSequence(DCM_DeidentificationMethodCodeSequence, seq).good());
    ASSERT_EQ(seq->card(), options.empty() ? 1u : 2u);
    OFString value, scheme, meaning;
    seq->getItem(0)->findAndGetOFString(DCM_CodeValue, value);
    seq->getItem(0)->findAndGetOFString(DCM_CodingSchemeDesignator, scheme);
    seq->getItem(0)->findAndGetOFString(DCM_CodeMeaning, meaning);
    EXPECT_EQ(value, "113100");
    EXPECT_EQ(scheme, "DCM");
    EXPECT_EQ(meaning, "Basic Application Confidentiality Profile");
  }
}

int days_between(const std::string& a, const std::string& b) {
  auto days = [](const std::string& d) {
    std::tm t{};
    t.tm_year = std::stoi(d.substr(0, 4)) - 1900;
    t.tm_mon = std::stoi(d.substr(4, 2)) - 1;
    t.tm_mday = std::stoi(d.substr(6, 2));
    t.tm_hour = 12;
    return static_cast<long>(timegm(&t) / 86400);
  };
  return static_cast<int>(days(b) - days(a));
}

TEST(DeidOptions, ModifiedDatesShiftPerPatientAndKeepIntervals) {
  test::TempDir dir;
  ImageSpec spec;
  spec.burned_in_annotation = "NO";
  spec.study_date = "20210304";
  spec.series_date = "20210310";
  spec.acquisition_date = "20240229";
  write_dicom_image(kPlain, dir.file("a1.dcm"), spec);
  ImageSpec later = spec;
  later.study_date = "20221231";
  write_dicom_image(kPlain, dir.file("a2.dcm"), later);
  ImageSpec other = spec;
  other.patient_id = "MRN-OTHER-12";
  write_dicom_image(kPlain, dir.file("b.dcm"), other);
  for (const char* f : {"a1", "a2", "b"})
    run(dir.file(std::string(f) + ".dcm"), dir.file(std::string(f) + "-out.dcm"), "retain-long-modified-dates");
  const std::string study = get(dir.file("a1-out.dcm"), DCM_StudyDate);
  const std::string series = get(dir.file("a1-out.dcm"), DCM_SeriesDate);
  const std::string acquisition = get(dir.file("a1-out.dcm"), DCM_AcquisitionDate);
  ASSERT_EQ(study.size(), 8u);
  const int shift = days_between("20210304", study);
  EXPECT_LE(shift, -364);
  EXPECT_GE(shift, -3647);
  EXPECT_EQ(shift % 7, 0) << "whole weeks keep the weekday";
  EXPECT_EQ(days_between(study, series), 6);
  EXPECT_EQ(days_between(study, acquisition), days_between("20210304", "20240229")) << "across a leap day";
  EXPECT_EQ(days_between("20221231", get(dir.file("a2-out.dcm"), DCM_StudyDate)), shift) << "same patient, same shift";
  EXPECT_NE(days_between("20210304", get(dir.file("b-out.dcm"), DCM_StudyDate)), shift) << "another patient, another shift";
  // Full dates keep them; the Basic Profile empties the study date (Type 2).
  run(dir.file("a1.dcm"), dir.file("full.dcm"), "retain-long-full-dates");
  EXPECT_EQ(get(dir.file("full.dcm"), DCM_StudyDate), "20210304");
  run(dir.file("a1.dcm"), dir.file("basic.dcm"), "");
  EXPECT_EQ(get(dir.file("basic.dcm"), DCM_StudyDate), "");
  EXPECT_FALSE(has(dir.file("basic.dcm"), DCM_AcquisitionDate));
  // The helpers themselves.
  EXPECT_EQ(shift_date("20240229", 365), "20250228");
  EXPECT_EQ(shift_date("2021.03.04", -7), "20210225");
  EXPECT_FALSE(shift_date("20211301", 1).has_value());
  EXPECT_EQ(shift_datetime("20210304101500.25+0100", -1), "20210303101500.25+0100");
}

TEST(DeidOptions, AgesOverEightyNineAreCappedWhenPatientCharacteristicsAreRetained) {
  test::TempDir dir;
  for (const auto& [age, expected] : std::vector<std::pair<std::string, std::string>>{
           {"093Y", "090Y"}, {"045Y", "045Y"}, {"120Y", "090Y"}, {"089Y", "089Y"}, {"006W", "006W"}}) {
    ImageSpec spec;
    spec.burned_in_annotation = "NO";
    spec.patient_age = age;
    write_dicom_image(kPlain, dir.file("in.dcm"), spec);
    run(dir.file("in.dcm"), dir.file("kept.dcm"), "retain-patient-chars");
    EXPECT_EQ(get(dir.file("kept.dcm"), DCM_PatientAge), expected) << age;
    EXPECT_EQ(cap_age(age), expected) << age;
    run(dir.file("in.dcm"), dir.file("basic.dcm"), "");
    EXPECT_FALSE(has(dir.file("basic.dcm"), DCM_PatientAge)) << "removed by the Basic Profile";
    fs::remove(dir.file("kept.dcm"));
    fs::remove(dir.file("basic.dcm"));
  }
}

TEST(DeidOptions, CleanedTextKeepsTechniqueAndDropsIdentity) {
  EXPECT_EQ(clean_text("CT CHEST W CONTRAST 1.25MM AXIAL"), "CT CHEST W CONTRAST 1.25MM AXIAL");
  EXPECT_EQ(clean_text("Dr Smith 03/04/2021 LEFT BREAST MRN 4471932"), "LEFT BREAST");
  EXPECT_EQ(clean_text("John Doe"), "");
  EXPECT_TRUE(is_safe_word("b1000"));
  EXPECT_FALSE(is_safe_word("12345"));
}

}  // namespace
}  // namespace medlens::deid
