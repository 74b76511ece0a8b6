package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/sqlite"
	"github.com/tenon-dev/tenon/storetest"
)

const secretToken = "eyJhbGciOiJIUzI1NiJ9.plain-text-must-not-appear-on-disk.c2ln"

// TestTokensSealedAtRest reads the token table below the store: the token
// is not there in plain text.
func TestTokensSealedAtRest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tenon.db")
	s := MustOpenPath(t, path, nil)
	if err := s.PutToken(context.Background(), "oauth:k", secretToken, storetest.Start.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	var key, token, expires, updated string
	err := rawDB(t, path).QueryRow(`SELECT key, token, expires_at, updated_at FROM token_cache`).Scan(&key, &token, &expires, &updated)
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range []string{"plain-text-must-not-appear-on-disk", "eyJhbGciOiJIUzI1NiJ9"} {
		if strings.Contains(key+token+expires+updated, part) {
			t.Errorf("the stored row contains %q", part)
		}
	}
}

// TestSwappedTokenRefused: someone who can write the database moves one
// user's sealed token under another user's key. The store refuses it
// instead of handing out the first user's token for the second.
func TestSwappedTokenRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tenon.db")
	s := MustOpenPath(t, path, nil)
	ctx := context.Background()
	exp := storetest.Start.Add(time.Hour)
	if err := s.PutToken(ctx, "user:alice", "token-of-alice", exp); err != nil {
		t.Fatal(err)
	}
	if err := s.PutToken(ctx, "user:mallory", "token-of-mallory", exp); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE token_cache SET token = (SELECT token FROM token_cache WHERE key = 'user:alice') WHERE key = 'user:mallory'`); err != nil {
		t.Fatal(err)
	}
	got, _, err := s.Token(ctx, "user:mallory", storetest.Start)
	if err == nil || got != "" {
		t.Fatalf("Token after the swap: a token (len %d) and %v; want an error", len(got), err)
	}
	if tenon.ErrorCode(err) == tenon.ENOTFOUND {
		t.Errorf("a tampered token reads as missing (%v); it must be an error worth an alert", err)
	}
	if strings.Contains(err.Error(), "token-of") {
		t.Errorf("the error shows a token: %v", err)
	}
}

// TestTokensSurviveRestart: a token cached before a restart is served
// after it, so a restart does not send every user through the token
// endpoint again.
func TestTokensSurviveRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tenon.db")
	ctx := context.Background()
	exp := storetest.Start.Add(time.Hour)
	first, err := sqlite.Open(path, sqlite.Options{SecretBox: testKeyring(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.PutToken(ctx, "oauth:k", secretToken, exp); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	second := MustOpenPath(t, path, nil)
	got, gotExp, err := second.Token(ctx, "oauth:k", storetest.Start)
	if err != nil || got != secretToken || !gotExp.Equal(exp) {
		t.Errorf("after reopening: match=%v exp=%v err=%v", got == secretToken, gotExp, err)
	}
}
