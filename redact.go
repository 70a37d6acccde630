package main

import (
	"encoding/json"
	"io"
	"sort"
	"strings"
)

// minSecret is the shortest configured value treated as a secret: shorter
// ones ("1", "true", "3000") would blank out parts of every log line,
// JSON keys and numbers included.
const minSecret = 6

// A redactor is the log output: every line the logger writes (ours, the
// backends' relayed stderr, logged payloads and command lines) passes
// through it, so no configured secret reaches a log at any level (issue #5).
type redactor struct {
	w io.Writer
	r *strings.Replacer
}

func newRedactor(w io.Writer, rep *strings.Replacer) io.Writer {
	if rep == nil {
		return w
	}
	return &redactor{w: w, r: rep}
}

// newReplacer replaces each secret, in the forms a log line or a JSON
// message holds it, with [REDACTED]; nil if there is none. The log's
// writer and the bridge's errors to the host (bridge.Config.Redact) share
// it.
func newReplacer(secrets []string) *strings.Replacer {
	var pairs []string
	seen := map[string]bool{}
	// Longest first, so a secret containing another is removed whole.
	sort.Slice(secrets, func(i, j int) bool { return len(secrets[i]) > len(secrets[j]) })
	for _, s := range secrets {
		if len(s) < minSecret {
			continue
		}
		// The JSON log line holds the value escaped as a JSON string:
		// zerolog escapes only quotes, backslashes and control
		// characters; encoding/json also escapes &, < and > (a value
		// relayed inside a JSON payload).
		q, _ := json.Marshal(s)
		var plain strings.Builder
		enc := json.NewEncoder(&plain)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(s)
		p := strings.TrimSuffix(plain.String(), "\n")
		for _, form := range []string{s, string(q[1 : len(q)-1]), p[1 : len(p)-1]} {
			if !seen[form] {
				seen[form] = true
				pairs = append(pairs, form, "[REDACTED]")
			}
		}
	}
	if len(pairs) == 0 {
		return nil
	}
	return strings.NewReplacer(pairs...)
}

func (r *redactor) Write(p []byte) (int, error) {
	if _, err := io.WriteString(r.w, r.r.Replace(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}
