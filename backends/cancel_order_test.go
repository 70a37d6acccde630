package backends

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
)

// A cancellation follows its request to the server (the twenty-sixth
// review: a tools/call the host cancelled right after sending it ran to
// its end at a TypeScript-SDK server, which never heard the cancellation).

// A legacy SSE server whose POSTs are taken in the order they are
// received; a tools/call takes 200 ms to be received (a slower
// connection, a server busy reading it), the rest none.
func review26SSEServer(t *testing.T) (*httptest.Server, func() []string) {
	var mu sync.Mutex
	var got []string
	events := make(chan string, 16)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			serveEndpointStream(w, r, events)
			return
		}
		f, ok := postedFrame(w, r)
		if !ok {
			return
		}
		if f.Method == "tools/call" {
			time.Sleep(200 * time.Millisecond)
		}
		mu.Lock()
		switch f.Method {
		case "notifications/cancelled":
			got = append(got, "cancelled "+string(f.Bytes(f.Param("requestId"))))
		default:
			got = append(got, f.Method)
		}
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
		if f.Method == "initialize" {
			events <- fmt.Sprintf("event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":%s}\n\n", f.ID(), review21InitResult)
		}
	}))
	t.Cleanup(ts.Close)
	return ts, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), got...) }
}

// The session POSTs a request and then, while that POST is still on its
// way (not answered 202 yet), the request's cancellation: each goes in its
// own goroutine and connection, so the cancellation could reach the server
// first, which then knows no such request (the spec lets it ignore the
// notification) and runs the request to its end. The cancellation waits
// for its request's POST to be answered (waitPosted).
func TestSSECancellationFollowsItsRequest(t *testing.T) {
	ts, got := review26SSEServer(t)
	s := openReview21SSE(t, ts)
	review21Send(t, s, `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"slow","arguments":{}}}`)
	time.Sleep(50 * time.Millisecond) // its POST has begun
	review21Send(t, s, `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7,"reason":"host"}}`)
	review21Settle(testWait, func() bool { return len(got()) >= 4 })
	order := got()
	ic, ir := -1, -1
	for i, m := range order {
		switch m {
		case "tools/call":
			ir = i
		case "cancelled 7":
			ic = i
		}
	}
	if ir < 0 || ic < ir {
		t.Errorf("the server received %q, in that order: the cancellation of request 7 before request 7 itself (it ignores it, then runs 7 to its end)", order)
	}
}

// The same over streamable HTTP: the request's POST has begun, so its
// cancellation is POSTed (and the request's POST aborted after it), once
// the request's POST was answered.
func TestStreamableCancellationFollowsItsRequest(t *testing.T) {
	var mu sync.Mutex
	var got []string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		f, ok := postedFrame(w, r)
		if !ok {
			return
		}
		if f.Method == "tools/call" {
			time.Sleep(200 * time.Millisecond)
		}
		mu.Lock()
		if f.Method == "notifications/cancelled" {
			got = append(got, "cancelled "+string(f.Bytes(f.Param("requestId"))))
		} else {
			got = append(got, f.Method)
		}
		mu.Unlock()
		w.Header().Set("Mcp-Session-Id", "s1")
		if f.Method == "initialize" {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":%s}`, f.ID(), review21InitResult)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(ts.Close)
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	sess, err := Open(ctx, config.Backend{Name: "b1", Kind: config.KindHTTP, URL: ts.URL}, review21Opts())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	review21Send(t, sess, `%s`, initRequest)
	review21Recv(t, sess, "1")
	review21Send(t, sess, `%s`, initialized)
	time.Sleep(1200 * time.Millisecond) // past the wait for the standalone GET
	review21Send(t, sess, `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"slow","arguments":{}}}`)
	time.Sleep(50 * time.Millisecond) // its POST has begun
	review21Send(t, sess, `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7,"reason":"host"}}`)
	snapshot := func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), got...) }
	review21Settle(time.Second, func() bool { return len(snapshot()) >= 4 })
	order := snapshot()
	ic, ir := -1, -1
	for i, m := range order {
		switch m {
		case "tools/call":
			ir = i
		case "cancelled 7":
			ic = i
		}
	}
	if ir < 0 || ic < ir {
		t.Errorf("the server received %q, in that order: the cancellation of request 7 before request 7 itself (or not 7 at all)", order)
	}
}

// serveEndpointStream serves a legacy SSE GET: the endpoint event, then
// the events sent on events, until the request ends.
func serveEndpointStream(w http.ResponseWriter, r *http.Request, events <-chan string) {
	w.Header().Set("Content-Type", "text/event-stream")
	fmt.Fprint(w, "event: endpoint\ndata: /messages\n\n")
	w.(http.Flusher).Flush()
	for {
		select {
		case ev := <-events:
			fmt.Fprint(w, ev)
			w.(http.Flusher).Flush()
		case <-r.Context().Done():
			return
		}
	}
}

// postedFrame reads the JSON-RPC message a POST carries; one that is not
// is answered 400 (ok false).
func postedFrame(w http.ResponseWriter, r *http.Request) (f *frame.Frame, ok bool) {
	body, _ := io.ReadAll(r.Body)
	f, err := frame.Parse(body)
	if err != nil {
		http.Error(w, "bad", http.StatusBadRequest)
		return nil, false
	}
	return f, true
}
