package edge

import (
	"net"
	"net/http"
	"slices"
	"strings"
)

// RedirectHTTPS answers plain-HTTP requests for one of domains with a
// permanent redirect (308, which keeps the method and body) to the same
// path and query on https, at httpsPort unless it is "443" or "". A
// request for any other host gets 404: the listener must not become a
// redirector to names the operator never configured.
func RedirectHTTPS(domains []string, httpsPort string) http.Handler {
	clean, _ := CleanDomains(domains)
	suffix := ""
	if httpsPort != "" && httpsPort != "443" {
		suffix = ":" + httpsPort
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := strings.ToLower(r.Host)
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.TrimSuffix(host, ".")
		if !slices.Contains(clean, host) {
			http.Error(w, "Unknown host.", http.StatusNotFound)
			return
		}
		target := "https://" + host + suffix + r.URL.RequestURI()
		w.Header().Set("Connection", "close")
		http.Redirect(w, r, target, http.StatusPermanentRedirect)
	})
}
