// Proves that every system-library wrapper in third_party/BUILD compiles and links against Debian's packages,
// so a missing -dev package shows up here with a clear name instead of deep inside a component's build.
#include <curl/curl.h>
#include <grpcpp/grpcpp.h>
#include <libmnl/libmnl.h>
#include <libnftnl/table.h>
#include <re2/re2.h>

#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

extern "C" {
#include <libiptc/libiptc.h>
}

namespace {

TEST(SystemLibraries, AbslAndRe2) {
  absl::StatusOr<int> v = 7;
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(absl::StrCat("a", *v), "a7");
  std::string uid;
  EXPECT_TRUE(RE2::PartialMatch("kubepods-pod1234_5678.slice", R"(pod([0-9a-f_]+)\.slice)", &uid));
  EXPECT_EQ(uid, "1234_5678");
}

TEST(SystemLibraries, JsonCurlGrpcNetfilter) {
  auto j = nlohmann::json::parse(R"({"kind":"Pod"})");
  EXPECT_EQ(j["kind"], "Pod");
  EXPECT_NE(curl_version(), nullptr);
  EXPECT_FALSE(grpc::Version().empty());
  nftnl_table* t = nftnl_table_alloc();
  ASSERT_NE(t, nullptr);
  nftnl_table_free(t);
  EXPECT_NE(iptc_strerror(0), nullptr);
  boost::beast::http::request<boost::beast::http::string_body> req;
  req.method(boost::beast::http::verb::get);
  EXPECT_EQ(req.method_string(), "GET");
}

}  // namespace
