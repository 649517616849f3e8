#include <gtest/gtest.h>

#include "tools/test_util.h"

namespace medlens {
namespace {

TEST(Cli, HelpWorksForEveryCommand) {
  for (const char* cmd : {"info", "convert"}) {
    SCOPED_TRACE(cmd);
    const auto r = test::run_medlens({cmd, "--help"});
    EXPECT_EQ(r.status, 0);
    EXPECT_NE(r.output.find("Usage"), std::string::npos) << r.output;
  }
  EXPECT_EQ(test::run_medlens({"--help"}).status, 0);
}

TEST(Cli, UnknownCommandIsBadUsage) {
  EXPECT_EQ(test::run_medlens({"frobnicate"}).status, 2);
  EXPECT_EQ(test::run_medlens({}).status, 2);
}

}  // namespace
}  // namespace medlens
