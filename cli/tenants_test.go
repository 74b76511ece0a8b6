package cli_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/cli"
	"github.com/tenon-dev/tenon/keyring"
	"github.com/tenon-dev/tenon/sqlite"
	"github.com/tenon-dev/tenon/storetest"
)

// tenantsStore writes a store with three tenants, two of them on the same
// site (an import), one uninstalled, and returns its flags.
func tenantsStore(t *testing.T) (flags []string, reopen func() *sqlite.Store) {
	t.Helper()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "secret.key")
	line, err := keyring.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	box, err := keyring.Load(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "tenon.db")
	open := func() *sqlite.Store {
		st, err := sqlite.Open(db, sqlite.Options{SecretBox: box})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st := open()
	ctx := context.Background()
	for _, k := range []string{"alpha", "beta", "gamma"} {
		in := storetest.NewInstallation(k)
		if k == "gamma" {
			in.CloudID = "cloud-alpha" // the alpha site imported under a new clientKey
		}
		if err := st.SaveInstallation(ctx, in); err != nil {
			t.Fatal(err)
		}
		if err := st.PutValue(ctx, k, "config", []byte(`1`)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.SetState(ctx, "beta", tenon.StateUninstalled); err != nil {
		t.Fatal(err)
	}
	st.Close()
	return []string{"--db", db, "--secret-key-file", keyFile}, open
}

func runTenantsCLI(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	env := cli.Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}
	if stdin != "" {
		env.Stdin = strings.NewReader(stdin)
	}
	code := cli.Run(context.Background(), env, nil, args)
	return out.String(), errb.String(), code
}

func TestTenantsListFiltersAndFlagsImports(t *testing.T) {
	flags, _ := tenantsStore(t)
	out, errs, code := runTenantsCLI(t, "", append([]string{"tenants", "list"}, flags...)...)
	if code != 0 {
		t.Fatalf("list: %d %s", code, errs)
	}
	for _, want := range []string{"alpha", "beta", "gamma", "same site as gamma (import or clone?)", "uninstalled"} {
		if !strings.Contains(out, want) {
			t.Errorf("list lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "secret-of") {
		t.Errorf("list shows a shared secret:\n%s", out)
	}
	out, _, code = runTenantsCLI(t, "", append([]string{"tenants", "list", "-state", "uninstalled", "-json"}, flags...)...)
	if code != 0 || strings.Count(out, "\n") != 1 || !strings.Contains(out, `"clientKey":"beta"`) {
		t.Errorf("list -state uninstalled -json = %d %q", code, out)
	}
	out, _, _ = runTenantsCLI(t, "", append([]string{"tenants", "list", "-uninstalled-before", "2000-01-01"}, flags...)...)
	if strings.Contains(out, "beta") {
		t.Errorf("-uninstalled-before 2000 lists beta:\n%s", out)
	}
	_, errs, code = runTenantsCLI(t, "", append([]string{"tenants", "list", "-state", "gone"}, flags...)...)
	if code != 1 || !strings.Contains(errs, `-state "gone"`) {
		t.Errorf("bad state: %d %s", code, errs)
	}
}

func TestTenantsPurgeConfirmsAndAudits(t *testing.T) {
	flags, open := tenantsStore(t)
	ctx := context.Background()
	// Refused: no terminal answer, or not "yes". The store is unchanged.
	for _, stdin := range []string{"", "no\n"} {
		_, errs, code := runTenantsCLI(t, stdin, append([]string{"tenants", "purge"}, append(flags, "beta")...)...)
		if code != 1 || !strings.Contains(errs, "nothing was purged") && !strings.Contains(errs, "pass -yes") {
			t.Errorf("purge with answer %q: %d %s", stdin, code, errs)
		}
	}
	_, errs, code := runTenantsCLI(t, "", append([]string{"tenants", "purge", "-yes"}, append(flags, "nobody")...)...)
	if code != 1 || !strings.Contains(errs, `"nobody"`) {
		t.Errorf("purge of an unknown tenant: %d %s", code, errs)
	}
	st := open()
	if _, err := st.Installation(ctx, "beta"); err != nil {
		t.Fatalf("a refused purge deleted beta: %v", err)
	}
	if es, _ := st.AuditEntries(ctx, tenon.AuditFilter{}); len(es) != 0 {
		t.Errorf("refused purges were audited: %+v", es)
	}
	st.Close()

	out, errs, code := runTenantsCLI(t, "yes\n", append([]string{"tenants", "purge", "-reason", "asked by the customer"}, append(flags, "beta")...)...)
	if code != 0 || !strings.Contains(out, "purged beta") {
		t.Fatalf("purge: %d %s %s", code, out, errs)
	}
	st = open()
	defer st.Close()
	if _, err := st.Installation(ctx, "beta"); tenon.ErrorCode(err) != tenon.ENOTFOUND {
		t.Errorf("beta after purge: %v", err)
	}
	if _, err := st.GetValue(ctx, "alpha", "config"); err != nil {
		t.Errorf("purge touched alpha: %v", err)
	}
	es, _ := st.AuditEntries(ctx, tenon.AuditFilter{ClientKey: "beta"})
	if len(es) != 1 || es[0].Action != tenon.AuditTenantPurged || !strings.Contains(es[0].Detail, "asked by the customer") {
		t.Errorf("audit = %+v", es)
	}
}

// export and import are reached through the tenants command.
func TestTenantsExportImportAreCommands(t *testing.T) {
	for _, sub := range []string{"export", "import", "reconcile"} {
		code, _, errOut := runCLI(t, nil, "tenants", sub, "-h")
		if code != 0 || !strings.Contains(errOut, "tenants "+sub) {
			t.Errorf("tenants %s -h: exit %d, %q", sub, code, errOut)
		}
	}
}
