// Discovery and OpenAPI documents of the fake API server, generated from the served kinds (store.h) and
// their schemas (schema.h):
//   /version, /api, /apis, /api/v1, /apis/<group>/<version>   (legacy discovery; kubectl falls back to it
//                                                              from aggregated discovery)
//   /openapi/v3, /openapi/v3/<api/v1 | apis/<group>/<version>> (PATCH operations with fieldValidation, so
//                                                              kubectl validates server side; component
//                                                              schemas for `kubectl explain`)
//   /openapi/v2                                               (an empty protobuf document: old kubectl skips
//                                                              client-side validation)
#ifndef PNC_SIMULATOR_APISERVER_DISCOVERY_H_
#define PNC_SIMULATOR_APISERVER_DISCOVERY_H_

#include <optional>
#include <string>

namespace pnc::sim {

struct Document {
  std::string body;
  std::string content_type = "application/json";
};

// The document at `path` (no query), or nullopt if `path` is not a discovery/OpenAPI path.
// `server_address` is host:port for /api's serverAddressByClientCIDRs.
std::optional<Document> DiscoveryDocument(const std::string& path, const std::string& server_address);

}  // namespace pnc::sim

#endif  // PNC_SIMULATOR_APISERVER_DISCOVERY_H_
