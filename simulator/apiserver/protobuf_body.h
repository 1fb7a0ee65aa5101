// Decoding of Kubernetes protobuf request bodies (application/vnd.kubernetes.protobuf) into the JSON objects
// the store keeps, for the kinds real clients send that way: client-go's typed clientsets (Helm's release
// storage: Secrets; `helm install --create-namespace` and `kubectl create ns`: Namespaces; ConfigMaps)
// default to protobuf and, unlike with CBOR, do not fall back to JSON on 415.
//
// Wire format (k8s.io/apimachinery/pkg/runtime/serializer/protobuf): the 4-byte magic "k8s\0", then a
// runtime.Unknown message {1: TypeMeta{1: apiVersion, 2: kind}, 2: raw (the object's own message), 3:
// contentEncoding, 4: contentType}. The object messages follow k8s.io/api/core/v1/generated.proto (field
// numbers below). Fields we do not model are skipped; a kind we do not decode is Unimplemented (the route
// answers 415, as a server without that serializer would).
#ifndef PNC_SIMULATOR_APISERVER_PROTOBUF_BODY_H_
#define PNC_SIMULATOR_APISERVER_PROTOBUF_BODY_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace pnc::sim {

inline constexpr char kProtobufMediaType[] = "application/vnd.kubernetes.protobuf";

// InvalidArgument for a malformed body; Unimplemented for a kind not listed above.
absl::StatusOr<nlohmann::json> DecodeKubeProtobuf(absl::string_view body);

}  // namespace pnc::sim

#endif  // PNC_SIMULATOR_APISERVER_PROTOBUF_BODY_H_
