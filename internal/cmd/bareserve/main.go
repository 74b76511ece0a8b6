// Command bareserve is the ceiling of the performance reference workload
// (scripts/measure-reference.sh): a bare net/http server that answers
// every request with one fixed HTML page of about the reference page's
// size, with no authentication, no store and no log. What tenon serves
// on the same machine is read against it.
//
// With --descriptor it also serves that file as /atlassian-connect.json,
// so `tenon loadtest` can "install" tenants into it (every lifecycle
// call gets the page, a 200) and measure how fast the load generator
// itself can go, with nothing to verify on the other end.
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8090", "listen address")
	size := flag.Int("size", 251, "bytes of the page")
	descPath := flag.String("descriptor", "", "a descriptor file to serve as /atlassian-connect.json")
	flag.Parse()
	page := Page(*size)
	var desc []byte
	if *descPath != "" {
		var err error
		if desc, err = os.ReadFile(*descPath); err != nil {
			fmt.Fprintln(os.Stderr, "bareserve:", err)
			os.Exit(1)
		}
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if desc != nil && r.URL.Path == "/atlassian-connect.json" {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(desc)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(page)))
		_, _ = w.Write(page)
	})
	srv := &http.Server{Addr: *addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "bareserve:", err)
		os.Exit(1)
	}
}

// Page returns an HTML page of exactly size bytes (at least its frame).
func Page(size int) []byte {
	const head = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Reference</title></head><body><p>`
	const tail = "</p></body></html>\n"
	return []byte(head + strings.Repeat("x", max(size-len(head)-len(tail), 0)) + tail)
}
