//go:build linux

package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

// Thirty-fourth review.
//
// scrubCredentials (backends/httpclient.go) removes the URL's query
// values from an echoed error body in their decoded form only
// (u.Query()), while an error page echoes the request line as sent:
// percent-encoded. A key with a character a query encodes (base64's +, /
// and =, common in API keys) reaches the host and the log whole.
func TestEncodedQueryKeyEchoedInAnErrorBodyIsRedacted(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, "<!DOCTYPE html><html><body><pre>Cannot "+r.Method+" "+r.URL.RequestURI()+"</pre></body></html>")
	}))
	defer ts.Close()
	const encoded = "r34QueryKey%2Bab%2F0123456789%3D" // the key r34QueryKey+ab/0123456789=
	_, out, stderr := r33Run(t, nil, initLine+"\n", ts.URL+"/mcp?api_key="+encoded)
	if strings.Contains(out, "r34QueryKey") {
		t.Errorf("the API key in the backend's URL query reaches the host: %s", firstLineWith(out, "r34QueryKey"))
	}
	if strings.Contains(stderr, "r34QueryKey") {
		t.Errorf("the API key in the backend's URL query is logged: %s", firstLineWith(stderr, "r34QueryKey"))
	}
}

// link.named (bridge/link.go) names a backend once only if the message
// starts with its name; a refused HTTP initialize reads "initialize:
// backend %q: ..." (link.initialize wraps the send error, which names the
// backend already), so the host's initialize error names it twice:
// `backend "127-0-0-1": initialize: backend "127-0-0-1": the server
// refused ...`. d5097e1 says a start error names its backend once.
func TestHTTPStartErrorNamesItsBackendOnce(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, "not here")
	}))
	defer ts.Close()
	_, out, _ := r33Run(t, nil, initLine+"\n", ts.URL+"/mcp")
	line := firstLineWith(out, `"id":0`)
	if n := strings.Count(line, `initialize: backend \"127-0-0-1\"`); n > 0 {
		t.Errorf("the host's initialize error names the backend twice: %s", line)
	}
}

// setEnv (config/resolve.go) now quotes the value of an --env that has
// no "=" ("want NAME:KEY=VALUE: %q has no ="); the outer message hides an
// expanded value (expanded.shown: "s:…"), but the inner one prints it:
// --env "s:${API_KEY}" (KEY= forgotten) puts the secret on stderr.
func TestEnvWithoutKeyHidesAnExpandedSecret(t *testing.T) {
	const secret = "r34-env-secret-value-42"
	self, _ := os.Executable()
	code, _, stderr := r33Run(t, []string{"R34_SECRET=" + secret}, "", "--env", "s:${R34_SECRET}", "--stdio", "s="+self)
	if code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if strings.Contains(stderr, secret) {
		t.Errorf("the usage error prints the expanded secret the user hid behind ${R34_SECRET}:\n%s", strings.TrimSpace(stderr))
	}
}

// 51cca8f refuses --stdio 'NAME=KEY=VALUE cmd' (the token was run as a
// command and printed in the error), but the shell command line pasted
// as it is, without a NAME, --stdio 'GITHUB_TOKEN=ghp_… npx -y
// @modelcontextprotocol/server-github', still parses as backend
// "GITHUB_TOKEN" running the command "ghp_…" (stdioFlag,
// config/resolve.go: namedValue takes KEY as NAME and the token is
// argv[0]): the bridge starts, and the token is printed in the host's
// initialize error and the log ("command \"ghp_…\" not found in PATH").
func TestStdioAssignmentWithoutNameIsRefused(t *testing.T) {
	const secret = "ghp_r34secretvalue0123456789"
	code, out, stderr := r33Run(t, nil, initLine+"\n", "--stdio", "GITHUB_TOKEN="+secret+" npx -y @modelcontextprotocol/server-github")
	if code != 2 {
		t.Errorf("exit %d, want 2 (a usage error pointing to --env)", code)
	}
	if strings.Contains(out, secret) {
		t.Errorf("the token reaches the host: %s", firstLineWith(out, secret))
	}
	if strings.Contains(stderr, secret) {
		t.Errorf("the token is printed on stderr: %s", firstLineWith(stderr, secret))
	}
}

// The same for --http NAME=${URL}: flagBackends shows the value as
// "r=…", but checkURL's error (config/validate.go) quotes the expanded
// URL whole ("bad URL \"…\": want an http:// or https:// URL"), the key
// in its path with it.
func TestBadExpandedURLHidesItsKey(t *testing.T) {
	const key = "sk-r34-url-key-0123456789"
	code, _, stderr := r33Run(t, []string{"R34_URL=mcp.example.com/" + key + "/sse"}, "", "--http", "r=${R34_URL}")
	if code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if strings.Contains(stderr, key) {
		t.Errorf("the usage error prints the URL (and its key) the user hid behind ${R34_URL}:\n%s", strings.TrimSpace(stderr))
	}
}

// The same for the most common start failure, a stdio server that exits
// at start after the bridge sent its initialize (a missing API key): the
// host reads `backend "s": initialize: backend "s": connection to the
// backend was lost: backend "s": session closed: ...`, its name three
// times (link.named sees the message start with "initialize:").
func TestStdioStartErrorNamesItsBackendOnce(t *testing.T) {
	_, out, _ := r33Run(t, nil, initLine+"\n", "--stdio", `s=sh -c 'sleep 0.3; echo "missing API_KEY" >&2; exit 1'`)
	line := firstLineWith(out, `"id":0`)
	var msg struct {
		Error struct{ Message string } `json:"error"`
	}
	_ = json.Unmarshal([]byte(line), &msg)
	if n := strings.Count(msg.Error.Message, `backend "s"`); n != 1 {
		t.Errorf("the host's initialize error names the backend %d times: %s", n, msg.Error.Message)
	}
}

// e0f69d8 quotes a stdio backend's last stderr line in its exit reason
// "(redacted, at most 300 bytes)", and that reason reaches the host in
// error messages. stderrLoop redacts it with opts.Redact, but main.go
// never sets bridge.Config.Redact (the log is redacted by its writer,
// newRedactor, alone), so Options.Redact is the identity: a server that
// reports its bad token on stderr before it exits ("invalid token
// ghp_…", common) puts the configured secret into the host's error,
// which no redactor stands in front of.
func TestLastStderrLineInExitReasonIsRedacted(t *testing.T) {
	const secret = "ghp_r34ConfiguredTokenValue0123"
	_, out, stderr := r33Run(t, nil, initLine+"\n",
		"--env", "s:GITHUB_TOKEN="+secret,
		"--stdio", `s=sh -c 'echo "error: bad credentials for token $GITHUB_TOKEN" >&2; sleep 0.3; exit 1'`)
	if !strings.Contains(out+stderr, "bad credentials") {
		t.Fatalf("the backend's stderr line is missing:\n%s\n%s", out, stderr)
	}
	if strings.Contains(out, secret) {
		t.Errorf("the configured GITHUB_TOKEN reaches the host in the exit reason: %s", firstLineWith(out, secret))
	}
	if strings.Contains(stderr, secret) {
		t.Errorf("the configured GITHUB_TOKEN is logged: %s", firstLineWith(stderr, secret))
	}
}

// e0f69d8: "a stdio backend's exit reason quotes the last line it wrote
// to stderr: a server that exits at start says why there". For a server
// that exits at once (the usual "missing API_KEY" start failure) the
// host's initialize error is, about one run in five here, `backend "s":
// initialize: backend "s": session closed` with neither the exit status
// nor the stderr line: when the initialize is sent after the stream ended
// (link.send -> stream Send returns ErrClosed), the error is the bare
// ErrClosed, not the session's ended() reason.
func TestImmediateExitAlwaysSaysWhy(t *testing.T) {
	for i := 0; i < 15; i++ {
		_, out, _ := r33Run(t, nil, initLine+"\n", "--stdio", `s=sh -c 'echo "missing API_KEY" >&2; exit 1'`)
		if !strings.Contains(out, "missing API_KEY") {
			t.Fatalf("run %d: the host's initialize error does not say why the server exited: %s", i, firstLineWith(out, `"id":0`))
		}
	}
}
