#include "simulator/apiserver/schema.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace pnc::sim {
namespace {

using nlohmann::json;
using Props = std::vector<std::pair<std::string, json>>;

json Str(const char* d) { return {{"type", "string"}, {"description", d}}; }
json Int(const char* d) { return {{"type", "integer"}, {"format", "int64"}, {"description", d}}; }
json Bool(const char* d) { return {{"type", "boolean"}, {"description", d}}; }
json Ref(const std::string& name, const char* d) {
  return {{"allOf", {{{"$ref", "#/components/schemas/" + name}}}}, {"description", d}};
}
json Arr(json items, const char* d) {
  return {{"type", "array"}, {"items", std::move(items)}, {"description", d}};
}
json StrMap(const char* d) {
  return {{"type", "object"},
          {"additionalProperties", {{"type", "string"}, {"default", ""}}},
          {"description", d}};
}
json Free(const char* d) {
  return {{"type", "object"}, {"x-kubernetes-preserve-unknown-fields", true}, {"description", d}};
}
json Obj(const char* d, Props props, std::vector<std::string> required = {}) {
  json p = json::object();
  for (auto& [k, v] : props) p[k] = std::move(v);
  json o = {{"type", "object"}, {"description", d}, {"properties", std::move(p)}};
  if (!required.empty()) o["required"] = required;
  return o;
}
json WithGvk(json schema, const char* group, const char* version, const char* kind) {
  schema["x-kubernetes-group-version-kind"] = {{{"group", group}, {"version", version}, {"kind", kind}}};
  return schema;
}

constexpr char kMeta[] = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
constexpr char kApiVersion[] =
    "APIVersion defines the versioned schema of this representation of an object. Servers should convert "
    "recognized schemas to the latest internal value, and may reject unrecognized values.";
constexpr char kKind[] =
    "Kind is a string value representing the REST resource this object represents. Servers may infer this "
    "from the endpoint the client submits requests to. Cannot be updated. In CamelCase.";
constexpr char kMetaDesc[] = "Standard object's metadata.";

// A top-level kind: apiVersion, kind, metadata and the given fields.
json Kind(const char* d, const char* group, const char* version, const char* kind, Props fields) {
  Props props = {{"apiVersion", Str(kApiVersion)}, {"kind", Str(kKind)}, {"metadata", Ref(kMeta, kMetaDesc)}};
  for (auto& f : fields) props.push_back(std::move(f));
  return WithGvk(Obj(d, std::move(props)), group, version, kind);
}

json Build() {
  json s = json::object();
  s[kMeta] = Obj(
      "ObjectMeta is metadata that all persisted resources must have, which includes all objects users must "
      "create.",
      {{"name", Str("Name must be unique within a namespace. Cannot be updated.")},
       {"generateName", Str("GenerateName is an optional prefix, used by the server, to generate a unique "
                            "name ONLY IF the Name field has not been provided.")},
       {"namespace", Str("Namespace defines the space within which each name must be unique.")},
       {"uid", Str("UID is the unique in time and space value for this object. Populated by the system.")},
       {"resourceVersion", Str("An opaque value that represents the internal version of this object.")},
       {"generation", Int("A sequence number representing a specific generation of the desired state.")},
       {"creationTimestamp", Str("CreationTimestamp is a timestamp representing the server time when this "
                                 "object was created.")},
       {"deletionTimestamp", Str("DeletionTimestamp is RFC 3339 date and time at which this resource will be "
                                 "deleted.")},
       {"deletionGracePeriodSeconds",
        Int("Number of seconds allowed for this object to gracefully terminate.")},
       {"labels",
        StrMap("Map of string keys and values that can be used to organize and categorize objects.")},
       {"annotations", StrMap("Annotations is an unstructured key value map stored with a resource.")},
       {"ownerReferences", Arr(Free("OwnerReference"), "List of objects depended by this object.")},
       {"finalizers", Arr(Str(""), "Must be empty before the object is deleted from the registry.")},
       {"managedFields", Arr(Free("ManagedFieldsEntry"),
                             "ManagedFields maps workflow-id and version to the "
                             "set of fields that are managed by that workflow.")},
       {"selfLink", Str("Deprecated: selfLink is a legacy read-only field.")}});
  s["io.k8s.api.core.v1.ContainerPort"] =
      Obj("ContainerPort represents a network port in a single container.",
          {{"name", Str("If specified, this must be an IANA_SVC_NAME and unique within the pod.")},
           {"containerPort", Int("Number of port to expose on the pod's IP address. 0 < x < 65536.")},
           {"hostPort", Int("Number of port to expose on the host.")},
           {"hostIP", Str("What host IP to bind the external port to.")},
           {"protocol", Str("Protocol for port. Must be UDP, TCP, or SCTP. Defaults to \"TCP\".")}},
          {"containerPort"});
  s["io.k8s.api.core.v1.EnvVar"] = Obj("EnvVar represents an environment variable present in a Container.",
                                       {{"name", Str("Name of the environment variable.")},
                                        {"value", Str("Variable references $(VAR_NAME) are expanded.")},
                                        {"valueFrom", Free("Source for the environment variable's value.")}},
                                       {"name"});
  s["io.k8s.api.core.v1.VolumeMount"] =
      Obj("VolumeMount describes a mounting of a Volume within a container.",
          {{"name", Str("This must match the Name of a Volume.")},
           {"mountPath", Str("Path within the container at which the volume should be mounted.")},
           {"readOnly", Bool("Mounted read-only if true, read-write otherwise (false or unspecified).")},
           {"subPath", Str("Path within the volume from which the container's volume should be mounted.")},
           {"subPathExpr", Str("Expanded path within the volume.")},
           {"mountPropagation", Str("mountPropagation determines how mounts are propagated.")},
           {"recursiveReadOnly", Str("RecursiveReadOnly specifies whether read-only mounts should be handled "
                                     "recursively.")}},
          {"name", "mountPath"});
  const char* kContainer = "io.k8s.api.core.v1.Container";
  s[kContainer] = Obj(
      "A single application container that you want to run within a pod.",
      {{"name", Str("Name of the container specified as a DNS_LABEL. Each container in a pod must have a "
                    "unique name (DNS_LABEL). Cannot be updated.")},
       {"image", Str("Container image name.")},
       {"command", Arr(Str(""), "Entrypoint array. Not executed within a shell.")},
       {"args", Arr(Str(""), "Arguments to the entrypoint.")},
       {"workingDir", Str("Container's working directory.")},
       {"ports",
        Arr(Ref("io.k8s.api.core.v1.ContainerPort", ""), "List of ports to expose from the container.")},
       {"envFrom",
        Arr(Free("EnvFromSource"), "List of sources to populate environment variables in the container.")},
       {"env",
        Arr(Ref("io.k8s.api.core.v1.EnvVar", ""), "List of environment variables to set in the container.")},
       {"resources", Free("Compute Resources required by this container.")},
       {"resizePolicy", Arr(Free("ContainerResizePolicy"), "Resources resize policy for the container.")},
       {"restartPolicy",
        Str("RestartPolicy defines the restart behavior of individual containers in a pod.")},
       {"restartPolicyRules", Arr(Free("ContainerRestartRule"), "Rules for restarting the container.")},
       {"volumeMounts", Arr(Ref("io.k8s.api.core.v1.VolumeMount", ""),
                            "Pod volumes to mount into the container's "
                            "filesystem.")},
       {"volumeDevices", Arr(Free("VolumeDevice"),
                             "volumeDevices is the list of block devices to be used by the "
                             "container.")},
       {"livenessProbe", Free("Periodic probe of container liveness.")},
       {"readinessProbe", Free("Periodic probe of container service readiness.")},
       {"startupProbe", Free("StartupProbe indicates that the Pod has successfully initialized.")},
       {"lifecycle", Free("Actions that the management system should take in response to container lifecycle "
                          "events.")},
       {"terminationMessagePath", Str("Path at which the file to which the container's termination message "
                                      "will be written is mounted.")},
       {"terminationMessagePolicy", Str("Indicate how the termination message should be populated.")},
       {"imagePullPolicy", Str("Image pull policy. One of Always, Never, IfNotPresent.")},
       {"securityContext", Free("SecurityContext defines the security options the container should be run "
                                "with.")},
       {"stdin", Bool("Whether this container should allocate a buffer for stdin in the container runtime.")},
       {"stdinOnce", Bool("Whether the container runtime should close the stdin channel after it has been "
                          "opened by a single attach.")},
       {"tty", Bool("Whether this container should allocate a TTY for itself.")}},
      {"name"});
  const char* kPodSpec = "io.k8s.api.core.v1.PodSpec";
  json containers = Arr(Ref(kContainer, ""), "List of containers belonging to the pod.");
  s[kPodSpec] = Obj(
      "PodSpec is a description of a pod.",
      {{"volumes",
        Arr(Free("Volume"), "List of volumes that can be mounted by containers belonging to the pod.")},
       {"initContainers",
        Arr(Ref(kContainer, ""), "List of initialization containers belonging to the pod.")},
       {"containers", containers},
       {"ephemeralContainers",
        Arr(Free("EphemeralContainer"), "List of ephemeral containers run in this pod.")},
       {"restartPolicy",
        Str("Restart policy for all containers within the pod. One of Always, OnFailure, Never. "
            "Default to Always.")},
       {"terminationGracePeriodSeconds", Int("Optional duration in seconds the pod needs to terminate "
                                             "gracefully.")},
       {"activeDeadlineSeconds", Int("Optional duration in seconds the pod may be active on the node.")},
       {"dnsPolicy", Str("Set DNS policy for the pod. Defaults to \"ClusterFirst\". Valid values are "
                         "'ClusterFirstWithHostNet', 'ClusterFirst', 'Default' or 'None'.")},
       {"nodeSelector",
        StrMap("NodeSelector is a selector which must be true for the pod to fit on a node.")},
       {"serviceAccountName",
        Str("ServiceAccountName is the name of the ServiceAccount to use to run this pod.")},
       {"serviceAccount", Str("DeprecatedServiceAccount is a deprecated alias for ServiceAccountName.")},
       {"automountServiceAccountToken",
        Bool("AutomountServiceAccountToken indicates whether a service account "
             "token should be automatically mounted.")},
       {"nodeName", Str("NodeName indicates in which node this pod is scheduled.")},
       {"hostNetwork", Bool("Host networking requested for this pod.")},
       {"hostPID", Bool("Use the host's pid namespace.")},
       {"hostIPC", Bool("Use the host's ipc namespace.")},
       {"shareProcessNamespace", Bool("Share a single process namespace between all of the containers in a "
                                      "pod.")},
       {"securityContext", Free("SecurityContext holds pod-level security attributes and common container "
                                "settings.")},
       {"imagePullSecrets", Arr(Free("LocalObjectReference"),
                                "ImagePullSecrets is an optional list of references "
                                "to secrets.")},
       {"hostname", Str("Specifies the hostname of the Pod.")},
       {"subdomain", Str("If specified, the fully qualified Pod hostname will be "
                         "\"<hostname>.<subdomain>.<pod namespace>.svc.<cluster domain>\".")},
       {"affinity", Free("If specified, the pod's scheduling constraints.")},
       {"schedulerName", Str("If specified, the pod will be dispatched by specified scheduler.")},
       {"tolerations", Arr(Free("Toleration"), "If specified, the pod's tolerations.")},
       {"hostAliases", Arr(Free("HostAlias"),
                           "HostAliases is an optional list of hosts and IPs that will be "
                           "injected into the pod's hosts file.")},
       {"priorityClassName", Str("If specified, indicates the pod's priority.")},
       {"priority", Int("The priority value.")},
       {"dnsConfig", Free("Specifies the DNS parameters of a pod.")},
       {"readinessGates", Arr(Free("PodReadinessGate"),
                              "If specified, all readiness gates will be evaluated for "
                              "pod readiness.")},
       {"runtimeClassName",
        Str("RuntimeClassName refers to a RuntimeClass object in the node.k8s.io group.")},
       {"enableServiceLinks",
        Bool("EnableServiceLinks indicates whether information about services should be "
             "injected into pod's environment variables.")},
       {"preemptionPolicy", Str("PreemptionPolicy is the Policy for preempting pods with lower priority.")},
       {"overhead", Free("Overhead represents the resource overhead associated with running a pod.")},
       {"topologySpreadConstraints", Arr(Free("TopologySpreadConstraint"),
                                         "TopologySpreadConstraints describes how "
                                         "a group of pods ought to spread.")},
       {"setHostnameAsFQDN", Bool("If true the pod's hostname will be configured as the pod's FQDN.")},
       {"os", Free("Specifies the OS of the containers in the pod.")},
       {"hostUsers", Bool("Use the host's user namespace.")},
       {"schedulingGates", Arr(Free("PodSchedulingGate"),
                               "SchedulingGates is an opaque list of values that if "
                               "specified will block scheduling the pod.")},
       {"resourceClaims", Arr(Free("PodResourceClaim"),
                              "ResourceClaims defines which ResourceClaims must be "
                              "allocated.")},
       {"resources", Free("Resources is the total amount of CPU and Memory resources required by all "
                          "containers in the pod.")},
       {"hostnameOverride", Str("HostnameOverride specifies an explicit override for the pod's hostname.")}},
      {"containers"});
  s["io.k8s.api.core.v1.Pod"] = Kind(
      "Pod is a collection of containers that can run on a host. This resource is created by clients and "
      "scheduled onto hosts.",
      "", "v1", "Pod",
      {{"spec", Ref(kPodSpec, "Specification of the desired behavior of the pod.")},
       {"status", Free("Most recently observed status of the pod. Populated by the system. Read-only.")}});
  s["io.k8s.api.core.v1.Namespace"] = Kind(
      "Namespace provides a scope for Names. Use of multiple namespaces is optional.", "", "v1", "Namespace",
      {{"spec", Obj("NamespaceSpec describes the attributes on a Namespace.",
                    {{"finalizers", Arr(Str(""),
                                        "Finalizers is an opaque list of values that must be empty "
                                        "to permanently remove object from storage.")}})},
       {"status", Free("Status describes the current status of a Namespace.")}});
  s["io.k8s.api.core.v1.Node"] = Kind("Node is a worker node in Kubernetes.", "", "v1", "Node",
                                      {{"spec", Free("Spec defines the behavior of a node.")},
                                       {"status", Free("Most recently observed status of the node.")}});
  s["io.k8s.api.core.v1.Event"] = Kind(
      "Event is a report of an event somewhere in the cluster.", "", "v1", "Event",
      {{"involvedObject", Free("The object that this event is about.")},
       {"reason", Str("This should be a short, machine understandable string that gives the reason for the "
                      "transition into the object's current status.")},
       {"message", Str("A human-readable description of the status of this operation.")},
       {"source", Free("The component reporting this event.")},
       {"firstTimestamp", Str("The time at which the event was first recorded.")},
       {"lastTimestamp", Str("The time at which the most recent occurrence of this event was recorded.")},
       {"count", Int("The number of times this event has occurred.")},
       {"type", Str("Type of this event (Normal, Warning), new types could be added in the future")},
       {"eventTime", Str("Time when this Event was first observed.")},
       {"series",
        Free("Data about the Event series this event represents or nil if it's a singleton Event.")},
       {"action", Str("What action was taken/failed regarding to the Regarding object.")},
       {"related", Free("Optional secondary object for more complex actions.")},
       {"reportingComponent", Str("Name of the controller that emitted this Event.")},
       {"reportingInstance", Str("ID of the controller instance.")}});
  auto object_ref = [](const char* d) {
    return Obj(d,
               {{"apiVersion", Str("API version of the referent.")},
                {"fieldPath", Str("If referring to a piece of an object instead of an entire object, this "
                                  "string should contain a valid JSON/Go field access statement.")},
                {"kind", Str("Kind of the referent.")},
                {"name", Str("Name of the referent.")},
                {"namespace", Str("Namespace of the referent.")},
                {"resourceVersion", Str("Specific resourceVersion to which this reference is made, if any.")},
                {"uid", Str("UID of the referent.")}});
  };
  json v1_event = Kind(
      "Event is a report of an event somewhere in the cluster. It generally denotes some state change in the "
      "system. Events have a limited retention time and triggers and messages may evolve with time.",
      "events.k8s.io", "v1", "Event",
      {{"action", Str("action is what action was taken/failed regarding to the regarding object. It is "
                      "machine-readable. This field cannot be empty for new Events and it can have at most "
                      "128 characters.")},
       {"deprecatedCount", Int("deprecatedCount is the deprecated field assuring backward compatibility with "
                               "core.v1 Event type.")},
       {"deprecatedFirstTimestamp", Str("deprecatedFirstTimestamp is the deprecated field assuring backward "
                                        "compatibility with core.v1 Event type.")},
       {"deprecatedLastTimestamp", Str("deprecatedLastTimestamp is the deprecated field assuring backward "
                                       "compatibility with core.v1 Event type.")},
       {"deprecatedSource", Obj("deprecatedSource is the deprecated field assuring backward compatibility "
                                "with core.v1 Event type.",
                                {{"component", Str("Component from which the event is generated.")},
                                 {"host", Str("Node name on which the event is generated.")}})},
       {"eventTime", Str("eventTime is the time when this Event was first observed. It is required.")},
       {"note", Str("note is a human-readable description of the status of this operation. Maximal length "
                    "of the note is 1kB, but libraries should be prepared to handle values up to 64kB.")},
       {"reason", Str("reason is why the action was taken. It is human-readable. This field cannot be empty "
                      "for new Events and it can have at most 128 characters.")},
       {"regarding", object_ref("regarding contains the object this Event is about. In most cases it's an "
                                "Object reporting controller implements, e.g. ReplicaSetController "
                                "implements ReplicaSets and this event is emitted because it acts on some "
                                "changes in a ReplicaSet object.")},
       {"related", object_ref("related is the optional secondary object for more complex actions. E.g. when "
                              "regarding object triggers a creation or deletion of related object.")},
       {"reportingController", Str("reportingController is the name of the controller that emitted this "
                                   "Event, e.g. `kubernetes.io/kubelet`. This field cannot be empty for new "
                                   "Events.")},
       {"reportingInstance", Str("reportingInstance is the ID of the controller instance, e.g. "
                                 "`kubelet-xyzf`. This field cannot be empty for new Events and it can have "
                                 "at most 128 characters.")},
       {"series", Obj("series is data about the Event series this event represents or nil if it's a "
                      "singleton Event.",
                      {{"count", Int("count is the number of occurrences in this series up to the last "
                                     "heartbeat time.")},
                       {"lastObservedTime", Str("lastObservedTime is the time when last Event from the "
                                                "series was seen before last heartbeat.")}},
                      {"count", "lastObservedTime"})},
       {"type", Str("type is the type of this event (Normal, Warning), new types could be added in the "
                    "future. It is machine-readable. This field cannot be empty for new Events.")}});
  v1_event["required"] = {"eventTime"};
  s["io.k8s.api.events.v1.Event"] = std::move(v1_event);
  // Plain-storage kinds: metadata declared, the rest kept as sent.
  auto plain = [&](Resource r, const char* prefix, Props fields) {
    const ResourceInfo& info = Info(r);
    s[absl::StrCat(prefix, info.kind)] =
        Kind(info.kind, info.group, info.version, info.kind, std::move(fields));
  };
  plain(Resource::kServiceAccounts, "io.k8s.api.core.v1.",
        {{"secrets", Arr(Free(""), "")},
         {"imagePullSecrets", Arr(Free(""), "")},
         {"automountServiceAccountToken", Bool("")}});
  plain(Resource::kSecrets, "io.k8s.api.core.v1.",
        {{"data", StrMap("")}, {"stringData", StrMap("")}, {"type", Str("")}, {"immutable", Bool("")}});
  plain(Resource::kConfigMaps, "io.k8s.api.core.v1.",
        {{"data", StrMap("")}, {"binaryData", StrMap("")}, {"immutable", Bool("")}});
  for (Resource r : {Resource::kClusterRoles, Resource::kRoles}) {
    plain(r, "io.k8s.api.rbac.v1.", {{"rules", Arr(Free("PolicyRule"), "")}, {"aggregationRule", Free("")}});
  }
  for (Resource r : {Resource::kClusterRoleBindings, Resource::kRoleBindings}) {
    plain(r, "io.k8s.api.rbac.v1.", {{"subjects", Arr(Free("Subject"), "")}, {"roleRef", Free("RoleRef")}});
  }
  plain(Resource::kDaemonSets, "io.k8s.api.apps.v1.",
        {{"spec", Free("DaemonSetSpec")}, {"status", Free("")}});
  plain(Resource::kValidatingAdmissionPolicies, "io.k8s.api.admissionregistration.v1.",
        {{"spec", Free("")}, {"status", Free("")}});
  plain(Resource::kValidatingAdmissionPolicyBindings, "io.k8s.api.admissionregistration.v1.",
        {{"spec", Free("")}});
  return s;
}

const json* Resolve(const json& schema) {
  const json* at = &schema;
  if (at->contains("allOf")) at = &(*at)["allOf"][0];
  if (at->contains("$ref")) {
    std::string ref = (*at)["$ref"];
    return &ComponentSchemas().at(ref.substr(std::string("#/components/schemas/").size()));
  }
  return at;
}

void Walk(const json& schema, const json& value, const std::string& path, std::vector<std::string>* out) {
  const json* s = Resolve(schema);
  if (s->value("x-kubernetes-preserve-unknown-fields", false)) return;
  if (value.is_object() && s->contains("properties")) {
    const json& props = (*s)["properties"];
    for (auto it = value.begin(); it != value.end(); ++it) {
      if (!it.key().empty() && it.key()[0] == '$') continue;  // strategic merge patch directives
      std::string p = path.empty() ? it.key() : absl::StrCat(path, ".", it.key());
      auto prop = props.find(it.key());
      if (prop == props.end()) {
        out->push_back(p);
      } else {
        Walk(*prop, it.value(), p, out);
      }
    }
  } else if (value.is_array() && s->contains("items")) {
    for (size_t i = 0; i < value.size(); ++i)
      Walk((*s)["items"], value[i], absl::StrCat(path, "[", i, "]"), out);
  }
}

}  // namespace

const json& ComponentSchemas() {
  static const json* schemas = new json(Build());
  return *schemas;
}

std::string SchemaName(Resource r) {
  const ResourceInfo& info = Info(r);
  std::string group = *info.group ? std::string(info.group) : "core";
  if (group == "rbac.authorization.k8s.io") group = "rbac";
  if (group == "admissionregistration.k8s.io") group = "admissionregistration";
  if (group == "events.k8s.io") group = "events";
  return absl::StrCat("io.k8s.api.", group, ".", info.version, ".", info.kind);
}

std::vector<std::string> UnknownFields(Resource r, const json& object) {
  std::vector<std::string> out;
  auto it = ComponentSchemas().find(SchemaName(r));
  if (it != ComponentSchemas().end()) Walk(*it, object, "", &out);
  return out;
}

}  // namespace pnc::sim
