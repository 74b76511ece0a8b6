package main_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tenon-dev/tenon/connectjwt"
	"github.com/tenon-dev/tenon/qsh"
)

// installKeyServer is a signed-install key server, as Atlassian runs one,
// serving one RSA key under kid "kid-1".
func installKeyServer(t *testing.T) (*rsa.PrivateKey, *httptest.Server) {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	keys := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/kid-1" {
			http.NotFound(w, r)
			return
		}
		w.Write(pemKey)
	}))
	t.Cleanup(keys.Close)
	return priv, keys
}

// signedInstall sends the checklist app an `installed` callback signed
// with priv, as the product does, and returns the answer.
func signedInstall(t *testing.T, baseURL, clientKey, secret, siteURL string, priv *rsa.PrivateKey) (int, []byte) {
	t.Helper()
	auth, body := installRequest(t, baseURL, clientKey, secret, siteURL, priv)
	return send(t, "POST", baseURL+"/installed", auth, body)
}

// installRequest is the Authorization header and body of a signed
// `installed` callback, for tests that send it themselves, also from
// other goroutines (it reports a failure with t.Error, never t.Fatal).
func installRequest(t *testing.T, baseURL, clientKey, secret, siteURL string, priv *rsa.PrivateKey) (string, []byte) {
	t.Helper()
	now := time.Now()
	body, _ := json.Marshal(map[string]any{
		"key": "tenon-checklist", "clientKey": clientKey, "sharedSecret": secret,
		"baseUrl": siteURL, "productType": "jira", "eventType": "installed",
	})
	tok, err := connectjwt.SignRS256(connectjwt.Claims{
		Issuer: clientKey, Audience: connectjwt.Audience{baseURL},
		IssuedAt: now.Unix(), ExpiresAt: now.Add(time.Minute).Unix(),
		QSH: qsh.Hash("POST", "/installed", "", ""),
	}, "kid-1", priv)
	if err != nil {
		t.Error(err)
	}
	return "JWT " + tok, body
}

// contextToken is the Authorization value of a browser-API call, as
// AP.context.getToken would give it.
func contextToken(t *testing.T, clientKey, secret string) string {
	t.Helper()
	now := time.Now()
	tok, err := connectjwt.SignHS256(connectjwt.Claims{
		Issuer: clientKey, Subject: "user-1",
		IssuedAt: now.Unix(), ExpiresAt: now.Add(10 * time.Minute).Unix(),
		QSH: qsh.ContextQSH,
	}, []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return "JWT " + tok
}
