package forge_test

import (
	"context"
	"testing"

	"github.com/tenon-dev/tenon/forge"
)

// BenchmarkVerify measures one FIT verification with its key cached: what
// every Forge call costs before its handler runs.
func BenchmarkVerify(b *testing.B) {
	k := testKey(b, 0, "bench-key")
	ks := newKeyServer(b, k)
	c := newClock()
	j, err := forge.NewJWKS(ks.url(), forge.JWKSOptions{Now: c.Now})
	if err != nil {
		b.Fatal(err)
	}
	v, err := forge.NewVerifier(forge.VerifierOptions{AppID: appID, Keys: j, Now: c.Now})
	if err != nil {
		b.Fatal(err)
	}
	tok := sign(b, k, fitClaims())
	ctx := context.Background()
	if _, err := v.Verify(ctx, tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyParallel is BenchmarkVerify on every core at once.
func BenchmarkVerifyParallel(b *testing.B) {
	k := testKey(b, 0, "bench-key")
	ks := newKeyServer(b, k)
	c := newClock()
	j, err := forge.NewJWKS(ks.url(), forge.JWKSOptions{Now: c.Now})
	if err != nil {
		b.Fatal(err)
	}
	v, err := forge.NewVerifier(forge.VerifierOptions{AppID: appID, Keys: j, Now: c.Now})
	if err != nil {
		b.Fatal(err)
	}
	tok := sign(b, k, fitClaims())
	if _, err := v.Verify(context.Background(), tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Verify(context.Background(), tok); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
