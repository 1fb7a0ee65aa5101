// The resource routes of the fake API server: one function per verb on a parsed resource path, independent
// of the HTTP transport (server.cc). Behaviour follows the real kube-apiserver where clients observe it:
// - content negotiation: JSON only. A body in another media type (e.g. kubectl's protobuf) is 415
//   UnsupportedMediaType, which makes client-go fall back to JSON; an Accept list without JSON (or */*) is
//   406 NotAcceptable; `application/vnd.kubernetes.protobuf,application/json` gets JSON.
// - writes: dryRun=All validates and answers but persists nothing (every verb); fieldManager (default: the
//   User-Agent's product name) records managedFields; fieldValidation=Strict turns unknown fields into 400
//   BadRequest ("strict decoding error: unknown field ..."), Warn/unset sends `Warning: 299` headers,
//   Ignore drops them silently; server-side apply (application/apply-patch+yaml, JSON body) with force.
// - watch: sendInitialEvents=true (needs resourceVersionMatch=NotOlderThan and allowWatchBookmarks=true,
//   422 otherwise) streams the current objects as ADDED, then a BOOKMARK annotated
//   k8s.io/initial-events-end=true, then changes (the WatchList protocol).
#ifndef PNC_SIMULATOR_APISERVER_ROUTES_H_
#define PNC_SIMULATOR_APISERVER_ROUTES_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "simulator/apiserver/request.h"
#include "simulator/apiserver/store.h"

namespace pnc::sim {

// One response for an ordinary request.
struct Reply {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  int retry_after = 0;
  std::vector<std::string> warnings;  // Warning: 299 - "<text>" headers
};

Reply StatusReply(const absl::Status& s);

// A request that turns its connection into a watch stream.
struct WatchPlan {
  Resource resource;
  std::string ns;
  WatchOptions options;
  int timeout_seconds = 0;
  bool table = false;
};

struct ApiRequest {
  std::string method;  // "GET", "POST", ...
  Query query;
  std::string content_type;
  std::string accept;
  std::string user_agent;
  const std::string* body = nullptr;
};

// Serves a request for a resource path; for a watch sets *watch and returns an empty reply.
Reply ServeResource(Store* store, const ApiRequest& req, const Target& target,
                    std::optional<WatchPlan>* watch);

}  // namespace pnc::sim

#endif  // PNC_SIMULATOR_APISERVER_ROUTES_H_
