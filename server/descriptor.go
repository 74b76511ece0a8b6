package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// descriptor is what the server needs to know from atlassian-connect.json.
type descriptor struct {
	Key            string `json:"key"`
	Authentication struct {
		Type string `json:"type"`
	} `json:"authentication"`
	Lifecycle struct {
		Installed   string `json:"installed"`
		Uninstalled string `json:"uninstalled"`
		Enabled     string `json:"enabled"`
		Disabled    string `json:"disabled"`
	} `json:"lifecycle"`
	EnableLicensing bool            `json:"enableLicensing"`
	APIMigrations   map[string]bool `json:"apiMigrations"`
	Modules         struct {
		Webhooks []struct {
			Event string `json:"event"`
			URL   string `json:"url"`
		} `json:"webhooks"`
	} `json:"modules"`
}

// parseDescriptor reads and checks the fields the server relies on.
func parseDescriptor(raw []byte) (*descriptor, error) {
	var d descriptor
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("server: the descriptor is not a valid JSON object: %w", err)
	}
	switch {
	case d.Key == "":
		return nil, errors.New(`server: the descriptor has no "key": set it to the app key`)
	case !strings.EqualFold(d.Authentication.Type, "jwt"):
		return nil, errors.New(`server: the descriptor must set "authentication": {"type": "jwt"}`)
	case d.Lifecycle.Installed == "":
		return nil, errors.New(`server: the descriptor has no "lifecycle.installed": set it, e.g. "/installed"`)
	case !d.APIMigrations["signed-install"]:
		return nil, errors.New(`server: the descriptor must opt in to signed installs: set "apiMigrations": {"signed-install": true}`)
	}
	for name, p := range map[string]string{
		"installed": d.Lifecycle.Installed, "uninstalled": d.Lifecycle.Uninstalled,
		"enabled": d.Lifecycle.Enabled, "disabled": d.Lifecycle.Disabled,
	} {
		if p != "" && !strings.HasPrefix(p, "/") {
			return nil, fmt.Errorf("server: descriptor lifecycle.%s %q must be a path relative to baseUrl, starting with '/'", name, p)
		}
	}
	return &d, nil
}

// spliceBaseURL returns raw with the value of its top-level "baseUrl"
// replaced by baseURL. Everything else keeps its exact bytes: key order,
// whitespace, escapes. The descriptor is the developer's Marketplace
// artefact, and a re-encoded copy would differ from it in ways that
// matter (a changed descriptor is a new app version).
func spliceBaseURL(raw []byte, baseURL string) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("server: reading the descriptor: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("server: the descriptor must be a JSON object")
	}
	start, end := -1, -1
	for dec.More() {
		keyTok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("server: reading the descriptor: %w", err)
		}
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, fmt.Errorf("server: reading the descriptor: %w", err)
		}
		if keyTok != "baseUrl" {
			continue
		}
		if start >= 0 {
			return nil, errors.New(`server: the descriptor has "baseUrl" twice: keep one`)
		}
		if len(value) == 0 || value[0] != '"' {
			return nil, errors.New(`server: the descriptor's "baseUrl" must be a string`)
		}
		// RawMessage holds the value's bytes verbatim, so it ends where
		// the decoder now stands and begins len(value) bytes before.
		end = int(dec.InputOffset())
		start = end - len(value)
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, fmt.Errorf("server: reading the descriptor: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("server: the descriptor has data after its JSON object")
	}
	if start < 0 {
		return nil, errors.New(`server: the descriptor has no top-level "baseUrl": add "baseUrl": "https://example.com" (its value is replaced by Config.BaseURL when served)`)
	}
	if !bytes.Equal(raw[start:end], mustTrimmed(raw[start:end])) {
		return nil, errors.New(`server: could not locate the descriptor's "baseUrl" value`)
	}

	var enc bytes.Buffer
	e := json.NewEncoder(&enc)
	e.SetEscapeHTML(false)
	if err := e.Encode(baseURL); err != nil {
		return nil, fmt.Errorf("server: encoding the base URL: %w", err)
	}
	value := bytes.TrimSuffix(enc.Bytes(), []byte("\n"))

	out := make([]byte, 0, len(raw)-(end-start)+len(value))
	out = append(out, raw[:start]...)
	out = append(out, value...)
	out = append(out, raw[end:]...)
	return out, nil
}

// mustTrimmed guards the offset arithmetic above: a located value must be
// a complete JSON string with nothing around it.
func mustTrimmed(b []byte) []byte {
	t := bytes.TrimSpace(b)
	if len(t) < 2 || t[0] != '"' || t[len(t)-1] != '"' {
		return nil
	}
	return t
}
