// `medlens corrupt` as scripts use it: real files in, corrupted files out with the same size,
// reproducible by seed; --list (text and JSON) names all 19 kinds, and docs/CORRUPTIONS.md's
// severity table says what --list says.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tools/test_util.h"

namespace fs = std::filesystem;

namespace medlens {
namespace {

using test::run_medlens;

const std::vector<std::string> kKinds{"gaussian",     "poisson",      "speckle",           "rician",
                                      "salt-pepper",  "defocus-blur", "motion-blur",       "mri-motion",
                                      "mri-ghosting", "mri-spike",    "mri-bias",          "ct-lowdose",
                                      "ct-ring",      "ct-metal",     "ct-beam-hardening", "jpeg",
                                      "contrast",     "brightness",   "pixelate"};

std::string ct_small() { return test::pydicom_files() + "/CT_small.dcm"; }

nlohmann::json info(const std::string& path) {
  const auto r = run_medlens({"info", path, "--json"});
  EXPECT_EQ(r.status, 0) << r.error;
  return nlohmann::json::parse(r.output)["images"][0];
}

// Width and height from a PNG's IHDR chunk (big-endian, bytes 16..23).
std::pair<uint32_t, uint32_t> png_size(const std::string& path) {
  const std::string b = test::read_text(path);
  if (b.size() < 24) return {0, 0};
  auto be32 = [&](size_t at) {
    uint32_t v = 0;
    for (size_t i = 0; i < 4; ++i) v = v << 8 | static_cast<unsigned char>(b[at + i]);
    return v;
  };
  return {be32(16), be32(20)};
}

TEST(CorruptCli, WritesACorruptedFileOfTheSameSizeReproduciblyBySeed) {
  test::TempDir tmp;
  const std::string in = test::vendored_samples() + "/busi/benign_103.png";  // 256 x 256, 0..254
  auto speckle = [&](const std::string& out, const std::string& seed) {
    return run_medlens(
        {"corrupt", in, tmp.file(out), "--kind", "speckle", "--severity", "3", "--seed", seed});
  };
  const auto a = speckle("a.png", "4");
  ASSERT_EQ(a.status, 0) << a.error;
  EXPECT_NE(a.output.find("a.png"), std::string::npos);
  ASSERT_EQ(speckle("b.png", "4").status, 0);
  ASSERT_EQ(speckle("c.png", "5").status, 0);
  const std::string bytes_a = test::read_text(tmp.file("a.png"));
  EXPECT_EQ(bytes_a, test::read_text(tmp.file("b.png")));
  EXPECT_NE(bytes_a, test::read_text(tmp.file("c.png")));
  EXPECT_NE(bytes_a, test::read_text(in));
  EXPECT_EQ(png_size(tmp.file("a.png")), png_size(in));
  EXPECT_EQ(png_size(in), (std::pair<uint32_t, uint32_t>{256, 256}));

  // A CT slice through the sinogram into NIfTI keeps size and spacing; the values change.
  const auto ct =
      run_medlens({"corrupt", ct_small(), tmp.file("ring.nii.gz"), "--kind", "ct-ring", "--severity", "4"});
  ASSERT_EQ(ct.status, 0) << ct.error;
  const nlohmann::json after = info(tmp.file("ring.nii.gz"));
  EXPECT_EQ(after["geometry"]["size"], nlohmann::json({128, 128, 1}));
  EXPECT_NEAR(after["geometry"]["spacing_mm"][0].get<double>(), 0.6615, 1e-3);
  EXPECT_NE(after["value_range"], nlohmann::json({-896, 1167}));  // CT_small's own range

  // A brightness shift stays visible in an 8-bit output: the input's display scale is kept.
  ASSERT_EQ(
      run_medlens({"corrupt", in, tmp.file("bright.png"), "--kind", "brightness", "--severity", "3"}).status,
      0);
  EXPECT_GT(info(tmp.file("bright.png"))["value_range"][0].get<double>(), 40);  // 0 + 0.2 of the range
}

TEST(CorruptCli, BadKindOrSeverityIsStatusTwoAndWritesNothing) {
  test::TempDir tmp;
  const std::string out = tmp.file("x.nii");
  const auto r = run_medlens({"corrupt", ct_small(), out, "--kind", "blur", "--severity", "2"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.error.find("known:"), std::string::npos) << r.error;
  EXPECT_EQ(run_medlens({"corrupt", ct_small(), out, "--kind", "gaussian", "--severity", "6"}).status, 2);
  EXPECT_EQ(run_medlens({"corrupt", ct_small(), out, "--kind", "gaussian"}).status, 2);
  EXPECT_FALSE(fs::exists(out));
  EXPECT_EQ(
      run_medlens({"corrupt", tmp.file("missing.dcm"), out, "--kind", "gaussian", "--severity", "1"}).status,
      3);
}

// The markdown row docs/CORRUPTIONS.md holds for one kind: | kind | k=v, k=v | ... (5 cells) |
std::string doc_row(const nlohmann::json& kind) {
  std::string row = "| `" + kind["kind"].get<std::string>() + "` |";
  for (const auto& s : kind["severities"]) {
    std::string cell;
    for (const auto& [key, value] : s["parameters"].items())
      cell += (cell.empty() ? "" : ", ") + key + "=" + value.dump();
    row += " " + cell + " |";
  }
  return row;
}

TEST(CorruptCli, ListNamesEveryKindAndTheDocTableSaysTheSame) {
  const auto text = run_medlens({"corrupt", "--list"});
  ASSERT_EQ(text.status, 0) << text.error;
  // One header line per kind ("kind: how" or "kind (random): how"), then one line per severity.
  const std::string out = "\n" + text.output;
  for (const auto& kind : kKinds)
    EXPECT_TRUE(out.find("\n" + kind + ": ") != std::string::npos ||
                out.find("\n" + kind + " (random): ") != std::string::npos)
        << kind;
  EXPECT_NE(out.find("\n  5: "), std::string::npos);
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), static_cast<long>(kKinds.size() * 6 + 1));

  const auto js = run_medlens({"corrupt", "--list", "--json"});
  ASSERT_EQ(js.status, 0) << js.error;
  const nlohmann::json table = nlohmann::json::parse(js.output)["kinds"];
  ASSERT_EQ(table.size(), kKinds.size());
  for (size_t i = 0; i < kKinds.size(); ++i) {
    EXPECT_EQ(table[i]["kind"], kKinds[i]);
    ASSERT_EQ(table[i]["severities"].size(), 5u);
    EXPECT_FALSE(table[i]["how"].get<std::string>().empty());
  }
  // docs/CORRUPTIONS.md's severity table, row by row.
  const std::string doc = test::read_text(std::string(MEDLENS_SOURCE_DIR) + "/docs/CORRUPTIONS.md");
  std::istringstream lines(doc);
  std::vector<std::string> rows;
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("| `", 0) == 0) rows.push_back(line);
  ASSERT_EQ(rows.size(), table.size());
  for (size_t i = 0; i < table.size(); ++i) EXPECT_EQ(rows[i], doc_row(table[i]));
}

}  // namespace
}  // namespace medlens
