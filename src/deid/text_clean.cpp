#include "deid/text_clean.h"

#include <cctype>
#include <string>
#include <unordered_set>
#include <vector>

namespace medlens::deid {

namespace {

// Acquisition, anatomy, laterality, contrast, reconstruction and reporting terms as they appear
// in study, series and protocol descriptions and in report text. Upper case.
const char* const kVocabulary[] = {
    // modalities and techniques
    "CT", "MR", "MRI", "PET", "SPECT", "NM", "US", "XR", "CR", "DX", "MG", "XA", "RF", "OT", "SC",
    "SR", "SEG", "PT", "RT", "RTSTRUCT", "RTDOSE", "RTPLAN", "KO", "PR", "DOC", "ECG", "ES", "XC",
    "ULTRASOUND", "SONOGRAPHY", "DOPPLER", "ECHO", "MAMMO", "MAMMOGRAM", "MAMMOGRAPHY", "TOMO",
    "TOMOSYNTHESIS", "FLUORO", "FLUOROSCOPY", "ANGIO", "ANGIOGRAPHY", "VENOGRAM", "ARTERIOGRAM",
    "CTA", "MRA", "MRV", "CTP", "CTV", "DSA", "RADIOGRAPH", "XRAY", "X", "RAY", "SCAN", "SCANS",
    "IMAGING", "STUDY", "STUDIES", "SERIES", "EXAM", "EXAMINATION", "PROTOCOL", "PROCEDURE",
    "IMAGE", "IMAGES", "VIEW", "VIEWS", "REPORT", "FINDINGS", "FINDING", "IMPRESSION",
    "CONCLUSION", "HISTORY", "INDICATION", "TECHNIQUE", "COMPARISON", "RESULT", "RESULTS",
    // MR sequences and parameters
    "T1", "T2", "T1W", "T2W", "PD", "PDW", "FLAIR", "STIR", "TIRM", "DWI", "DTI", "ADC", "SWI",
    "SWAN", "GRE", "SE", "TSE", "FSE", "SSFSE", "HASTE", "EPI", "MPRAGE", "SPGR", "FSPGR", "BRAVO",
    "VIBE", "LAVA", "THRIVE", "TOF", "PC", "BOLD", "FMRI", "ASL", "PERFUSION", "DIFFUSION",
    "TENSOR", "TRACE", "EXP", "FA", "MAP", "MAPS", "MIP", "MINIP", "MPR", "VR", "VRT", "SSD",
    "CINE", "TRUFI", "FIESTA", "SSFP", "BTFE", "TFE", "FFE", "IR", "DIR", "PSIR", "LGE", "DE",
    "DIXON", "IDEAL", "WATER", "FAT", "SAT", "FS", "IN", "OUT", "OPP", "OPPOSED", "PHASE",
    "SPECTROSCOPY", "MRS", "SVS", "CSI", "LOCALIZER", "LOCALISER", "LOC", "SCOUT", "SURVEY",
    "TOPOGRAM", "PLANNING", "CALIBRATION", "CAL", "ASSET", "SENSE", "GRAPPA", "ISO", "ISOTROPIC",
    "GADO", "GAD", "GADOLINIUM", "GD", "B0", "B1", "TE", "TR", "TI", "FLIP", "ANGLE", "ECHO",
    "BW", "NEX", "NSA", "ETL", "FOV", "MATRIX", "SMALL", "LARGE", "HIGH", "LOW", "RES",
    "RESOLUTION", "FAST", "SLOW", "QUICK", "DYNAMIC", "DYN", "STATIC", "GATED", "TRIGGERED",
    "BREATH", "HOLD", "BH", "FB", "FREE", "BREATHING", "NAV", "NAVIGATOR", "MOCO", "MOTION",
    "CORRECTED", "CORRECTION", "NORM", "NORMALIZED", "FILTERED", "SUB", "SUBTRACTION",
    "COLLAPSED", "PROJECTION",
    // CT parameters and reconstruction
    "HELICAL", "SPIRAL", "SEQUENTIAL", "AXIAL", "AX", "AXI", "TRA", "TRANS", "TRANSVERSE",
    "SAGITTAL", "SAG", "CORONAL", "COR", "OBLIQUE", "OBL", "RECON", "RECONSTRUCTION", "REFORMAT",
    "REFORMATS", "THIN", "THICK", "SLICE", "SLICES", "MM", "CM", "KERNEL", "SOFT", "TISSUE",
    "BONE", "LUNG", "LUNGS", "MEDIASTINUM", "MEDIASTINAL", "SHARP", "SMOOTH", "STANDARD", "STD",
    "DETAIL", "ITERATIVE", "IR", "ASIR", "ADMIRE", "SAFIRE", "IMR", "IDOSE", "AIDR", "FBP",
    "DOSE", "LOWDOSE", "LDCT", "ULTRALOW", "ROUTINE", "DUAL", "ENERGY", "DE", "MONO",
    "MONOENERGETIC", "KEV", "KV", "KVP", "MA", "MAS", "PITCH", "ROTATION", "DELAY", "DELAYED",
    "ARTERIAL", "VENOUS", "PORTAL", "PORTALVENOUS", "NEPHROGRAPHIC", "EXCRETORY", "EQUILIBRIUM",
    "EARLY", "LATE", "NATIVE", "PLAIN", "NONCONTRAST", "UNENHANCED", "ENHANCED", "CONTRAST",
    "IV", "ORAL", "RECTAL", "BOLUS", "TRACKING", "TEST", "PRE", "POST", "WITH", "WITHOUT", "W",
    "WO", "NO", "AND", "OR", "OF", "THE", "A", "AN", "TO", "FROM", "FOR", "ON", "AT", "BY", "AS",
    "IS", "ARE", "WAS", "NOT", "NONE", "ONLY", "ALSO", "ALL", "EACH", "PER", "VS", "THEN",
    // image types and states
    "ORIGINAL", "DERIVED", "PRIMARY", "SECONDARY", "OTHER", "MIXED", "VOLUME", "VOLUMES", "3D",
    "2D", "4D", "MULTIPLANAR", "RENDERING", "SURFACE", "SEGMENTATION", "MASK", "LABEL", "LABELS",
    "ROI", "REGION", "REGIONS", "MEASUREMENT", "MEASUREMENTS", "ANNOTATION", "ANNOTATIONS",
    "KEY", "KEYS", "SUMMARY", "ARCHIVE", "COPY", "SCREEN", "CAPTURE", "SCREENSHOT", "PHOTO",
    "DOCUMENT", "STRUCTURED", "CAD", "AI", "MODEL", "PROBABILITY", "SCORE", "GRADE", "STAGE",
    // anatomy
    "HEAD", "BRAIN", "SKULL", "FACE", "FACIAL", "ORBIT", "ORBITS", "SINUS", "SINUSES", "IAC",
    "TEMPORAL", "PITUITARY", "SELLA", "NECK", "SOFT", "CERVICAL", "THORACIC", "LUMBAR", "SACRAL",
    "SACRUM", "COCCYX", "SPINE", "CSPINE", "TSPINE", "LSPINE", "CHEST", "THORAX", "LUNG",
    "HEART", "CARDIAC", "CORONARY", "CORONARIES", "AORTA", "AORTIC", "ABDOMEN", "ABD",
    "ABDOMINAL", "PELVIS", "PELVIC", "LIVER", "HEPATIC", "BILIARY", "GALLBLADDER", "PANCREAS",
    "SPLEEN", "KIDNEY", "KIDNEYS", "RENAL", "ADRENAL", "ADRENALS", "BLADDER", "PROSTATE",
    "UTERUS", "OVARY", "OVARIES", "TESTIS", "SCROTUM", "BOWEL", "COLON", "RECTUM", "STOMACH",
    "ESOPHAGUS", "THYROID", "BREAST", "BREASTS", "AXILLA", "AXILLARY", "NIPPLE", "SHOULDER",
    "SHOULDERS", "HUMERUS", "ELBOW", "FOREARM", "WRIST", "HAND", "HANDS", "FINGER", "FINGERS",
    "THUMB", "HIP", "HIPS", "FEMUR", "KNEE", "KNEES", "TIBIA", "FIBULA", "LEG", "LEGS", "ANKLE",
    "FOOT", "FEET", "TOE", "TOES", "HEEL", "CALCANEUS", "EXTREMITY", "EXTREMITIES", "UPPER",
    "LOWER", "ARM", "ARMS", "JOINT", "JOINTS", "MUSCLE", "VESSEL", "VESSELS", "ARTERY",
    "ARTERIES", "VEIN", "VEINS", "CAROTID", "CAROTIDS", "CIRCLE", "WILLIS", "VASCULAR",
    "LYMPH", "NODE", "NODES", "MASS", "LESION", "LESIONS", "NODULE", "NODULES", "CYST", "TUMOR",
    "TUMOUR", "CALCIFICATION", "FRACTURE", "EFFUSION", "BODY", "WHOLE", "WB", "TRUNK", "TORSO",
    "SKIN", "TISSUE", "ORGAN", "ORGANS", "GLAND", "PAROTID", "TMJ", "MANDIBLE", "MAXILLA",
    "DENTAL", "TEETH", "CLAVICLE", "SCAPULA", "RIB", "RIBS", "STERNUM", "PATELLA",
    // laterality, position and orientation
    "LEFT", "RIGHT", "LT", "RT", "L", "R", "BILATERAL", "BILAT", "BOTH", "UNILATERAL", "MIDLINE",
    "ANTERIOR", "POSTERIOR", "SUPERIOR", "INFERIOR", "MEDIAL", "LATERAL", "PROXIMAL", "DISTAL",
    "AP", "PA", "LAT", "LL", "RL", "CC", "MLO", "ML", "LM", "XCCL", "SPOT", "MAG", "UOQ", "UIQ",
    "LOQ", "LIQ", "RETROAREOLAR", "SUBAREOLAR", "PRONE", "SUPINE", "DECUBITUS", "ERECT",
    "UPRIGHT", "STANDING", "SITTING", "FLEXION", "EXTENSION", "NEUTRAL", "INSPIRATION",
    "EXPIRATION", "FIRST", "SECOND", "THIRD", "TOP", "BOTTOM", "CENTER", "CENTRE", "FRONT",
    "BACK", "SIDE", "FULL", "PARTIAL", "LIMITED", "COMPLETE",
    // clinical and reporting words without identity
    "SCREENING", "DIAGNOSTIC", "FOLLOW", "UP", "FOLLOWUP", "BASELINE", "BIOPSY", "GUIDED",
    "GUIDANCE", "DRAINAGE", "INJECTION", "ASPIRATION", "STAGING", "RESTAGING", "SURVEILLANCE",
    "EMERGENCY", "TRAUMA", "STROKE", "ACUTE", "CHRONIC", "NORMAL", "ABNORMAL", "BENIGN",
    "MALIGNANT", "SUSPICIOUS", "PROBABLY", "INDETERMINATE", "NEGATIVE", "POSITIVE", "STABLE",
    "INCREASED", "DECREASED", "UNCHANGED", "NEW", "SIZE", "SHAPE", "MARGIN", "MARGINS",
    "DENSITY", "ENHANCEMENT", "SIGNAL", "INTENSITY", "HYPERINTENSE", "HYPOINTENSE",
    "HYPERDENSE", "HYPODENSE", "HYPOECHOIC", "HYPERECHOIC", "ANECHOIC", "ISOECHOIC", "SOLID",
    "CYSTIC", "COMPLEX", "SIMPLE", "ROUND", "OVAL", "IRREGULAR", "CIRCUMSCRIBED", "SPICULATED",
    "BIRADS", "BI", "RADS", "LIRADS", "PIRADS", "TIRADS", "LUNGRADS", "CATEGORY", "TYPE",
    "SEE", "SEEN", "NOTED", "IDENTIFIED", "PRESENT", "ABSENT", "EVIDENCE", "CONSISTENT",
    "SUGGEST", "SUGGESTS", "SUGGESTIVE", "RECOMMEND", "RECOMMENDED", "RECOMMENDATION",
    "MEASURES", "MEASURING", "APPROXIMATELY", "ABOUT", "LESS", "MORE", "THAN", "SMALLER",
    "LARGER", "MULTIPLE", "SINGLE", "SEVERAL", "FEW", "MILD", "MODERATE", "SEVERE", "MINIMAL",
    "MARKED", "DIFFUSE", "FOCAL", "SEGMENT", "LOBE", "LOBES", "QUADRANT", "WALL", "DUCT",
    "DUCTS", "FLUID", "AIR", "BLOOD", "FLOW", "VELOCITY", "VOLUME", "AREA", "DIAMETER",
    "LENGTH", "WIDTH", "HEIGHT", "DEPTH", "DISTANCE", "MEAN", "MAX", "MIN", "MAXIMUM",
    "MINIMUM", "AVERAGE", "SUV", "SUVMAX", "HU", "UNITS", "UNIT", "RATIO", "INDEX", "VALUE",
    "VALUES", "UNKNOWN", "NA", "N", "YES", "OK", "QC", "QA", "PHANTOM", "TESTING",
    "ALLERGY", "ALLERGIES", "IODINE", "LATEX", "PENICILLIN", "NKDA", "PREGNANT", "PREGNANCY",
    "CLAUSTROPHOBIA", "SEDATION", "ANESTHESIA", "WHEELCHAIR", "STRETCHER", "INTERPRETER",
    "AMBULATORY", "INPATIENT", "OUTPATIENT", "STAT", "URGENT", "ROUTINE",
};

const std::unordered_set<std::string>& vocabulary() {
  static const std::unordered_set<std::string> v(std::begin(kVocabulary), std::end(kVocabulary));
  return v;
}

const char* const kUnits[] = {"MM", "CM", "M", "S", "MS", "SEC", "MIN", "H", "KV", "KVP", "MA",
                              "MAS", "KEV", "HZ", "KHZ", "MHZ", "T", "DEG", "X", "D", "ML",
                              "MG", "G", "KG", "MGY", "GY", "MSV", "BPM", "ST", "ND", "RD", "TH"};

bool is_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

// A whitespace-separated chunk that looks like a date, a time or an identifier number: five or
// more digits in a row, or three or more digit groups joined by / - . :
bool looks_like_date_or_number(std::string_view chunk) {
  int run = 0, groups = 0;
  bool in_group = false;
  for (char c : chunk) {
    if (std::isdigit(static_cast<unsigned char>(c))) {
      if (++run >= 5) return true;
      if (!in_group) ++groups;
      in_group = true;
    } else {
      run = 0;
      if (c == '/' || c == '-' || c == '.' || c == ':') {
        in_group = false;
      } else {
        in_group = false;
        groups = 0;  // a letter breaks the date
      }
    }
    if (groups >= 3) return true;
  }
  return false;
}

}  // namespace

bool is_safe_word(std::string_view word) {
  std::string up;
  up.reserve(word.size());
  for (char c : word) up += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (up.empty()) return false;
  if (vocabulary().count(up)) return true;
  if (is_digits(up)) return up.size() <= 3;
  // number + unit ("5MM", "120KV", "3D"), or letter + number ("B1000", "T1", "C7", "L4")
  size_t digits_end = 0;
  while (digits_end < up.size() && std::isdigit(static_cast<unsigned char>(up[digits_end]))) ++digits_end;
  if (digits_end > 0 && digits_end <= 4) {
    const std::string unit = up.substr(digits_end);
    for (const char* u : kUnits)
      if (unit == u) return true;
    return false;
  }
  if (digits_end == 0 && up.size() >= 2 && up.size() <= 5 && std::isalpha(static_cast<unsigned char>(up[0])) &&
      is_digits(std::string_view(up).substr(1)))
    return up[0] == 'B' || up[0] == 'T' || up[0] == 'C' || up[0] == 'L' || up[0] == 'S' || up[0] == 'D';
  return false;
}

std::string clean_text(const std::string& text) {
  std::string out;
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    // One whitespace-separated chunk.
    while (i < n && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    size_t start = i;
    while (i < n && !std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    if (start == i) break;
    const std::string_view chunk(text.data() + start, i - start);
    if (looks_like_date_or_number(chunk)) continue;
    std::string kept;
    size_t j = 0;
    while (j < chunk.size()) {
      const unsigned char c = static_cast<unsigned char>(chunk[j]);
      if (std::isalnum(c) || c >= 0x80) {
        size_t k = j;
        while (k < chunk.size() && (std::isalnum(static_cast<unsigned char>(chunk[k])) ||
                                    static_cast<unsigned char>(chunk[k]) >= 0x80))
          ++k;
        const std::string_view word = chunk.substr(j, k - j);
        if (is_safe_word(word)) kept.append(word);
        j = k;
      } else {
        // Punctuation is kept only between kept words (no dangling separators).
        if (!kept.empty() && std::string("-+/.,:;()%").find(static_cast<char>(c)) != std::string::npos)
          kept += static_cast<char>(c);
        ++j;
      }
    }
    while (!kept.empty() && std::string("-+/.,:;(").find(kept.back()) != std::string::npos) kept.pop_back();
    if (kept.empty()) continue;
    if (!out.empty()) out += ' ';
    out += kept;
  }
  return out;
}

}  // namespace medlens::deid
