package bridge

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/backends"
	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Protocol versions and what depends on them (the twenty-seventh review).

// A stdio backend that negotiated 2025-03-26 answers a call inside a
// JSON-RPC batch, which that version allows on stdio ("Messages may be
// JSON-RPC requests, notifications, responses—or a JSON-RPC batch") and
// which a client "MUST support receiving": each message is relayed.
func TestStdioBackendBatchIsUnpacked(t *testing.T) {
	srv := &scriptedServer{name: "old",
		caps: `{"protocolVersion":"2025-03-26","capabilities":{"tools":{}},"serverInfo":{"name":"old","version":"1"}}`,
		handle: func(f *frame.Frame, write func(string, ...any)) {
			if f.Kind != frame.Request {
				return
			}
			switch f.Method {
			case "tools/call":
				write(`[{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"hi"}},{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"batched"}]}}]`, f.ID())
			default:
				write(`{"jsonrpc":"2.0","id":%s,"result":{}}`, f.ID())
			}
		}}
	b := bridgedScripted(t, Config{Timeout: 2 * time.Second}, srv)
	b.Send(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"h","version":"1"}}}`)
	if r := b.Response("0"); !strings.Contains(string(r.Result()), `"2025-03-26"`) {
		t.Fatalf("initialize: %s", r.Raw())
	}
	b.Send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{}}}`)
	if r := b.Response("1"); !strings.Contains(string(r.Result()), "batched") {
		t.Errorf("a 2025-03-26 backend's batched answer was lost: %s", r.Raw())
	}
}

// r27Upgrading is a minimal streamable-HTTP server whose first session
// answers initialize with 2025-11-25 and {"tools":{},"logging":{}}; once
// expire is called it forgets that session (404) and the next session is
// a 2025-03-26 server with {"tools":{}} only (no logging), as a server
// redeployed at the same URL.
type r27Upgrading struct {
	next    string // the version of the sessions after expire
	mu      sync.Mutex
	expired bool
	sid     string
	n       int
	log     []string // "method pv=... session=N"
}

func (s *r27Upgrading) ServeHTTP(w http.ResponseWriter, q *http.Request) {
	if q.Method != http.MethodPost {
		http.Error(w, "no GET", http.StatusMethodNotAllowed)
		return
	}
	body, _ := io.ReadAll(q.Body)
	f, err := frame.Parse(body)
	if err != nil {
		http.Error(w, "bad", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Method == "initialize" {
		s.n++
		s.sid = fmt.Sprintf("sess-%d", s.n)
		version, caps := "2025-11-25", `{"tools":{},"logging":{}}`
		if s.expired {
			version, caps = s.next, `{"tools":{}}`
		}
		s.log = append(s.log, fmt.Sprintf("initialize session=%d", s.n))
		w.Header().Set("Mcp-Session-Id", s.sid)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":%q,"capabilities":%s,"serverInfo":{"name":"up","version":"1"}}}`, f.ID(), version, caps)
		return
	}
	if q.Header.Get("Mcp-Session-Id") != s.sid {
		http.Error(w, "session not found", http.StatusNotFound)
		return
	}
	s.log = append(s.log, fmt.Sprintf("%s pv=%s session=%d", f.Method, q.Header.Get("Mcp-Protocol-Version"), s.n))
	if f.Kind != frame.Request {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch f.Method {
	case "logging/setLevel":
		if s.expired {
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"Method not found"}}`, f.ID())
			return
		}
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{}}`, f.ID())
	case "tools/call":
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"ok %d"}]}}`, f.ID(), s.n)
	default:
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{}}`, f.ID())
	}
}

// bridgedUpgrading runs the bridge in front of up, initialized.
func bridgedUpgrading(t *testing.T, up *r27Upgrading) *bridgedRun {
	ts := httptest.NewServer(up)
	t.Cleanup(ts.Close)
	cfg := Config{}
	cfg.Backends = []config.Backend{{Name: "up", Kind: config.KindHTTP, URL: ts.URL}}
	cfg.Open = backends.Open
	b := bridgedWire(t, cfg)
	handshake(b.wire)
	return b
}

func (s *r27Upgrading) expire() { s.mu.Lock(); s.expired = true; s.sid = "gone"; s.mu.Unlock() }

func (s *r27Upgrading) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.log...)
}

// An HTTP session expires and the server at the URL now answers
// initialize with another version and without the logging capability:
// the link adopts the new session's result, so the host's log level is
// not replayed to a session that never declared logging (it was, from the
// lost session's capabilities).
func TestHTTPReinitAdoptsTheNewCapabilities(t *testing.T) {
	up := &r27Upgrading{next: "2025-03-26"}
	b := bridgedUpgrading(t, up)
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"logging/setLevel","params":{"level":"debug"}}`)
	b.Response("1")
	up.expire()
	b.Send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x","arguments":{}}}`)
	if r := b.Response("2"); !strings.Contains(string(r.Result()), "ok 2") {
		t.Fatalf("call after the session expired: %s", r.Raw())
	}
	// Give the replay (sent by the reinitialized hook) a moment.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		for _, l := range up.lines() {
			if strings.HasPrefix(l, "logging/setLevel") && strings.HasSuffix(l, "session=2") {
				t.Fatalf("logging/setLevel sent to the new session, which declared no logging capability (2025-03-26): %q", up.lines())
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("server saw: %q", up.lines())
}

// A go-sdk server that speaks only 2025-11-25 answers a 2025-03-26
// initialize with 2025-11-25 ("Otherwise, the server MUST respond with
// another protocol version it supports"). With one backend the host is
// told the server's answer, and decides; it was told its own version and
// then got 2025-06-18 content (resource_link). With several, the merged
// server speaks the host's version (a choice: the other backends do), and
// the backend that refused it is named in a warning.
func TestBackendsCounterOfferReachesTheHost(t *testing.T) {
	for _, n := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d-backends", n), func(t *testing.T) {
			named := []namedServer{{"new", r27Server("new", "2025-11-25")}}
			tool, want := "echo", `"protocolVersion":"2025-11-25"`
			if n == 2 {
				named = append(named, namedServer{"old", r27Server("old", "2025-03-26")})
				tool, want = "new_echo", `"protocolVersion":"2025-03-26"`
			}
			b := bridgedWire(t, Config{}, named...)
			b.Send(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"h","version":"1"}}}`)
			r := b.Response("0")
			b.Send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
			b.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + tool + `","arguments":{"text":"v"}}}`)
			if call := b.Response("1"); call.IsError() {
				t.Fatalf("call: %s", call.Raw())
			}
			if !strings.Contains(string(r.Result()), want) {
				t.Errorf("initialize answered %s, want %s", r.Result(), want)
			}
		})
	}
}

// r27Server is a go-sdk server that speaks only versions, with an echo tool
// whose answer carries a resource link (2025-06-18 content).
func r27Server(name string, versions ...string) *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: name, Version: "1"}, &mcp.ServerOptions{SupportedProtocolVersions: versions, HasTools: true})
	mcp.AddTool(srv, &mcp.Tool{Name: "echo"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct {
		Text string `json:"text"`
	}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.Text}, &mcp.ResourceLink{URI: "x://" + name, Name: "l"}}}, nil, nil
	})
	return srv
}

// A backend that answers a version the bridge does not know (an older
// draft here): the client "SHOULD disconnect", and the host's initialize
// gets an error naming it; it was relayed as if all were well.
func TestUnknownBackendVersionRefused(t *testing.T) {
	srv := &scriptedServer{name: "odd",
		caps: `{"protocolVersion":"2024-10-07","capabilities":{"tools":{}},"serverInfo":{"name":"odd","version":"1"}}`,
		handle: func(f *frame.Frame, write func(string, ...any)) {
			if f.Kind == frame.Request {
				write(`{"jsonrpc":"2.0","id":%s,"result":{"tools":[]}}`, f.ID())
			}
		}}
	b := bridgedScripted(t, Config{}, srv)
	b.Send(initLine)
	r := b.Response("0")
	if !r.IsError() || !strings.Contains(string(r.Error()), `\"2024-10-07\"`) {
		t.Errorf("backend answered protocolVersion 2024-10-07 (not spoken by the bridge); host got %s", r.Raw())
	}
}

// A backend whose initialize answer leaves protocolVersion out (required,
// but some servers do) is taken to speak the version asked for: the host
// is told that one, and calls work.
func TestBackendWithoutProtocolVersionTakesTheOneAsked(t *testing.T) {
	srv := &scriptedServer{name: "sloppy",
		caps: `{"capabilities":{"tools":{}},"serverInfo":{"name":"sloppy","version":"1"}}`,
		handle: func(f *frame.Frame, write func(string, ...any)) {
			if f.Kind == frame.Request {
				write(`{"jsonrpc":"2.0","id":%s,"result":{"tools":[]}}`, f.ID())
			}
		}}
	b := bridgedScripted(t, Config{}, srv)
	b.Send(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"h","version":"1"}}}`)
	if r := b.Response("0"); r.IsError() || !strings.Contains(string(r.Result()), `"protocolVersion":"2025-06-18"`) {
		t.Fatalf("initialize: %s", r.Raw())
	}
	b.Send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	if r := b.Response("1"); r.IsError() {
		t.Fatalf("tools/list: %s", r.Raw())
	}
}

// An HTTP session expires and the server's new session answers a version
// the bridge does not speak: the session is ended, and the backend's calls
// fail with that reason (they went on in the new session).
func TestHTTPReinitToAnUnknownVersionEndsTheSession(t *testing.T) {
	up := &r27Upgrading{next: "2099-01-01"}
	b := bridgedUpgrading(t, up)
	up.expire()
	deadline := time.Now().Add(10 * time.Second)
	var last string
	for i := 2; time.Now().Before(deadline); i++ {
		b.Send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"x","arguments":{}}}`, i))
		r := b.Response(fmt.Sprint(i))
		last = string(r.Raw())
		if r.IsError() && strings.Contains(last, "2099-01-01") {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("calls after the server moved to 2099-01-01 never failed naming it; last answer %s", last)
}
