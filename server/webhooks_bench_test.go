package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/keyring"
	"github.com/tenon-dev/tenon/postgres"
	"github.com/tenon-dev/tenon/server"
)

// BenchmarkWebhookAck measures what a queued webhook costs before the
// product gets its 204: the authenticated request (token, cached tenant,
// HS256, qsh), reading and checking a 1.5 KB JSON body, and the durable
// enqueue — a committed, fsynced insert. Serial is one delivery at a
// time; Parallel has many in flight, as when a bulk change in Jira fires
// a burst. Reported as acks/s.
func BenchmarkWebhookAck(b *testing.B) {
	b.Run("SQLite/Serial", func(b *testing.B) { benchWebhookAck(b, newBenchEnv(b, false), false) })
	b.Run("SQLite/Parallel", func(b *testing.B) { benchWebhookAck(b, newBenchEnv(b, false), true) })
	b.Run("PostgreSQL/Serial", func(b *testing.B) { benchWebhookAck(b, newBenchEnv(b, true), false) })
	b.Run("PostgreSQL/Parallel", func(b *testing.B) { benchWebhookAck(b, newBenchEnv(b, true), true) })
}

func newBenchEnv(b *testing.B, pg bool) *env {
	opts := []envOption{func(c *server.Config) { c.Descriptor = []byte(queuedDescriptor) }}
	if pg {
		dsn := benchPostgresDSN(b)
		opts = append(opts, func(c *server.Config) {
			kr, err := keyring.New(bytes.Repeat([]byte{7}, keyring.KeySize))
			if err != nil {
				b.Fatal(err)
			}
			s, err := postgres.Open(context.Background(), dsn, postgres.Options{SecretBox: kr, Now: c.Now})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			c.Store = s
		})
	}
	e := newEnv(b, opts...)
	e.srv.OnWebhook("jira:issue_updated", func(context.Context, *tenon.Principal, *server.Event) error { return nil })
	e.install("client-a", hookSecretA)
	return e
}

func benchWebhookAck(b *testing.B, e *env, parallel bool) {
	const pathQuery = "/queued/issue?key=PROJ-123&project=PROJ"
	target := appBaseURL + pathQuery
	auth := "JWT " + e.tenantToken("client-a", hookSecretA, http.MethodPost, pathQuery)
	body := []byte(`{"timestamp":1772366400000,"webhookEvent":"jira:issue_updated","issue_event_type_name":"issue_generic",` +
		`"user":{"accountId":"557058:user-1","displayName":"Ada Lovelace"},"issue":{"id":"10123","key":"PROJ-123",` +
		`"fields":{"summary":"` + strings.Repeat("A summary with some words. ", 30) + `","status":{"name":"In Progress"},` +
		`"project":{"key":"PROJ","id":"10000"}}},"changelog":{"id":"10400","items":[{"field":"status","fromString":"To Do","toString":"In Progress"}]}}`)
	var seq atomic.Int64
	ack := func() bool {
		req := httptest.NewRequest(http.MethodPost, target, bytes.NewReader(body))
		req.Header.Set("Authorization", auth)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Atlassian-Webhook-Identifier", "hook-"+strconv.FormatInt(seq.Add(1), 10))
		rec := httptest.NewRecorder()
		e.srv.ServeHTTP(rec, req)
		return rec.Code == http.StatusNoContent
	}
	if !ack() {
		b.Fatal("the warm-up delivery was not acknowledged")
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	if parallel {
		b.SetParallelism(8) // 8 × GOMAXPROCS deliveries in flight
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if !ack() {
					b.Error("a delivery was not acknowledged")
					return
				}
			}
		})
	} else {
		for b.Loop() {
			if !ack() {
				b.Fatal("a delivery was not acknowledged")
			}
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "acks/s")
}

// benchPostgresDSN makes a schema for one benchmark in the database of
// TENON_TEST_POSTGRES_DSN and drops it afterwards; without the variable
// the benchmark is skipped, unless TENON_REQUIRE_POSTGRES=1.
func benchPostgresDSN(b *testing.B) string {
	base := os.Getenv("TENON_TEST_POSTGRES_DSN")
	if base == "" {
		if os.Getenv("TENON_REQUIRE_POSTGRES") == "1" {
			b.Fatal("PostgreSQL is required (TENON_REQUIRE_POSTGRES=1) but TENON_TEST_POSTGRES_DSN is not set")
		}
		b.Skip("TENON_TEST_POSTGRES_DSN is not set")
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	var r [8]byte
	rand.Read(r[:])
	schema := "tenon_bench_" + hex.EncodeToString(r[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			b.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			b.Errorf("drop schema %s: %v", schema, err)
		}
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	if !strings.HasPrefix(base, "postgres://") && !strings.HasPrefix(base, "postgresql://") {
		return base + " search_path=" + schema
	}
	return base + sep + "search_path=" + schema
}
