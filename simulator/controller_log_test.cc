#include "simulator/controller_log.h"

#include <cstdlib>
#include <fstream>

#include "gtest/gtest.h"

namespace pnc::sim {
namespace {

TEST(ControllerLog, TakesTheLastInitializedLinePerPodAndSkipsEverythingElse) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string path = std::string(tmp ? tmp : "/tmp") + "/controller.log";
  std::ofstream(path)
      << R"({"ts":"x","level":"info","msg":"pod initialized","pod_uid":"a","took_ms":"9","locate_ms":"4.5"})"
      << "\n"
      << "not json\n"
      << R"({"msg":"reconcile failed; will retry","pod_uid":"b","took_ms":"8","locate_ms":"7"})"
      << "\n"
      << R"({"msg":"pod initialized","pod_uid":"c","took_ms":"5","locate_ms":"not a number"})"
      << "\n"
      << R"({"msg":"pod initialized","pod_uid":"d","took_ms":"5","locate_ms":3})"
      << "\n"
      << R"({"msg":"pod initialized","pod_uid":"e","took_ms":"2","locate_ms":"3"})"
      << "\n"
      << R"({"msg":"pod initialized","pod_uid":"f","locate_ms":"3"})"
      << "\n"
      << R"(["pod initialized"])"
      << "\n"
      << R"({"msg":"pod initialized","pod_uid":"a","took_ms":"6.5","locate_ms":"2.25"})"
      << "\n";
  std::map<std::string, MarkingReconcile> got = MarkingReconcilesByPod(path);
  EXPECT_EQ(got, (std::map<std::string, MarkingReconcile>{{"a", {6.5, 2.25}}}));
  EXPECT_TRUE(MarkingReconcilesByPod(path + ".missing").empty());
}

}  // namespace
}  // namespace pnc::sim
