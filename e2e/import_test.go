package e2e_test

import (
	"bytes"
	"context"
	"database/sql"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/cli"
	"github.com/tenon-dev/tenon/examples/checklist"
	"github.com/tenon-dev/tenon/fakeatlassian"

	_ "modernc.org/sqlite"
)

// importedTenant is a tenant of a fixture store and what tenon must make
// of it.
type importedTenant struct {
	clientKey, secret string
	state             tenon.State
}

// TestImportACE moves a real atlassian-connect-express 11 store with
// three tenants (one disabled, one uninstalled) onto tenon: the sites
// never reinstall, and the enabled one's pages, API calls and webhooks
// are served with the secret ACE had.
func TestImportACE(t *testing.T) {
	src := copyFile(t, filepath.Join("..", "testdata", "ace", "ace.sqlite"))
	tenants := []importedTenant{
		{"ace-fixture-1-0000-4000-8000-000000000001", "fixture-shared-secret-1-do-not-use-in-production-0123456789", tenon.StateEnabled},
		{"ace-fixture-2-0000-4000-8000-000000000002", "fixture-shared-secret-2-do-not-use-in-production-0123456789", tenon.StateDisabled},
		{"ace-fixture-3-0000-4000-8000-000000000003", "fixture-shared-secret-3-do-not-use-in-production-0123456789", tenon.StateUninstalled},
	}
	e := newEnv(t, envOptions{})
	out := e.runImport(t, 0, "ace", "--from", src, "--with-settings", "--dry-run")
	for _, want := range []string{"tenants found: 3 (1 enabled, 1 disabled, 1 uninstalled)", "to create: 3", "unsupported: ForgeSettings id 1", "dry run: nothing written"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run report lacks %q:\n%s", want, out)
		}
	}
	if list, _ := e.backend.Store.Installations(context.Background(), ""); len(list) != 0 {
		t.Fatalf("the dry run wrote %d tenants", len(list))
	}
	// The Forge setting is an unsupported row: without -skip-problems the
	// import writes nothing.
	e.runImport(t, 1, "ace", "--from", src, "--with-settings")
	if list, _ := e.backend.Store.Installations(context.Background(), ""); len(list) != 0 {
		t.Fatalf("a blocked import wrote %d tenants", len(list))
	}
	out = e.runImport(t, 0, "ace", "--from", src, "--with-settings", "--skip-problems")
	if !strings.Contains(out, "imported 3 tenants and 4 data values") {
		t.Fatalf("import output:\n%s", out)
	}
	if v, err := e.backend.Store.GetValue(context.Background(), tenants[0].clientKey, "counter"); err != nil || string(v) != "42" {
		t.Errorf("data value counter = %s, %v; want 42", v, err)
	}
	e.checkServed(t, tenants)

	// Running it again changes nothing.
	before, _ := e.backend.Store.Installations(context.Background(), "")
	out = e.runImport(t, 0, "ace", "--from", src, "--with-settings", "--skip-problems")
	if !strings.Contains(out, "unchanged: 3") || !strings.Contains(out, "nothing to import") {
		t.Fatalf("second run:\n%s", out)
	}
	sameTenants(t, before, e)
}

// TestImportACSB does the same for an atlassian-connect-spring-boot
// atlassian_host table.
func TestImportACSB(t *testing.T) {
	src := filepath.Join(t.TempDir(), "acsb.db")
	loadSQL(t, src, filepath.Join("..", "testdata", "acsb", "atlassian_host.sql"))
	tenants := []importedTenant{
		{"acsb-fixture-1-0000-4000-8000-000000000001", "acsb-shared-secret-1-do-not-use-in-production-0123456789", tenon.StateEnabled},
		{"acsb-fixture-2-0000-4000-8000-000000000002", "acsb-shared-secret-2-do-not-use-in-production-0123456789", tenon.StateEnabled},
		{"acsb-fixture-3-0000-4000-8000-000000000003", "acsb-shared-secret-3-do-not-use-in-production-0123456789", tenon.StateUninstalled},
	}
	e := newEnv(t, envOptions{})
	out := e.runImport(t, 0, "acsb", "--from", src)
	if !strings.Contains(out, "tenants found: 3 (2 enabled, 0 disabled, 1 uninstalled)") || !strings.Contains(out, "imported 3 tenants") {
		t.Fatalf("import output:\n%s", out)
	}
	in := e.backend.Store
	got, err := in.Installation(context.Background(), tenants[0].clientKey)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2025, 6, 1, 12, 30, 0, 250e6, time.UTC); !got.UpdatedAt.Equal(want) {
		t.Errorf("UpdatedAt = %v, want ACSB's last_modified_date %v", got.UpdatedAt, want)
	}
	e.checkServed(t, tenants)
	before, _ := in.Installations(context.Background(), "")
	out = e.runImport(t, 0, "acsb", "--from", src)
	if !strings.Contains(out, "unchanged: 3") {
		t.Fatalf("second run:\n%s", out)
	}
	sameTenants(t, before, e)
}

// checkServed adopts each tenant's site on the fake with its imported
// secret, then checks what tenon serves: pages, API calls and webhooks
// for an enabled tenant, a refusal for the others, and no lifecycle
// callback anywhere.
func (e *env) checkServed(t *testing.T, tenants []importedTenant) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for i, tn := range tenants {
		site, err := e.fake.AddSite(fakeatlassian.SiteOptions{Name: "imported-" + string(rune('a'+i)), ClientKey: tn.clientKey})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.fake.AdoptApp(ctx, site, e.appURL+"/atlassian-connect.json", tn.secret); err != nil {
			t.Fatalf("adopt on %s: %v", site.Name, err)
		}
		page := e.page(e.panelURL(site, issueKey))
		api := e.api(http.MethodGet, e.contextToken(site, issueKey), issueKey, "", nil)
		switch tn.state {
		case tenon.StateEnabled:
			if page.status != http.StatusOK || api.status != http.StatusOK {
				t.Fatalf("%s: panel %s, API %s; want 200 both", tn.clientKey, page, api)
			}
			e.fake.ResetCalls()
			if err := e.fake.DeleteIssue(site, issueKey); err != nil {
				t.Fatal(err)
			}
			e.waitWebhooks()
			hooks := e.calls(func(c fakeatlassian.Call) bool {
				return c.Kind == fakeatlassian.KindWebhook && c.Site == site.Name
			})
			if len(hooks) == 0 || hooks[0].Status != http.StatusNoContent {
				t.Fatalf("%s: webhook deliveries %+v, want one answered 204", tn.clientKey, hooks)
			}
		case tenon.StateDisabled:
			if page.status != http.StatusForbidden || api.status != http.StatusForbidden {
				t.Fatalf("%s (disabled): panel %s, API %s; want 403 both", tn.clientKey, page, api)
			}
		case tenon.StateUninstalled:
			if page.status != http.StatusUnauthorized || api.status != http.StatusUnauthorized {
				t.Fatalf("%s (uninstalled): panel %s, API %s; want 401 both", tn.clientKey, page, api)
			}
		}
		if calls := e.lifecycleCalls(site); len(calls) != 0 {
			t.Errorf("%s: lifecycle callbacks %v; an import needs none", tn.clientKey, calls)
		}
		got, err := e.backend.Store.Installation(ctx, tn.clientKey)
		if err != nil || got.State != tn.state || got.SharedSecret != tn.secret {
			t.Fatalf("%s: stored %v state %v; want %s with the source's secret", tn.clientKey, err, got.State, tn.state)
		}
	}
}

// runImport runs `tenon import` against the test's store and returns
// its output; the exit code must be want.
func (e *env) runImport(t *testing.T, want int, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	env := cli.Env{Stdout: &out, Stderr: &out, Getenv: func(string) string { return "" }}
	args = append([]string{"import"}, args...)
	args = append(args, "--db", e.backend.Config.DB, "--secret-key-file", e.backend.Config.SecretKeyFile, "--app-key", e.appKey)
	if code := cli.Run(context.Background(), env, checklist.New(checklist.Options{}), args); code != want {
		t.Fatalf("tenon %s: exit %d, want %d:\n%s", strings.Join(args, " "), code, want, out.String())
	}
	return out.String()
}

// sameTenants checks that the store holds exactly before.
func sameTenants(t *testing.T, before []*tenon.Installation, e *env) {
	t.Helper()
	after, err := e.backend.Store.Installations(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Fatalf("%d tenants after the second run, %d before", len(after), len(before))
	}
	for i := range before {
		a, b := after[i], before[i]
		if a.ClientKey != b.ClientKey || a.SharedSecret != b.SharedSecret || a.State != b.State ||
			!a.UpdatedAt.Equal(b.UpdatedAt) || !bytes.Equal(a.Payload, b.Payload) {
			t.Errorf("tenant %s changed on the second run", b.ClientKey)
		}
	}
}

func copyFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), filepath.Base(path))
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dst
}

// loadSQL runs a fixture SQL file into a new SQLite database at path.
func loadSQL(t *testing.T, path, file string) {
	t.Helper()
	script, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(string(script)); err != nil {
		t.Fatalf("load %s: %v", file, err)
	}
}
