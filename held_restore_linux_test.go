//go:build linux

package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/frame"
	"github.com/mcpbridge/mcpbridge/internal/testserver"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// A call an HTTP or SSE session had already taken when it found its
// upstream session lost waited inside it and went out as soon as the new
// session was initialized, beside the replayed logging/setLevel (the last
// sessions' "Known limitations"): the server ran it at its default level
// and its log messages were lost. Now such a call waits until the router
// has restored the host's state (backends.Restorer). Each server answers
// the replayed setLevel 300 ms late, so that a call that does not wait
// for it runs first.

// heldCallLogs sends the log tool's call as id and reports whether it was
// answered and whether its log notification reached the host.
func heldCallLogs(t *testing.T, p *bridgeProc, id string) (ok, logged bool) {
	t.Helper()
	isLog := func(f *frame.Frame) bool { return f.Kind == frame.Notification && f.Method == "notifications/message" }
	before := p.Count(isLog)
	p.Send(`{"jsonrpc":"2.0","id":"` + id + `","method":"tools/call","params":{"name":"log","arguments":{}}}`)
	f := p.Response(`"` + id + `"`)
	if f.IsError() || !strings.Contains(string(f.Result()), `"logged"`) {
		t.Logf("%s: %s", id, f.Raw())
		return false, false
	}
	return true, p.Count(isLog) > before
}

// slowReplayedSetLevel wraps inner: the second and later setLevel POSTs
// are answered 300 ms late; inits counts the initialize POSTs (the second
// is held until hold is closed, if not nil).
func slowReplayedSetLevel(inner http.Handler, inits *atomic.Int64, hold chan struct{}) http.HandlerFunc {
	var setLevels atomic.Int64
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			body, _ := io.ReadAll(r.Body)
			if bytes.Contains(body, []byte(`"method":"initialize"`)) && inits.Add(1) > 1 && hold != nil {
				select {
				case <-hold:
				case <-time.After(5 * time.Second):
				}
			}
			if bytes.Contains(body, []byte(`"logging/setLevel"`)) && setLevels.Add(1) > 1 {
				time.Sleep(300 * time.Millisecond)
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		inner.ServeHTTP(w, r)
	}
}

func TestSSECallHeldAcrossAReconnectWaitsForTheLogLevel(t *testing.T) {
	srv := testserver.New("e")
	var inits atomic.Int64
	hold := make(chan struct{})
	handler := slowReplayedSetLevel(mcp.NewSSEHandler(func(*http.Request) *mcp.Server { return srv }, nil), &inits, hold)
	var mu sync.Mutex
	var streams []net.Conn
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, ok := r.Context().Value(chaosKey{}).(net.Conn); ok && r.Method == http.MethodGet {
			mu.Lock()
			streams = append(streams, c)
			mu.Unlock()
		}
		handler(w, r)
	}))
	ts.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context { return context.WithValue(ctx, chaosKey{}, c) }
	ts.Start()
	t.Cleanup(func() { ts.CloseClientConnections(); ts.Close() })
	p := startBridge(t, nil, "--sse", "e="+ts.URL+"/sse")
	handshake(t, p)
	p.Send(`{"jsonrpc":"2.0","id":"lvl","method":"logging/setLevel","params":{"level":"debug"}}`)
	p.Response(`"lvl"`)
	if ok, logged := heldCallLogs(t, p, "before"); !ok || !logged {
		t.Fatalf("before the drop: answered %v, logged %v", ok, logged)
	}
	mu.Lock()
	for _, c := range streams {
		c.Close()
	}
	mu.Unlock()
	// The session reconnects; its new initialize waits at the server. A
	// call sent now waits inside the session.
	for end := time.Now().Add(5 * time.Second); inits.Load() < 2 && time.Now().Before(end); {
		time.Sleep(5 * time.Millisecond)
	}
	if inits.Load() < 2 {
		t.Fatal("the session did not re-initialize within 5 s of the drop")
	}
	go func() { time.Sleep(200 * time.Millisecond); close(hold) }()
	if ok, logged := heldCallLogs(t, p, "held"); !ok || !logged {
		t.Errorf("the call held across the reconnect: answered %v, its log notification reached the host %v (it ran before the replayed log level)", ok, logged)
	}
}

func TestStreamableCallHeldAcrossASessionLossWaitsForTheLogLevel(t *testing.T) {
	srv := testserver.New("e")
	var inits atomic.Int64
	handler := slowReplayedSetLevel(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil), &inits, nil)
	var expire atomic.Bool
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.Header.Get("Mcp-Session-Id") != "" && expire.CompareAndSwap(true, false) {
			http.Error(w, "session not found", http.StatusNotFound) // the session expired
			return
		}
		handler(w, r)
	}))
	t.Cleanup(ts.Close)
	p := startBridge(t, nil, "--http", "e="+ts.URL)
	handshake(t, p)
	p.Send(`{"jsonrpc":"2.0","id":"lvl","method":"logging/setLevel","params":{"level":"debug"}}`)
	p.Response(`"lvl"`)
	if ok, logged := heldCallLogs(t, p, "before"); !ok || !logged {
		t.Fatalf("before the loss: answered %v, logged %v", ok, logged)
	}
	expire.Store(true)
	if ok, logged := heldCallLogs(t, p, "held"); !ok || !logged {
		t.Errorf("the call that found the session lost: answered %v, its log notification reached the host %v (it ran before the replayed log level)", ok, logged)
	}
	if inits.Load() < 2 {
		t.Errorf("the server saw %d initialize POSTs, want a new session", inits.Load())
	}
}
