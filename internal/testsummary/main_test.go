package main

import (
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    string
		code  int
		want  []string
		never []string
	}{
		{
			name: "passes and skips grouped by reason",
			in: `{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"pass","Package":"p","Test":"TestA","Elapsed":0.01}
{"Action":"output","Package":"p","Test":"TestPG1","Output":"=== RUN   TestPG1\n"}
{"Action":"output","Package":"p","Test":"TestPG1","Output":"    pg_test.go:12: set TENON_TEST_POSTGRES_DSN to run PostgreSQL tests\n"}
{"Action":"output","Package":"p","Test":"TestPG1","Output":"--- SKIP: TestPG1 (0.00s)\n"}
{"Action":"skip","Package":"p","Test":"TestPG1"}
{"Action":"output","Package":"q","Test":"TestPG2","Output":"    other_test.go:99: set TENON_TEST_POSTGRES_DSN to run PostgreSQL tests\n"}
{"Action":"skip","Package":"q","Test":"TestPG2"}
{"Action":"output","Package":"q","Test":"TestBrowser","Output":"    b_test.go:1: Chromium not installed\n"}
{"Action":"skip","Package":"q","Test":"TestBrowser"}
{"Action":"pass","Package":"p","Elapsed":1.5}
{"Action":"skip","Package":"r"}
`,
			code: 0,
			want: []string{"ok  \tp\t1.50s", "?   \tr\t[no test files]",
				"SKIPPED: 2 tests: set TENON_TEST_POSTGRES_DSN to run PostgreSQL tests",
				"SKIPPED: 1 test: Chromium not installed", "1 passed, 3 skipped, 0 failed"},
		},
		{
			name: "a failed test shows its output and fails the run",
			in: `{"Action":"output","Package":"p","Test":"TestB","Output":"    b_test.go:3: got 1, want 2\n"}
{"Action":"fail","Package":"p","Test":"TestB"}
{"Action":"output","Package":"p","Output":"FAIL\n"}
{"Action":"fail","Package":"p","Elapsed":0.2}
`,
			code: 1,
			want: []string{"--- FAIL: TestB (p)", "got 1, want 2", "FAIL\tp\t0.20s", "0 passed, 0 skipped, 1 failed, 1 package failed"},
		},
		{
			name:  "a build error fails the run",
			in:    "# p\np/x.go:1:1: expected 'package'\n" + `{"Action":"fail","Package":"p","Elapsed":0}` + "\n",
			code:  1,
			want:  []string{"p/x.go:1:1: expected 'package'", "1 package failed"},
			never: []string{"SKIPPED"},
		},
		{
			name: "a build error reported as JSON fails the run",
			in: `{"ImportPath":"p [p.test]","Action":"build-output","Output":"p/y.go:2:3: undefined: z\n"}
{"ImportPath":"p [p.test]","Action":"build-fail"}
{"Action":"fail","Package":"p","Elapsed":0,"FailedBuild":"p [p.test]"}
`,
			code: 1,
			want: []string{"p/y.go:2:3: undefined: z", "1 package failed"},
		},
		{
			name: "a skip without a message still counts",
			in:   `{"Action":"skip","Package":"p","Test":"TestC"}` + "\n",
			code: 0,
			want: []string{"SKIPPED: 1 test: no reason given"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			if code := run(strings.NewReader(tc.in), &out); code != tc.code {
				t.Errorf("exit %d, want %d\n%s", code, tc.code, out.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			for _, n := range tc.never {
				if strings.Contains(out.String(), n) {
					t.Errorf("output has %q:\n%s", n, out.String())
				}
			}
		})
	}
}
