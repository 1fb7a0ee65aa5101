// Structural schemas (OpenAPI v3 component schemas, named like the real ones: "io.k8s.api.core.v1.Pod") of
// the kinds the fake API server serves, with descriptions, for /openapi/v3 (kubectl explain, kubectl's
// validation) and for unknown-field detection (fieldValidation). Hand-written and partial on purpose: every
// field of ObjectMeta, PodSpec and Container is declared; deeper or less used types (probes, volumes'
// sources, resources, security contexts, statuses, RBAC rules, ...) are declared as objects that preserve
// unknown fields (x-kubernetes-preserve-unknown-fields), so nothing valid is ever reported unknown.
#ifndef PNC_SIMULATOR_APISERVER_SCHEMA_H_
#define PNC_SIMULATOR_APISERVER_SCHEMA_H_

#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "simulator/apiserver/store.h"

namespace pnc::sim {

// {"io.k8s.api.core.v1.Pod": {...}, ...}: every schema, with "$ref": "#/components/schemas/<name>" links
// (wrapped in allOf, as the real documents do when a description sits beside the reference).
const nlohmann::json& ComponentSchemas();

// The schema name of a kind ("io.k8s.api.core.v1.Pod").
std::string SchemaName(Resource r);

// The paths of fields in `object` that the kind's schema does not declare, formatted like the real
// server's strict decoding errors: "spec.foo", "spec.containers[0].bar".
std::vector<std::string> UnknownFields(Resource r, const nlohmann::json& object);

}  // namespace pnc::sim

#endif  // PNC_SIMULATOR_APISERVER_SCHEMA_H_
