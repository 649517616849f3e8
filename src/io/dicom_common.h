// Internal to io/: DCMTK set-up and attribute helpers shared by the DICOM reader and writer.
// Includes DCMTK headers: include only from io/*.cpp.
#pragma once

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcistrmb.h>
#include <dcmtk/dcmdata/dctk.h>

#include <optional>
#include <string>
#include <vector>

namespace medlens::dicom {

/// Registers the JPEG, JPEG-LS and RLE decoders and silences DCMTK's own logging. Idempotent.
void init_dcmtk();

std::string get_string(DcmItem* item, const DcmTagKey& tag, unsigned long pos = 0);
/// Whole multi-valued string ("a\b\c").
std::string get_all(DcmItem* item, const DcmTagKey& tag);
std::optional<double> get_double(DcmItem* item, const DcmTagKey& tag, unsigned long pos = 0);
std::vector<double> get_doubles(DcmItem* item, const DcmTagKey& tag);
std::optional<long> get_int(DcmItem* item, const DcmTagKey& tag, unsigned long pos = 0);

/// Item `index` of the sequence `tag` in `item`, or nullptr.
DcmItem* sequence_item(DcmItem* item, const DcmTagKey& tag, unsigned long index = 0);

/// A fresh UID in the 2.25 (UUID-derived) root: valid without a registered organisation root.
std::string make_uid();

}  // namespace medlens::dicom
