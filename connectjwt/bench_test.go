package connectjwt_test

import (
	"context"
	"testing"

	"github.com/tenon-dev/tenon/connectjwt"
)

// BenchmarkParseVerifyHS256 is the per-request cost of a typical iframe
// token: parse, HMAC, time checks.
func BenchmarkParseVerifyHS256(b *testing.B) {
	tok := mustSignHS(b, validClaims(), secret)
	v := &connectjwt.Verifier{Now: fixedClock(now), Leeway: 5 * 1e9}
	b.SetBytes(int64(len(tok)))
	b.ReportAllocs()
	for b.Loop() {
		t, err := connectjwt.Parse(tok)
		if err != nil {
			b.Fatal(err)
		}
		if err := v.VerifyHS256(t, secret); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParse isolates decoding from the HMAC.
func BenchmarkParse(b *testing.B) {
	tok := mustSignHS(b, validClaims(), secret)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := connectjwt.Parse(tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSignHS256(b *testing.B) {
	c := validClaims()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := connectjwt.SignHS256(c, secret); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkKeyServerCached(b *testing.B) {
	ks := newKeyServer(b)
	ks.put("install/kid-1", publicPEM(b, rsaKey2048()))
	k := mustKeyServer(b, ks.URL, connectjwt.KeyServerOptions{})
	ctx := context.Background()
	if _, err := k.PublicKey(ctx, "install/kid-1"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := k.PublicKey(ctx, "install/kid-1"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkParseVerifyHS256Key is the same with a prepared key, as the
// server verifies requests of a cached tenant.
func BenchmarkParseVerifyHS256Key(b *testing.B) {
	tok := mustSignHS(b, validClaims(), secret)
	v := &connectjwt.Verifier{Now: fixedClock(now), Leeway: 5 * 1e9}
	k := connectjwt.NewHS256Key(secret)
	b.SetBytes(int64(len(tok)))
	b.ReportAllocs()
	for b.Loop() {
		t, err := connectjwt.Parse(tok)
		if err != nil {
			b.Fatal(err)
		}
		if err := v.VerifyHS256Key(t, k); err != nil {
			b.Fatal(err)
		}
	}
}
