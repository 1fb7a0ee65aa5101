#!/usr/bin/env python3
"""Checks the Helm chart with the real Helm: lint --strict, template for both distributions, non-default and bad
values, both admission-policy capability cases, and the NOTES' Istio injection template.

Usage: chart_test.py HELM CHART_DIR   (run by chart_test.sh, which finds HELM and sets HELM_*_HOME)
Helm is run with argv lists (no shell); values are fixed strings of this file.
"""
import os
import re
import subprocess
import sys
import tempfile

import yaml

HELM, CHART = sys.argv[1], sys.argv[2]
NS = "pnc-system"
RELEASE = "t"
FULL = "t-istio-pod-network-controller"
SA = f"system:serviceaccount:{NS}:{FULL}"
VAP_API = "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy"
MARK_KEYS = {f"pod-network-controller.istio.io/{k}" for k in ("status", "netns", "probe", "plan")}
CAPS = {"NET_ADMIN", "NET_RAW", "SYS_ADMIN", "SYS_PTRACE"}  # NET_RAW: legacy x_tables (iptc, restore, auto)
CAPS_NFT = {"NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE"}
with open(os.path.join(CHART, "Chart.yaml")) as f:
    APP_VERSION = str(yaml.safe_load(f)["appVersion"])

failures = []
checks = 0


def check(cond, what):
    global checks
    checks += 1
    if not cond:
        failures.append(what)
        print(f"  FAIL: {what}")


def helm(*args):
    return subprocess.run([HELM, *args], capture_output=True, text=True, timeout=120)


def set_args(values):
    out = []
    for k, v in values.items():
        out += ["--set", f"{k}={v}"]
    return out


def template(values=None, api_versions=(), files=()):
    args = ["template", RELEASE, CHART, "--namespace", NS, *set_args(values or {})]
    for f in files:
        args += ["-f", f]
    for a in api_versions:
        args += ["--api-versions", a]
    r = helm(*args)
    if r.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{r.stderr}")
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def by_kind(docs):
    out = {}
    for d in docs:
        out.setdefault(d["kind"], []).append(d)
    return out


def one(kinds, kind):
    objs = kinds.get(kind, [])
    check(len(objs) == 1, f"exactly one {kind}, got {len(objs)}")
    return objs[0] if objs else {}


def pod_spec(kinds):
    return one(kinds, "DaemonSet").get("spec", {}).get("template", {}).get("spec", {})


def controller_container(kinds):
    cs = pod_spec(kinds).get("containers", [])
    check(len(cs) == 1, f"one container in the DaemonSet, got {len(cs)}")
    return cs[0] if cs else {}


def host_paths(spec):
    return {v["hostPath"]["path"]: v["hostPath"].get("type") for v in spec.get("volumes", []) if "hostPath" in v}


def rbac_rules(kinds):
    rules = set()
    for r in one(kinds, "ClusterRole").get("rules", []):
        for g in r.get("apiGroups", []):
            for res in r.get("resources", []):
                for v in r.get("verbs", []):
                    rules.add((g, res, v))
    return rules


def common_checks(name, kinds, distribution, cri_path, caps=CAPS, netns_dir="/var/run/netns"):
    print(f"[{name}]")
    spec = pod_spec(kinds)
    c = controller_container(kinds)
    sc = c.get("securityContext", {})
    check(spec.get("hostPID") is True, "hostPID true")
    check(not spec.get("hostNetwork") and not spec.get("hostIPC"), "no hostNetwork, no hostIPC")
    check(spec.get("securityContext", {}).get("seccompProfile") == {"type": "RuntimeDefault"}, "pod seccomp")
    check(sc.get("privileged") is False, "container not privileged")
    check(sc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation false")
    check(sc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem")
    check(sc.get("seccompProfile") == {"type": "RuntimeDefault"}, "container seccomp RuntimeDefault")
    check(sc.get("capabilities", {}).get("drop") == ["ALL"], "drops ALL capabilities")
    check(set(sc.get("capabilities", {}).get("add", [])) == caps, f"adds exactly {sorted(caps)}: {sc}")
    check(not spec.get("initContainers"), "no init containers")
    args = c.get("args", [])
    check(f"--distribution={distribution}" in args, f"--distribution={distribution} in {args}")
    check(any(a.startswith("--log_level=") for a in args), "controller.logLevel is passed")
    hp = host_paths(spec)
    check("/run/xtables.lock" not in hp, "the node's xtables lock is not mounted")
    cri_args = [a for a in args if a.startswith("--cri_endpoint=")]
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    if cri_path:
        check(cri_args == [f"--cri_endpoint=unix://{cri_path}"], f"CRI endpoint {cri_path}: {cri_args}")
        check(hp.get(cri_path) == "Socket", f"CRI socket {cri_path} mounted as Socket: {hp}")
        check(cri_path in mounts, f"CRI socket mounted at the same path: {sorted(mounts)}")
        check(set(hp) == {cri_path, netns_dir}, f"hostPaths exactly CRI socket + {netns_dir}: {hp}")
        check(mounts.get(netns_dir, {}).get("readOnly") is True, f"{netns_dir} read-only")
        check(f"--netns_dir={netns_dir}" in args, f"--netns_dir={netns_dir} in {args}")
    else:
        check(not cri_args, f"no --cri_endpoint without the CRI locator: {cri_args}")
        check(hp == {}, f"no hostPath at all with the cgroup locator: {hp}")
    check(rbac_rules(kinds) == {("", "pods", "list"), ("", "pods", "watch"), ("", "namespaces", "list"),
                                ("", "namespaces", "watch"), ("", "pods/status", "patch"),
                                ("", "events", "create")}, f"RBAC exactly the calls made: {rbac_rules(kinds)}")
    for kind in ("DaemonSet", "ServiceAccount"):
        for o in kinds.get(kind, []):
            check(o["metadata"].get("namespace") == NS, f"{kind} in the release namespace")


def vap_checks(kinds, present, sa=SA):
    vaps = kinds.get("ValidatingAdmissionPolicy", [])
    bindings = kinds.get("ValidatingAdmissionPolicyBinding", [])
    if not present:
        check(not vaps and not bindings, "no ValidatingAdmissionPolicy/Binding")
        return
    vap, b = one(kinds, "ValidatingAdmissionPolicy"), one(kinds, "ValidatingAdmissionPolicyBinding")
    s = vap.get("spec", {})
    check(s.get("failurePolicy") == "Fail", "failurePolicy Fail")
    rr = s.get("matchConstraints", {}).get("resourceRules", [])
    check(len(rr) == 1 and set(rr[0]["resources"]) == {"pods", "pods/status"}, f"pods + pods/status: {rr}")
    check(len(rr) == 1 and set(rr[0]["operations"]) == {"CREATE", "UPDATE"}, "CREATE + UPDATE")
    mc = " ".join(m["expression"] for m in s.get("matchConditions", []))
    check(f"'{sa}'" in mc and "!=" in mc, f"exempts exactly the controller's service account: {mc}")
    text = yaml.safe_dump(s.get("variables", [])) + yaml.safe_dump(s.get("validations", []))
    keys = set(re.findall(r"'(pod-network-controller\.istio\.io/[a-z]+)'", text))
    check(keys == MARK_KEYS, f"policy covers exactly the mark's annotations: {sorted(keys)}")
    check(not re.search(r"sidecar\.istio\.io|object\.spec", text), "policy looks at nothing but the mark")
    check(b.get("spec", {}).get("policyName") == vap.get("metadata", {}).get("name"), "binding names the policy")
    check(b.get("spec", {}).get("validationActions") == ["Deny"], "binding denies")


def expect_rejected(values, needle, what):
    for verb in ("lint", "template"):
        args = [verb, *([RELEASE] if verb == "template" else []), CHART, "--namespace", NS, *set_args(values)]
        if verb == "lint":
            args.append("--strict")
        r = helm(*args)
        out = r.stdout + r.stderr
        check(r.returncode != 0, f"{verb} rejects {what} ({values})")
        check(needle in out, f"{verb} names the problem for {what}: wanted {needle!r} in {out[-600:]!r}")


def notes(values):
    r = helm("install", RELEASE, CHART, "--namespace", NS, "--dry-run=client", *set_args(values))
    check(r.returncode == 0, f"install --dry-run=client {values}: {r.stderr}")
    out = r.stdout
    return out[out.find("NOTES:"):] if "NOTES:" in out else ""


def injection_template(notes_text):
    """The istiod values block printed in NOTES -> the pod overlay of the pnc-waiter template."""
    lines = notes_text.splitlines()
    start = lines.index("sidecarInjectorWebhook:") if "sidecarInjectorWebhook:" in lines else -1
    check(start >= 0, "NOTES print a sidecarInjectorWebhook values block")
    if start < 0:
        return {}, {}
    end = lines.index("", start) if "" in lines[start:] else len(lines)
    values = yaml.safe_load("\n".join(lines[start:end]))
    swh = values["sidecarInjectorWebhook"]
    return swh, yaml.safe_load(swh["templates"]["pnc-waiter"])


# 1. lint --strict: both distributions and non-default values.
print("[lint --strict]")
for vals in ({}, {"kubernetesDistribution": "OpenShift"},
             {"controller.locator": "cgroup", "controller.logLevel": "debug", "controller.workers": "16",
              "image.digest": "sha256:" + "a" * 64, "admissionPolicy.enabled": "false"}):
    r = helm("lint", "--strict", CHART, "--namespace", NS, *set_args(vals))
    check(r.returncode == 0, f"lint --strict {vals}: {r.stdout}{r.stderr}")

# 2. Kubernetes defaults, API server without ValidatingAdmissionPolicy.
k = by_kind(template())
common_checks("Kubernetes, defaults", k, "Kubernetes", "/run/containerd/containerd.sock")
check(set(k) == {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "DaemonSet"}, f"kinds {sorted(k)}")
check("SecurityContextConstraints" not in k, "no SCC on Kubernetes")
c = controller_container(k)
check(c.get("image") == f"quay.io/istio-pod-network-controller/controller:{APP_VERSION}", c.get("image"))
check("seLinuxOptions" not in pod_spec(k).get("securityContext", {}), "no SELinux type forced on Kubernetes")
check({"--backend=auto", "--locator=auto", "--workers=4", "--capture_dns=false", "--log_level=info",
       "--metrics_address=0.0.0.0:9153"} <= set(c.get("args", [])), f"default args: {c.get('args')}")
vap_checks(k, present=False)

# 3. Admission policy by capability: GA API present -> rendered; only v1beta1 or disabled -> not.
print("[admission policy]")
vap_checks(by_kind(template(api_versions=[VAP_API])), present=True)
vap_checks(by_kind(template(api_versions=["admissionregistration.k8s.io/v1beta1/ValidatingAdmissionPolicy"])),
           present=False)
vap_checks(by_kind(template({"admissionPolicy.enabled": "false"}, api_versions=[VAP_API])), present=False)
vap_checks(by_kind(template({"serviceAccount.name": "pnc"}, api_versions=[VAP_API])), present=True,
           sa=f"system:serviceaccount:{NS}:pnc")

# 4. OpenShift: an SCC granting exactly what the DaemonSet's pod uses.
o = by_kind(template({"kubernetesDistribution": "OpenShift"}, api_versions=[VAP_API]))
common_checks("OpenShift", o, "OpenShift", "/var/run/crio/crio.sock")
vap_checks(o, present=True)
scc = one(o, "SecurityContextConstraints")
spec, c = pod_spec(o), controller_container(o)
check(scc.get("allowPrivilegedContainer") is False, "SCC: not privileged")
check(scc.get("allowPrivilegeEscalation") is False, "SCC: no privilege escalation")
check(scc.get("allowHostPID") is True and scc.get("allowHostNetwork") is False, "SCC: hostPID only")
check(scc.get("allowHostIPC") is False and scc.get("allowHostPorts") is False, "SCC: no host IPC/ports")
check(set(scc.get("allowedCapabilities", [])) == set(c["securityContext"]["capabilities"]["add"]),
      "SCC capabilities == the container's")
check(scc.get("requiredDropCapabilities") == ["ALL"] and not scc.get("defaultAddCapabilities"), "SCC drops ALL")
check(scc.get("runAsUser") == {"type": "MustRunAs", "uid": c["securityContext"]["runAsUser"]}, "SCC uid == pod's")
se = scc.get("seLinuxContext", {})
check(se.get("type") == "MustRunAs" and se.get("seLinuxOptions", {}).get("type") == "spc_t", f"SCC spc_t: {se}")
check(spec.get("securityContext", {}).get("seLinuxOptions", {}).get("type") == "spc_t", "pod runs as spc_t")
check(scc.get("seccompProfiles") == ["runtime/default"], "SCC seccomp runtime/default")
check(scc.get("readOnlyRootFilesystem") is True, "SCC read-only root")
o_nft = by_kind(template({"kubernetesDistribution": "OpenShift", "controller.backend": "nft"}))
common_checks("OpenShift, nft", o_nft, "OpenShift", "/var/run/crio/crio.sock", caps=CAPS_NFT)
check(set(one(o_nft, "SecurityContextConstraints").get("allowedCapabilities", [])) == CAPS_NFT, "SCC nft: no NET_RAW")
used = {next(k for k in v if k != "name") for v in spec.get("volumes", [])} | {"projected"}  # + SA token
check(set(scc.get("volumes", [])) == used, f"SCC volumes {scc.get('volumes')} == used {sorted(used)}")
check(scc.get("users") == [SA] and not scc.get("groups"), f"SCC for the controller's SA only: {scc.get('users')}")

# 5. Non-default values: every value reaches the manifests.
with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
    yaml.safe_dump({"nodeSelector": {"pool": "mesh"}, "tolerations": [{"key": "dedicated", "operator": "Exists"}],
                    "controller": {"extraArgs": ["--resync=10m", "--assume_ipv6=true"]},
                    "resources": {"requests": {"cpu": "50m"}, "limits": {"memory": "256Mi"}},
                    "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}}, f)
    values_file = f.name
n = by_kind(template({"controller.locator": "cgroup", "controller.backend": "nft", "controller.workers": "16",
                      "controller.captureDns": "true", "controller.metricsPort": "9999",
                      "controller.logLevel": "debug", "image.repository": "registry.example/pnc/controller",
                      "image.digest": "sha256:" + "b" * 64, "image.pullPolicy": "Always",
                      "serviceAccount.create": "false", "serviceAccount.name": "pnc",
                      "priorityClassName": "", "seLinuxType": "spc_t"}, files=[values_file]))
common_checks("non-default values (cgroup locator, nft)", n, "Kubernetes", None, caps=CAPS_NFT)
spec, c = pod_spec(n), controller_container(n)
args = c.get("args", [])
for a in ("--backend=nft", "--locator=cgroup", "--workers=16", "--capture_dns=true", "--log_level=debug",
          "--metrics_address=0.0.0.0:9999", "--resync=10m", "--assume_ipv6=true"):
    check(a in args, f"{a} in {args}")
check(c.get("image") == "registry.example/pnc/controller@sha256:" + "b" * 64, f"image by digest: {c.get('image')}")
check(c.get("imagePullPolicy") == "Always", "pullPolicy")
check(c["ports"][0]["containerPort"] == 9999, "metrics port")
check(one(n, "DaemonSet")["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == "9999", "scrape")
check(spec.get("nodeSelector") == {"kubernetes.io/os": "linux", "pool": "mesh"}, "nodeSelector merged")
check(spec.get("tolerations") == [{"key": "dedicated", "operator": "Exists"}], "tolerations")
check(c.get("resources") == {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "256Mi"}},
      f"resources merged: {c.get('resources')}")
check(one(n, "DaemonSet")["spec"]["updateStrategy"]["rollingUpdate"] == {"maxUnavailable": 1}, "updateStrategy")
check("priorityClassName" not in spec, "empty priorityClassName is omitted")
check(spec.get("securityContext", {}).get("seLinuxOptions") == {"type": "spc_t"}, "seLinuxType on Kubernetes")
check("ServiceAccount" not in n and spec.get("serviceAccountName") == "pnc", "existing service account")
check(one(n, "ClusterRoleBinding")["subjects"][0]["name"] == "pnc", "binding to the existing service account")
os.unlink(values_file)

print("[criSocket normalization]")
for given, path in (("unix:///run/k3s/containerd/containerd.sock", "/run/k3s/containerd/containerd.sock"),
                    ("/run/crio/crio.sock", "/run/crio/crio.sock")):
    for locator in ("auto", "cri"):
        t = by_kind(template({"controller.criSocket": given, "controller.locator": locator}))
        common_checks(f"criSocket={given} locator={locator}", t, "Kubernetes", path)

# containerd with netns_mounts_under_state_dir: the runtime's netns directory is watched where it really is.
state_netns = "/run/containerd/io.containerd.grpc.v1.cri/netns"
common_checks("netnsDir under containerd's state dir", by_kind(template({"controller.netnsDir": state_netns})),
              "Kubernetes", "/run/containerd/containerd.sock", netns_dir=state_netns)

# 6. Bad values fail lint --strict and template, naming the problem.
print("[bad values]")
for vals, needle, what in (
        ({"controller.workers": "four"}, "workers", "a non-integer worker count"),
        ({"controller.workers": "0"}, "workers", "zero workers"),
        ({"controller.metricsPort": "99999"}, "metricsPort", "a port above 65535"),
        ({"controller.backend": "bogus"}, "backend", "an unknown backend"),
        ({"controller.locator": "proc"}, "locator", "an unknown locator"),
        ({"controller.logLevel": "verbose"}, "logLevel", "an unknown log level"),
        ({"kubernetesDistribution": "GKE"}, "kubernetesDistribution", "an unknown distribution"),
        ({"controller.criSocket": "run/containerd.sock"}, "criSocket", "a relative CRI socket path"),
        ({"controller.criSocket": "tcp://10.0.0.1:1234"}, "criSocket", "a TCP CRI endpoint"),
        ({"controller.criSocket": "unix:///run/../etc/shadow"}, "criSocket", "a CRI path with '..'"),
        ({"controller.netnsDir": "run/netns"}, "netnsDir", "a relative netns directory"),
        ({"controller.netnsDir": "/var/run/../etc"}, "netnsDir", "a netns directory with '..'"),
        ({"controller.extraArgs[0]": "rm -rf /"}, "extraArgs", "an extra arg that is not a flag"),
        ({"controller.foo": "1"}, "foo", "an unknown key"),
        ({"image.digest": "latest"}, "digest", "a digest that is not sha256"),
        ({"waiter.runAsUser": "1337"}, "runAsUser", "the waiter as the proxy's uid"),
        ({"waiter.runAsGroup": "1337"}, "runAsGroup", "the waiter as the proxy's gid"),
        ({"waiter.runAsUser": "0"}, "runAsUser", "the waiter as root"),
        ({"serviceAccount.name": "Bad_Name"}, "name", "a service account name that is not DNS-1123"),
        ({"admissionPolicy.enabled": "yes-please"}, "enabled", "a non-boolean switch")):
    expect_rejected(vals, needle, what)

# 7. NOTES: the Istio injection template (path b) and what protects the pod without the policy.
print("[NOTES, injection template]")
for dist in ("Kubernetes", "OpenShift"):
    text = notes({"kubernetesDistribution": dist})
    swh, overlay = injection_template(text)
    check(swh.get("defaultTemplates") == ["sidecar", "pnc-waiter"], f"defaultTemplates: {swh.get('defaultTemplates')}")
    inits = overlay.get("spec", {}).get("initContainers", [])
    check(len(inits) == 1 and inits[0].get("name") == "istio-validation",
          "overlays the injector's istio-validation (which the injector moves first)")
    w = inits[0] if inits else {}
    check(w.get("image") == f"quay.io/istio-pod-network-controller/waiter:{APP_VERSION}", f"waiter image {w}")
    check("--file=/etc/istio/pod/annotations" in w.get("args", []), "reads Istio's podinfo annotations file")
    check({"name": "istio-podinfo", "mountPath": "/etc/istio/pod", "readOnly": True} in w.get("volumeMounts", []),
          "mounts Istio's istio-podinfo volume")
    check(w.get("command") == ["/usr/local/bin/waiter"], "runs the waiter, not the injector's entrypoint")
    wsc = w.get("securityContext", {})
    check(wsc.get("runAsUser") == 65532 and wsc.get("runAsGroup") == 65532, "waiter 65532:65532")
    check(wsc.get("runAsNonRoot") is True and wsc.get("readOnlyRootFilesystem") is True, "non-root, read-only")
    check(wsc.get("allowPrivilegeEscalation") is False and wsc.get("capabilities") == {"drop": ["ALL"]},
          "no capabilities, no escalation")
    check(wsc.get("seccompProfile") == {"type": "RuntimeDefault"}, "waiter seccomp")
    check("datapath probe" in text, "without the policy NOTES say what protects the pod")
    check(("nonroot-v2" in text) == (dist == "OpenShift"), "nonroot-v2 advice on OpenShift only")
    check(("pod-security.kubernetes.io/enforce=privileged" in text) == (dist == "Kubernetes"), "PSA label advice")
text = notes({"waiter.runAsUser": "4242", "waiter.timeoutSeconds": "60", "waiter.image.tag": "v9"})
_, overlay = injection_template(text)
w = (overlay.get("spec", {}).get("initContainers") or [{}])[0]
check(w.get("securityContext", {}).get("runAsUser") == 4242, "waiter.runAsUser wired")
check("--timeout=60s" in w.get("args", []), "waiter.timeoutSeconds wired")
check(w.get("image", "").endswith("/waiter:v9"), "waiter.image.tag wired")
check("admissionPolicy.enabled=false" in notes({"admissionPolicy.enabled": "false"}), "NOTES: policy disabled")

print(f"{checks} checks, {len(failures)} failed")
sys.exit(1 if failures else 0)
