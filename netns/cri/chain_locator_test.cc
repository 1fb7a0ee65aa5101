#include "netns/cri/chain_locator.h"

#include "gtest/gtest.h"
#include "netns/fake_locator.h"

namespace pnc::netns {
namespace {

struct Chain {
  FakeLocator* first;
  FakeLocator* second;
  std::unique_ptr<Locator> chain;
};

Chain Make() {
  auto a = std::make_unique<FakeLocator>();
  auto b = std::make_unique<FakeLocator>();
  Chain c{a.get(), b.get(), nullptr};
  std::vector<std::unique_ptr<Locator>> v;
  v.push_back(std::move(a));
  v.push_back(std::move(b));
  c.chain = NewChainLocator(std::move(v));
  return c;
}

const PodRef kPod{"uid-1", "ns", "name", {}};

TEST(ChainLocatorTest, FirstSuccessWins) {
  Chain c = Make();
  c.first->AddSandbox("uid-1", 11);
  c.second->AddSandbox("uid-1", 22);
  absl::StatusOr<NetnsHandle> h = c.chain->Locate(kPod);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->inode(), 11u);
  EXPECT_EQ(c.second->locate_calls(), 0);
  EXPECT_EQ(c.chain->Name(), "chain(fake,fake)");
}

TEST(ChainLocatorTest, FallsThroughToTheNextLocator) {
  Chain c = Make();
  c.first->SetError("uid-1", absl::UnavailableError("runtime socket missing"));
  c.second->AddSandbox("uid-1", 22);
  absl::StatusOr<NetnsHandle> h = c.chain->Locate(kPod);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->inode(), 22u);
}

TEST(ChainLocatorTest, ReadyPodUidsFromTheFirstLocatorThatCanList) {
  Chain c = Make();
  c.first->AddSandbox("uid-1", 11);
  c.second->AddSandbox("uid-2", 22);
  absl::StatusOr<std::vector<std::string>> uids = c.chain->ReadyPodUids();
  ASSERT_TRUE(uids.ok()) << uids.status();
  EXPECT_EQ(*uids, std::vector<std::string>{"uid-1"});
  EXPECT_EQ(c.second->list_calls(), 0);
  c.first->SetListError(absl::UnavailableError("runtime socket missing"));
  uids = c.chain->ReadyPodUids();
  ASSERT_TRUE(uids.ok()) << uids.status();
  EXPECT_EQ(*uids, std::vector<std::string>{"uid-2"});
  c.second->SetListError(absl::DeadlineExceededError("slow"));
  EXPECT_TRUE(absl::IsUnavailable(c.chain->ReadyPodUids().status()));  // the first real error
}

TEST(ChainLocatorTest, NotFoundOnlyWhenAllSayNotFound) {
  Chain c = Make();
  absl::Status st = c.chain->Locate(kPod).status();
  EXPECT_TRUE(absl::IsNotFound(st)) << st;
  c.first->SetError("uid-1", absl::UnavailableError("runtime down"));
  st = c.chain->Locate(kPod).status();
  EXPECT_TRUE(absl::IsUnavailable(st)) << st;
  EXPECT_NE(st.message().find("runtime down"), std::string::npos);
  c.second->SetError("uid-1", absl::FailedPreconditionError("host netns"));
  st = c.chain->Locate(kPod).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  EXPECT_NE(st.message().find("runtime down"), std::string::npos);  // every message kept
  EXPECT_NE(st.message().find("host netns"), std::string::npos);
}

TEST(ChainLocatorTest, ARefusalIsFinal) {
  Chain c = Make();
  c.first->SetError("uid-1",
                    absl::FailedPreconditionError("sandbox has IP 10.0.0.9 but the pod has 10.0.0.5"));
  c.second->AddSandbox("uid-1", 22);  // a less informed locator would hand this out
  absl::Status st = c.chain->Locate(kPod).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  EXPECT_NE(st.message().find("10.0.0.9"), std::string::npos);
  EXPECT_EQ(c.second->locate_calls(), 0);
}

TEST(ChainLocatorTest, EmptyChainIsAnError) {
  std::unique_ptr<Locator> chain = NewChainLocator({});
  EXPECT_EQ(chain->Locate(kPod).status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace pnc::netns
