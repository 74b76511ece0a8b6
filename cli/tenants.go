package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tenon-dev/tenon"
)

const tenantsUsage = `Usage: tenon tenants list [-state S] [-product P] [-uninstalled-before TIME] [-json] [store flags]
       tenon tenants show [-json] [store flags] CLIENTKEY
       tenon tenants purge [-yes] [-reason TEXT] [store flags] CLIENTKEY...
       tenon tenants reconcile [store flags]
       tenon tenants export [-o FILE] [store flags] CLIENTKEY
       tenon tenants import [-replace] [store flags] -i FILE CLIENTKEY

list shows the tenants (Connect installations) with their state, product and
site, and flags sites that look imported or cloned: the same cloudId under
more than one clientKey. show prints one tenant, its Forge installations,
its personal data inventory size and its audit trail. purge deletes
everything the store keeps for the tenants, as the retention job does after
--retention; it asks for confirmation unless -yes, and leaves an audit row.
export writes one tenant's rows (sealed values stay sealed, the file is
encrypted with the key file); import loads such a file into a store of the
same kind, refusing a tenant that exists unless -replace.
TIME is RFC 3339 (2026-01-31T00:00:00Z) or a date (2026-01-31).
The store flags are serve's: --db, --secret-key-file, --config.
`

// tenantsCommands are the subcommands of tenants.
func tenantsCommands() map[string]func(ctx context.Context, env Env, args []string) error {
	return map[string]func(ctx context.Context, env Env, args []string) error{
		"list":  runTenantsList,
		"show":  runTenantsShow,
		"purge": runTenantsPurge,
		// tenants_export.go: one tenant's rows, sealed, for per-tenant
		// recovery and moves between stores of one kind.
		"export": func(ctx context.Context, env Env, args []string) error { return runTenantsExport(ctx, env, nil, args) },
		"import": func(ctx context.Context, env Env, args []string) error { return runTenantsImport(ctx, env, nil, args) },
		// tenants_reconcile.go: ask Forge about every active installation
		// and mark those it no longer knows (serve does it daily).
		"reconcile": func(ctx context.Context, env Env, args []string) error {
			return runTenantsReconcile(ctx, env, nil, args)
		},
	}
}

// runTenants inspects and purges tenants of the configured store.
func runTenants(ctx context.Context, env Env, _ App, args []string) error {
	cmds := tenantsCommands()
	if len(args) == 0 || cmds[args[0]] == nil {
		if len(args) > 0 && isHelp(args[0]) {
			fmt.Fprint(env.Stderr, env.help(tenantsUsage))
			return flag.ErrHelp
		}
		fmt.Fprint(env.Stderr, env.help(tenantsUsage))
		names := make([]string, 0, len(cmds))
		for n := range cmds {
			names = append(names, n)
		}
		sort.Strings(names)
		return fmt.Errorf("name a subcommand: %s", strings.Join(names, ", "))
	}
	return cmds[args[0]](ctx, env, args[1:])
}

func tenantsFlags(env Env, sub string) *flag.FlagSet {
	fs := flag.NewFlagSet("tenants "+sub, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprint(env.Stderr, env.help(tenantsUsage))
		fmt.Fprintln(env.Stderr, "\nFlags:")
		printFlags(env.Stderr, fs)
	}
	defineStoreFlags(fs, true)
	return fs
}

// tenantRow is a tenant as list and show print it; never a secret.
type tenantRow struct {
	ClientKey     string    `json:"clientKey"`
	State         string    `json:"state"`
	Product       string    `json:"product"`
	BaseURL       string    `json:"baseUrl"`
	CloudID       string    `json:"cloudId,omitempty"`
	InstalledAt   time.Time `json:"installedAt"`
	UninstalledAt time.Time `json:"uninstalledAt,omitzero"`
	SupersededBy  string    `json:"supersededBy,omitempty"`
	// SameSiteAs lists other clientKeys with the same cloudId: a site
	// import or clone, shown to the operator, never merged.
	SameSiteAs []string `json:"sameSiteAs,omitempty"`
}

func rowsOf(ins []*tenon.Installation) []tenantRow {
	bySite := map[string][]string{}
	for _, in := range ins {
		if in.CloudID != "" {
			bySite[in.CloudID] = append(bySite[in.CloudID], in.ClientKey)
		}
	}
	rows := make([]tenantRow, 0, len(ins))
	for _, in := range ins {
		r := tenantRow{ClientKey: in.ClientKey, State: string(in.State), Product: in.ProductType, BaseURL: in.BaseURL,
			CloudID: in.CloudID, InstalledAt: in.InstalledAt, UninstalledAt: in.UninstalledAt, SupersededBy: in.SupersededBy}
		for _, k := range bySite[in.CloudID] {
			if k != in.ClientKey {
				r.SameSiteAs = append(r.SameSiteAs, k)
			}
		}
		rows = append(rows, r)
	}
	return rows
}

// parseWhen reads an RFC 3339 time or a date.
func parseWhen(v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is neither RFC 3339 (2026-01-31T00:00:00Z) nor a date (2026-01-31)", v)
}

func runTenantsList(ctx context.Context, env Env, args []string) error {
	fs := tenantsFlags(env, "list")
	state := fs.String("state", "", "only tenants in this state: enabled, disabled or uninstalled")
	product := fs.String("product", "", "only tenants of this product, e.g. jira or confluence")
	before := fs.String("uninstalled-before", "", "only tenants uninstalled before TIME")
	asJSON := fs.Bool("json", false, "one JSON object per tenant")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("list takes no arguments, got %q", fs.Args())
	}
	st := tenon.State(*state)
	if *state != "" && !st.Valid() {
		return fmt.Errorf("-state %q: want enabled, disabled or uninstalled", *state)
	}
	var cut time.Time
	if *before != "" {
		var err error
		if cut, err = parseWhen(*before); err != nil {
			return fmt.Errorf("-uninstalled-before: %w", err)
		}
	}
	store, err := openExistingStore(ctx, env, fs, true)
	if err != nil {
		return err
	}
	defer store.Close()
	all, err := store.Installations(ctx, "")
	if err != nil {
		return err
	}
	var rows []tenantRow
	for _, r := range rowsOf(all) {
		switch {
		case *state != "" && r.State != *state,
			*product != "" && r.Product != *product,
			!cut.IsZero() && (r.UninstalledAt.IsZero() || !r.UninstalledAt.Before(cut)):
			continue
		}
		rows = append(rows, r)
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLIENT KEY\tSTATE\tPRODUCT\tBASE URL\tINSTALLED\tUNINSTALLED\tNOTE")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ClientKey, r.State, r.Product, r.BaseURL,
			day(r.InstalledAt), day(r.UninstalledAt), note(r))
	}
	return tw.Flush()
}

func day(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.DateOnly)
}

func note(r tenantRow) string {
	var n []string
	if len(r.SameSiteAs) > 0 {
		n = append(n, "same site as "+strings.Join(r.SameSiteAs, ", ")+" (import or clone?)")
	}
	if r.SupersededBy != "" {
		n = append(n, "superseded by Forge "+r.SupersededBy)
	}
	return strings.Join(n, "; ")
}

func runTenantsShow(ctx context.Context, env Env, args []string) error {
	fs := tenantsFlags(env, "show")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("show takes one clientKey")
	}
	key := fs.Arg(0)
	store, err := openExistingStore(ctx, env, fs, true)
	if err != nil {
		return err
	}
	defer store.Close()
	all, err := store.Installations(ctx, "")
	if err != nil {
		return err
	}
	var row *tenantRow
	for _, r := range rowsOf(all) {
		if r.ClientKey == key {
			row = &r
		}
	}
	if row == nil {
		return fmt.Errorf("no tenant %q (tenants list shows them)", key)
	}
	out := struct {
		tenantRow
		Forge    []*tenon.ForgeInstallation `json:"forgeInstallations,omitempty"`
		Accounts int                        `json:"personalDataAccounts"`
		Audit    []tenon.AuditEntry         `json:"audit,omitempty"`
	}{tenantRow: *row}
	if f, ok := store.(tenon.ForgeStore); ok {
		if out.Forge, err = f.ForgeInstallations(ctx, key); err != nil {
			return err
		}
	}
	if ps, ok := store.(tenon.PersonalDataStore); ok {
		for after := ""; ; {
			page, err := ps.PersonalAccounts(ctx, key, after, tenon.MaxListLimit)
			if err != nil {
				return err
			}
			out.Accounts += len(page)
			if len(page) < tenon.MaxListLimit {
				break
			}
			after = page[len(page)-1].AccountID
		}
	}
	if as, ok := store.(tenon.AuditStore); ok {
		if out.Audit, err = as.AuditEntries(ctx, tenon.AuditFilter{ClientKey: key}); err != nil {
			return err
		}
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	w := env.Stdout
	fmt.Fprintf(w, "clientKey:      %s\nstate:          %s\nproduct:        %s\nbaseUrl:        %s\ncloudId:        %s\n",
		row.ClientKey, row.State, row.Product, row.BaseURL, row.CloudID)
	fmt.Fprintf(w, "installed:      %s\nuninstalled:    %s\n", day(row.InstalledAt), day(row.UninstalledAt))
	if n := note(*row); n != "" {
		fmt.Fprintf(w, "note:           %s\n", n)
	}
	fmt.Fprintf(w, "personal data:  %d accounts\n", out.Accounts)
	for _, f := range out.Forge {
		fmt.Fprintf(w, "forge:          %s (%s)\n", f.InstallationID, f.State)
	}
	for _, e := range out.Audit {
		fmt.Fprintf(w, "audit:          %s %s by %s: %s\n", e.At.UTC().Format(time.RFC3339), e.Action, e.Actor, e.Detail)
	}
	return nil
}

func runTenantsPurge(ctx context.Context, env Env, args []string) error {
	fs := tenantsFlags(env, "purge")
	yes := fs.Bool("yes", false, "do not ask for confirmation")
	reason := fs.String("reason", "", "why, for the audit row")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("purge takes one or more clientKeys")
	}
	store, err := openExistingStore(ctx, env, fs, true)
	if err != nil {
		return err
	}
	defer store.Close()
	tp, ok := store.(tenon.TenantPurger)
	if !ok {
		return errors.New("this store cannot purge tenants")
	}
	for _, key := range fs.Args() {
		if _, err := store.Installation(ctx, key); err != nil && !tenon.IsForgeTenantKey(key) {
			return fmt.Errorf("tenant %q: %w (nothing was purged)", key, err)
		}
	}
	if !*yes {
		if err := confirm(env, fmt.Sprintf("Delete everything stored for %s, for good? Type yes: ", strings.Join(fs.Args(), ", "))); err != nil {
			return err
		}
	}
	actor := "operator"
	if u := env.Getenv("USER"); u != "" {
		actor += ":" + u
	}
	for _, key := range fs.Args() {
		detail := "tenants purge"
		if *reason != "" {
			detail += ": " + *reason
		}
		counts, err := tp.PurgeTenant(ctx, key, tenon.AuditEntry{Actor: actor, Detail: detail})
		if err != nil {
			return fmt.Errorf("purge %q: %w", key, err)
		}
		total := 0
		for _, n := range counts {
			total += n
		}
		fmt.Fprintf(env.Stdout, "purged %s: %d rows\n", key, total)
	}
	return nil
}

// confirm asks on the terminal; without a yes on standard input it refuses.
func confirm(env Env, question string) error {
	in := env.Stdin
	if in == nil {
		return errors.New("refusing to purge without confirmation: pass -yes")
	}
	fmt.Fprint(env.Stderr, question)
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if strings.TrimSpace(line) != "yes" {
		return errors.New("not confirmed; nothing was purged")
	}
	return nil
}
