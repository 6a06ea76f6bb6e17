// Command helm-render renders a Helm chart's templates the way `helm template` does, for machines
// without Helm: Go's text/template with the sprig functions (the engine and library Helm uses),
// plus Helm's own functions (include, tpl, required, toYaml, fromYaml, toJson) and objects
// (.Values, .Release, .Chart, .Files, .Template, .Capabilities). It does not validate against
// values.schema.json (test/deploy/helm-values.test.ts does) nor know Kubernetes schemas.
//
//	go run . CHART_DIR [VALUES_FILE...]    # rendered manifests on stdout, "# Source: name" before each
//
// Built in GOPATH mode from Debian's packages: golang-go golang-github-masterminds-sprig-dev golang-github-ghodss-yaml-dev.
package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"github.com/ghodss/yaml"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: helm-render CHART_DIR [VALUES_FILE...]")
	}
	chartDir := os.Args[1]
	var chart map[string]interface{}
	readYAML(filepath.Join(chartDir, "Chart.yaml"), &chart)
	values := map[string]interface{}{}
	readYAML(filepath.Join(chartDir, "values.yaml"), &values)
	for _, f := range os.Args[2:] {
		var override map[string]interface{}
		readYAML(f, &override)
		values = coalesce(override, values)
	}
	name := chart["name"].(string)
	top := map[string]interface{}{
		"Values":       values,
		"Release":      map[string]interface{}{"Name": "kelix", "Namespace": "inference", "Service": "Helm", "IsInstall": true, "IsUpgrade": false, "Revision": 1},
		"Chart":        map[string]interface{}{"Name": name, "Version": chart["version"], "AppVersion": chart["appVersion"]},
		"Files":        files{dir: chartDir},
		"Capabilities": map[string]interface{}{"KubeVersion": map[string]interface{}{"Version": "v1.30.0", "Major": "1", "Minor": "30"}},
	}
	os.Stdout.WriteString(render(chartDir, name, top))
}

type files struct{ dir string }

// Get returns a file of the chart as a string, "" when it is missing (as Helm does).
func (f files) Get(name string) string {
	b, err := os.ReadFile(filepath.Join(f.dir, name))
	if err != nil {
		return ""
	}
	return string(b)
}

func render(chartDir, name string, top map[string]interface{}) string {
	t := template.New("gotpl")
	funcs := sprig.TxtFuncMap()
	delete(funcs, "env")
	delete(funcs, "expandenv")
	includedNames := map[string]int{}
	funcs["include"] = func(tplName string, data interface{}) (string, error) {
		includedNames[tplName]++
		defer func() { includedNames[tplName]-- }()
		if includedNames[tplName] > 100 {
			return "", fmt.Errorf("include %q: recursion too deep", tplName)
		}
		var buf bytes.Buffer
		err := t.ExecuteTemplate(&buf, tplName, data)
		return buf.String(), err
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		clone, err := t.Clone()
		if err != nil {
			return "", err
		}
		inner, err := clone.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var buf bytes.Buffer
		err = inner.Execute(&buf, data)
		return buf.String(), err
	}
	funcs["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil || v == "" {
			return nil, fmt.Errorf("%s", msg)
		}
		return v, nil
	}
	funcs["toYaml"] = func(v interface{}) string {
		b, err := yaml.Marshal(v)
		if err != nil {
			return ""
		}
		return strings.TrimSuffix(string(b), "\n")
	}
	funcs["fromYaml"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := yaml.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	funcs["lookup"] = func(string, string, string, string) map[string]interface{} { return map[string]interface{}{} }
	funcs["sha256sum"] = func(s string) string { return fmt.Sprintf("%x", sha256.Sum256([]byte(s))) }
	t.Funcs(funcs)

	templatesDir := filepath.Join(chartDir, "templates")
	entries, err := os.ReadDir(templatesDir)
	if err != nil {
		fail(err.Error())
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(templatesDir, e.Name()))
		if err != nil {
			fail(err.Error())
		}
		tplName := path.Join(name, "templates", e.Name())
		if _, err := t.New(tplName).Parse(string(b)); err != nil {
			fail(err.Error())
		}
		names = append(names, tplName)
	}
	sort.Strings(names)
	var out strings.Builder
	for _, tplName := range names {
		base := path.Base(tplName)
		if strings.HasPrefix(base, "_") {
			continue
		}
		data := map[string]interface{}{}
		for k, v := range top {
			data[k] = v
		}
		data["Template"] = map[string]interface{}{"Name": tplName, "BasePath": path.Join(name, "templates")}
		var buf bytes.Buffer
		if err := t.ExecuteTemplate(&buf, tplName, data); err != nil {
			fail(err.Error())
		}
		text := strings.ReplaceAll(buf.String(), "<no value>", "")
		if strings.TrimSpace(text) == "" {
			continue
		}
		if base == "NOTES.txt" {
			out.WriteString("---\n# Source: " + tplName + "\n# " + strings.ReplaceAll(strings.TrimSpace(text), "\n", "\n# ") + "\n")
			continue
		}
		out.WriteString("---\n# Source: " + tplName + "\n" + strings.TrimLeft(text, "\n") + "\n")
	}
	return out.String()
}

// coalesce merges override onto base as Helm does: maps merge deeply, a null deletes the key.
func coalesce(override, base map[string]interface{}) map[string]interface{} {
	out := map[string]interface{}{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range override {
		if v == nil {
			delete(out, k)
			continue
		}
		ov, okO := v.(map[string]interface{})
		bv, okB := out[k].(map[string]interface{})
		if okO && okB {
			out[k] = coalesce(ov, bv)
		} else {
			out[k] = v
		}
	}
	return out
}

func readYAML(file string, into interface{}) {
	b, err := os.ReadFile(file)
	if err != nil {
		fail(err.Error())
	}
	if err := yaml.Unmarshal(b, into); err != nil {
		fail(file + ": " + err.Error())
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "Error: "+msg)
	os.Exit(1)
}
