package storetest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tenon-dev/tenon"
)

func (s *suite) testPutGetDelete(t *testing.T) {
	st, _ := s.store(t)
	ctx := context.Background()
	if _, err := st.GetValue(ctx, "tenant-a", "settings"); tenon.ErrorCode(err) != tenon.ENOTFOUND {
		t.Errorf("GetValue of a missing key: %v, want ENOTFOUND", err)
	}
	// Values come back byte for byte, whitespace and key order included.
	for _, v := range []string{` { "b" : 1, "a" : [true, null] } `, `"just a string"`, `42`, `null`, `{"name":"Zürich 😀"}`} {
		mustPut(t, st, "tenant-a", "settings", v)
		got, err := st.GetValue(ctx, "tenant-a", "settings")
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != v {
			t.Errorf("GetValue = %q, want %q", got, v)
		}
	}
	if err := st.DeleteValue(ctx, "tenant-a", "settings"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetValue(ctx, "tenant-a", "settings"); tenon.ErrorCode(err) != tenon.ENOTFOUND {
		t.Errorf("GetValue after DeleteValue: %v, want ENOTFOUND", err)
	}
	if err := st.DeleteValue(ctx, "tenant-a", "settings"); err != nil {
		t.Errorf("deleting a missing key: %v", err)
	}
	if err := st.DeleteValue(ctx, "tenant-nobody", "x"); err != nil {
		t.Errorf("deleting in an unknown tenant: %v", err)
	}
}

func (s *suite) testDataValidation(t *testing.T) {
	st, _ := s.store(t)
	ctx := context.Background()
	longest := strings.Repeat("k", tenon.MaxKeyLength)
	largest := `"` + strings.Repeat("v", tenon.MaxValueSize-2) + `"`
	mustPut(t, st, "tenant-a", longest, largest)
	if got, err := st.GetValue(ctx, "tenant-a", longest); err != nil || len(got) != tenon.MaxValueSize {
		t.Errorf("the largest value under the longest key: %d bytes, %v", len(got), err)
	}

	badKeys := map[string]string{
		"empty":    "",
		"too long": longest + "k",
		"not UTF8": "caf\xe9",
		"NUL":      "a\x00b",
	}
	for name, key := range badKeys {
		wantCode(t, "PutValue with "+name+" key", st.PutValue(ctx, "tenant-a", key, []byte(`1`)), tenon.EINVALID)
		_, err := st.GetValue(ctx, "tenant-a", key)
		wantCode(t, "GetValue with "+name+" key", err, tenon.EINVALID)
		wantCode(t, "DeleteValue with "+name+" key", st.DeleteValue(ctx, "tenant-a", key), tenon.EINVALID)
	}
	badValues := map[string]struct {
		value string
		code  string
	}{
		"empty":      {"", tenon.EINVALID},
		"not JSON":   {"{'a': 1}", tenon.EINVALID},
		"truncated":  {`{"a":`, tenon.EINVALID},
		"two values": {`1 2`, tenon.EINVALID},
		"too large":  {`"` + strings.Repeat("v", tenon.MaxValueSize-1) + `"`, tenon.ETOOLARGE},
	}
	for name, tt := range badValues {
		wantCode(t, "PutValue with "+name+" value", st.PutValue(ctx, "tenant-a", "k", []byte(tt.value)), tt.code)
	}
	if _, err := st.GetValue(ctx, "tenant-a", "k"); tenon.ErrorCode(err) != tenon.ENOTFOUND {
		t.Errorf("a refused PutValue stored something: %v", err)
	}
	for _, p := range []string{"\xff", "a\x00", longest + "k"} {
		_, err := st.ListValues(ctx, "tenant-a", p, "", 10)
		wantCode(t, fmt.Sprintf("ListValues with prefix %.10q", p), err, tenon.EINVALID)
		_, err = st.ListValues(ctx, "tenant-a", "", p, 10)
		wantCode(t, fmt.Sprintf("ListValues after %.10q", p), err, tenon.EINVALID)
	}
}

func (s *suite) testListValues(t *testing.T) {
	st, _ := s.store(t)
	for _, k := range []string{"a/3", "a/1", "a", "a/5", "a0", "a/2", "b/1", "a/4", "a/"} {
		mustPut(t, st, "tenant-a", k, fmt.Sprintf(`{"key":%q}`, k))
	}
	all := []string{"a", "a/", "a/1", "a/2", "a/3", "a/4", "a/5", "a0", "b/1"}
	tests := []struct {
		prefix, after string
		limit         int
		want          []string
	}{
		{"", "", 0, all},
		{"", "", -1, all},
		{"", "", tenon.MaxListLimit + 1, all},
		{"a/", "", 0, []string{"a/", "a/1", "a/2", "a/3", "a/4", "a/5"}},
		{"a/", "", 2, []string{"a/", "a/1"}},
		{"a/", "a/1", 2, []string{"a/2", "a/3"}},
		{"a/", "a/3", 2, []string{"a/4", "a/5"}},
		{"a/", "a/5", 2, nil},
		{"a/", "a/25", 0, []string{"a/3", "a/4", "a/5"}}, // after need not exist
		{"a/", "0", 0, []string{"a/", "a/1", "a/2", "a/3", "a/4", "a/5"}},
		{"a/", "z", 0, nil},
		{"a", "", 0, []string{"a", "a/", "a/1", "a/2", "a/3", "a/4", "a/5", "a0"}},
		{"", "a0", 0, []string{"b/1"}},
		{"c", "", 0, nil},
		{"a/1/", "", 0, nil},
	}
	for _, tt := range tests {
		kvs := mustList(t, st, "tenant-a", tt.prefix, tt.after, tt.limit)
		if got := keysOf(kvs); !equalStrings(got, tt.want) {
			t.Errorf("ListValues(%q, %q, %d) = %q, want %q", tt.prefix, tt.after, tt.limit, got, tt.want)
		}
		for _, kv := range kvs {
			if want := fmt.Sprintf(`{"key":%q}`, kv.Key); string(kv.Value) != want {
				t.Errorf("ListValues: %q has value %s, want %s", kv.Key, kv.Value, want)
			}
		}
	}

	// Paging with the last key of each page visits every key once.
	var paged []string
	after := ""
	for range 20 {
		page := mustList(t, st, "tenant-a", "", after, 2)
		if len(page) == 0 {
			break
		}
		paged = append(paged, keysOf(page)...)
		after = page[len(page)-1].Key
	}
	if !equalStrings(paged, all) {
		t.Errorf("paging visited %q, want %q", paged, all)
	}
}

func (s *suite) testListByteOrder(t *testing.T) {
	st, _ := s.store(t)
	keys := []string{"b", "B", "a", "A", "_", "é", "e", "f", "Z", "z", "~", "1", "10", "9", "a b", "a-b", "ab", "ä", "\U0001F600", "\uFFFD", "\u00a0"}
	for _, k := range keys {
		mustPut(t, st, "tenant-a", k, "1")
	}
	want := slices.Clone(keys)
	slices.Sort(want) // Go compares strings byte-wise
	if got := keysOf(mustList(t, st, "tenant-a", "", "", 0)); !equalStrings(got, want) {
		t.Errorf("ListValues order = %q, want byte order %q", got, want)
	}
	// Prefixes ending in multi-byte characters bound correctly.
	if got := keysOf(mustList(t, st, "tenant-a", "é", "", 0)); !equalStrings(got, []string{"é"}) {
		t.Errorf("ListValues(é) = %q", got)
	}
}

// testListMetacharacters checks prefixes are literal: a store that builds a
// LIKE pattern without escaping would let "a_" match "ab".
func (s *suite) testListMetacharacters(t *testing.T) {
	st, _ := s.store(t)
	keys := []string{`a%b/1`, `aXb/1`, `a_b/1`, `acb/1`, `a\b/1`, `a\\b/1`, `ab/1`, `%`, `%x`, `_`, `x`, `\`, `\x`, `[a]`, `a*`, `a?`, `a.`, `a'b`, `a"b`}
	for _, k := range keys {
		mustPut(t, st, "tenant-a", k, "1")
	}
	tests := []struct {
		prefix string
		want   []string
	}{
		{`a%b/`, []string{`a%b/1`}},
		{`a_b/`, []string{`a_b/1`}},
		{`a\b/`, []string{`a\b/1`}},
		{`a\\b/`, []string{`a\\b/1`}},
		{`a\`, []string{`a\\b/1`, `a\b/1`}},
		{`%`, []string{`%`, `%x`}},
		{`_`, []string{`_`}},
		{`\`, []string{`\`, `\x`}},
		{`[`, []string{`[a]`}},
		{`a*`, []string{`a*`}},
		{`a?`, []string{`a?`}},
		{`a.`, []string{`a.`}},
		{`a'`, []string{`a'b`}},
		{`a"`, []string{`a"b`}},
	}
	for _, tt := range tests {
		if got := keysOf(mustList(t, st, "tenant-a", tt.prefix, "", 0)); !equalStrings(got, tt.want) {
			t.Errorf("ListValues(%q) = %q, want %q", tt.prefix, got, tt.want)
		}
	}
	// The same characters in `after` are literal too.
	if got := keysOf(mustList(t, st, "tenant-a", "a", `a_b/1`, 2)); !equalStrings(got, []string{`ab/1`, `acb/1`}) {
		t.Errorf("ListValues(a, after a_b/1) = %q, want [ab/1 acb/1]", got)
	}
}

func (s *suite) testListLimit(t *testing.T) {
	if s.opts.Short || testing.Short() {
		t.Skip("writes over a thousand values")
	}
	st, _ := s.store(t)
	n := tenon.MaxListLimit + 5
	for i := range n {
		mustPut(t, st, "tenant-a", fmt.Sprintf("k/%05d", i), "1")
	}
	for _, limit := range []int{0, -5, tenon.MaxListLimit + 1, 1 << 30} {
		if got := mustList(t, st, "tenant-a", "k/", "", limit); len(got) != tenon.MaxListLimit {
			t.Errorf("ListValues(limit %d) returned %d values, want %d", limit, len(got), tenon.MaxListLimit)
		}
	}
	rest := mustList(t, st, "tenant-a", "k/", fmt.Sprintf("k/%05d", tenon.MaxListLimit-1), 0)
	if len(rest) != 5 || rest[0].Key != fmt.Sprintf("k/%05d", tenon.MaxListLimit) {
		t.Errorf("second page = %q", keysOf(rest))
	}
}

// testTenantIsolation uses clientKeys that are prefixes of each other and
// keys that overlap, the cases a store concatenating tenant and key, or
// filtering on a prefix alone, would get wrong.
func (s *suite) testTenantIsolation(t *testing.T) {
	st, _ := s.store(t)
	ctx := context.Background()
	tenants := []string{"t", "t1", "t10", "t1/", "t1%", "T1"}
	for _, tenant := range tenants {
		mustPut(t, st, tenant, "shared/"+tenant, fmt.Sprintf("%q", tenant))
		mustPut(t, st, tenant, "shared", fmt.Sprintf("%q", tenant))
	}
	mustPut(t, st, "t1", "only-t1", "1")
	for _, tenant := range tenants {
		if got, err := st.GetValue(ctx, tenant, "shared"); err != nil || string(got) != fmt.Sprintf("%q", tenant) {
			t.Errorf("GetValue(%q, shared) = %s, %v", tenant, got, err)
		}
		if want := []string{"shared", "shared/" + tenant}; !equalStrings(keysOf(mustList(t, st, tenant, "shared", "", 0)), want) {
			t.Errorf("ListValues(%q, shared) = %q, want %q", tenant, keysOf(mustList(t, st, tenant, "shared", "", 0)), want)
		}
		if tenant != "t1" {
			if _, err := st.GetValue(ctx, tenant, "only-t1"); tenon.ErrorCode(err) != tenon.ENOTFOUND {
				t.Errorf("tenant %q sees t1's key: %v", tenant, err)
			}
			if kvs := mustList(t, st, tenant, "", "", 0); len(kvs) != 2 {
				t.Errorf("tenant %q lists %q", tenant, keysOf(kvs))
			}
		}
	}
	if err := st.DeleteValue(ctx, "t10", "shared"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetValue(ctx, "t1", "shared"); err != nil {
		t.Errorf("deleting t10's key removed t1's: %v", err)
	}
}

func (s *suite) testDeleteTenantData(t *testing.T) {
	st, _ := s.store(t)
	ctx := context.Background()
	mustSave(t, st, NewInstallation("t1"))
	for _, tenant := range []string{"t", "t1", "t10", "t1%"} {
		for i := range 3 {
			mustPut(t, st, tenant, fmt.Sprintf("k%d", i), "1")
		}
	}
	if err := st.DeleteTenantData(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	if kvs := mustList(t, st, "t1", "", "", 0); len(kvs) != 0 {
		t.Errorf("after DeleteTenantData: %q remain", keysOf(kvs))
	}
	for _, tenant := range []string{"t", "t10", "t1%"} {
		if kvs := mustList(t, st, tenant, "", "", 0); len(kvs) != 3 {
			t.Errorf("DeleteTenantData(t1) touched %q: %q remain", tenant, keysOf(kvs))
		}
	}
	// App data only: the installation record stays.
	mustGet(t, st, "t1")
	if err := st.DeleteTenantData(ctx, "t1"); err != nil {
		t.Errorf("second DeleteTenantData: %v", err)
	}
	if err := st.DeleteTenantData(ctx, "nobody"); err != nil {
		t.Errorf("DeleteTenantData of an unknown tenant: %v", err)
	}
	mustPut(t, st, "t1", "again", "1")
}

func (s *suite) testDataConcurrent(t *testing.T) {
	st, _ := s.store(t)
	ctx := context.Background()
	const workers, perWorker = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker)
	for w := range workers {
		wg.Go(func() {
			tenant := fmt.Sprintf("tenant-%d", w%2)
			for i := range perWorker {
				key := fmt.Sprintf("w%d/%03d", w, i)
				value := fmt.Sprintf(`{"w":%d,"i":%d}`, w, i)
				if err := st.PutValue(ctx, tenant, key, []byte(value)); err != nil {
					errs <- err
					return
				}
				// Also write a key every worker shares, to race updates.
				if err := st.PutValue(ctx, tenant, "counter", []byte(value)); err != nil {
					errs <- err
					return
				}
				got, err := st.GetValue(ctx, tenant, key)
				if err != nil || string(got) != value {
					errs <- fmt.Errorf("GetValue(%q) = %s, %v; want %s", key, got, err, value)
					return
				}
				if _, err := st.ListValues(ctx, tenant, fmt.Sprintf("w%d/", w), "", 0); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for w := range workers {
		tenant := fmt.Sprintf("tenant-%d", w%2)
		if kvs := mustList(t, st, tenant, fmt.Sprintf("w%d/", w), "", 0); len(kvs) != perWorker {
			t.Errorf("worker %d: %d keys, want %d", w, len(kvs), perWorker)
		}
	}
}
