#include "rules/golden_cases.h"

#include "rules/annotations.h"
#include "rules/test_util.h"

namespace pnc::rules::testing {
namespace {

PodFacts With(std::initializer_list<std::pair<const char*, const char*>> annotations) {
  PodFacts pod = InjectedPod();
  for (const auto& [k, v] : annotations) pod.annotations[k] = v;
  return pod;
}

}  // namespace

std::vector<Case> GoldenCases() {
  std::vector<Case> cs;
  auto add = [&](std::string name, std::string desc, PodFacts pod, PlanConfig cfg = {}) {
    cs.push_back({std::move(name), std::move(desc), std::move(pod), cfg});
  };
  add("default", "injected pod, no annotations, IPv4", With({}));
  add("tproxy", "interceptionMode TPROXY", With({{kInterceptionModeAnnotation, "TPROXY"}}));
  {
    PlanConfig c;
    c.capture_dns = true;
    add("dns", "mesh-wide DNS capture (ISTIO_META_DNS_CAPTURE)", With({}), c);
  }
  {
    PodFacts p = With({});
    p.containers[1].env[kDnsCaptureEnv] = "true";
    add("dns_pod_env", "DNS capture switched on by the pod's istio-proxy env, mesh-wide off", p);
  }
  {
    PodFacts p = With({});
    p.containers[1].env[kDnsCaptureEnv] = "false";
    PlanConfig c;
    c.capture_dns = true;
    add("dns_pod_env_off", "DNS capture switched off by the pod's istio-proxy env, mesh-wide on", p, c);
  }
  {
    PodFacts p = With({});
    p.pod_ips = {"fd00:10:244::5"};
    add("ipv6_only", "IPv6 single-stack pod", p);
  }
  {
    PodFacts p = With({});
    p.pod_ips = {"10.244.1.5", "fd00:10:244::5"};
    PlanConfig c;
    c.dual_stack = true;
    add("dual_stack", "dual-stack pod, mesh-wide ISTIO_DUAL_STACK", p, c);
  }
  {
    PodFacts p = With({});
    p.pod_ips = {"10.244.1.5", "fd00:10:244::5"};
    add("dual_stack_ips_without_setting", "dual-stack pod without ISTIO_DUAL_STACK: IPv4 rules only", p);
  }
  {
    PodFacts p = With({});
    p.pod_ips = {"10.244.1.5", "fd00:10:244::5"};
    p.containers[1].env[kDualStackEnv] = "true";
    add("dual_stack_pod_env", "dual-stack pod, ISTIO_DUAL_STACK in the istio-proxy env", p);
  }
  {
    PlanConfig c;
    c.assume_ipv6 = true;
    PodFacts p = With({});
    p.pod_ips.clear();
    add("assume_ipv6_no_ips", "no pod IPs yet, config assumes IPv6", p, c);
  }
  add("include_inbound_ports", "only 8080 and 9090 inbound (15020 is excluded and dropped)",
      With({{kIncludeInboundPortsAnnotation, "8080, 9090,15020"}}));
  add("exclude_inbound_ports", "extra inbound exclusions, duplicates removed",
      With({{kExcludeInboundPortsAnnotation, "22,8081,22"}}));
  add("empty_include_inbound_ports", "no inbound capture at all",
      With({{kIncludeInboundPortsAnnotation, ""}}));
  add("include_outbound_ports", "tcp 3306 and 5432 always captured, nothing else by CIDR",
      With({{kIncludeOutboundPortsAnnotation, "3306,5432"}, {kIncludeOutboundIPRangesAnnotation, ""}}));
  add("exclude_outbound_ports", "outbound bypass for 5432 (replaces the 15020 default)",
      With({{kExcludeOutboundPortsAnnotation, "5432"}}));
  {
    PodFacts p = With({{kIncludeOutboundIPRangesAnnotation, "10.96.0.0/12, fd00:96::/108,10.1.2.3/8"}});
    p.pod_ips = {"10.244.1.5", "fd00:10:244::5"};
    PlanConfig c;
    c.dual_stack = true;
    add("include_outbound_cidrs_mixed", "include CIDRs of both families; host bits normalised", p, c);
  }
  {
    PodFacts p =
        With({{kExcludeOutboundIPRangesAnnotation, "169.254.169.254/32,fd00:1::/64,192.168.0.0/16"}});
    p.pod_ips = {"10.244.1.5", "fd00:10:244::5"};
    PlanConfig c;
    c.dual_stack = true;
    add("exclude_outbound_cidrs_mixed", "exclude CIDRs of both families", p, c);
  }
  add("empty_include_outbound_ranges", "no outbound capture by destination",
      With({{kIncludeOutboundIPRangesAnnotation, ""}}));
  {
    PodFacts p = With({});
    p.containers[1].run_as_user = 2000;
    p.containers[1].run_as_group = 3000;
    add("custom_uid_from_container", "istio-proxy runAsUser 2000 / runAsGroup 3000", p);
  }
  {
    PodFacts p = With({});
    p.namespace_annotations[kOpenShiftUidRangeAnnotation] = "1000650000/10000";
    PlanConfig c;
    c.distribution = Distribution::kOpenShift;
    add("openshift_uid_range", "OpenShift: proxy uid/gid = first uid of the namespace range", p, c);
  }
  add("exclude_interfaces", "no capture on eth1 and net1",
      With({{kExcludeInterfacesAnnotation, "eth1, net1"}}));
  add("reroute_interfaces", "VM traffic from tap0 / k6t-eth0 goes to the outbound capture",
      With({{kRerouteVirtualInterfacesAnnotation, "tap0,k6t-eth0"}}));
  add("reroute_interfaces_include_ranges", "VM traffic is rerouted only to the included ranges",
      With({{kRerouteVirtualInterfacesAnnotation, "tap0"},
            {kIncludeOutboundIPRangesAnnotation, "10.96.0.0/12,10.100.0.0/16"}}));
  add("include_loopback_range", "loopback as an included range: no RETURN for the app's lo traffic",
      With({{kIncludeOutboundIPRangesAnnotation, "127.0.0.1/32,10.96.0.0/12"}}));
  add("dns_exclude_port_53", "DNS capture with outbound port 53 excluded (Istio keeps the DNS rules)",
      With({{kExcludeOutboundPortsAnnotation, "53"}}), [] {
        PlanConfig c;
        c.capture_dns = true;
        return c;
      }());
  add("tproxy_reroute_interfaces", "TPROXY with a rerouted VM interface (Istio: nat only)",
      With({{kInterceptionModeAnnotation, "TPROXY"}, {kRerouteVirtualInterfacesAnnotation, "tap0"}}));
  add("kubevirt_interfaces_legacy", "older kubevirtInterfaces spelling",
      With({{kKubevirtInterfacesAnnotation, "tap0"}}));
  add("status_port", "status port 15030 excluded inbound", With({{kStatusPortAnnotation, "15030"}}));
  {
    PodFacts p = With({{kInterceptionModeAnnotation, "TPROXY"},
                       {kIncludeInboundPortsAnnotation, "8080,8443"},
                       {kExcludeOutboundIPRangesAnnotation, "10.0.0.0/8"},
                       {kExcludeInterfacesAnnotation, "eth1"}});
    p.pod_ips = {"10.244.1.5", "fd00:10:244::5"};
    PlanConfig c;
    c.capture_dns = true;
    c.dual_stack = true;
    add("tproxy_dns_dual_stack_ports", "TPROXY + DNS + dual-stack + include inbound ports + exclusions", p,
        c);
  }
  return cs;
}

}  // namespace pnc::rules::testing
