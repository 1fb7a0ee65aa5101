// API semantics of the fake server's store: what a controller can observe through list/watch/patch.
#include "simulator/apiserver/store.h"

#include <deque>

#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "simulator/apiserver/api_error.h"

namespace pnc::sim {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;

struct Seen {
  std::string type;
  std::string name;
  uint64_t rv;
  json object;
};

class RecordingSink : public WatchSink {
 public:
  void OnEvent(const std::string& type, const ObjectPtr& obj, uint64_t rv, const EventLine& line) override {
    absl::MutexLock l(&mu_);
    events_.push_back({type, FieldValue(*obj, "metadata.name"), rv, *obj});
    lines_.push_back(line);
  }
  void OnClosed() override {
    absl::MutexLock l(&mu_);
    closed_ = true;
  }
  std::vector<Seen> Take() {
    absl::MutexLock l(&mu_);
    std::vector<Seen> out(events_.begin(), events_.end());
    events_.clear();
    return out;
  }
  std::vector<EventLine> lines() {
    absl::MutexLock l(&mu_);
    return lines_;
  }
  bool closed() {
    absl::MutexLock l(&mu_);
    return closed_;
  }

 private:
  absl::Mutex mu_;
  std::deque<Seen> events_;
  std::vector<EventLine> lines_;
  bool closed_ = false;
};

json Pod(const std::string& name, json labels = json::object(), const std::string& node = "") {
  json p = {{"metadata", {{"name", name}, {"labels", labels}}},
            {"spec", {{"containers", {{{"name", "app"}, {"image", "busybox"}}}}}}};
  if (!node.empty()) p["spec"]["nodeName"] = node;
  return p;
}

std::vector<std::string> Types(const std::vector<Seen>& seen) {
  std::vector<std::string> out;
  for (const auto& s : seen) out.push_back(s.type + ":" + s.name);
  return out;
}

std::string Rv(const ObjectPtr& o) { return FieldValue(*o, "metadata.resourceVersion"); }

TEST(StoreTest, CreateFillsMetadataAndRejectsDuplicates) {
  Store store;
  auto p = store.Create(Resource::kPods, "default", Pod("a"));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(FieldValue(**p, "metadata.namespace"), "default");
  EXPECT_EQ(FieldValue(**p, "status.phase"), "Pending");
  EXPECT_EQ(FieldValue(**p, "metadata.uid").size(), 36u);
  EXPECT_EQ(FieldValue(**p, "metadata.uid")[14], '4');  // UUID v4
  EXPECT_EQ((**p)["metadata"]["generation"], 1);
  EXPECT_FALSE(FieldValue(**p, "metadata.creationTimestamp").empty());
  auto dup = store.Create(Resource::kPods, "default", Pod("a"));
  EXPECT_EQ(HttpCode(dup.status()), 409);
  EXPECT_EQ(StatusObject(dup.status())["reason"], "AlreadyExists");
  auto no_ns = store.Create(Resource::kPods, "missing", Pod("a"));
  EXPECT_EQ(HttpCode(no_ns.status()), 404);
  EXPECT_EQ(StatusObject(no_ns.status())["message"], "namespaces \"missing\" not found");
  auto bad = store.Create(Resource::kPods, "default", Pod("Bad_Name"));
  EXPECT_EQ(HttpCode(bad.status()), 422);
  EXPECT_EQ(StatusObject(bad.status())["reason"], "Invalid");
}

TEST(StoreTest, ResourceVersionIsGlobalAndMonotonic) {
  Store store;
  auto a = store.Create(Resource::kPods, "default", Pod("a"));
  auto ns = store.Create(Resource::kNamespaces, "", {{"metadata", {{"name", "other"}}}});
  auto b = store.Create(Resource::kPods, "other", Pod("b"));
  ASSERT_TRUE(a.ok() && ns.ok() && b.ok());
  EXPECT_LT(std::stoull(Rv(*a)), std::stoull(Rv(*ns)));
  EXPECT_LT(std::stoull(Rv(*ns)), std::stoull(Rv(*b)));
  EXPECT_EQ(std::stoull(Rv(*b)), store.ResourceVersion());
}

TEST(StoreTest, WatchResumesFromResourceVersionAndEncodesOnce) {
  Store store;
  auto a = store.Create(Resource::kPods, "default", Pod("a"));
  ASSERT_TRUE(a.ok());
  uint64_t after_a = store.ResourceVersion();
  ASSERT_TRUE(store.Create(Resource::kPods, "default", Pod("b")).ok());
  ASSERT_TRUE(store.Delete(Resource::kPods, "default", "a", {}).ok());

  auto s1 = std::make_shared<RecordingSink>();
  auto s2 = std::make_shared<RecordingSink>();
  ASSERT_TRUE(
      store.Watch(Resource::kPods, "default", {.resource_version = std::to_string(after_a)}, s1).ok());
  ASSERT_TRUE(store.Watch(Resource::kPods, "", {.resource_version = std::to_string(after_a)}, s2).ok());
  EXPECT_THAT(Types(s1->Take()), ElementsAre("ADDED:b", "DELETED:a"));
  ASSERT_TRUE(store.Create(Resource::kPods, "default", Pod("c")).ok());
  auto live1 = s1->lines();
  auto live2 = s2->lines();
  // The live event reached both watchers as the very same encoded buffer.
  EXPECT_EQ(live1.back().get(), live2.back().get());
  EXPECT_EQ(json::parse(*live1.back())["type"], "ADDED");
  EXPECT_EQ(json::parse(*live1.back())["object"]["metadata"]["name"], "c");

  // "0": the current state as synthetic ADDED events.
  auto s3 = std::make_shared<RecordingSink>();
  ASSERT_TRUE(store.Watch(Resource::kPods, "default", {.resource_version = "0"}, s3).ok());
  EXPECT_THAT(Types(s3->Take()), ElementsAre("ADDED:b", "ADDED:c"));
}

TEST(StoreTest, CompactionMakesOldVersionsExpire) {
  Store::Options o;
  o.history_size = 3;
  Store store(o);
  ASSERT_TRUE(store.Create(Resource::kPods, "default", Pod("a")).ok());
  uint64_t old_rv = store.ResourceVersion();
  for (auto n : {"b", "c", "d", "e"}) ASSERT_TRUE(store.Create(Resource::kPods, "default", Pod(n)).ok());
  auto sink = std::make_shared<RecordingSink>();
  auto w = store.Watch(Resource::kPods, "", {.resource_version = std::to_string(old_rv)}, sink);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(HttpCode(w.status()), 410);
  EXPECT_EQ(StatusObject(w.status())["reason"], "Expired");
  // Within the window it still works.
  EXPECT_TRUE(
      store
          .Watch(Resource::kPods, "", {.resource_version = std::to_string(store.ResourceVersion() - 2)}, sink)
          .ok());
  EXPECT_THAT(Types(sink->Take()), ElementsAre("ADDED:d", "ADDED:e"));
  // The fault hook forgets everything.
  uint64_t now = store.ResourceVersion();
  ASSERT_TRUE(store.Create(Resource::kPods, "default", Pod("f")).ok());
  store.Compact();
  EXPECT_EQ(
      HttpCode(store.Watch(Resource::kPods, "", {.resource_version = std::to_string(now)}, sink).status()),
      410);
  EXPECT_TRUE(
      store.Watch(Resource::kPods, "", {.resource_version = std::to_string(store.ResourceVersion())}, sink)
          .ok());
}

TEST(StoreTest, BookmarkCarriesCurrentVersionOnlyWhenAsked) {
  Store store;
  auto with = std::make_shared<RecordingSink>();
  auto without = std::make_shared<RecordingSink>();
  auto id1 = store.Watch(Resource::kPods, "", {.resource_version = "1", .bookmarks = true}, with);
  auto id2 = store.Watch(Resource::kPods, "", {.resource_version = "1"}, without);
  ASSERT_TRUE(id1.ok() && id2.ok());
  ASSERT_TRUE(store.Create(Resource::kPods, "default", Pod("a")).ok());
  with->Take();
  without->Take();
  store.Bookmark(*id1);
  store.Bookmark(*id2);
  auto seen = with->Take();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].type, "BOOKMARK");
  EXPECT_EQ(seen[0].object["metadata"]["resourceVersion"], std::to_string(store.ResourceVersion()));
  EXPECT_EQ(seen[0].object["kind"], "Pod");
  EXPECT_TRUE(without->Take().empty());
}

TEST(StoreTest, SchedulerBindsAndNodeWatchSeesPodEnterSelector) {
  Store store;
  for (auto n : {"node-b", "node-a"})
    ASSERT_TRUE(store.Create(Resource::kNodes, "", {{"metadata", {{"name", n}}}}).ok());
  auto on_a = std::make_shared<RecordingSink>();
  auto on_b = std::make_shared<RecordingSink>();
  ASSERT_TRUE(store
                  .Watch(Resource::kPods, "",
                         {.field_selector = "spec.nodeName=node-a", .resource_version = "0"}, on_a)
                  .ok());
  ASSERT_TRUE(store
                  .Watch(Resource::kPods, "",
                         {.field_selector = "spec.nodeName=node-b", .resource_version = "0"}, on_b)
                  .ok());
  auto p1 = store.Create(Resource::kPods, "default", Pod("p1"));
  auto p2 = store.Create(Resource::kPods, "default", Pod("p2"));
  ASSERT_TRUE(p1.ok() && p2.ok());
  EXPECT_EQ(FieldValue(**p1, "spec.nodeName"), "");  // the create response is unbound
  EXPECT_EQ(FieldValue(**store.Get(Resource::kPods, "default", "p1"), "spec.nodeName"), "node-a");
  EXPECT_EQ(FieldValue(**store.Get(Resource::kPods, "default", "p2"), "spec.nodeName"), "node-b");
  auto a = on_a->Take();
  EXPECT_THAT(Types(a), ElementsAre("ADDED:p1"));  // entered the selector through the binding
  EXPECT_EQ(a[0].object["status"]["conditions"][0]["type"], "PodScheduled");
  EXPECT_THAT(Types(on_b->Take()), ElementsAre("ADDED:p2"));
}

TEST(StoreTest, LabelSelectorTransitionsProduceAddedAndDeleted) {
  Store store;
  auto sink = std::make_shared<RecordingSink>();
  ASSERT_TRUE(store
                  .Watch(Resource::kPods, "",
                         {.label_selector = "mesh in (yes),tier!=db", .resource_version = "0"}, sink)
                  .ok());
  ASSERT_TRUE(store.Create(Resource::kPods, "default", Pod("p", {{"mesh", "no"}})).ok());
  ASSERT_TRUE(store
                  .Patch(Resource::kPods, "default", "p", PatchType::kMerge,
                         {{"metadata", {{"labels", {{"mesh", "yes"}}}}}}, Subresource::kNone)
                  .ok());
  ASSERT_TRUE(store
                  .Patch(Resource::kPods, "default", "p", PatchType::kMerge,
                         {{"metadata", {{"annotations", {{"x", "1"}}}}}}, Subresource::kNone)
                  .ok());
  ASSERT_TRUE(store
                  .Patch(Resource::kPods, "default", "p", PatchType::kMerge,
                         {{"metadata", {{"labels", {{"tier", "db"}}}}}}, Subresource::kNone)
                  .ok());
  auto seen = sink->Take();
  EXPECT_THAT(Types(seen), ElementsAre("ADDED:p", "MODIFIED:p", "DELETED:p"));
  // The DELETED-by-transition event shows the last matching state at the new resourceVersion (like the watch
  // cache).
  EXPECT_EQ(seen[2].object["metadata"]["labels"].count("tier"), 0u);
  EXPECT_EQ(seen[2].object["metadata"]["resourceVersion"], std::to_string(store.ResourceVersion()));
}

TEST(StoreTest, ListSelectorsAndPagination) {
  Store store;
  ASSERT_TRUE(store.Create(Resource::kNodes, "", {{"metadata", {{"name", "n1"}}}}).ok());
  for (int i = 0; i < 7; ++i) {
    ASSERT_TRUE(
        store
            .Create(Resource::kPods, "default",
                    Pod("p" + std::to_string(i), {{"app", i % 2 ? "odd" : "even"}}, i < 3 ? "n1" : "n2"))
            .ok());
  }
  auto even = store.List(Resource::kPods, "default", {.label_selector = "app=even"});
  ASSERT_TRUE(even.ok());
  EXPECT_EQ(even->items.size(), 4u);
  auto n1 = store.List(Resource::kPods, "", {.field_selector = "spec.nodeName=n1"});
  EXPECT_EQ(n1->items.size(), 3u);
  auto not_n1 =
      store.List(Resource::kPods, "", {.field_selector = "spec.nodeName!=n1,metadata.namespace=default"});
  EXPECT_EQ(not_n1->items.size(), 4u);
  auto bad = store.List(Resource::kPods, "", {.field_selector = "spec.containers=x"});
  EXPECT_EQ(HttpCode(bad.status()), 400);
  EXPECT_EQ(StatusObject(bad.status())["message"], "field label not supported: spec.containers");
  auto exists = store.List(Resource::kPods, "", {.label_selector = "!app"});
  EXPECT_EQ(exists->items.size(), 0u);

  std::vector<std::string> names;
  ListOptions lo{.limit = 3};
  int pages = 0;
  uint64_t first_rv = 0;
  while (true) {
    auto page = store.List(Resource::kPods, "default", lo);
    ASSERT_TRUE(page.ok()) << page.status();
    if (pages == 0) {
      first_rv = page->resource_version;
      EXPECT_EQ(page->remaining, 4);
    }
    EXPECT_EQ(page->resource_version, first_rv);
    for (const auto& o : page->items) names.push_back(FieldValue(*o, "metadata.name"));
    ++pages;
    if (page->continue_token.empty()) break;
    lo.continue_token = page->continue_token;
  }
  EXPECT_EQ(pages, 3);
  EXPECT_THAT(names, ElementsAre("p0", "p1", "p2", "p3", "p4", "p5", "p6"));
  // A continue token from before a compaction is too old.
  auto page = store.List(Resource::kPods, "default", {.limit = 2});
  ASSERT_TRUE(store.Create(Resource::kPods, "default", Pod("late")).ok());
  store.Compact();
  auto expired = store.List(Resource::kPods, "default", {.limit = 2, .continue_token = page->continue_token});
  EXPECT_EQ(HttpCode(expired.status()), 410);
}

TEST(StoreTest, MergeAndStrategicPatchSemantics) {
  Store store;
  json pod = Pod("p", {{"a", "1"}, {"b", "2"}});
  pod["spec"]["containers"].push_back({{"name", "sidecar"}, {"image", "proxy"}});
  ASSERT_TRUE(store.Create(Resource::kPods, "default", pod).ok());
  // Merge patch: null deletes a key, lists are replaced.
  auto m = store.Patch(Resource::kPods, "default", "p", PatchType::kMerge,
                       {{"metadata", {{"labels", {{"a", nullptr}, {"c", "3"}}}}}}, Subresource::kNone);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((**m)["metadata"]["labels"], json({{"b", "2"}, {"c", "3"}}));
  // Strategic: containers merge by name.
  auto s = store.Patch(Resource::kPods, "default", "p", PatchType::kStrategicMerge,
                       {{"spec", {{"containers", {{{"name", "app"}, {"image", "busybox:2"}}}}}}},
                       Subresource::kNone);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ((**s)["spec"]["containers"].size(), 2u);
  EXPECT_EQ((**s)["spec"]["containers"][0]["image"], "busybox:2");
  EXPECT_EQ((**s)["spec"]["containers"][1]["name"], "sidecar");
  EXPECT_EQ((**s)["metadata"]["generation"], 2);  // spec changed
  // Strategic $patch: delete removes one list element.
  auto d = store.Patch(Resource::kPods, "default", "p", PatchType::kStrategicMerge,
                       {{"spec", {{"containers", {{{"name", "sidecar"}, {"$patch", "delete"}}}}}}},
                       Subresource::kNone);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ((**d)["spec"]["containers"].size(), 1u);
  // JSON patch.
  auto j =
      store.Patch(Resource::kPods, "default", "p", PatchType::kJson,
                  json::array({{{"op", "add"}, {"path", "/metadata/annotations"}, {"value", {{"k", "v"}}}}}),
                  Subresource::kNone);
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ((**j)["metadata"]["annotations"]["k"], "v");
  auto jbad = store.Patch(Resource::kPods, "default", "p", PatchType::kJson,
                          json::array({{{"op", "test"}, {"path", "/metadata/name"}, {"value", "other"}}}),
                          Subresource::kNone);
  EXPECT_EQ(HttpCode(jbad.status()), 400);
  // A patch that changes nothing keeps the resourceVersion.
  std::string rv = Rv(*j);
  auto noop = store.Patch(Resource::kPods, "default", "p", PatchType::kMerge,
                          {{"metadata", {{"annotations", {{"k", "v"}}}}}}, Subresource::kNone);
  EXPECT_EQ(Rv(*noop), rv);
}

TEST(StoreTest, StatusSubresourceKeepsSpecButTakesAnnotations) {
  Store store;
  ASSERT_TRUE(store.Create(Resource::kPods, "default", Pod("p")).ok());
  auto st = store.Patch(
      Resource::kPods, "default", "p", PatchType::kMerge,
      {{"metadata", {{"annotations", {{"pod-network-controller.istio.io/status", "initialized"}}}}},
       {"spec", {{"nodeName", "elsewhere"}}},
       {"status", {{"phase", "Running"}, {"podIP", "10.0.0.5"}}}},
      Subresource::kStatus);
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(FieldValue(**st, "status.phase"), "Running");
  EXPECT_EQ((**st)["metadata"]["annotations"]["pod-network-controller.istio.io/status"], "initialized");
  EXPECT_EQ(FieldValue(**st, "spec.nodeName"), "");
  // The main resource ignores status.
  auto main = store.Patch(Resource::kPods, "default", "p", PatchType::kMerge,
                          {{"status", {{"phase", "Failed"}}}}, Subresource::kNone);
  ASSERT_TRUE(main.ok());
  EXPECT_EQ(FieldValue(**main, "status.phase"), "Running");
}

TEST(StoreTest, PreconditionsConflict) {
  Store store;
  auto p = store.Create(Resource::kPods, "default", Pod("p"));
  ASSERT_TRUE(p.ok());
  std::string uid = FieldValue(**p, "metadata.uid");
  auto wrong_uid = store.Patch(
      Resource::kPods, "default", "p", PatchType::kMerge,
      {{"metadata", {{"uid", "00000000-0000-4000-8000-000000000000"}, {"annotations", {{"a", "b"}}}}}},
      Subresource::kStatus);
  // A real kube-apiserver validates metadata.uid as immutable: 422 Invalid with a cause, not 409.
  ASSERT_EQ(HttpCode(wrong_uid.status()), 422);
  EXPECT_EQ(StatusObject(wrong_uid.status()),
            json::parse(R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
      "message":"Pod \"p\" is invalid: metadata.uid: Invalid value: \"00000000-0000-4000-8000-000000000000\": field is immutable",
      "reason":"Invalid","code":422,"details":{"name":"p","kind":"Pod","causes":[{"reason":"FieldValueInvalid",
      "message":"Invalid value: \"00000000-0000-4000-8000-000000000000\": field is immutable","field":"metadata.uid"}]}})"));
  // The same through a strategic merge patch on the main resource and through PUT.
  auto wrong_uid_smp =
      store.Patch(Resource::kPods, "default", "p", PatchType::kStrategicMerge,
                  {{"metadata", {{"uid", "00000000-0000-4000-8000-000000000001"}}}}, Subresource::kNone);
  EXPECT_EQ(HttpCode(wrong_uid_smp.status()), 422);
  json wrong_put = **p;
  wrong_put["metadata"]["uid"] = "00000000-0000-4000-8000-000000000002";
  wrong_put["metadata"].erase("resourceVersion");
  auto wrong_uid_put = store.Update(Resource::kPods, "default", "p", wrong_put, Subresource::kStatus);
  EXPECT_EQ(HttpCode(wrong_uid_put.status()), 422);
  EXPECT_EQ(StatusObject(wrong_uid_put.status())["details"]["causes"][0]["field"], "metadata.uid");
  auto right_uid =
      store.Patch(Resource::kPods, "default", "p", PatchType::kMerge,
                  {{"metadata", {{"uid", uid}, {"annotations", {{"a", "b"}}}}}}, Subresource::kStatus);
  ASSERT_TRUE(right_uid.ok()) << right_uid.status();
  auto stale_rv = store.Patch(Resource::kPods, "default", "p", PatchType::kMerge,
                              {{"metadata", {{"resourceVersion", Rv(*p)}, {"annotations", {{"a", "c"}}}}}},
                              Subresource::kNone);
  EXPECT_EQ(HttpCode(stale_rv.status()), 409);

  // PUT with a stale resourceVersion.
  json body = **right_uid;
  body["metadata"]["labels"] = {{"x", "y"}};
  json stale = body;
  stale["metadata"]["resourceVersion"] = Rv(*p);
  auto put_stale = store.Update(Resource::kPods, "default", "p", stale, Subresource::kNone);
  EXPECT_EQ(HttpCode(put_stale.status()), 409);
  EXPECT_THAT(std::string(put_stale.status().message()),
              ::testing::HasSubstr("the object has been modified"));
  auto put = store.Update(Resource::kPods, "default", "p", body, Subresource::kNone);
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_EQ((**put)["metadata"]["labels"]["x"], "y");

  // Delete preconditions.
  auto del_wrong = store.Delete(Resource::kPods, "default", "p", {.preconditions = {.uid = "nope"}});
  EXPECT_EQ(HttpCode(del_wrong.status()), 409);
  auto del_stale =
      store.Delete(Resource::kPods, "default", "p", {.preconditions = {.resource_version = Rv(*p)}});
  EXPECT_EQ(HttpCode(del_stale.status()), 409);
  auto del = store.Delete(Resource::kPods, "default", "p",
                          {.preconditions = {.uid = uid, .resource_version = Rv(*put)}});
  ASSERT_TRUE(del.ok()) << del.status();
  EXPECT_EQ(FieldValue(**del, "metadata.name"), "p");
  EXPECT_EQ(HttpCode(store.Get(Resource::kPods, "default", "p").status()), 404);
  EXPECT_EQ(HttpCode(store.Delete(Resource::kPods, "default", "p", {}).status()), 404);
}

TEST(StoreTest, GracefulPodDeletionWaitsForTheKubelet) {
  Store::Options o;
  o.graceful_pod_deletion = true;
  Store store(o);
  auto sink = std::make_shared<RecordingSink>();
  ASSERT_TRUE(store.Watch(Resource::kPods, "", {.resource_version = "0"}, sink).ok());
  ASSERT_TRUE(store.Create(Resource::kPods, "default", Pod("bound", {}, "n1")).ok());
  ASSERT_TRUE(store.Create(Resource::kPods, "default", Pod("unbound")).ok());  // no nodes: stays unbound
  auto first = store.Delete(Resource::kPods, "default", "bound", {});
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE((**first)["metadata"].contains("deletionTimestamp"));
  EXPECT_EQ((**first)["metadata"]["deletionGracePeriodSeconds"], 30);
  EXPECT_TRUE(store.Get(Resource::kPods, "default", "bound").ok());  // terminating, still there
  // A second graceful delete changes nothing; a recreate under the same name must wait.
  EXPECT_EQ(Rv(*store.Delete(Resource::kPods, "default", "bound", {})), Rv(*first));
  EXPECT_EQ(HttpCode(store.Create(Resource::kPods, "default", Pod("bound", {}, "n1")).status()), 409);
  // The kubelet's final delete.
  ASSERT_TRUE(store.Delete(Resource::kPods, "default", "bound", {.grace_period_seconds = 0}).ok());
  EXPECT_EQ(HttpCode(store.Get(Resource::kPods, "default", "bound").status()), 404);
  // Unbound pods go at once.
  ASSERT_TRUE(store.Delete(Resource::kPods, "default", "unbound", {}).ok());
  EXPECT_THAT(Types(sink->Take()), ElementsAre("ADDED:bound", "ADDED:unbound", "MODIFIED:bound",
                                               "DELETED:bound", "DELETED:unbound"));
}

TEST(StoreTest, RecreatedPodGetsNewUid) {
  Store store;
  auto a = store.Create(Resource::kPods, "default", Pod("p"));
  ASSERT_TRUE(store.Delete(Resource::kPods, "default", "p", {}).ok());
  auto b = store.Create(Resource::kPods, "default", Pod("p"));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(FieldValue(**a, "metadata.uid"), FieldValue(**b, "metadata.uid"));
}

class KubeletSink : public RecordingSink {
 public:
  bool Droppable() const override { return false; }
};

TEST(StoreTest, DropAllWatchesClosesClientSinksOnly) {
  Store store;
  auto sink = std::make_shared<RecordingSink>();
  auto kubelet = std::make_shared<KubeletSink>();
  ASSERT_TRUE(store.Watch(Resource::kPods, "", {}, sink).ok());
  ASSERT_TRUE(store.Watch(Resource::kPods, "", {.field_selector = "spec.nodeName=n"}, kubelet).ok());
  EXPECT_EQ(store.WatchCount(), 2u);
  store.DropAllWatches();
  EXPECT_TRUE(sink->closed());
  EXPECT_FALSE(kubelet->closed());
  EXPECT_EQ(store.WatchCount(), 1u);
  ASSERT_TRUE(store.Create(Resource::kPods, "default", Pod("p", {}, "n")).ok());
  EXPECT_TRUE(sink->Take().empty());
  EXPECT_THAT(Types(kubelet->Take()), ElementsAre("ADDED:p"));
}

json V1Event(const std::string& name) {
  return {{"apiVersion", "events.k8s.io/v1"},
          {"kind", "Event"},
          {"metadata", {{"name", name}}},
          {"eventTime", "2026-12-02T10:00:00.000000Z"},
          {"type", "Normal"},
          {"reason", "Started"},
          {"action", "Start"},
          {"note", "hello"},
          {"reportingController", "example.com/tester"},
          {"reportingInstance", "tester-1"},
          {"regarding", {{"kind", "Pod"}, {"name", "p"}, {"namespace", "default"}}}};
}

TEST(EventsV1Test, OneStoredEventServedUnderBothGroups) {
  Store store;
  auto core_watch = std::make_shared<RecordingSink>();
  auto v1_watch = std::make_shared<RecordingSink>();
  ASSERT_TRUE(store.Watch(Resource::kEvents, "default", {}, core_watch).ok());
  ASSERT_TRUE(store.Watch(Resource::kEventsV1, "default", {}, v1_watch).ok());

  auto created = store.Create(Resource::kEventsV1, "default", V1Event("e1"));
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ((**created)["apiVersion"], "events.k8s.io/v1");
  EXPECT_EQ((**created)["note"], "hello");
  EXPECT_EQ((**created)["regarding"]["name"], "p");
  EXPECT_FALSE((**created).contains("message"));

  // The same object through core v1: the core field names.
  auto core = store.Get(Resource::kEvents, "default", "e1");
  ASSERT_TRUE(core.ok());
  EXPECT_EQ((**core)["apiVersion"], "v1");
  EXPECT_EQ((**core)["message"], "hello");
  EXPECT_EQ((**core)["involvedObject"]["name"], "p");
  EXPECT_EQ((**core)["reportingComponent"], "example.com/tester");
  EXPECT_EQ(FieldValue(**core, "metadata.uid"), FieldValue(**created, "metadata.uid"));

  // A core create is listed by events.k8s.io/v1 (eventTime null, deprecated* from the core fields).
  json legacy = {{"metadata", {{"name", "e0"}}},
                 {"involvedObject", {{"kind", "Pod"}, {"name", "q"}}},
                 {"message", "legacy"},
                 {"count", 3},
                 {"type", "Warning"}};
  ASSERT_TRUE(store.Create(Resource::kEvents, "default", legacy).ok());
  auto list = store.List(Resource::kEventsV1, "default", {});
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->items.size(), 2u);
  const json& e0 = *list->items[0];
  EXPECT_EQ(e0["apiVersion"], "events.k8s.io/v1");
  EXPECT_EQ(e0["note"], "legacy");
  EXPECT_EQ(e0["deprecatedCount"], 3);
  EXPECT_TRUE(e0["eventTime"].is_null());

  // Watchers of each group see both events in their own group's shape.
  auto core_seen = core_watch->Take();
  auto v1_seen = v1_watch->Take();
  ASSERT_EQ(core_seen.size(), 2u);
  ASSERT_EQ(v1_seen.size(), 2u);
  EXPECT_EQ(core_seen[0].object["message"], "hello");
  EXPECT_EQ(v1_seen[0].object["note"], "hello");
  EXPECT_EQ(json::parse(*v1_watch->lines()[1])["object"]["note"], "legacy");

  // Merge patch in events.k8s.io field names; a no-op patch changes nothing.
  auto patched = store.Patch(Resource::kEventsV1, "default", "e1", PatchType::kMerge, {{"note", "bye"}},
                             Subresource::kNone);
  ASSERT_TRUE(patched.ok()) << patched.status();
  EXPECT_EQ((**patched)["note"], "bye");
  EXPECT_EQ((**store.Get(Resource::kEvents, "default", "e1"))["message"], "bye");
  uint64_t rv = store.ResourceVersion();
  ASSERT_TRUE(store
                  .Patch(Resource::kEventsV1, "default", "e0", PatchType::kMerge, {{"note", "legacy"}},
                         Subresource::kNone)
                  .ok());
  EXPECT_EQ(store.ResourceVersion(), rv);

  // Deleting through one group removes it from both.
  auto deleted = store.Delete(Resource::kEventsV1, "default", "e1", {});
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ((**deleted)["apiVersion"], "events.k8s.io/v1");
  EXPECT_TRUE(absl::IsNotFound(store.Get(Resource::kEvents, "default", "e1").status()));
  EXPECT_THAT(Types(core_watch->Take()), ElementsAre("MODIFIED:e1", "DELETED:e1"));
  EXPECT_TRUE(absl::IsNotFound(store.Delete(Resource::kEventsV1, "default", "e1", {}).status()));
}

TEST(EventsV1Test, CreateIsValidatedLikeTheRealServer) {
  Store store;
  json bad = {{"metadata", {{"name", "bad"}}},
              {"type", "Info"},
              {"deprecatedCount", 2},
              {"reason", std::string(129, 'r')},
              {"series", {{"count", 1}}},
              {"regarding", {{"kind", "Pod"}, {"name", "p"}, {"namespace", "other"}}}};
  auto r = store.Create(Resource::kEventsV1, "default", bad);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(HttpCode(r.status()), 422);
  json status = StatusObject(r.status());
  EXPECT_EQ(status["details"]["group"], "events.k8s.io");
  EXPECT_EQ(status["details"]["kind"], "Event");
  std::vector<std::string> fields;
  for (const auto& c : status["details"]["causes"])
    fields.push_back(c["field"].get<std::string>() + "|" + c["reason"].get<std::string>());
  EXPECT_THAT(fields,
              ElementsAre("series.count|FieldValueInvalid", "series.lastObservedTime|FieldValueRequired",
                          "eventTime|FieldValueRequired", "type|FieldValueNotSupported",
                          "deprecatedCount|FieldValueInvalid", "reportingController|FieldValueRequired",
                          "reportingInstance|FieldValueRequired", "action|FieldValueRequired",
                          "reason|FieldValueTooLong", "regarding.namespace|FieldValueInvalid"));
  EXPECT_TRUE(absl::IsNotFound(store.Get(Resource::kEvents, "default", "bad").status()));
  // A core v1 Event needs none of that.
  EXPECT_TRUE(store.Create(Resource::kEvents, "default", {{"metadata", {{"name", "ok"}}}}).ok());
}

TEST(SelectorTest, LabelGrammar) {
  json obj = {{"metadata", {{"labels", {{"app", "web"}, {"tier", "fe"}}}}}};
  auto match = [&](const std::string& s) {
    auto sel = LabelSelector::Parse(s);
    EXPECT_TRUE(sel.ok()) << s << ": " << sel.status();
    return sel.ok() && sel->Matches(obj);
  };
  EXPECT_TRUE(match(""));
  EXPECT_TRUE(match("app"));
  EXPECT_FALSE(match("!app"));
  EXPECT_TRUE(match("!missing"));
  EXPECT_TRUE(match("app=web"));
  EXPECT_TRUE(match("app==web"));
  EXPECT_FALSE(match("app!=web"));
  EXPECT_TRUE(match("missing!=x"));  // absent keys satisfy !=
  EXPECT_TRUE(match("app in (db, web)"));
  EXPECT_FALSE(match("app notin (db,web)"));
  EXPECT_TRUE(match("missing notin (x)"));
  EXPECT_TRUE(match("app=web, tier in (fe)"));
  EXPECT_FALSE(LabelSelector::Parse("app in ()").ok());
  EXPECT_FALSE(LabelSelector::Parse("app=we b").ok());
  EXPECT_FALSE(LabelSelector::Parse("app in (a").ok());
}

}  // namespace
}  // namespace pnc::sim
