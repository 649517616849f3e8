// Manifests (the CLI contract's CSV): RFC 4180 quoting against Python's csv module, paths
// resolved against the manifest's folder, and every malformed file refused with its name and line.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "io/manifest.h"
#include "tools/test_util.h"

namespace fs = std::filesystem;

namespace medlens {
namespace {

std::string write(const test::TempDir& tmp, const std::string& name, const std::string& text) {
  const std::string path = tmp.file(name);
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

std::string error_of(const std::string& csv) {
  try {
    load_manifest(csv, false);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(Manifest, QuotedFieldsParseAsPythonsCsvModuleDoes) {
  test::TempDir tmp;
  // Commas, doubled quotes, a line break inside quotes (LF and CRLF), a BOM, blank lines.
  const std::string csv = write(tmp, "m.csv",
                                "\xEF\xBB\xBFpath,label,note\r\n"
                                "a.png,benign,plain\r\n"
                                "\"b,1.png\",malignant,\"said \"\"maybe\"\"\"\r\n"
                                "\r\n"
                                "c.png,normal,\"two\r\nlines\"\r\n"
                                "d.png,normal,\"three\nshort\nlines\"\n");
  const Manifest m = load_manifest(csv, false);
  const test::CommandResult py = test::run_oracle("csv_rows.py", {csv});
  std::istringstream lines(py.output);
  std::string line;
  std::vector<std::vector<std::string>> want;
  while (std::getline(lines, line)) want.push_back(nlohmann::json::parse(line).get<std::vector<std::string>>());
  ASSERT_EQ(want.size(), 5u);
  want[0][0].erase(0, 3);  // Python keeps the BOM (utf-8, not utf-8-sig); the contract drops it
  EXPECT_EQ(m.header, want[0]);
  ASSERT_EQ(m.rows.size(), 4u);
  for (size_t i = 0; i < m.rows.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(fs::path(m.rows[i].path).filename().string(), want[i + 1][0]);
    EXPECT_EQ(m.rows[i].label, want[i + 1][1]);
    // Inside quotes Python keeps a CRLF as written; medlens keeps the line break as LF.
    std::string note = want[i + 1][2];
    for (size_t p; (p = note.find("\r\n")) != std::string::npos;) note.erase(p, 1);
    EXPECT_EQ(m.rows[i].columns.at("note"), note);
  }
  EXPECT_EQ(m.rows[2].columns.at("note"), "two\nlines");
}

TEST(Manifest, PathsResolveAgainstTheManifestsFolder) {
  test::TempDir tmp;
  fs::create_directories(tmp.path() / "sub");
  write(tmp, "sub/x.png", "");
  const std::string csv = write(tmp, "sub/m.csv", "path,label,split,mask\nx.png,a,train,\n/abs/y.png,b,val,masks/y.png\n");
  const Manifest m = load_manifest(csv, false);
  EXPECT_EQ(m.rows[0].path, (tmp.path() / "sub" / "x.png").string());
  EXPECT_EQ(m.rows[0].mask, "");
  EXPECT_EQ(m.rows[1].path, "/abs/y.png");
  EXPECT_EQ(m.rows[1].mask, (tmp.path() / "sub" / "masks" / "y.png").string());
  EXPECT_EQ(m.select("val").size(), 1u);
  EXPECT_EQ(m.labels(), (std::vector<std::string>{"a", "b"}));
  // With file checks the missing image is named, with its line.
  try {
    load_manifest(csv, true);
    ADD_FAILURE();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("line 3"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("y.png"), std::string::npos) << e.what();
  }
}

TEST(Manifest, RefusesMalformedFilesNamingFileAndLine) {
  test::TempDir tmp;
  const struct {
    const char* text;
    const char* says;
  } bad[] = {
      {"", "manifest is empty"},
      {"path,label\n", "no rows"},
      {"image,label\na.png,x\n", "no 'path' column"},
      {"path,label,path\na.png,x,b.png\n", "'path' twice"},
      {"path,label\na.png,x\nb.png\n", "line 3 has 1 fields"},
      {"path,label\na.png,x\n\"b.png,y\nc.png,z\n", "line 3: unterminated quote"},
      {"path,label\n,x\n", "line 2: empty path"},
  };
  for (const auto& b : bad) {
    SCOPED_TRACE(b.text);
    const std::string csv = write(tmp, "bad.csv", b.text);
    const std::string e = error_of(csv);
    EXPECT_NE(e.find("bad.csv"), std::string::npos) << e;
    EXPECT_NE(e.find(b.says), std::string::npos) << e;
  }
  EXPECT_NE(error_of(tmp.file("absent.csv")).find("cannot open"), std::string::npos);
}

}  // namespace
}  // namespace medlens
