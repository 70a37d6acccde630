package backends

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// From the twenty-third review (a helper session's adversarial read of
// the fixes of the nineteenth to twenty-second): each test describes the
// bug it found, and failed before its fix.

// Twenty-third review (an adversarial read of 7479289..bd16fcb).

// Session.Send: "A request that fails after Send returned nil is answered
// through Recv with an error response carrying the request's id ... so
// every request sent gets exactly one answer unless the session ends",
// and bd16fcb's message: the cancellation ends the POST, "the session
// still answers the request once (a failure the router drops), as
// Session.Send promises". postRequest's non-2xx branch delivers its
// answer only `if ctx.Err() == nil`: that guard was for the session's
// close, but ctx is now also the one unsent.cancel aborts. A request
// whose POST got a non-2xx status (a proxy's or server's 5xx, sent with
// its body slowly) and that the router cancels while its error body is
// read gets no answer at all: readErrorBody is cut short by the abort
// and the status answer is skipped. Before bd16fcb it got the status
// answer once the body came.
func TestCancelledDuringErrorBodyStillAnsweredOnce(t *testing.T) {
	gotCall := make(chan struct{}, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		case http.MethodDelete:
			return
		}
		body, _ := io.ReadAll(r.Body)
		f, err := frame.Parse(body)
		if err != nil {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		switch {
		case f.Method == "initialize":
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set(headerSessionID, "s1")
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":%q,"capabilities":{"tools":{}},"serverInfo":{"name":"x","version":"1"}}}`, f.ID(), testProtocol)
		case f.Kind != frame.Request:
			w.WriteHeader(http.StatusAccepted)
		default:
			// An overloaded upstream: the status at once, its page
			// after a second.
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.(http.Flusher).Flush()
			select {
			case gotCall <- struct{}{}:
			default:
			}
			select {
			case <-time.After(time.Second):
				io.WriteString(w, "upstream overloaded, try again later")
			case <-r.Context().Done():
			}
		}
	})
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	s := openTest(t, config.KindHTTP, ts.URL, nil)
	d := newDriver(t, s)
	d.initialize()
	d.send(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x","arguments":{}}}`)
	select {
	case <-gotCall:
	case <-time.After(testWait):
		t.Fatal("the call never reached the server")
	}
	time.Sleep(100 * time.Millisecond) // the POST has its status; its body is being read
	d.send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7,"reason":"the host cancelled it"}}`)

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	answers := 0
	for {
		f, err := s.Recv(ctx)
		if err != nil {
			break // the bound: 4 s, three more than the server's page takes
		}
		if f.Kind == frame.Response && string(f.ID()) == "7" {
			answers++
		}
	}
	if answers != 1 {
		t.Errorf("request 7, whose POST was answered 503 and which was cancelled while the error body was read, got %d answers through Recv in 4 s (Session.Send: exactly one)", answers)
	}
}

// unsent.cancel now aborts the request's POST from Send, before the
// cancellation is even launched. The cancellation's own POST goroutine
// then asks unsent.sessionOf (now: Send, before the abort) which session the request was sent in, to
// post it there (a request resumed in a session the bridge has left
// since, TestResumedCallCancelGoesToItsSession), but the aborted
// request's goroutine removes the request from unsent (defer
// unsent.end) as soon as its stream read fails: when it wins that race
// the cancellation goes to the current session, which does not know
// the request, and the old session's server runs it to its end. Here
// 100 calls are held in session A when a stale 404 moves the bridge to
// B; each of their cancellations must be POSTed in A. (Before bd16fcb
// nothing ended the POSTs, and every cancellation went to A.)
func TestCancelsOfOldSessionCallsGoToThatSession(t *testing.T) {
	const n = 100
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	srv := newMCPServer()
	mcp.AddTool(srv, &mcp.Tool{Name: "heldA"}, func(ctx context.Context, req *mcp.CallToolRequest, in echoArgs) (*mcp.CallToolResult, any, error) {
		select {
		case <-ctx.Done():
		case <-release:
		case <-time.After(testWait):
		}
		return textResult("late"), nil, nil
	})
	ts, rc := serveStreamable(t, srv, false, mcp.NewMemoryEventStore(nil))
	d := newDriver(t, openTest(t, config.KindHTTP, ts.URL, nil))
	d.initialize()
	if got := d.call(2, "echo", "warm"); got != "warm" {
		t.Fatalf("echo = %q", got)
	}
	sidA := lastSessionID(rc)
	for i := range n {
		d.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"heldA","arguments":{"text":"kept"}}}`, 100+i))
	}
	if !review21Settle(testWait, func() bool { return rc.count(http.MethodPost, "tools/call") >= n+1 }) {
		t.Fatalf("the held calls did not all reach the server")
	}
	time.Sleep(200 * time.Millisecond)
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
	for i := range n {
		d.send(fmt.Sprintf(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":%d}}`, 100+i))
	}
	cancels := func() []recorded {
		var out []recorded
		for _, r := range rc.requests() {
			if r.method == http.MethodPost && r.rpc == "notifications/cancelled" {
				out = append(out, r)
			}
		}
		return out
	}
	review21Settle(testWait, func() bool { return len(cancels()) >= n })
	wrong := map[string]int{}
	for _, r := range cancels() {
		if sid := r.header.Get(headerSessionID); sid != sidA {
			wrong[sid]++
		}
	}
	if len(wrong) > 0 {
		var where []string
		for sid, k := range wrong {
			where = append(where, fmt.Sprintf("%d to %s", k, sid))
		}
		sort.Strings(where)
		b, _ := json.Marshal(where)
		t.Errorf("of %d cancellations of calls running in session %s, %d were POSTed elsewhere: %s", len(cancels()), sidA, len(cancels())-countIn(cancels(), sidA), b)
	}
}

func countIn(rs []recorded, sid string) int {
	k := 0
	for _, r := range rs {
		if r.header.Get(headerSessionID) == sid {
			k++
		}
	}
	return k
}
