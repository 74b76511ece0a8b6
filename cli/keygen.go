package cli

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/tenon-dev/tenon/keyring"
)

// escrowNotice is said whenever a key file is made or changed: backups are
// encrypted with it too.
const escrowNotice = "keep a copy of this key file apart from the server and its backups (escrow): the shared secrets in the database and every backup snapshot are encrypted with it, and a backup without the key file cannot be restored"

// runKeygen writes a new key file, or prepends a new current key to an
// existing one (rotation: the old keys keep decrypting until `tenon keys
// reseal` has moved every row to the new key).
func runKeygen(ctx context.Context, env Env, app App, args []string) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	out := fs.String("o", "", "write the key file here (mode 0600) instead of standard output")
	rotate := fs.Bool("rotate", false, "with -o: prepend a new current key to the existing file, keeping old keys for decryption")
	if err := fs.Parse(args); err != nil {
		return err
	}
	line, err := keyring.Generate(rand.Reader)
	if err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	if *out == "" {
		if *rotate {
			return errors.New("-rotate needs -o <existing key file>")
		}
		if _, err := fmt.Fprintln(env.Stdout, line); err != nil {
			return err
		}
		fmt.Fprintln(env.Stderr, escrowNotice)
		return nil
	}
	content := line + "\n"
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	var older []string
	if *rotate {
		old, err := os.ReadFile(*out)
		if err != nil {
			return fmt.Errorf("read key file to rotate: %w", err)
		}
		kr, err := keyring.Parse(old)
		if err != nil {
			return fmt.Errorf("existing key file %s: %w", *out, err)
		}
		older = kr.KeyIDs()
		content += string(old)
		flags = os.O_WRONLY | os.O_TRUNC
	}
	f, err := os.OpenFile(*out, flags, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s exists; use -rotate to add a new key to it", *out)
		}
		return fmt.Errorf("create key file: %w", err)
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return fmt.Errorf("write key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync key file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close key file: %w", err)
	}
	newKR, err := keyring.Parse([]byte(line))
	if err != nil {
		return fmt.Errorf("new key: %w", err)
	}
	fmt.Fprintf(env.Stderr, "wrote %s with key %s\n", *out, newKR.SealingKeyID())
	if *rotate {
		fmt.Fprintf(env.Stderr, "Key %s now seals new values; %s only open old ones.\n", newKR.SealingKeyID(), strings.Join(older, ", "))
		fmt.Fprintln(env.Stderr, "Next: restart every node with this file, run `tenon keys reseal`, and once `tenon keys status` shows 0 rows under an older key, remove its line and restart.")
	}
	fmt.Fprintln(env.Stderr, escrowNotice)
	return nil
}
