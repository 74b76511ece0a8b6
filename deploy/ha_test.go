package deploy_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// manifest is one Kubernetes object, as parsed YAML.
type manifest struct {
	file string
	doc  map[string]any
}

func (m manifest) str(path ...string) string {
	v, _ := m.get(path...).(string)
	return v
}

func (m manifest) get(path ...string) any {
	var v any = m.doc
	for _, p := range path {
		obj, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = obj[p]
	}
	return v
}

func (m manifest) String() string {
	return fmt.Sprintf("%s: %s %s", m.file, m.str("kind"), m.str("metadata", "name"))
}

func readManifests(t *testing.T, files ...string) []manifest {
	t.Helper()
	var out []manifest
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		for {
			var doc map[string]any
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if doc != nil {
				out = append(out, manifest{file: f, doc: doc})
			}
		}
	}
	return out
}

// TestKubernetesHARecipe checks the fields of the Kubernetes recipe that
// the high-availability promises rest on: every object names its kind,
// API version, name and namespace; tenon's Deployment runs two replicas
// with readiness on /readyz and liveness on /livez, never dropping a
// ready pod in a rollout; a PodDisruptionBudget covers its pods; the
// CloudNativePG cluster has a synchronous standby on another node and
// backups taken from the standby, scheduled for a cluster that exists.
func TestKubernetesHARecipe(t *testing.T) {
	ms := readManifests(t, "kubernetes/tenon.yaml", "ha/kubernetes/postgres.yaml")
	byKind := map[string][]manifest{}
	for _, m := range ms {
		if m.str("apiVersion") == "" || m.str("kind") == "" || m.str("metadata", "name") == "" {
			t.Errorf("%s: apiVersion, kind and metadata.name are required", m)
		}
		if m.str("kind") != "Namespace" && m.str("metadata", "namespace") != "tenon" {
			t.Errorf("%s: namespace %q, want tenon", m, m.str("metadata", "namespace"))
		}
		byKind[m.str("kind")] = append(byKind[m.str("kind")], m)
	}
	one := func(kind, apiVersion string) manifest {
		t.Helper()
		if len(byKind[kind]) != 1 {
			t.Fatalf("%d objects of kind %s, want 1", len(byKind[kind]), kind)
		}
		m := byKind[kind][0]
		if m.str("apiVersion") != apiVersion {
			t.Errorf("%s: apiVersion %q, want %q", m, m.str("apiVersion"), apiVersion)
		}
		return m
	}

	dep := one("Deployment", "apps/v1")
	if n, _ := dep.get("spec", "replicas").(int); n < 2 {
		t.Errorf("%s: %d replicas, want at least 2", dep, n)
	}
	if dep.get("spec", "strategy", "rollingUpdate", "maxUnavailable") != 0 {
		t.Errorf("%s: rollingUpdate.maxUnavailable must be 0 (one pod at a time, readiness-gated)", dep)
	}
	labels, _ := dep.get("spec", "template", "metadata", "labels").(map[string]any)
	if !matches(dep.get("spec", "selector", "matchLabels"), labels) {
		t.Errorf("%s: the selector does not select the pod template's labels %v", dep, labels)
	}
	containers, _ := dep.get("spec", "template", "spec", "containers").([]any)
	if len(containers) == 0 {
		t.Fatalf("%s: no containers", dep)
	}
	c := manifest{file: dep.file, doc: containers[0].(map[string]any)}
	if c.str("image") == "" || strings.HasSuffix(c.str("image"), ":latest") {
		t.Errorf("%s: image %q, want a pinned version", dep, c.str("image"))
	}
	for probe, path := range map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/livez", "startupProbe": "/livez"} {
		if got := c.str(probe, "httpGet", "path"); got != path {
			t.Errorf("%s: %s on %q, want %s", dep, probe, got, path)
		}
	}

	pdb := one("PodDisruptionBudget", "policy/v1")
	if pdb.get("spec", "minAvailable") == nil && pdb.get("spec", "maxUnavailable") == nil {
		t.Errorf("%s: neither minAvailable nor maxUnavailable", pdb)
	}
	if !matches(pdb.get("spec", "selector", "matchLabels"), labels) {
		t.Errorf("%s: does not select the Deployment's pods", pdb)
	}

	cl := one("Cluster", "postgresql.cnpg.io/v1")
	if n, _ := cl.get("spec", "instances").(int); n < 2 {
		t.Errorf("%s: %d instances, want a primary and a standby", cl, n)
	}
	if n, _ := cl.get("spec", "minSyncReplicas").(int); n < 1 {
		t.Errorf("%s: minSyncReplicas %d, want at least 1 (a synchronous standby)", cl, n)
	}
	if cl.str("spec", "postgresql", "parameters", "synchronous_commit") != "on" {
		t.Errorf("%s: synchronous_commit must be on", cl)
	}
	if cl.str("spec", "storage", "size") == "" || cl.get("spec", "bootstrap", "initdb") == nil {
		t.Errorf("%s: storage.size and bootstrap.initdb are required", cl)
	}
	if cl.str("spec", "affinity", "podAntiAffinityType") != "required" {
		t.Errorf("%s: the instances must be on different nodes", cl)
	}
	if cl.str("spec", "backup", "target") != "prefer-standby" {
		t.Errorf("%s: backups should be taken from the standby", cl)
	}
	sb := one("ScheduledBackup", "postgresql.cnpg.io/v1")
	if sb.str("spec", "cluster", "name") != cl.str("metadata", "name") || len(strings.Fields(sb.str("spec", "schedule"))) != 6 {
		t.Errorf("%s: cluster %q, schedule %q (six fields, seconds first)", sb, sb.str("spec", "cluster", "name"), sb.str("spec", "schedule"))
	}
}

func matches(selector any, labels map[string]any) bool {
	sel, ok := selector.(map[string]any)
	if !ok || len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// TestHAProxyConfigIsValid has HAProxy check the recipe's configuration,
// where HAProxy is installed (CI installs it).
func TestHAProxyConfigIsValid(t *testing.T) {
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		if os.Getenv("TENON_REQUIRE_HAPROXY") == "1" {
			t.Fatal("HAProxy is required (TENON_REQUIRE_HAPROXY=1) but haproxy is not on PATH")
		}
		t.Skip("haproxy is not installed")
	}
	raw, err := os.ReadFile("ha/haproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs("ha/tenon-503.http")
	cfg := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(cfg, bytes.Replace(raw, []byte("/etc/haproxy/errors/tenon-503.http"), []byte(abs), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-c", "-f", cfg).CombinedOutput(); err != nil {
		t.Errorf("haproxy -c: %v\n%s", err, out)
	}
	resp, err := os.ReadFile("ha/tenon-503.http")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(resp, []byte("HTTP/1.1 503 ")) || !bytes.Contains(resp, []byte("\r\nRetry-After: ")) {
		t.Errorf("ha/tenon-503.http is not a 503 with Retry-After:\n%s", resp)
	}
}
