// NRRD (.nrrd/.nhdr) and MetaImage (.mha/.mhd) through ITK's ImageIO layer. We drive the
// ImageIO directly rather than itk::ImageFileReader so the header can be checked before any
// voxel is allocated, and so float data is read straight into the output vector.

#include <itkImageIOFactory.h>
#include <itkMetaDataObject.h>
#include <itkMetaImageIO.h>
#include <itkMetaImageIOFactory.h>
#include <itkMultiThreaderBase.h>
#include <itkNrrdImageIOFactory.h>
#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>

#include "core/error.h"
#include "core/image.h"
#include "core/parallel.h"
#include "io/file_util.h"
#include "io/read.h"
#include "io/write.h"

namespace fs = std::filesystem;

namespace medlens {

namespace {

// ITK's factories are normally registered by code generated from ITK_USE_FILE; we do not use
// that machinery, so register the two formats we support once, by hand.
void register_factories() {
  static std::once_flag once;
  std::call_once(once, [] {
    itk::NrrdImageIOFactory::RegisterOneFactory();
    itk::MetaImageIOFactory::RegisterOneFactory();
  });
}

std::string number(double v) {
  std::ostringstream s;
  s.imbue(std::locale::classic());
  s << v;
  return s.str();
}

// Collapses runs of white space (newlines included) into single spaces.
std::string one_line(const std::string& text) {
  std::string out;
  bool space = false;
  for (char ch : text) {
    if (std::isspace(static_cast<unsigned char>(ch))) {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += ch;
  }
  if (out.size() > 300) out = out.substr(0, 297) + "...";
  return out;
}

// ITK descriptions span lines, start with "ITK ERROR: Class(0x...): " and repeat the path; NRRD
// ones chain teem's "[nrrd] f: trouble" messages whose last link says what is wrong. The
// InputError already names the file, so keep only the cause, on one line.
std::string describe_itk_error(const itk::ExceptionObject& e, const std::string& path) {
  const char* d = e.GetDescription();
  std::string text = d && *d ? d : e.what();
  if (text.rfind("ITK ERROR: ", 0) == 0) {
    const size_t colon = text.find("): ");
    if (colon != std::string::npos) text = text.substr(colon + 3);
  }
  if (const size_t last = text.rfind("[nrrd]"); last != std::string::npos) {
    std::string cause = one_line(text.substr(last + 6));
    const size_t fn = cause.find(": ");  // drop teem's function name
    if (fn != std::string::npos && fn + 2 < cause.size()) cause = cause.substr(fn + 2);
    text = "NRRD: " + cause;
  }
  const std::string name = fs::path(path).filename().string();
  for (size_t at; !path.empty() && (at = text.find(path)) != std::string::npos;)
    text.replace(at, path.size(), name);
  text = one_line(text);
  return text.empty() ? "ITK cannot read this file" : text;
}

template <typename T>
void deinterleave(const void* raw, int64_t spatial, int64_t groups, int64_t ncomp, float* out) {
  // Raw layout: (group, spatial, component), component fastest. A "group" is one position along
  // a 4th axis; channel = group * ncomp + component.
  const T* src = static_cast<const T*>(raw);
  for (int64_t g = 0; g < groups; ++g) {
    const T* s = src + g * spatial * ncomp;
    for (int64_t k = 0; k < ncomp; ++k) {
      float* dst = out + (g * ncomp + k) * spatial;
      for (int64_t p = 0; p < spatial; ++p) dst[p] = static_cast<float>(s[p * ncomp + k]);
    }
  }
}

void convert(itk::IOComponentEnum type, const void* raw, int64_t spatial, int64_t groups,
             int64_t ncomp, float* out) {
  using C = itk::IOComponentEnum;
  switch (type) {
    case C::UCHAR:
      return deinterleave<uint8_t>(raw, spatial, groups, ncomp, out);
    case C::CHAR:
      return deinterleave<int8_t>(raw, spatial, groups, ncomp, out);
    case C::USHORT:
      return deinterleave<uint16_t>(raw, spatial, groups, ncomp, out);
    case C::SHORT:
      return deinterleave<int16_t>(raw, spatial, groups, ncomp, out);
    case C::UINT:
      return deinterleave<uint32_t>(raw, spatial, groups, ncomp, out);
    case C::INT:
      return deinterleave<int32_t>(raw, spatial, groups, ncomp, out);
    case C::ULONG:
      return deinterleave<unsigned long>(raw, spatial, groups, ncomp, out);
    case C::LONG:
      return deinterleave<long>(raw, spatial, groups, ncomp, out);
    case C::ULONGLONG:
      return deinterleave<unsigned long long>(raw, spatial, groups, ncomp, out);
    case C::LONGLONG:
      return deinterleave<long long>(raw, spatial, groups, ncomp, out);
    case C::FLOAT:
      return deinterleave<float>(raw, spatial, groups, ncomp, out);
    case C::DOUBLE:
      return deinterleave<double>(raw, spatial, groups, ncomp, out);
    default:
      break;
  }
}

size_t component_bytes(itk::IOComponentEnum type) {
  using C = itk::IOComponentEnum;
  switch (type) {
    case C::UCHAR:
    case C::CHAR:
      return 1;
    case C::USHORT:
    case C::SHORT:
      return 2;
    case C::UINT:
    case C::INT:
    case C::FLOAT:
      return 4;
    case C::ULONG:
    case C::LONG:
      return sizeof(long);
    case C::ULONGLONG:
    case C::LONGLONG:
    case C::DOUBLE:
      return 8;
    default:
      return 0;
  }
}

// MetaImage stores the modality as an enum; map it to the DICOM code ("" when unknown).
std::string modality_from_metaimage(MET_ImageModalityEnumType value) {
  switch (value) {
    case MET_MOD_CT:
      return "CT";
    case MET_MOD_MR:
      return "MR";
    case MET_MOD_NM:
      return "NM";
    case MET_MOD_US:
      return "US";
    case MET_MOD_OTHER:
      return "OT";
    default:
      return "";
  }
}

// Header fields worth keeping: ITK exposes them as string entries of the dictionary. Bounded so
// a hostile header cannot flood the metadata.
void copy_header_fields(const itk::MetaDataDictionary& dict, Metadata& md) {
  int kept = 0;
  for (const std::string& key : dict.GetKeys()) {
    std::string value;
    if (!itk::ExposeMetaData<std::string>(dict, key, value)) continue;
    if (key.empty() || key.size() > 64 || value.size() > 256) continue;
    if (key.rfind("ITK_", 0) == 0) continue;  // ITK's own bookkeeping, e.g. the reader's name
    if (++kept > 64) break;
    md.tags[key] = value;
  }
}

// Inflates `length` bytes of `file` from `offset` without keeping the output, and refuses the
// file unless they form one complete zlib/gzip stream of exactly `expected` bytes.
void verify_compressed(const fs::path& file, uint64_t offset, uint64_t length, uint64_t expected,
                       const std::string& path) {
  std::ifstream in(file, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(offset));
  z_stream zs{};
  if (!in || inflateInit2(&zs, 15 + 32) != Z_OK) return;
  std::vector<unsigned char> input(1 << 16), output(1 << 18);
  uint64_t remaining = length, produced = 0;
  int rc = Z_OK;
  while (rc != Z_STREAM_END && produced <= expected) {
    if (zs.avail_in == 0) {
      if (remaining == 0) break;
      in.read(reinterpret_cast<char*>(input.data()),
              static_cast<std::streamsize>(std::min<uint64_t>(input.size(), remaining)));
      const auto got = static_cast<uInt>(in.gcount());
      if (got == 0) break;
      remaining -= got;
      zs.next_in = input.data();
      zs.avail_in = got;
    }
    zs.next_out = output.data();
    zs.avail_out = static_cast<uInt>(output.size());
    rc = inflate(&zs, Z_NO_FLUSH);
    produced += output.size() - zs.avail_out;
    if (rc != Z_OK && rc != Z_STREAM_END) break;
  }
  inflateEnd(&zs);
  if (rc != Z_STREAM_END || produced != expected)
    throw InputError(path, "compressed pixel data is truncated or corrupt (" +
                               std::to_string(produced) + " of " + std::to_string(expected) +
                               " bytes decoded)");
}

// MetaIO (ITK 5.2) reports a short or corrupt data read on stderr yet returns success, leaving
// the rest of the buffer unset; so check the data on disk first: its size when raw, the whole
// zlib stream when compressed (one extra decompression pass, no extra memory).
void check_metaimage_data(itk::MetaImageIO& io, const std::string& path, uint64_t expected) {
  MetaImage* mi = io.GetMetaImagePointer();
  if (mi == nullptr) return;
  const std::string file = mi->ElementDataFileName();
  if (file == "LIST" || file.find('%') != std::string::npos) return;  // slice lists, patterns
  const std::vector<uint8_t> head = read_file_head(path, 1 << 16);
  std::string header(head.begin(), head.end());
  std::error_code ec;
  fs::path data;
  uint64_t offset = 0;
  if (file == "LOCAL") {
    // The data follows the ElementDataFile line, which ends the header.
    const size_t key = header.find("ElementDataFile");
    const size_t eol = key == std::string::npos ? key : header.find('\n', key);
    if (eol == std::string::npos) return;
    header.resize(eol);
    data = path;
    offset = eol + 1;
  } else {
    data = file;
    if (data.is_relative()) data = fs::path(path).parent_path() / data;
    if (!fs::is_regular_file(data, ec))
      throw InputError(path, "data file " + data.filename().string() + " is missing");
    if (mi->HeaderSize() < 0) return;  // -1: the data is the end of the file, by definition
    offset = static_cast<uint64_t>(mi->HeaderSize());
  }
  const uint64_t size = fs::file_size(data, ec);
  if (ec) return;
  const uint64_t available = size > offset ? size - offset : 0;
  if (!mi->CompressedData()) {
    if (available < expected)
      throw InputError(path, "pixel data is truncated: " + std::to_string(available) + " bytes, " +
                                 std::to_string(expected) + " expected");
    return;
  }
  uint64_t length = available;
  if (const size_t key = header.find("CompressedDataSize"); key != std::string::npos) {
    const size_t eq = header.find('=', key);
    const uint64_t declared =
        eq == std::string::npos ? 0 : std::strtoull(header.c_str() + eq + 1, nullptr, 10);
    if (declared > available)
      throw InputError(path, "compressed pixel data is truncated: " + std::to_string(available) +
                                 " bytes, " + std::to_string(declared) + " declared");
    if (declared > 0) length = declared;
  } else if (file == "LOCAL") {
    // MetaIO then takes the whole file's size as the stream's and fails to decode it.
    throw InputError(path, "compressed data without CompressedDataSize cannot be read");
  }
  verify_compressed(data, offset, length, expected, path);
}

}  // namespace

VoxelBuffer read_itk(const std::string& path, const ReadOptions& options) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw InputError(path, "is a folder, expected a file");
  if (!fs::exists(path, ec)) throw InputError(path, "no such file");
  register_factories();
  try {
    itk::ImageIOBase::Pointer io =
        itk::ImageIOFactory::CreateImageIO(path.c_str(), itk::IOFileModeEnum::ReadMode);
    if (!io) throw InputError(path, "not a NRRD or MetaImage file (ITK cannot read its header)");
    io->SetFileName(path);
    io->ReadImageInformation();

    // --- validate the header before allocating anything
    const unsigned dims = io->GetNumberOfDimensions();
    if (dims < 2 || dims > 4)
      throw InputError(path, std::to_string(dims) + "-D images are not supported (2-D or 3-D)");
    const auto pixel = io->GetPixelType();
    if (pixel == itk::IOPixelEnum::COMPLEX)
      throw InputError(path, "complex-valued voxels are not supported");
    const auto ctype = io->GetComponentType();
    const size_t cbytes = component_bytes(ctype);
    if (cbytes == 0)
      throw InputError(
          path, "unsupported voxel type " + itk::ImageIOBase::GetComponentTypeAsString(ctype));
    const int64_t ncomp = io->GetNumberOfComponents();
    if (ncomp < 1) throw InputError(path, "header declares no components per voxel");
    const int64_t limit = max_voxels();
    int64_t size[4] = {1, 1, 1, 1};
    int64_t total = ncomp;
    for (unsigned i = 0; i < dims; ++i) {
      const auto s = io->GetDimensions(i);
      if (s == 0) throw InputError(path, "size along axis " + std::to_string(i) + " is zero");
      if (s > static_cast<uint64_t>(limit) || static_cast<int64_t>(s) > limit / total)
        throw InputError(path, "image is too large: more than " + std::to_string(limit) +
                                   " values (MEDLENS_MAX_VOXELS)");
      size[i] = static_cast<int64_t>(s);
      total *= size[i];
    }
    const unsigned sdims = std::min(dims, 3u);
    Geometry g;
    g.direction = {0, 0, 0, 0, 0, 0, 0, 0, 0};
    for (unsigned i = 0; i < sdims; ++i) {
      const double sp = io->GetSpacing(i);
      if (!std::isfinite(sp)) throw InputError(path, "spacing is not finite");
      if (sp <= 0)
        throw InputError(
            path, "zero or negative spacing (" + number(sp) + " along axis " + "xyz"[i] + ")");
      g.spacing[i] = sp;
      g.origin[i] = io->GetOrigin(i);
      const std::vector<double> axis = io->GetDirection(i);
      for (size_t r = 0; r < std::min<size_t>(axis.size(), 3); ++r)
        g.direction[r * 3 + i] = axis[r];
    }
    if (dims == 2) {
      // Embed the 2-D plane: the slice normal is z unless the header placed the plane in 3-D.
      const Vec3 n = cross(g.axis(0), g.axis(1));
      const double len = norm(n);
      const bool in_plane = g.direction[6] == 0 && g.direction[7] == 0;
      const Vec3 z =
          in_plane || len < 1e-9 ? Vec3{0, 0, 1} : Vec3{n[0] / len, n[1] / len, n[2] / len};
      for (int r = 0; r < 3; ++r) g.direction[r * 3 + 2] = z[r];
    }
    std::string why;
    if (!g.valid(&why)) throw InputError(path, why);

    VoxelBuffer out;
    const int64_t groups = size[3];  // a 4th axis becomes channels
    out.shape = {groups * ncomp, size[2], size[1], size[0]};
    out.geometry = g;
    Metadata& md = out.metadata;
    const std::string cls = io->GetNameOfClass();
    md.source_format = cls == "NrrdImageIO" ? "nrrd" : cls == "MetaImageIO" ? "metaimage" : "";
    if (md.source_format.empty()) {
      const std::string ext = extension_of(path);
      md.source_format = ext == ".nrrd" || ext == ".nhdr" ? "nrrd" : "metaimage";
    }
    md.source_path = path;
    md.photometric = out.shape.c == 1                                 ? "MONOCHROME2"
                     : (pixel == itk::IOPixelEnum::RGB && ncomp == 3) ? "RGB"
                                                                      : "";
    copy_header_fields(io->GetMetaDataDictionary(), md);
    md.tags["ComponentType"] = itk::ImageIOBase::GetComponentTypeAsString(ctype);
    md.tags["PixelType"] = itk::ImageIOBase::GetPixelTypeAsString(pixel);
    if (auto* meta = dynamic_cast<itk::MetaImageIO*>(io.GetPointer())) {
      // ITK 5.2 keeps MetaImage's Modality field out of the dictionary.
      if (const MetaImage* mi = meta->GetMetaImagePointer()) {
        const std::string mod = modality_from_metaimage(mi->Modality());
        if (!mod.empty()) {
          md.modality = mod;
          md.tags["Modality"] = mod;
        }
      }
    }
    if (dims == 4)
      md.warnings.push_back("4-D image: its 4th axis (" + std::to_string(groups) +
                            " positions) is read as channels");

    // --- read the voxels
    itk::ImageIORegion region(dims);
    for (unsigned i = 0; i < dims; ++i) {
      region.SetIndex(i, 0);
      region.SetSize(i, static_cast<itk::SizeValueType>(size[i]));
    }
    io->SetIORegion(region);
    const size_t bytes = static_cast<size_t>(total) * cbytes;
    auto* meta = dynamic_cast<itk::MetaImageIO*>(io.GetPointer());
    if (meta) check_metaimage_data(*meta, path, bytes);
    out.data.resize(static_cast<size_t>(total));
    if (ctype == itk::IOComponentEnum::FLOAT && ncomp == 1) {
      // Already our layout: read straight into the output, no conversion, no second buffer.
      io->Read(out.data.data());
    } else {
      std::unique_ptr<char[]> raw(new char[bytes]);
      io->Read(raw.get());
      convert(ctype, raw.get(), size[0] * size[1] * size[2], groups, ncomp, out.data.data());
    }
    return out;  // non-finite voxels are left to check_voxels (read_voxels) so callers may opt in
  } catch (const InputError&) {
    throw;
  } catch (const itk::ExceptionObject& e) {
    throw InputError(path, describe_itk_error(e, path));
  } catch (const std::bad_alloc&) {
    throw InputError(path, "not enough memory to read the image");
  } catch (const std::exception& e) {
    throw InputError(path, one_line(e.what()).empty() ? "unexpected error" : one_line(e.what()));
  }
}

namespace {

// Writes `image` to `file` (whose extension picks the ITK writer). `file` is already a
// temporary name; the caller moves it into place.
void write_with_itk(const Image& image, const std::string& file, const std::string& shown,
                    bool compress) {
  register_factories();
  itk::ImageIOBase::Pointer io =
      itk::ImageIOFactory::CreateImageIO(file.c_str(), itk::IOFileModeEnum::WriteMode);
  if (!io) throw InputError(shown, "ITK has no writer for this extension");
  if (auto* meta = dynamic_cast<itk::MetaImageIO*>(io.GetPointer()))
    meta->SetDoublePrecision(17);  // MetaIO's default of 6 digits would round the geometry

  const Shape s = image.shape();
  const Geometry& g = image.geometry();
  // Write 2-D only when nothing of the geometry is lost by dropping the third axis.
  const bool planar = s.z == 1 && g.direction[2] == 0 && g.direction[5] == 0 &&
                      g.direction[6] == 0 && g.direction[7] == 0 && g.direction[8] == 1 &&
                      g.origin[2] == 0 && g.spacing[2] == 1;
  const unsigned dims = planar ? 2 : 3;
  const int64_t size[3] = {s.x, s.y, s.z};
  io->SetNumberOfDimensions(dims);
  itk::ImageIORegion region(dims);
  for (unsigned i = 0; i < dims; ++i) {
    io->SetDimensions(i, static_cast<itk::SizeValueType>(size[i]));
    io->SetSpacing(i, g.spacing[i]);
    io->SetOrigin(i, g.origin[i]);
    std::vector<double> axis(dims);
    for (unsigned r = 0; r < dims; ++r) axis[r] = g.direction[r * 3 + i];
    io->SetDirection(i, axis);
    region.SetIndex(i, 0);
    region.SetSize(i, static_cast<itk::SizeValueType>(size[i]));
  }
  io->SetIORegion(region);
  io->SetComponentType(itk::IOComponentEnum::FLOAT);
  io->SetNumberOfComponents(static_cast<unsigned>(s.c));
  io->SetPixelType(s.c == 1                                            ? itk::IOPixelEnum::SCALAR
                   : s.c == 3 && image.metadata().photometric == "RGB" ? itk::IOPixelEnum::RGB
                                                                       : itk::IOPixelEnum::VECTOR);
  io->SetUseCompression(compress);
  io->SetFileName(file);
  io->WriteImageInformation();
  if (s.c == 1) {
    io->Write(image.data());
  } else {
    // ITK wants components interleaved (component fastest); we hold them planar.
    const int64_t n = s.voxels();
    std::vector<float> interleaved(static_cast<size_t>(s.elements()));
    const float* src = image.data();
    for (int64_t c = 0; c < s.c; ++c)
      for (int64_t p = 0; p < n; ++p) interleaved[p * s.c + c] = src[c * n + p];
    io->Write(interleaved.data());
  }
}

}  // namespace

void write_itk(const Image& image, const std::string& path, const WriteOptions& options) {
  const std::string ext = extension_of(path);
  const bool detached = ext == ".mhd" || ext == ".nhdr";
  if (!detached && ext != ".mha" && ext != ".nrrd")
    throw UsageError("write_itk: '" + path + "' does not end in .mha, .mhd, .nrrd or .nhdr");
  if (image.empty()) throw InputError(path, "nothing to write: the image is empty");
  try {
    if (!detached) {
      AtomicOutput out(path);
      write_with_itk(image, out.temp_path(), path, /*compress=*/true);
      out.commit();
      return;
    }
    // Header + data file: the header names the data file, so both are written under their final
    // names in a temporary folder beside the destination, then moved out. The AtomicOutput is
    // used only for that folder and its removal; it is never committed.
    AtomicOutput folder(path, /*is_folder=*/true);
    const fs::path final_dir = fs::path(path).parent_path();
    const std::string name = fs::path(path).filename().string();
    write_with_itk(image, (fs::path(folder.temp_path()) / name).string(), path, false);
    std::vector<fs::path> produced;
    for (const auto& entry : fs::directory_iterator(folder.temp_path()))
      if (entry.path().filename() != name) produced.push_back(entry.path());
    produced.push_back(fs::path(folder.temp_path()) / name);  // the header goes last
    std::vector<fs::path> moved;
    for (const fs::path& from : produced) {
      const fs::path to = final_dir / from.filename();
      std::error_code ec;
      fs::rename(from, to, ec);
      if (ec) {
        const std::string why = ec.message();
        for (const fs::path& m : moved) fs::remove(m, ec);
        throw InputError(path, "cannot move output into place: " + why);
      }
      moved.push_back(to);
    }
  } catch (const Error&) {
    throw;
  } catch (const itk::ExceptionObject& e) {
    throw InputError(path, describe_itk_error(e, path));
  } catch (const std::exception& e) {
    throw InputError(path, one_line(e.what()).empty() ? "unexpected error" : one_line(e.what()));
  }
}

void init_itk_threads() {
  static std::once_flag once;
  std::call_once(once, [] { itk::MultiThreaderBase::SetGlobalDefaultNumberOfThreads(thread_count()); });
}

}  // namespace medlens
