package fakeatlassian

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	// tokenLifetime is how long the product's own tokens (lifecycle,
	// iframe, webhook) live, like Atlassian's three minutes.
	tokenLifetime = 3 * time.Minute
	// contextTokenLifetime is the life of AP.context.getToken tokens.
	contextTokenLifetime = 15 * time.Minute
	// clockLeeway is the clock skew the fake accepts on tokens it verifies.
	clockLeeway = 30 * time.Second
)

func signHS256(secret string, claims jwt.MapClaims) (string, error) {
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		return "", fmt.Errorf("fakeatlassian: sign HS256 token: %w", err)
	}
	return tok, nil
}

func signRS256(k *installKey, claims jwt.MapClaims) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	t.Header["kid"] = k.kid
	tok, err := t.SignedString(k.key)
	if err != nil {
		return "", fmt.Errorf("fakeatlassian: sign RS256 token: %w", err)
	}
	return tok, nil
}

// productClaims are the claims of every token the product signs for an
// app: issued now, valid for lifetime.
func (f *Fake) productClaims(clientKey, qsh string, lifetime time.Duration) jwt.MapClaims {
	now := f.now()
	return jwt.MapClaims{
		"iss": clientKey,
		"iat": now.Unix(),
		"exp": now.Add(lifetime).Unix(),
		"qsh": qsh,
	}
}

// hsParser verifies HS256 tokens only: "none" and every RS*/ES* token are
// refused before any key is looked up, which rules out algorithm confusion.
func (f *Fake) hsParser() *jwt.Parser {
	return jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(clockLeeway),
		jwt.WithTimeFunc(f.now),
	)
}

// describeJWTError turns a jwt error into a short reason for the caller.
func describeJWTError(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "the JWT is malformed"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "the JWT signature or algorithm is invalid (HS256 with the shared secret is required)"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "the JWT cannot be verified: " + rootCause(err)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "the JWT lacks a required claim (exp)"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "the JWT has expired"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued), errors.Is(err, jwt.ErrTokenNotValidYet):
		return "the JWT is not valid yet (iat/nbf in the future)"
	}
	return "the JWT is invalid"
}

func rootCause(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err.Error()
		}
		err = next
	}
}

func claimString(c jwt.MapClaims, name string) string {
	s, _ := c[name].(string)
	return s
}
