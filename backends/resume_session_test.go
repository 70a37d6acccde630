package backends

import (
	"context"
	"fmt"
	"github.com/mcpbridge/mcpbridge/frame"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/config"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// An answer stream is resumed in its own session. Call 2's stream is open
// in session A when another request is answered 404 (a load balancer
// that sent it to the wrong instance: A lives on) and the bridge moves to
// session B. Then A's server closes call 2's stream (SEP-1699, retry
// 10 ms) and answers it. The bridge resumed the stream with GET +
// Last-Event-ID under B's session id (and, while B was being set up, with
// none at all: "GET requires an Mcp-Session-Id header"), so the server
// refused it (400 "failed to replay events") and call 2 failed, though its
// answer was waiting in A.
func TestResumedStreamKeepsItsSession(t *testing.T) {
	startClose, release := make(chan struct{}), make(chan struct{})
	srv := newMCPServer()
	mcp.AddTool(srv, &mcp.Tool{Name: "held"}, func(ctx context.Context, req *mcp.CallToolRequest, in echoArgs) (*mcp.CallToolResult, any, error) {
		<-startClose
		req.Extra.CloseSSEStream(mcp.CloseSSEStreamArgs{RetryAfter: 10 * time.Millisecond})
		<-release
		return textResult(in.Text), nil, nil
	})
	ts, rc := serveStreamable(t, srv, false, mcp.NewMemoryEventStore(nil))
	_ = ts
	d := newDriver(t, openTest(t, config.KindHTTP, ts.URL, nil))
	d.initialize()
	if got := d.call(2, "echo", "warm"); got != "warm" {
		t.Fatalf("echo = %q", got)
	}
	sidA := lastSessionID(rc)
	d.send(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"held","arguments":{"text":"kept"}}}`)
	time.Sleep(100 * time.Millisecond) // its POST is out, its stream open

	// A stale 404 for one request: the bridge starts session B.
	rc.setIntercept(func(w http.ResponseWriter, r *http.Request, rec recorded) bool {
		if r.Method == http.MethodPost && rec.rpc == "tools/call" && rec.id == "4" && r.Header.Get(headerSessionID) == sidA {
			http.Error(w, "session not found", http.StatusNotFound)
			return true
		}
		return false
	})
	if got := d.call(4, "echo", "moved"); got != "moved" {
		t.Fatalf("echo = %q", got)
	}
	d.note(MethodReinitialized)
	if sidB := lastSessionID(rc); sidB == sidA {
		t.Fatalf("still on session %s", sidA)
	}

	close(startClose)                  // A closes call 3's stream...
	time.Sleep(200 * time.Millisecond) // ...the bridge resumes it...
	close(release)                     // ...and A answers it
	ans := d.await("3")
	for _, r := range rc.requests() {
		if r.method == http.MethodGet && r.header.Get(headerLastEventID) != "" && r.header.Get(headerSessionID) != sidA {
			t.Errorf("call 3's stream (session %s) resumed with Mcp-Session-Id %q, Last-Event-ID %q", sidA, r.header.Get(headerSessionID), r.header.Get(headerLastEventID))
		}
	}
	if ans.IsError() {
		t.Fatalf("call 3 failed, though its answer waited in its own session: %s", ans.Raw())
	}
	if got := resultText(t, ans); got != "kept" {
		t.Fatalf("held = %q", got)
	}
}

// The standalone stream's reconnection with Last-Event-ID refused with 400
// "failed to replay events": go-sdk's answer when its event store purged
// the events after that id ("400 is not really accurate, but should at
// least have no side effects": a 404 would mean the session). The session
// is alive; only those events are gone. The bridge took the 400 for a lost
// session (unlike a POST's 400, no check that it talks about the session)
// and re-initialized: a new upstream session, the old one's upcalls to the
// host dropped, the calls in flight in it orphaned. It should open the
// stream again without Last-Event-ID.
func TestStandaloneReplayRefusedIsNotASessionLoss(t *testing.T) {
	var gets atomic.Int32
	fresh := make(chan struct{})
	fs := &fakeStreamable{}
	fs.call = func(w http.ResponseWriter, r *http.Request, f *frame.Frame) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{}}`, f.ID())
	}
	fs.get = func(w http.ResponseWriter, r *http.Request) {
		n := gets.Add(1)
		switch {
		case n == 1: // one event with an id, then the connection ends
			sseHeaders(w)
			fmt.Fprint(w, "id: _0\nretry: 10\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n\n")
			flush(w)
			return
		case r.Header.Get(headerLastEventID) != "": // go-sdk, events purged
			http.Error(w, "failed to replay events", http.StatusBadRequest)
			return
		}
		if n <= 3 {
			close(fresh)
		}
		sseHeaders(w)
		flush(w)
		<-r.Context().Done()
	}
	ts := serveFake(t, fs)
	d := newDriver(t, openTest(t, config.KindHTTP, ts.URL, nil))
	d.initialize()
	d.note("notifications/tools/list_changed")
	select {
	case <-fresh:
	case <-time.After(2 * time.Second):
		t.Errorf("the standalone stream was not opened again after its replay was refused; server saw %q", fs.entries())
	}
	if n := fs.inits.Load(); n != 1 {
		t.Errorf("%d initialize POSTs: a refused replay was taken for a lost session; server saw %q", n, fs.entries())
	}
}

// A call whose answer stream broke is cancelled while the bridge waits the
// server's retry delay before resuming it (here 60 s, which the bridge
// respects as given). The cancellation is seen only after the delay: the
// call's goroutine and its POST slot (maxOutstandingPosts) stay taken for
// the whole delay after the call ended, so cancelled or timed-out calls of
// a server asking for long delays pile up until Send refuses everything
// with ErrQueueFull.
func TestCancelledCallStopsWaitingToResume(t *testing.T) {
	fs := &fakeStreamable{}
	fs.call = func(w http.ResponseWriter, r *http.Request, f *frame.Frame) {
		sseHeaders(w)
		fmt.Fprint(w, "id: ev-0\nretry: 60000\ndata:\n\n") // priming event, then close
		flush(w)
	}
	fs.get = func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusMethodNotAllowed) }
	ts := serveFake(t, fs)
	s := openTest(t, config.KindHTTP, ts.URL, nil)
	d := newDriver(t, s)
	d.initialize()
	d.send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"slow","arguments":{}}}`)
	time.Sleep(200 * time.Millisecond) // the stream broke; the bridge waits 60 s
	d.send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":2}}`)
	sem := s.(*streamable).sem
	deadline := time.Now().Add(2 * time.Second)
	for len(sem) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(sem); n > 0 {
		buf := make([]byte, 1<<20)
		t.Fatalf("2 s after its cancellation the call still holds %d POST slot(s), waiting to resume:\n%s", n, filterGoroutines(string(buf[:runtime.Stack(buf, true)]), "readStreamAnswer"))
	}
}

func filterGoroutines(st, s string) string {
	var out []string
	for _, g := range strings.Split(st, "\n\n") {
		if strings.Contains(g, s) {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}
