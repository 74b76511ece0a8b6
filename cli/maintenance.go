package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/server"
)

// Maintenance mode and notices are settings in the store
// (tenon.SettingsStore), so one command reaches every node sharing it;
// servers see a change within server.DefaultSettingsCacheTTL, or at once
// on PostgreSQL.

const maintenanceUsage = `Usage: tenon maintenance on [--until TIME] [--message TEXT] [store flags]
       tenon maintenance off [store flags]
       tenon maintenance status [store flags]

While maintenance is on, app pages show a notice inside the product's
iframe and the app's API answers 503 with Retry-After; installs, other
lifecycle callbacks and webhooks are still accepted. TIME is an RFC 3339
time (2026-03-14T18:00:00Z) or a duration from now (45m); the window ends
by itself then, and Retry-After counts down to it. Running "on" again
replaces the window.

The store flags are serve's: --db and --config (or TENON_DB, TENON_CONFIG).

Flags:
`

const noticeUsage = `Usage: tenon notice set [--tenant CLIENTKEY] --message TEXT [--until TIME] [store flags]
       tenon notice clear [--tenant CLIENTKEY] [store flags]
       tenon notice list [store flags]

A notice is an announcement app pages show (server.Notices), to every
tenant or, with --tenant, to one: a deprecation warning months ahead, a
planned migration. TIME is an RFC 3339 time or a duration from now (1440h);
the notice disappears by itself then.

The store flags are serve's: --db and --config (or TENON_DB, TENON_CONFIG).

Flags:
`

// settingsFlags are the flags of commands that change settings.
type settingsFlags struct {
	fs      *flag.FlagSet
	until   *string
	message *string
	tenant  *string
}

// newSettingsFlags defines the store flags (serve's --config and --db)
// and the given extra flags on a new flag set.
func newSettingsFlags(env Env, name, usage string, extra ...string) *settingsFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprint(env.Stderr, env.help(usage))
		fmt.Fprintln(env.Stderr, "\nFlags:")
		printFlags(env.Stderr, fs)
	}
	defineStoreFlags(fs, false)
	f := &settingsFlags{fs: fs}
	for _, e := range extra {
		switch e {
		case "until":
			f.until = fs.String("until", "", "when it ends (`TIME`): an RFC 3339 time or a duration from now")
		case "message":
			f.message = fs.String("message", "", fmt.Sprintf("the `TEXT` shown to users (at most %d characters)", tenon.MaxNoticeMessage))
		case "tenant":
			f.tenant = fs.String("tenant", "", "`CLIENTKEY` of the one tenant the notice is for (default: every tenant)")
		}
	}
	return f
}

// openSettings opens the existing store (openExistingStore) as a
// settings store. These commands never read secrets, so they need no key
// file.
func (f *settingsFlags) openSettings(ctx context.Context, env Env) (tenon.SettingsStore, func(), error) {
	if f.fs.NArg() > 0 {
		return nil, nil, fmt.Errorf("unexpected arguments: %s", strings.Join(f.fs.Args(), " "))
	}
	st, err := openExistingStore(ctx, env, f.fs, false)
	if err != nil {
		return nil, nil, err
	}
	ss, ok := st.(tenon.SettingsStore)
	if !ok {
		st.Close()
		return nil, nil, fmt.Errorf("the store (%T) keeps no settings", st)
	}
	return ss, func() { st.Close() }, nil
}

// parseUntil reads an RFC 3339 time or a duration from now. Empty means
// no end. The time must be in the future.
func parseUntil(v string, now time.Time) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, nil
	}
	var t time.Time
	if d, err := time.ParseDuration(v); err == nil {
		t = now.Add(d)
	} else if t, err = time.Parse(time.RFC3339, v); err != nil {
		return time.Time{}, fmt.Errorf("--until %q is neither an RFC 3339 time (2026-03-14T18:00:00Z) nor a duration (45m)", v)
	}
	if !t.After(now) {
		return time.Time{}, fmt.Errorf("--until %s is not in the future", t.UTC().Format(time.RFC3339))
	}
	return t.UTC().Truncate(time.Second), nil
}

func runMaintenance(ctx context.Context, env Env, _ App, args []string) error {
	if len(args) == 0 || (args[0] != "on" && args[0] != "off" && args[0] != "status") {
		if len(args) > 0 && isHelp(args[0]) {
			// The flags of "on", which has them all.
			newSettingsFlags(env, "maintenance on", maintenanceUsage, "until", "message").fs.Usage()
			return flag.ErrHelp
		}
		fmt.Fprint(env.Stderr, env.help(maintenanceUsage))
		return errors.New("name a subcommand: on, off or status")
	}
	sub := args[0]
	var f *settingsFlags
	if sub == "on" {
		f = newSettingsFlags(env, "maintenance on", maintenanceUsage, "until", "message")
	} else {
		f = newSettingsFlags(env, "maintenance "+sub, maintenanceUsage)
	}
	if err := f.fs.Parse(args[1:]); err != nil {
		return err
	}
	now := time.Now()
	var m tenon.Maintenance
	if sub == "on" {
		until, err := parseUntil(*f.until, now)
		if err != nil {
			return err
		}
		msg := strings.TrimSpace(*f.message)
		if err := tenon.ValidateNoticeMessage(msg); err != nil {
			return errors.New(tenon.ErrorMessage(err))
		}
		m = tenon.Maintenance{Message: msg, Until: until, Since: now.UTC().Truncate(time.Second)}
	}
	ss, closeStore, err := f.openSettings(ctx, env)
	if err != nil {
		return err
	}
	defer closeStore()

	switch sub {
	case "on":
		raw, _ := json.Marshal(&m)
		if err := ss.PutSetting(ctx, tenon.SettingMaintenance, raw); err != nil {
			return fmt.Errorf("switch maintenance on: %w", err)
		}
		fmt.Fprintf(env.Stdout, "maintenance is on%s; every server sees it within %v\n", untilText(m.Until), server.DefaultSettingsCacheTTL)
	case "off":
		if err := ss.DeleteSetting(ctx, tenon.SettingMaintenance); err != nil {
			return fmt.Errorf("switch maintenance off: %w", err)
		}
		fmt.Fprintf(env.Stdout, "maintenance is off; every server sees it within %v\n", server.DefaultSettingsCacheTTL)
	case "status":
		return maintenanceStatus(ctx, env.Stdout, ss, now)
	}
	return nil
}

func untilText(t time.Time) string {
	if t.IsZero() {
		return " until switched off"
	}
	return " until " + t.UTC().Format(time.RFC3339)
}

func maintenanceStatus(ctx context.Context, w io.Writer, ss tenon.SettingsStore, now time.Time) error {
	raw, err := ss.Setting(ctx, tenon.SettingMaintenance)
	if tenon.ErrorCode(err) == tenon.ENOTFOUND {
		fmt.Fprintln(w, "maintenance: off")
		return nil
	}
	if err != nil {
		return err
	}
	var m tenon.Maintenance
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("the stored maintenance setting is damaged (servers ignore it; switch it off): %w", err)
	}
	if !m.Active(now) {
		fmt.Fprintf(w, "maintenance: off (the last window ended at %s)\n", m.Until.UTC().Format(time.RFC3339))
		return nil
	}
	fmt.Fprintf(w, "maintenance: on since %s%s\n", m.Since.UTC().Format(time.RFC3339), untilText(m.Until))
	if m.Message != "" {
		fmt.Fprintf(w, "message: %s\n", m.Message)
	}
	return nil
}

func runNotice(ctx context.Context, env Env, _ App, args []string) error {
	if len(args) == 0 || (args[0] != "set" && args[0] != "clear" && args[0] != "list") {
		if len(args) > 0 && isHelp(args[0]) {
			newSettingsFlags(env, "notice set", noticeUsage, "tenant", "message", "until").fs.Usage()
			return flag.ErrHelp
		}
		fmt.Fprint(env.Stderr, env.help(noticeUsage))
		return errors.New("name a subcommand: set, clear or list")
	}
	sub := args[0]
	var f *settingsFlags
	switch sub {
	case "set":
		f = newSettingsFlags(env, "notice set", noticeUsage, "tenant", "message", "until")
	case "clear":
		f = newSettingsFlags(env, "notice clear", noticeUsage, "tenant")
	default:
		f = newSettingsFlags(env, "notice list", noticeUsage)
	}
	if err := f.fs.Parse(args[1:]); err != nil {
		return err
	}
	now := time.Now()
	name := tenon.SettingNotice
	if f.tenant != nil && *f.tenant != "" {
		name = tenon.TenantNoticeSetting(*f.tenant)
		if err := tenon.ValidateSettingName(name); err != nil {
			return fmt.Errorf("--tenant: %s", tenon.ErrorMessage(err))
		}
	}
	var n tenon.Notice
	if sub == "set" {
		var err error
		if n.Until, err = parseUntil(*f.until, now); err != nil {
			return err
		}
		n.Message = strings.TrimSpace(*f.message)
		if n.Message == "" {
			return errors.New("--message is required: the text of the notice")
		}
		if err := tenon.ValidateNoticeMessage(n.Message); err != nil {
			return errors.New(tenon.ErrorMessage(err))
		}
	}
	ss, closeStore, err := f.openSettings(ctx, env)
	if err != nil {
		return err
	}
	defer closeStore()

	who := "every tenant"
	if name != tenon.SettingNotice {
		who = "tenant " + *f.tenant
	}
	switch sub {
	case "set":
		raw, _ := json.Marshal(&n)
		if err := ss.PutSetting(ctx, name, raw); err != nil {
			return fmt.Errorf("set the notice: %w", err)
		}
		end := " until cleared"
		if !n.Until.IsZero() {
			end = " until " + n.Until.Format(time.RFC3339)
		}
		fmt.Fprintf(env.Stdout, "notice for %s set%s\n", who, end)
	case "clear":
		if err := ss.DeleteSetting(ctx, name); err != nil {
			return fmt.Errorf("clear the notice: %w", err)
		}
		fmt.Fprintf(env.Stdout, "notice for %s cleared\n", who)
	case "list":
		return listNotices(ctx, env.Stdout, ss, now)
	}
	return nil
}

func listNotices(ctx context.Context, w io.Writer, ss tenon.SettingsStore, now time.Time) error {
	kvs, err := ss.ListSettings(ctx, tenon.SettingNotice)
	if err != nil {
		return err
	}
	shown := 0
	for _, kv := range kvs {
		who := ""
		switch {
		case kv.Key == tenon.SettingNotice:
			who = "every tenant"
		case strings.HasPrefix(kv.Key, tenon.SettingTenantNoticePrefix):
			who = "tenant " + strings.TrimPrefix(kv.Key, tenon.SettingTenantNoticePrefix)
		default:
			continue
		}
		var n tenon.Notice
		if err := json.Unmarshal(kv.Value, &n); err != nil {
			fmt.Fprintf(w, "%s: damaged, ignored by servers (clear it)\n", who)
			continue
		}
		state := ""
		if !n.Active(now) {
			state = " (ended)"
		}
		end := " until cleared"
		if !n.Until.IsZero() {
			end = " until " + n.Until.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "%s%s%s: %s\n", who, end, state, n.Message)
		shown++
	}
	if shown == 0 {
		fmt.Fprintln(w, "no notices")
	}
	return nil
}
