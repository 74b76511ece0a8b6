package cli_test

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/tenon-dev/tenon/cli"
)

// The profiles are on the admin listener only with --pprof, never on the
// app's listener.
func TestPprofOnAdminListener(t *testing.T) {
	for _, on := range []bool{false, true} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		args := []string{"--base-url", "https://app.example.com"}
		if on {
			args = append(args, "--pprof", "true")
		}
		s := startServe(t, ln, args, func(string) net.Listener { return nil })
		resp, _ := fetch(t, http.DefaultClient, "GET", "http://"+s.admin+"/debug/pprof/cmdline")
		if want := map[bool]int{false: 404, true: 200}[on]; resp.StatusCode != want {
			t.Errorf("--pprof %v: admin /debug/pprof/cmdline answered %d, want %d", on, resp.StatusCode, want)
		}
		resp, _ = fetch(t, http.DefaultClient, "GET", "http://"+ln.Addr().String()+"/debug/pprof/cmdline")
		if resp.StatusCode == 200 {
			t.Errorf("--pprof %v: the app listener serves profiles", on)
		}
		s.stop()
	}
}

func TestPprofSettingErrors(t *testing.T) {
	base := []string{"--base-url", "https://a.example.com", "--secret-key-file", "k"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--pprof", "maybe"}, "--pprof / TENON_PPROF must be true or false"},
		{[]string{"--pprof", "true", "--admin-addr", "off"}, "--pprof needs the admin listener"},
	} {
		_, err := cli.LoadConfig(append(base, tc.args...), env(nil), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q", tc.args, err, tc.want)
		}
	}
}
