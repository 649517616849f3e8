// Where voxels sit in the patient: spacing in mm, origin and direction cosines in DICOM's LPS
// patient space (x to the patient's Left, y to Posterior, z to Superior). Torch-free, cheap.
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace medlens {

using Vec3 = std::array<double, 3>;
using Mat3 = std::array<double, 9>;  // row-major

/// Voxel counts of an image laid out (C, Z, Y, X); X varies fastest in memory.
struct Shape {
  int64_t c = 0, z = 0, y = 0, x = 0;
  int64_t voxels() const { return z * y * x; }           ///< spatial voxels per channel
  int64_t elements() const { return c * z * y * x; }     ///< all values
  Shape with_z(int64_t depth) const { return {c, depth, y, x}; }
  bool operator==(const Shape&) const = default;
};

/// Mapping from voxel index (i=x, j=y, k=z) to LPS millimetres:
///   p = origin + direction * diag(spacing) * (i, j, k).
/// Column n of `direction` is the unit vector of index axis n in LPS.
struct Geometry {
  Vec3 spacing{1.0, 1.0, 1.0};
  Vec3 origin{0.0, 0.0, 0.0};
  Mat3 direction{1, 0, 0, 0, 1, 0, 0, 0, 1};

  /// LPS position (mm) of a continuous voxel index (x, y, z).
  Vec3 index_to_lps(const Vec3& index) const;
  /// Continuous voxel index of an LPS point; requires an invertible direction.
  Vec3 lps_to_index(const Vec3& lps) const;
  /// Unit vector of index axis n (0=x, 1=y, 2=z) in LPS.
  Vec3 axis(int n) const { return {direction[n], direction[3 + n], direction[6 + n]}; }
  /// Three letters naming the patient direction each index axis points to most, e.g. "LPS",
  /// "RAS"; lower case when the axis is oblique (more than 1 degree off).
  std::string orientation_code() const;
  /// True when spacing is positive and finite and the direction columns are unit and
  /// independent. `why` receives the reason otherwise.
  bool valid(std::string* why = nullptr) const;
  bool operator==(const Geometry&) const = default;
};

/// 4x4 RAS affine (row-major) as used by NIfTI and nibabel, from a geometry; and back.
std::array<double, 16> to_ras_affine(const Geometry& g);
Geometry from_ras_affine(const std::array<double, 16>& affine);

double dot(const Vec3& a, const Vec3& b);
Vec3 cross(const Vec3& a, const Vec3& b);
double norm(const Vec3& a);

}  // namespace medlens
