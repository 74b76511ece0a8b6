package fakeatlassian

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// OAuth 2.0 JWT-bearer grant (PROTOCOL §5): an app with ACT_AS_USER
// trades an assertion signed with its shared secret for a Bearer token
// that acts as a user on one site.

const (
	jwtBearerGrant      = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	oauthClientIDPrefix = "urn:atlassian:connect:clientid:"
	accountIDPrefix     = "urn:atlassian:connect:useraccountid:"
	accessTokenLifetime = 15 * time.Minute
	// maxAssertionLife is how long an assertion may live (exp - iat).
	maxAssertionLife = 60 * time.Second
)

// bearerGrant is what an access token stands for. Guarded by Fake.mu.
type bearerGrant struct {
	site      string
	appKey    string
	accountID string
	scopes    []string
	expires   time.Time
}

// oauthError answers like an OAuth 2.0 server (RFC 6749 §5.2).
func oauthError(w http.ResponseWriter, r *http.Request, status int, code, desc string) {
	noteOf(r).err = code + ": " + desc
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

func (f *Fake) serveOAuthToken(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		oauthError(w, r, http.StatusBadRequest, "invalid_request", "the body must be an application/x-www-form-urlencoded form of at most 64 KiB")
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != jwtBearerGrant {
		oauthError(w, r, http.StatusBadRequest, "unsupported_grant_type", fmt.Sprintf("grant_type must be %s", jwtBearerGrant))
		return
	}
	assertion := r.PostForm.Get("assertion")
	if assertion == "" {
		oauthError(w, r, http.StatusBadRequest, "invalid_request", "assertion is required")
		return
	}

	claims := jwt.MapClaims{}
	var s *siteState
	var a *appState
	var refusal string
	_, err := f.hsParser().ParseWithClaims(assertion, claims, func(*jwt.Token) (any, error) {
		iss := claimString(claims, "iss")
		clientID, ok := strings.CutPrefix(iss, oauthClientIDPrefix)
		f.mu.Lock()
		defer f.mu.Unlock()
		if ok && clientID != "" {
			s, a = f.appByOAuthClientIDLocked(clientID)
		}
		switch {
		case !ok || clientID == "":
			refusal = "iss must be " + oauthClientIDPrefix + "<oauthClientId>"
		case a == nil:
			refusal = "no installed app has this oauthClientId"
		case a.state != AppEnabled:
			refusal = "the app is not enabled on the site"
		}
		if refusal != "" {
			return nil, fmt.Errorf("%s", refusal)
		}
		return []byte(a.sharedSecret), nil
	})
	if err != nil {
		if refusal == "" {
			refusal = describeJWTError(err)
		}
		oauthError(w, r, http.StatusBadRequest, "invalid_grant", refusal)
		return
	}
	noteOf(r).site, noteOf(r).app = s.info.Name, a.desc.Key

	// Claims the parser does not know about.
	iat, errIat := claims.GetIssuedAt()
	exp, _ := claims.GetExpirationTime()
	aud, _ := claims.GetAudience()
	accountID, subOK := strings.CutPrefix(claimString(claims, "sub"), accountIDPrefix)
	switch {
	case errIat != nil || iat == nil:
		refusal = "iat is required"
	case exp.Sub(iat.Time) > maxAssertionLife+clockLeeway:
		refusal = "the assertion lives too long: exp must be at most 60 s after iat"
	case !slices.Contains(aud, f.AuthServerURL()):
		refusal = "aud must be " + f.AuthServerURL()
	case strings.TrimRight(claimString(claims, "tnt"), "/") != s.info.BaseURL:
		refusal = "tnt must be the site's baseUrl " + s.info.BaseURL
	case !subOK || accountID == "":
		refusal = "sub must be " + accountIDPrefix + "<accountId>"
	}
	if refusal != "" {
		oauthError(w, r, http.StatusBadRequest, "invalid_grant", refusal)
		return
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	if s.users[accountID] == nil {
		oauthError(w, r, http.StatusBadRequest, "invalid_grant", "no such user on the site")
		return
	}
	if !slices.Contains(a.desc.Scopes, "ACT_AS_USER") {
		oauthError(w, r, http.StatusUnauthorized, "unauthorized_client", "the app does not have the ACT_AS_USER scope")
		return
	}
	scopes, bad := grantScopes(a.desc.Scopes, r.PostForm.Get("scope"))
	if bad != "" {
		oauthError(w, r, http.StatusBadRequest, "invalid_scope", bad)
		return
	}
	token := base64.RawURLEncoding.EncodeToString(f.randomBytes(32))
	f.grants[token] = &bearerGrant{site: s.info.Name, appKey: a.desc.Key, accountID: accountID, scopes: scopes,
		expires: f.now().Add(accessTokenLifetime)}
	noteOf(r).accountID = accountID
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": token,
		"expires_in":   int(accessTokenLifetime.Seconds()),
		"token_type":   "Bearer",
		"scope":        strings.Join(scopes, " "),
	})
}

// grantScopes returns the scopes a token gets: those requested (space
// separated, case-insensitive), which must be among the app's, or all of
// the app's when none are requested. ACT_AS_USER itself is not passed on.
func grantScopes(appScopes []string, requested string) ([]string, string) {
	var out []string
	if strings.TrimSpace(requested) == "" {
		for _, sc := range appScopes {
			if sc != "ACT_AS_USER" {
				out = append(out, sc)
			}
		}
		return out, ""
	}
	for _, sc := range strings.Fields(strings.ToUpper(requested)) {
		if sc == "ACT_AS_USER" {
			continue
		}
		if !hasScope(appScopes, sc) {
			return nil, fmt.Sprintf("the app does not have the scope %s", sc)
		}
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	return out, ""
}

func (f *Fake) appByOAuthClientIDLocked(clientID string) (*siteState, *appState) {
	for _, s := range f.sites {
		for _, a := range s.apps {
			if a.oauthClientID == clientID && a.state != AppUninstalled {
				return s, a
			}
		}
	}
	return nil, nil
}
