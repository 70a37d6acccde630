package config

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
)

// checkName rejects a backend name that does not match NamePattern,
// suggesting a cleaned one.
func checkName(name string) error {
	if ValidName(name) {
		return nil
	}
	return fmt.Errorf("bad name %q: names must match %s (for example %q)", name, NamePattern, CleanName(name))
}

// checkURL accepts absolute http and https URLs with a host.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("bad URL: %w", err)
	}
	if s := strings.ToLower(u.Scheme); s != "http" && s != "https" {
		return fmt.Errorf("bad URL %q: want an http:// or https:// URL", raw)
	}
	if u.Host == "" {
		return fmt.Errorf("bad URL %q: no host", raw)
	}
	return nil
}

// isHTTPURL reports whether s starts with http:// or https:// (any case):
// the test that tells a positional URL from a command.
func isHTTPURL(s string) bool {
	lower := strings.ToLower(s)
	return strings.HasPrefix(lower, "http://") || strings.HasPrefix(lower, "https://")
}

// checkGlob rejects empty and malformed path.Match patterns. path.Match
// only reports ErrBadPattern for the part of a pattern it reaches, and
// matching against "" reaches all of it.
func checkGlob(pattern string) error {
	if pattern == "" {
		return errors.New("empty pattern")
	}
	if _, err := path.Match(pattern, ""); err != nil {
		return fmt.Errorf("bad pattern %q: %w", pattern, err)
	}
	return nil
}

// addHeader validates a header and stores it in h under its canonical name.
func addHeader(h map[string]string, key, value string) error {
	if !validHeaderName(key) {
		return fmt.Errorf("bad header name %q", key)
	}
	if strings.ContainsAny(value, "\r\n\x00") {
		return fmt.Errorf("header %s: value contains a line break or NUL", key)
	}
	h[http.CanonicalHeaderKey(key)] = value
	return nil
}

// validHeaderName reports whether s is an HTTP token (RFC 9110 section 5.6.2).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
		if !ok {
			return false
		}
	}
	return true
}

// parseDuration parses a Go duration such as "90s" or "2m"; "0" disables a
// timeout. Negative durations are errors.
func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("bad duration %q: want a duration such as 30s or 2m, or 0 to disable", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("bad duration %q: negative", s)
	}
	return d, nil
}

// millis converts a JSON number of milliseconds to a duration.
func millis(ms float64) (time.Duration, error) {
	switch {
	case math.IsNaN(ms) || ms < 0:
		return 0, fmt.Errorf("bad duration %v: negative", ms)
	case ms > float64(math.MaxInt64/int64(time.Millisecond)):
		return 0, fmt.Errorf("bad duration %v: too long", ms)
	}
	return time.Duration(ms * float64(time.Millisecond)), nil
}
