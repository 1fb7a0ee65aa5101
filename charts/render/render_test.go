package main

import (
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// chartDir is set by charts/chart_test.sh (Bazel runfiles); defaults to the source layout.
func chartDir() string {
	if d := os.Getenv("CHART_DIR"); d != "" {
		return d
	}
	return "../istio-pod-network-controller"
}

type doc = map[string]interface{}

func renderDocs(t *testing.T, sets ...string) []doc {
	t.Helper()
	out, notes, err := Render(chartDir(), "ipnc", "istio-system", nil, sets)
	if err != nil {
		t.Fatalf("render %v: %v", sets, err)
	}
	if !strings.Contains(notes, "istio-network-wait") {
		t.Errorf("NOTES.txt does not show the waiter init container")
	}
	var docs []doc
	for _, part := range strings.Split(out, "\n---\n") {
		part = strings.TrimPrefix(part, "---\n")
		d := doc{}
		if err := yaml.Unmarshal([]byte(part), &d); err != nil {
			t.Fatalf("rendered document is not YAML: %v\n%s", err, part)
		}
		for _, k := range []string{"apiVersion", "kind", "metadata"} {
			if d[k] == nil {
				t.Fatalf("document without %s:\n%s", k, part)
			}
		}
		docs = append(docs, d)
	}
	return docs
}

func byKind(docs []doc, kind string) []doc {
	var out []doc
	for _, d := range docs {
		if d["kind"] == kind {
			out = append(out, d)
		}
	}
	return out
}

func get(v interface{}, path ...interface{}) interface{} {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]interface{})
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]interface{})
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func containerArgs(t *testing.T, docs []doc) []string {
	ds := byKind(docs, "DaemonSet")
	if len(ds) != 1 {
		t.Fatalf("want 1 DaemonSet, got %d", len(ds))
	}
	var args []string
	for _, a := range get(ds[0], "spec", "template", "spec", "containers", 0, "args").([]interface{}) {
		args = append(args, a.(string))
	}
	return args
}

func hasArg(args []string, want string) bool {
	for _, a := range args {
		if a == want {
			return true
		}
	}
	return false
}

func TestKubernetes(t *testing.T) {
	docs := renderDocs(t, "kubernetesDistribution=Kubernetes")
	if n := len(byKind(docs, "SecurityContextConstraints")); n != 0 {
		t.Errorf("Kubernetes rendering has %d SCCs, want 0", n)
	}
	args := containerArgs(t, docs)
	for _, want := range []string{"--distribution=Kubernetes", "--cri_endpoint=/run/containerd/containerd.sock"} {
		if !hasArg(args, want) {
			t.Errorf("controller args %v lack %s", args, want)
		}
	}
	checkDaemonSetPrivileges(t, docs)
	checkRBAC(t, docs)
}

func TestOpenShift(t *testing.T) {
	docs := renderDocs(t, "kubernetesDistribution=OpenShift")
	sccs := byKind(docs, "SecurityContextConstraints")
	if len(sccs) != 1 {
		t.Fatalf("OpenShift rendering has %d SCCs, want 1", len(sccs))
	}
	users := get(sccs[0], "users").([]interface{})
	if len(users) != 1 || users[0] != "system:serviceaccount:istio-system:ipnc-istio-pod-network-controller" {
		t.Errorf("SCC users = %v, want only the controller's service account", users)
	}
	if get(sccs[0], "allowHostNetwork") != false {
		t.Errorf("SCC must not allow hostNetwork")
	}
	args := containerArgs(t, docs)
	for _, want := range []string{"--distribution=OpenShift", "--cri_endpoint=/var/run/crio/crio.sock"} {
		if !hasArg(args, want) {
			t.Errorf("controller args %v lack %s", args, want)
		}
	}
	checkDaemonSetPrivileges(t, docs)
	checkRBAC(t, docs)
}

func TestOverrides(t *testing.T) {
	docs := renderDocs(t, "controller.backend=nft", "controller.criSocket=/run/k3s/containerd/containerd.sock",
		"controller.workers=8")
	args := containerArgs(t, docs)
	for _, want := range []string{"--backend=nft", "--cri_endpoint=/run/k3s/containerd/containerd.sock", "--workers=8"} {
		if !hasArg(args, want) {
			t.Errorf("controller args %v lack %s", args, want)
		}
	}
}

func TestBadDistributionFails(t *testing.T) {
	_, _, err := Render(chartDir(), "ipnc", "istio-system", nil, []string{"kubernetesDistribution=Openshift"})
	if err == nil || !strings.Contains(err.Error(), "kubernetesDistribution must be OpenShift or Kubernetes") {
		t.Fatalf("want a clear error for a misspelled distribution, got %v", err)
	}
}

// The controller needs no host network and no privileged mode: only the three capabilities it uses.
func checkDaemonSetPrivileges(t *testing.T, docs []doc) {
	ds := byKind(docs, "DaemonSet")[0]
	spec := get(ds, "spec", "template", "spec")
	if get(spec, "hostNetwork") == true {
		t.Errorf("DaemonSet must not use hostNetwork")
	}
	if get(spec, "hostPID") != true {
		t.Errorf("DaemonSet needs hostPID to reach pod sandboxes' /proc/<pid>/ns/net")
	}
	sc := get(spec, "containers", 0, "securityContext")
	if get(sc, "privileged") != false {
		t.Errorf("controller must not be privileged")
	}
	var caps []string
	for _, c := range get(sc, "capabilities", "add").([]interface{}) {
		caps = append(caps, c.(string))
	}
	if strings.Join(caps, ",") != "NET_ADMIN,SYS_ADMIN,SYS_PTRACE" {
		t.Errorf("capabilities = %v", caps)
	}
	if get(sc, "capabilities", "drop", 0) != "ALL" {
		t.Errorf("capabilities must drop ALL first")
	}
}

// Least privilege: pods/status patch, no pod update/patch, events create.
func checkRBAC(t *testing.T, docs []doc) {
	roles := byKind(docs, "ClusterRole")
	if len(roles) != 1 {
		t.Fatalf("want 1 ClusterRole, got %d", len(roles))
	}
	grants := map[string]map[string]bool{}
	for _, r := range get(roles[0], "rules").([]interface{}) {
		for _, res := range get(r, "resources").([]interface{}) {
			if grants[res.(string)] == nil {
				grants[res.(string)] = map[string]bool{}
			}
			for _, v := range get(r, "verbs").([]interface{}) {
				grants[res.(string)][v.(string)] = true
			}
		}
	}
	if !grants["pods/status"]["patch"] || !grants["events"]["create"] || !grants["pods"]["watch"] ||
		!grants["namespaces"]["watch"] {
		t.Errorf("missing a needed grant: %v", grants)
	}
	for _, verb := range []string{"update", "patch", "create", "delete"} {
		if grants["pods"][verb] {
			t.Errorf("ClusterRole grants pods %s; only pods/status patch is needed", verb)
		}
	}
}

// The admission policy is opt-in, names the controller's service account as the only writer, and cannot block pod
// writes cluster-wide when the API server fails to evaluate it.
func TestAdmissionPolicy(t *testing.T) {
	if n := len(byKind(renderDocs(t), "ValidatingAdmissionPolicy")); n != 0 {
		t.Fatalf("admission policy rendered by default (%d); it must be opt-in", n)
	}
	docs := renderDocs(t, "admissionPolicy.enabled=true")
	policies := byKind(docs, "ValidatingAdmissionPolicy")
	bindings := byKind(docs, "ValidatingAdmissionPolicyBinding")
	if len(policies) != 1 || len(bindings) != 1 {
		t.Fatalf("want 1 policy + 1 binding, got %d + %d", len(policies), len(bindings))
	}
	p := policies[0]
	if get(p, "spec", "failurePolicy") != "Ignore" {
		t.Errorf("failurePolicy = %v, want Ignore", get(p, "spec", "failurePolicy"))
	}
	cond := get(p, "spec", "matchConditions", 0, "expression").(string)
	if !strings.Contains(cond, "'system:serviceaccount:istio-system:ipnc-istio-pod-network-controller'") {
		t.Errorf("match condition does not exempt the controller's service account: %s", cond)
	}
	expr := get(p, "spec", "validations", 0, "expression").(string)
	for _, k := range []string{"pod-network-controller.istio.io/status", "pod-network-controller.istio.io/netns"} {
		if !strings.Contains(expr, "'"+k+"'") {
			t.Errorf("validation does not protect %s: %s", k, expr)
		}
	}
	if get(bindings[0], "spec", "policyName") != get(p, "metadata", "name") {
		t.Errorf("binding does not refer to the policy")
	}
}
