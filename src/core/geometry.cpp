#include "core/geometry.h"

#include <cmath>

namespace medlens {

double dot(const Vec3& a, const Vec3& b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }
Vec3 cross(const Vec3& a, const Vec3& b) {
  return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}
double norm(const Vec3& a) { return std::sqrt(dot(a, a)); }

Vec3 Geometry::index_to_lps(const Vec3& index) const {
  Vec3 p = origin;
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) p[r] += direction[r * 3 + c] * spacing[c] * index[c];
  return p;
}

Vec3 Geometry::lps_to_index(const Vec3& lps) const {
  // Solve (direction * diag(spacing)) * idx = lps - origin by Cramer's rule.
  double m[9];
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) m[r * 3 + c] = direction[r * 3 + c] * spacing[c];
  const double det = m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6]) +
                     m[2] * (m[3] * m[7] - m[4] * m[6]);
  const Vec3 b{lps[0] - origin[0], lps[1] - origin[1], lps[2] - origin[2]};
  Vec3 out{};
  for (int c = 0; c < 3; ++c) {
    double t[9];
    for (int i = 0; i < 9; ++i) t[i] = m[i];
    for (int r = 0; r < 3; ++r) t[r * 3 + c] = b[r];
    out[c] = (t[0] * (t[4] * t[8] - t[5] * t[7]) - t[1] * (t[3] * t[8] - t[5] * t[6]) +
              t[2] * (t[3] * t[7] - t[4] * t[6])) / det;
  }
  return out;
}

std::string Geometry::orientation_code() const {
  static const char kPos[3] = {'L', 'P', 'S'};
  static const char kNeg[3] = {'R', 'A', 'I'};
  std::string code;
  for (int n = 0; n < 3; ++n) {
    const Vec3 a = axis(n);
    int best = 0;
    for (int r = 1; r < 3; ++r)
      if (std::abs(a[r]) > std::abs(a[best])) best = r;
    char letter = a[best] >= 0 ? kPos[best] : kNeg[best];
    if (std::abs(a[best]) < std::cos(M_PI / 180.0)) letter = static_cast<char>(letter + ('a' - 'A'));
    code += letter;
  }
  return code;
}

bool Geometry::valid(std::string* why) const {
  auto fail = [&](const std::string& m) { if (why) *why = m; return false; };
  for (int n = 0; n < 3; ++n)
    if (!(std::isfinite(spacing[n]) && spacing[n] > 0))
      return fail("spacing " + std::to_string(spacing[n]) + " mm along axis " + "xyz"[n] +
                  " is not positive");
  for (double v : origin)
    if (!std::isfinite(v)) return fail("origin is not finite");
  for (int n = 0; n < 3; ++n) {
    const double len = norm(axis(n));
    if (!std::isfinite(len) || std::abs(len - 1.0) > 1e-3)
      return fail("direction cosines are not unit vectors");
  }
  const double det = dot(axis(0), cross(axis(1), axis(2)));
  if (std::abs(det) < 1e-3) return fail("direction cosines are degenerate (axes are parallel)");
  return true;
}

std::array<double, 16> to_ras_affine(const Geometry& g) {
  std::array<double, 16> a{};
  for (int r = 0; r < 3; ++r) {
    const double flip = r < 2 ? -1.0 : 1.0;  // LPS -> RAS negates x and y
    for (int c = 0; c < 3; ++c) a[r * 4 + c] = flip * g.direction[r * 3 + c] * g.spacing[c];
    a[r * 4 + 3] = flip * g.origin[r];
  }
  a[15] = 1.0;
  return a;
}

Geometry from_ras_affine(const std::array<double, 16>& a) {
  Geometry g;
  for (int c = 0; c < 3; ++c) {
    Vec3 col{-a[c], -a[4 + c], a[8 + c]};
    const double len = norm(col);
    g.spacing[c] = len;
    for (int r = 0; r < 3; ++r) g.direction[r * 3 + c] = len > 0 ? col[r] / len : (r == c ? 1 : 0);
  }
  g.origin = {-a[3], -a[7], a[11]};
  return g;
}

}  // namespace medlens
