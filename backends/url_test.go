package backends

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mcpbridge/mcpbridge/config"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func TestURLStreamable(t *testing.T) {
	ts, rc := serveStreamable(t, newMCPServer(), false, nil)
	d := newDriver(t, openTest(t, config.KindURL, ts.URL, nil))
	d.initialize()
	if got := d.call(2, "echo", "hi"); got != "hi" {
		t.Fatalf("echo = %q", got)
	}
	if n := rc.count(http.MethodPost, "tools/call"); n != 1 {
		t.Errorf("%d POSTs for one tools/call", n)
	}
}

// A legacy server that answers 405 to a POST on its SSE URL: the session
// falls back to SSE and re-sends the initialize there.
func TestURLFallbackToSSE(t *testing.T) {
	sse := mcp.NewSSEHandler(func(*http.Request) *mcp.Server { return newMCPServer() }, nil)
	rc := &recorder{next: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Query().Get("sessionid") == "" {
			http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
			return
		}
		sse.ServeHTTP(w, r)
	})}
	ts := httptest.NewServer(rc)
	t.Cleanup(ts.Close)

	d := newDriver(t, openTest(t, config.KindURL, ts.URL, nil))
	d.initialize()
	if got := d.call(2, "echo", "via sse"); got != "via sse" {
		t.Fatalf("echo = %q", got)
	}
	if got := d.callRoots(3); got != "roots: file:///tmp/r1" {
		t.Fatalf("roots = %q", got)
	}
	if rc.count(http.MethodGet, "") == 0 || rc.count(http.MethodPost, "initialize") != 2 {
		t.Fatalf("requests: %+v", rc.requests())
	}
}

func TestURLUnauthorizedDoesNotFallBack(t *testing.T) {
	rc := &recorder{next: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no token", http.StatusUnauthorized)
	})}
	ts := httptest.NewServer(rc)
	t.Cleanup(ts.Close)
	d := newDriver(t, openTest(t, config.KindURL, ts.URL, nil))
	d.send(initRequest)
	msg, _ := errorOf(t, d.await("1"))
	if !strings.Contains(msg, "--header 'b1:Authorization: Bearer") {
		t.Fatalf("error %q", msg)
	}
	for _, r := range rc.requests() {
		if r.method == http.MethodGet && strings.Contains(r.header.Get("Accept"), mediaSSE) {
			t.Fatalf("an event-stream GET: fell back to SSE on 401: %+v", rc.requests())
		}
	}
}

func TestURLNeitherTransport(t *testing.T) {
	ts := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(ts.Close)
	d := newDriver(t, openTest(t, config.KindURL, ts.URL, nil))
	d.send(initRequest)
	msg, _ := errorOf(t, d.await("1"))
	if !strings.Contains(msg, "404 Not Found") || !strings.Contains(msg, "legacy SSE failed too: sse: connect: HTTP 404") {
		t.Fatalf("error %q", msg)
	}
}

func TestURLBadURL(t *testing.T) {
	for _, kind := range []config.Kind{config.KindURL, config.KindHTTP, config.KindSSE} {
		_, err := Open(t.Context(), config.Backend{Name: "b1", Kind: kind, URL: "ftp://x/y"}, Options{Logger: testLogger(t)})
		if err == nil || !strings.Contains(err.Error(), `backend "b1"`) {
			t.Errorf("%s: error %v", kind, err)
		}
	}
}
