package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/storetest"
)

const secretToken = "eyJhbGciOiJIUzI1NiJ9.plain-text-must-not-appear-in-the-database.c2ln"

func rawConn(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// TestTokensSealedAtRest reads the token table below the store: the token
// is not there in plain text.
func TestTokensSealedAtRest(t *testing.T) {
	dsn := MustSchema(t)
	s := MustOpenDSN(t, dsn, nil)
	ctx := context.Background()
	if err := s.PutToken(ctx, "oauth:k", secretToken, storetest.Start.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	var raw string
	if err := rawConn(t, dsn).QueryRow(ctx, `SELECT t::text FROM token_cache t`).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	for _, part := range []string{"plain-text-must-not-appear", "eyJhbGciOiJIUzI1NiJ9"} {
		if strings.Contains(raw, part) {
			t.Errorf("the stored row contains %q", part)
		}
	}
}

// TestSwappedTokenRefused: someone who can write the database moves one
// user's sealed token under another user's key. The store refuses it
// instead of handing out the first user's token for the second.
func TestSwappedTokenRefused(t *testing.T) {
	dsn := MustSchema(t)
	s := MustOpenDSN(t, dsn, nil)
	ctx := context.Background()
	exp := storetest.Start.Add(time.Hour)
	if err := s.PutToken(ctx, "user:alice", "token-of-alice", exp); err != nil {
		t.Fatal(err)
	}
	if err := s.PutToken(ctx, "user:mallory", "token-of-mallory", exp); err != nil {
		t.Fatal(err)
	}
	_, err := rawConn(t, dsn).Exec(ctx,
		`UPDATE token_cache SET token = (SELECT token FROM token_cache WHERE key = 'user:alice') WHERE key = 'user:mallory'`)
	if err != nil {
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

// TestTokensSharedByNodes: a token one node cached is served to another
// node on the same database.
func TestTokensSharedByNodes(t *testing.T) {
	dsn := MustSchema(t)
	a := MustOpenDSN(t, dsn, nil)
	b := MustOpenDSN(t, dsn, nil)
	ctx := context.Background()
	exp := storetest.Start.Add(time.Hour)
	if err := a.PutToken(ctx, "oauth:k", secretToken, exp); err != nil {
		t.Fatal(err)
	}
	got, gotExp, err := b.Token(ctx, "oauth:k", storetest.Start)
	if err != nil || got != secretToken || !gotExp.Equal(exp) {
		t.Errorf("on the other node: match=%v exp=%v err=%v", got == secretToken, gotExp, err)
	}
	if err := b.DeleteToken(ctx, "oauth:k"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Token(ctx, "oauth:k", storetest.Start); tenon.ErrorCode(err) != tenon.ENOTFOUND {
		t.Errorf("after the other node deleted it: %v, want ENOTFOUND", err)
	}
}
