package backends

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
)

// TestCancelledCallStopsPolling: a 2025-11-25 server that polls
// (closes the answer stream after a priming event, and every resumption
// after a new one) and, as the spec asks, sends no answer to a request
// the client cancelled. The bridge's resumption loop resets its attempt
// count after every successful reconnection, and nothing ended it but the
// answer or the session's end: after the router's notifications/cancelled
// (the host cancelled, or --timeout) it went on GETting the stream every
// retry interval for as long as the session lived (twelfth review; now a
// cancelled request is not resumed).
func TestCancelledCallStopsPolling(t *testing.T) {
	var polls, cancels atomic.Int32
	fs := &fakeStreamable{}
	fs.call = func(w http.ResponseWriter, r *http.Request, f *frame.Frame) {
		sseHeaders(w)
		fmt.Fprint(w, "id: ev-0\nretry: 20\ndata:\n\n")
		flush(w)
	}
	fs.get = func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(headerLastEventID) == "" {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		n := polls.Add(1)
		sseHeaders(w)
		fmt.Fprintf(w, "id: ev-%d\nretry: 20\ndata:\n\n", n)
		flush(w)
	}
	ts := serveFake(t, fs)
	d := newDriver(t, openTest(t, config.KindHTTP, ts.URL, nil))
	d.initialize()
	d.send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"slow","arguments":{}}}`)
	time.Sleep(300 * time.Millisecond)
	d.send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":2,"reason":"timed out"}}`)
	time.Sleep(500 * time.Millisecond) // the cancellation is POSTed and taken
	for _, e := range fs.entries() {
		if strings.Contains(e, "notifications/cancelled") {
			cancels.Add(1)
		}
	}
	before := polls.Load()
	time.Sleep(3 * time.Second)
	if after := polls.Load(); after-before > 3 {
		t.Fatalf("the server got %d resumption GETs for the call in the 3 s after its cancellation (cancellation POSTed: %d); %d in all", after-before, cancels.Load(), after)
	}
}
