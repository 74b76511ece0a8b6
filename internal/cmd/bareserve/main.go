// Command bareserve is the ceiling of the performance reference workload
// (scripts/measure-reference.sh): a bare net/http server that answers
// every request with one fixed HTML page of about the reference page's
// size, with no authentication, no store and no log. What tenon serves
// on the same machine is read against it.
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
	size := flag.Int("size", 330, "bytes of the page")
	flag.Parse()
	page := Page(*size)
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
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
