// Command render renders a Helm chart the way `helm template` does, for the subset of Helm this repository's chart
// uses: Go text/template with Sprig functions (the same libraries Helm is built on, from Debian), plus Helm's
// include/tpl/toYaml/fromYaml/required, .Values (values.yaml merged with -f files and --set a.b=c), .Chart, .Release.
// It exists because Helm itself is not packaged in Debian; where `helm` is installed, charts/chart_test.sh also runs
// the real `helm lint` and `helm template`.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"gopkg.in/yaml.v3"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// Render returns the rendered manifests (one "# Source:" document per non-empty template) and NOTES.txt.
func Render(chartDir, releaseName, namespace string, valueFiles, sets []string) (string, string, error) {
	chartMeta := map[string]interface{}{}
	if err := readYAML(filepath.Join(chartDir, "Chart.yaml"), &chartMeta); err != nil {
		return "", "", err
	}
	values := map[string]interface{}{}
	if err := readYAML(filepath.Join(chartDir, "values.yaml"), &values); err != nil {
		return "", "", err
	}
	for _, f := range valueFiles {
		extra := map[string]interface{}{}
		if err := readYAML(f, &extra); err != nil {
			return "", "", err
		}
		mergeInto(values, extra)
	}
	for _, s := range sets {
		if err := setValue(values, s); err != nil {
			return "", "", err
		}
	}
	top := map[string]interface{}{
		"Values": values,
		"Chart": map[string]interface{}{
			"Name": chartMeta["name"], "Version": chartMeta["version"], "AppVersion": chartMeta["appVersion"],
			"Description": chartMeta["description"],
		},
		"Release": map[string]interface{}{
			"Name": releaseName, "Namespace": namespace, "Service": "Helm", "IsInstall": true, "Revision": 1,
		},
		"Capabilities": map[string]interface{}{"KubeVersion": map[string]interface{}{"Version": "v1.30.0"}},
	}

	root := template.New("chart").Option("missingkey=zero")
	funcs := sprig.TxtFuncMap()
	funcs["include"] = func(name string, data interface{}) (string, error) {
		var buf bytes.Buffer
		err := root.ExecuteTemplate(&buf, name, data)
		return buf.String(), err
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		t, err := root.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var buf bytes.Buffer
		err = t.Execute(&buf, data)
		return buf.String(), err
	}
	funcs["toYaml"] = func(v interface{}) string {
		// Helm indents nested YAML by two spaces.
		var buf bytes.Buffer
		enc := yaml.NewEncoder(&buf)
		enc.SetIndent(2)
		if err := enc.Encode(v); err != nil {
			return ""
		}
		return strings.TrimSuffix(buf.String(), "\n")
	}
	funcs["fromYaml"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		_ = yaml.Unmarshal([]byte(s), &m)
		return m
	}
	funcs["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil || v == "" {
			return nil, fmt.Errorf("%s", msg)
		}
		return v, nil
	}
	root.Funcs(funcs)

	files, err := filepath.Glob(filepath.Join(chartDir, "templates", "*"))
	if err != nil {
		return "", "", err
	}
	sort.Strings(files)
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			return "", "", err
		}
		if _, err := root.New(filepath.Base(f)).Parse(string(body)); err != nil {
			return "", "", err
		}
	}
	var manifests strings.Builder
	notes := ""
	for _, f := range files {
		base := filepath.Base(f)
		if strings.HasPrefix(base, "_") {
			continue
		}
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, base, top); err != nil {
			return "", "", fmt.Errorf("rendering %s: %w", base, err)
		}
		if base == "NOTES.txt" {
			notes = buf.String()
			continue
		}
		for _, doc := range strings.Split(buf.String(), "\n---") {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			fmt.Fprintf(&manifests, "---\n# Source: %s/templates/%s\n%s\n", chartMeta["name"], base,
				strings.Trim(doc, "\n"))
		}
	}
	return manifests.String(), notes, nil
}

func stripComments(doc string) string {
	var out []string
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func readYAML(path string, into *map[string]interface{}) error {
	body, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := yaml.Unmarshal(body, into); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func mergeInto(dst, src map[string]interface{}) {
	for k, v := range src {
		if sv, ok := v.(map[string]interface{}); ok {
			if dv, ok := dst[k].(map[string]interface{}); ok {
				mergeInto(dv, sv)
				continue
			}
		}
		dst[k] = v
	}
}

// setValue applies one --set a.b.c=value (Helm's type inference for booleans and integers).
func setValue(values map[string]interface{}, expr string) error {
	eq := strings.IndexByte(expr, '=')
	if eq <= 0 {
		return fmt.Errorf("--set %q: want key=value", expr)
	}
	path := strings.Split(expr[:eq], ".")
	raw := expr[eq+1:]
	var v interface{} = raw
	if raw == "true" || raw == "false" {
		v = raw == "true"
	} else if n, err := strconv.ParseInt(raw, 10, 64); err == nil {
		v = n
	}
	m := values
	for _, p := range path[:len(path)-1] {
		next, ok := m[p].(map[string]interface{})
		if !ok {
			next = map[string]interface{}{}
			m[p] = next
		}
		m = next
	}
	m[path[len(path)-1]] = v
	return nil
}

func main() {
	var valueFiles, sets multiFlag
	release := flag.String("name", "istio-pod-network-controller", "release name")
	namespace := flag.String("namespace", "istio-system", "release namespace")
	showNotes := flag.Bool("notes", false, "also print NOTES.txt")
	flag.Var(&valueFiles, "f", "values file (repeatable)")
	flag.Var(&sets, "set", "key=value (repeatable)")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: render [flags] CHART_DIR\n\nRenders a Helm chart like `helm template`.\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	out, notes, err := Render(flag.Arg(0), *release, *namespace, valueFiles, sets)
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
	fmt.Print(out)
	if *showNotes {
		fmt.Print("---\n# NOTES.txt\n", notes)
	}
}
