package backends

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// serveSSE serves srv with go-sdk's legacy SSE handler behind a recorder.
func serveSSE(t *testing.T, srv *mcp.Server) (*httptest.Server, *recorder) {
	t.Helper()
	rc := &recorder{next: mcp.NewSSEHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.SSEOptions{MaxRequestBodyBytes: -1})}
	ts := httptest.NewServer(rc)
	t.Cleanup(ts.Close)
	return ts, rc
}

func TestSSERoundTrip(t *testing.T) {
	ts, rc := serveSSE(t, newMCPServer())
	d := newDriver(t, openTest(t, config.KindSSE, ts.URL, map[string]string{"X-Test-Token": "secret"}))
	d.timeout = bigWait
	d.initialize()
	if got := d.call(2, "echo", "hello"); got != "hello" {
		t.Fatalf("echo = %q", got)
	}
	if got := d.callRoots(3); got != "roots: file:///tmp/r1" {
		t.Fatalf("roots = %q", got)
	}
	big := strings.Repeat("0123456789abcdef", 1<<20) // 16 MiB
	if got := d.call(4, "echo", big); got != big {
		t.Fatalf("echo of %d bytes came back with %d", len(big), len(got))
	}
	for _, r := range rc.requests() {
		if r.header.Get("X-Test-Token") != "secret" {
			t.Errorf("%s %s without the configured header", r.method, r.rpc)
		}
	}
	if n := rc.count(http.MethodPost, "tools/call"); n != 3 {
		t.Errorf("%d POSTs for 3 tools/call", n)
	}
}

func TestSSEReconnect(t *testing.T) {
	srv := newMCPServer()
	started, release := make(chan struct{}, 1), make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // go-sdk's session Close waits for its handlers
	mcp.AddTool(srv, &mcp.Tool{Name: "hang"}, func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		started <- struct{}{}
		<-release
		return textResult("too late"), nil, nil
	})
	ts, rc := serveSSE(t, srv)
	d := newDriver(t, openTest(t, config.KindSSE, ts.URL, nil))
	d.initialize()
	if got := d.call(2, "echo", "before"); got != "before" {
		t.Fatalf("echo = %q", got)
	}

	// A call in flight when the stream drops gets a failure at once.
	d.send(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"hang","arguments":{}}}`)
	select {
	case <-started:
	case <-time.After(testWait):
		t.Fatal("the hanging tool did not start")
	}
	ts.CloseClientConnections()
	// Lost with the stream, or with the POST if its 202 was still on the way.
	if msg, _ := errorOf(t, d.await("3")); !strings.Contains(msg, "connection to the backend was lost") && !strings.Contains(msg, "post:") {
		t.Fatalf("in-flight call: %q", msg)
	}
	unblock()

	d.note(MethodReinitialized)
	if got := d.call(4, "echo", "after"); got != "after" {
		t.Fatalf("echo = %q", got)
	}
	var inits []recorded
	for _, r := range rc.requests() {
		if r.rpc == "initialize" {
			inits = append(inits, r)
		}
	}
	if len(inits) != 2 || inits[1].id != `"mcpbridge-reinit-1"` {
		t.Fatalf("initialize POSTs: %+v", inits)
	}
	if rc.count(http.MethodPost, "notifications/initialized") != 2 {
		t.Error("initialized was not replayed")
	}
}

func TestSSEOpenErrors(t *testing.T) {
	for name, h := range map[string]http.HandlerFunc{
		"404": http.NotFound,
		"401": func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusUnauthorized) },
		"no endpoint": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", mediaSSE)
			fmt.Fprint(w, "event: message\ndata: {}\n\n")
		},
		"foreign endpoint": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", mediaSSE)
			fmt.Fprint(w, "event: endpoint\ndata: http://elsewhere.example/messages\n\n")
		},
	} {
		t.Run(name, func(t *testing.T) {
			ts := httptest.NewServer(h)
			t.Cleanup(ts.Close)
			ctx, cancel := context.WithTimeout(context.Background(), testWait)
			defer cancel()
			s, err := Open(ctx, config.Backend{Name: "b1", Kind: config.KindSSE, URL: ts.URL}, Options{Logger: testLogger(t)})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.HasPrefix(err.Error(), `backend "b1": sse: `) {
				t.Fatalf("error %q", err)
			}
			if name == "401" && !strings.Contains(err.Error(), "--header 'b1:Authorization: Bearer") {
				t.Fatalf("error %q does not say how to pass credentials", err)
			}
		})
	}
}

func TestSSEClose(t *testing.T) {
	ts, _ := serveSSE(t, newMCPServer())
	s := openTest(t, config.KindSSE, ts.URL, nil)
	d := newDriver(t, s)
	d.initialize()
	s.Close()
	s.Close()
	if _, err := s.Recv(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Recv after Close: %v", err)
	}
}

// TestSSEAnswerOfALostConnectionIsDropped: the host's answer to a request
// the server sent on an SSE connection since lost is dropped, not POSTed
// into the new session, where the server numbers its own requests from
// the start again and could take it for one of them (two reviews found it
// posted there).
func TestSSEAnswerOfALostConnectionIsDropped(t *testing.T) {
	srv := newMCPServer()
	addSampleTool(srv)
	ts, rc := serveSSE(t, srv)
	d := newDriver(t, openTest(t, config.KindSSE, ts.URL, nil))
	d.send(strings.Replace(initRequest, `"roots":{}`, `"roots":{},"sampling":{}`, 1))
	d.await("1")
	d.send(initialized)
	d.send(`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"sample","arguments":{}}}`)
	up := d.wait(func(f *frame.Frame) bool { return f.Kind == frame.Request && f.Method == "sampling/createMessage" })
	ts.CloseClientConnections()
	d.note(MethodReinitialized)
	d.send(`{"jsonrpc":"2.0","id":` + string(up.ID()) + `,"result":{"role":"assistant","content":{"type":"text","text":"STALE"},"model":"m"}}`)
	time.Sleep(300 * time.Millisecond)
	for _, r := range rc.requests() {
		if r.method == http.MethodPost && r.rpc == "" && r.id == string(up.ID()) {
			t.Errorf("the answer to the lost connection's request was POSTed")
		}
	}
}

// TestSSECancelledBeforeItsPostIsNotSent: a request sent while the event
// stream reconnects waits for the new endpoint; cancelled meanwhile, it
// is never POSTed, and neither is its cancellation (third review: the
// cancellation's POST waited for the same endpoint and raced the
// request's, so the server often ran the request it never heard was
// cancelled).
func TestSSECancelledBeforeItsPostIsNotSent(t *testing.T) {
	ts, rc := serveSSE(t, newMCPServer())
	d := newDriver(t, openTest(t, config.KindSSE, ts.URL, nil))
	d.initialize()
	if got := d.call(2, "echo", "before"); got != "before" {
		t.Fatalf("echo = %q", got)
	}
	rc.setIntercept(func(w http.ResponseWriter, r *http.Request, rec recorded) bool {
		if r.Method == http.MethodGet {
			time.Sleep(400 * time.Millisecond) // the reconnection takes a while
		}
		return false
	})
	gets := rc.count(http.MethodGet, "")
	ts.CloseClientConnections()
	for deadline := time.Now().Add(testWait); rc.count(http.MethodGet, "") == gets; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no reconnection")
		}
	}
	d.send(`{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}}`)
	d.send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":10}}`)
	if f := d.await("10"); !f.IsError() {
		t.Errorf("the cancelled request was answered: %s", f.Raw())
	}
	d.note(MethodReinitialized)
	if got := d.call(11, "echo", "after"); got != "after" {
		t.Fatalf("echo = %q", got)
	}
	for _, r := range rc.requests() {
		if (r.rpc == "tools/call" && r.id == "10") || r.rpc == "notifications/cancelled" {
			t.Errorf("POSTed after its cancellation: %s id=%s", r.rpc, r.id)
		}
	}
}

// TestSSEOversizedAnswerEndsTheCall: a legacy SSE server's answer over
// --max-message, its id written last as the TypeScript SDK writes it (or
// first), ends the call at once with -32603 naming the backend; it waited
// for --timeout (found through the TypeScript SDK by a seventeenth review).
// A request of the server's own that long is refused.
func TestSSEOversizedAnswerEndsTheCall(t *testing.T) {
	refused := make(chan string, 4)
	big := strings.Repeat("x", 10000)
	ts, _ := fakeLegacySSE(t, 1, func(_ int, f *frame.Frame, emit func(int, string)) {
		switch {
		case f.Method == "initialize":
			emit(1, initEvent(f))
		case f.Method == "tools/call" && string(f.ID()) == "2":
			emit(1, "event: message\ndata: "+`{"result":{"content":[{"type":"text","text":"`+big+`"}]},"jsonrpc":"2.0","id":2}`+"\n\n")
		case f.Method == "tools/call":
			emit(1, "event: message\ndata: "+`{"jsonrpc":"2.0","id":`+string(f.ID())+`,"result":{"content":[{"type":"text","text":"`+big+`"}]}}`+"\n\n")
			emit(1, "event: message\ndata: "+`{"method":"sampling/createMessage","params":{"m":"`+big+`"},"jsonrpc":"2.0","id":"up-1"}`+"\n\n")
		case f.Kind == frame.Response:
			refused <- string(f.Raw())
		}
	})
	d := openSmallSSE(t, ts)
	for _, id := range []string{"2", "3"} {
		d.send(`{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"big","arguments":{}}}`)
		f := d.await(id)
		if msg, code := errorOf(t, f); code != frame.CodeInternalError || !strings.Contains(msg, "too long") || !strings.Contains(string(f.Raw()), `"backend":"b1"`) {
			t.Errorf("call %s: %s", id, f.Raw())
		}
	}
	select {
	case r := <-refused:
		if !strings.Contains(r, `"id":"up-1"`) || !strings.Contains(r, "-32600") {
			t.Errorf("the server's oversized request was answered %s", r)
		}
	case <-time.After(testWait):
		t.Errorf("the server's oversized request was never refused")
	}
}
