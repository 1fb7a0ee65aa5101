// Names of every pod/namespace annotation and label the controller reads or writes, in one place so that
// rules/, kube/, controller/ and the waiter agree on the exact spelling. Values are documented in
// shared/notes/istio-redirect-spec.md; parsing and validation live in plan.cc / membership.cc.
#ifndef PNC_RULES_ANNOTATIONS_H_
#define PNC_RULES_ANNOTATIONS_H_

namespace pnc::rules {

// --- Istio sidecar redirection annotations (pod) ---
inline constexpr char kInterceptionModeAnnotation[] = "sidecar.istio.io/interceptionMode";
inline constexpr char kIncludeOutboundIPRangesAnnotation[] =
    "traffic.sidecar.istio.io/includeOutboundIPRanges";
inline constexpr char kExcludeOutboundIPRangesAnnotation[] =
    "traffic.sidecar.istio.io/excludeOutboundIPRanges";
inline constexpr char kIncludeInboundPortsAnnotation[] = "traffic.sidecar.istio.io/includeInboundPorts";
inline constexpr char kExcludeInboundPortsAnnotation[] = "traffic.sidecar.istio.io/excludeInboundPorts";
inline constexpr char kIncludeOutboundPortsAnnotation[] = "traffic.sidecar.istio.io/includeOutboundPorts";
inline constexpr char kExcludeOutboundPortsAnnotation[] = "traffic.sidecar.istio.io/excludeOutboundPorts";
inline constexpr char kExcludeInterfacesAnnotation[] = "traffic.sidecar.istio.io/excludeInterfaces";
inline constexpr char kRerouteVirtualInterfacesAnnotation[] = "istio.io/reroute-virtual-interfaces";
// Older spelling of kRerouteVirtualInterfacesAnnotation; used only when the newer one is absent.
inline constexpr char kKubevirtInterfacesAnnotation[] = "traffic.sidecar.istio.io/kubevirtInterfaces";
inline constexpr char kStatusPortAnnotation[] = "status.sidecar.istio.io/port";

// --- Mesh membership ---
// Label (preferred) or annotation; "false" opts the pod out.
inline constexpr char kInjectLabel[] = "sidecar.istio.io/inject";
inline constexpr char kInjectAnnotation[] = "sidecar.istio.io/inject";
// JSON written by Istio's injector; its presence marks an injected pod.
inline constexpr char kSidecarStatusAnnotation[] = "sidecar.istio.io/status";
// 2018-compatible opt-in, on the pod or on its namespace: value "true".
inline constexpr char kLegacyInitializeAnnotation[] = "istio-pod-network-controller/initialize";
inline constexpr char kProxyContainerName[] = "istio-proxy";
// Environment variables of the istio-proxy container that Istio's CNI plugin reads (cni/pkg/plugin).
inline constexpr char kDnsCaptureEnv[] = "ISTIO_META_DNS_CAPTURE";
inline constexpr char kDualStackEnv[] = "ISTIO_DUAL_STACK";
inline constexpr char kIstioInitContainerName[] = "istio-init";

// --- Namespace (OpenShift) ---
// "<first uid>/<size>", e.g. "1000650000/10000"; the proxy runs as the first uid of the range.
inline constexpr char kOpenShiftUidRangeAnnotation[] = "openshift.io/sa.scc.uid-range";

// --- Written by the controller, read by the waiter ---
inline constexpr char kStatusAnnotation[] = "pod-network-controller.istio.io/status";
inline constexpr char kStatusInitialized[] = "initialized";
// A failed pod gets kStatusErrorPrefix + a one-line reason (already escaped and bounded by rules/).
inline constexpr char kStatusErrorPrefix[] = "error: ";
// Written in the same status patch as kStatusInitialized (formats in rules/mark.h, docs/mark.md):
//  kNetnsAnnotation: "<boot_id>/<netns cookie>", the never-reused identity of the network namespace the rules
//    were verified in. An nsfs inode is NOT an identity (the kernel reuses it as soon as the netns is freed).
//  kProbeAnnotation: the datapath probe the waiter must pass ("target=IP:PORT,capture=PORT" or "none").
//  kPlanAnnotation: digest of the Ruleset that was applied (a change detector, not authentication).
inline constexpr char kNetnsAnnotation[] = "pod-network-controller.istio.io/netns";
inline constexpr char kProbeAnnotation[] = "pod-network-controller.istio.io/probe";
inline constexpr char kPlanAnnotation[] = "pod-network-controller.istio.io/plan";

}  // namespace pnc::rules

#endif  // PNC_RULES_ANNOTATIONS_H_
