// kubectl's table output (Accept: application/json;as=Table;v=v1;g=meta.k8s.io): the default columns of
// the real printers for pods, namespaces, nodes and events (a subset), Name and Age for the other kinds.
#ifndef PNC_SIMULATOR_APISERVER_TABLE_H_
#define PNC_SIMULATOR_APISERVER_TABLE_H_

#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "simulator/apiserver/store.h"

namespace pnc::sim {

// A meta.k8s.io/v1 Table of `items` (rows carry PartialObjectMetadata).
nlohmann::json TableOf(Resource r, const std::vector<ObjectPtr>& items, uint64_t rv, const std::string& cont);

bool WantsTable(const std::string& accept);

}  // namespace pnc::sim

#endif  // PNC_SIMULATOR_APISERVER_TABLE_H_
