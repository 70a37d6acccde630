package backends

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
	"github.com/rs/zerolog"
)

// Twenty-first review: what per-message state of the HTTP sessions is
// released once the exchange that made it is over.
// (A helper session's review of leaks over a long life; each test here but
// the ones that check what was found released failed before its fix.)

// review21Settle polls cond for up to d (bounded), returning its last value.
func review21Settle(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// review21Stacks counts the goroutines whose stack mentions any of fns.
func review21Stacks(fns ...string) int {
	buf := make([]byte, 64<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, fn := range fns {
			if strings.Contains(g, fn) {
				n++
				break
			}
		}
	}
	return n
}

// review21ClientSide are the goroutines of the bridge's side of a
// request's HTTP exchange: its POST (postRequest, from its start to the
// end of its answer) and the client connections net/http keeps.
var review21ClientSide = []string{"backends.(*streamable).postRequest", "net/http.(*persistConn)"}

func review21Opts() Options {
	return Options{Logger: zerolog.Nop(), Redact: func(s string) string { return s }}
}

// review21Recv reads s until the response with raw id, dropping the rest
// (what a router does with a server request the backend cancelled).
func review21Recv(t *testing.T, s Session, id string) *frame.Frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	for {
		f, err := s.Recv(ctx)
		if err != nil {
			t.Fatalf("Recv waiting for %s: %v", id, err)
		}
		if f.Kind == frame.Response && string(f.ID()) == id {
			return f
		}
	}
}

func review21Send(t *testing.T, s Session, format string, args ...any) {
	t.Helper()
	f, err := frame.Parse(fmt.Appendf(nil, format, args...))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(f); err != nil {
		t.Fatalf("Send: %v", err)
	}
}

const review21InitResult = `{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"x","version":"1"}}`

// A streamable-HTTP server that does what the MCP spec asks on
// cancellation ("the receiver SHOULD NOT send a response for the
// cancelled request"): a tools/call's answer stream is opened and the
// answer never comes; its stream stays open (a server may close it, or
// not). The same happens with any server whose tool is stuck past the
// bridge's --timeout (which cancels the call at the backend).
//
// The host cancels each call once the server has it. The router forgets
// the call at once; the streamable session keeps its POST: a worker
// goroutine, a net/http connection (two more goroutines and a socket) and
// one of the 4096 slots of maxOutstandingPosts, for as long as the server
// keeps the stream open. When the slots are gone, every Send to the
// backend fails with "queue full".
func TestStreamableCancelledCallEndsItsPost(t *testing.T) {
	const n = 1000
	var open atomic.Int64 // answer streams the server holds open
	posted := make(chan string, n)
	ts := serveFake(t, &fakeStreamable{call: func(w http.ResponseWriter, r *http.Request, f *frame.Frame) {
		// tools/call: the answer stream opens; the answer never comes
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		open.Add(1)
		defer open.Add(-1)
		posted <- string(f.ID())
		<-r.Context().Done()
	}})

	s, err := newStreamable(config.Backend{Name: "b1", Kind: config.KindHTTP, URL: ts.URL}, review21Opts())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	review21Send(t, s, `%s`, initRequest)
	review21Recv(t, s, "1")
	review21Send(t, s, `%s`, initialized)
	time.Sleep(200 * time.Millisecond) // the GET (405) and the initialized POST are over
	// The router reads everything the session delivers, and drops the
	// failures of cancelled requests: so does this reader.
	go func() {
		for {
			if _, err := s.Recv(context.Background()); err != nil {
				return
			}
		}
	}()
	baseG := review21Stacks(review21ClientSide...)

	for i := range n {
		id := 1000 + i
		review21Send(t, s, `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"x","arguments":{}}}`, id)
		select {
		case <-posted:
		case <-time.After(testWait):
			t.Fatalf("call %d never reached the server", id)
		}
		// The host cancelled it (or --timeout expired): the router
		// forgets it and tells the backend.
		review21Send(t, s, `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":%d,"reason":"user"}}`, id)
	}

	released := review21Settle(5*time.Second, func() bool { return len(s.sem) == 0 && open.Load() == 0 })
	g := review21Stacks(review21ClientSide...)
	s.unsent.mu.Lock()
	unsentLeft := len(s.unsent.reqs)
	s.unsent.mu.Unlock()
	t.Logf("after %d cancelled calls: %d POST slots held, %d answer streams open at the server, %d unsent entries, client-side goroutines (request POSTs, net/http client conns) %d -> %d",
		n, len(s.sem), open.Load(), unsentLeft, baseG, g)
	if !released {
		t.Errorf("%d calls cancelled by the host still hold %d of the session's %d POST slots, %d connections (server side open streams) and %d client-side goroutines (%.1f per call) 5s later: nothing ends a POST whose request was cancelled while its answer stream stays open",
			n, len(s.sem), cap(s.sem), open.Load(), g-baseG, float64(g-baseG)/n)
	}
}

// A legacy SSE server that does not answer a cancelled request (the MCP
// spec: "SHOULD NOT send a response for the cancelled request"). The
// session's pending table (ids sent and not yet answered) keeps every
// cancelled request's id until the stream drops, when each gets a made-up
// failure, long after the router forgot it.
func TestSSECancelledRequestLeavesPending(t *testing.T) {
	const n = 2000
	posted := make(chan string, n)
	ts, _ := fakeLegacySSE(t, 1, func(conn int, f *frame.Frame, emit func(int, string)) {
		switch {
		case f.Method == "initialize":
			emit(conn, initEvent(f))
		case f.Method == "tools/call":
			posted <- string(f.ID()) // and never answered: it gets cancelled
		}
	})
	s := openReview21SSE(t, ts)

	for i := range n {
		id := 1000 + i
		review21Send(t, s, `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"x","arguments":{}}}`, id)
		select {
		case <-posted:
		case <-time.After(testWait):
			t.Fatalf("call %d never reached the server", id)
		}
		review21Send(t, s, `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":%d,"reason":"user"}}`, id)
	}
	pending := func() int {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.pending)
	}
	review21Settle(2*time.Second, func() bool { return pending() == 0 })
	if p := pending(); p != 0 {
		t.Errorf("after %d requests cancelled by the router (the server, as the spec asks, sent no answer), the SSE session still holds %d of them in pending (want 0)", n, p)
	}
}

// A server request that the server itself cancels (its own timeout, or
// the tool call it served was cancelled): the router drops its upcall and
// passes the cancellation on, and the host, as the spec asks, never
// answers it. The session's upcalls table (where each server request came
// from, taken only when its answer is sent) keeps one entry per such
// request for the life of the upstream session.
func TestStreamableServerCancelledRequestOriginForgotten(t *testing.T) {
	const n = 2000
	ts := serveFake(t, &fakeStreamable{call: func(w http.ResponseWriter, r *http.Request, f *frame.Frame) {
		// The tool asks the host to sample, gives up on it, and answers.
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"s-%s\",\"method\":\"sampling/createMessage\",\"params\":{\"messages\":[],\"maxTokens\":1}}\n\n", f.ID())
		fmt.Fprintf(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":\"s-%s\",\"reason\":\"timed out\"}}\n\n", f.ID())
		fmt.Fprintf(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"content\":[]}}\n\n", f.ID())
	}})
	s, err := newStreamable(config.Backend{Name: "b1", Kind: config.KindHTTP, URL: ts.URL}, review21Opts())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	review21Send(t, s, `%s`, initRequest)
	review21Recv(t, s, "1")
	review21Send(t, s, `%s`, initialized)
	for i := range n {
		id := 1000 + i
		review21Send(t, s, `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"x","arguments":{}}}`, id)
		review21Recv(t, s, fmt.Sprint(id))
	}
	s.ups.mu.Lock()
	kept := len(s.ups.from)
	s.ups.mu.Unlock()
	if kept != 0 {
		t.Errorf("after %d server requests the server cancelled itself, the streamable session's upcalls table holds %d entries (want 0): only an answer sent by the host takes one out", n, kept)
	}
}

// The same with a legacy SSE backend: its upcalls table is pruned only
// when the stream drops.
func TestSSEServerCancelledRequestOriginForgotten(t *testing.T) {
	const n = 2000
	ts, _ := fakeLegacySSE(t, 1, func(conn int, f *frame.Frame, emit func(int, string)) {
		switch {
		case f.Method == "initialize":
			emit(conn, initEvent(f))
		case f.Method == "tools/call":
			var b strings.Builder
			fmt.Fprintf(&b, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"s-%s\",\"method\":\"sampling/createMessage\",\"params\":{\"messages\":[],\"maxTokens\":1}}\n\n", f.ID())
			fmt.Fprintf(&b, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":\"s-%s\",\"reason\":\"timed out\"}}\n\n", f.ID())
			fmt.Fprintf(&b, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"content\":[]}}\n\n", f.ID())
			emit(conn, b.String())
		}
	})
	s := openReview21SSE(t, ts)
	for i := range n {
		id := 1000 + i
		review21Send(t, s, `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"x","arguments":{}}}`, id)
		review21Recv(t, s, fmt.Sprint(id))
	}
	s.ups.mu.Lock()
	kept := len(s.ups.from)
	s.ups.mu.Unlock()
	if kept != 0 {
		t.Errorf("after %d server requests the server cancelled itself, the SSE session's upcalls table holds %d entries (want 0)", n, kept)
	}
}

// review21FDs counts this process's open file descriptors.
func review21FDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// Checked, released: a streamable session whose upstream session is lost
// (404) and replaced a hundred times keeps one standalone GET stream, and
// its goroutines and sockets come back to where they were.
func TestRejoinReleases(t *testing.T) {
	const k = 100
	ts, rc := serveStreamable(t, newMCPServer(), false, nil)
	d := newDriver(t, openTest(t, config.KindHTTP, ts.URL, nil))
	d.initialize()
	d.call(2, "echo", "x")
	time.Sleep(300 * time.Millisecond)
	baseG, baseFD := runtime.NumGoroutine(), review21FDs()
	for i := range k {
		endSession(t, ts.URL, lastSessionID(rc))
		if got := d.call(10+i, "echo", "y"); got != "y" {
			t.Fatalf("echo = %q", got)
		}
		d.note(MethodReinitialized)
	}
	var g, fd, listens int
	ok := review21Settle(12*time.Second, func() bool { // workers idle out after 10s
		g, fd, listens = runtime.NumGoroutine(), review21FDs(), review21Stacks("backends.(*streamable).listen")
		return g <= baseG+4 && fd <= baseFD+4 && listens <= 1
	})
	t.Logf("after %d session replacements: goroutines %d -> %d, fds %d -> %d, GET listeners %d", k, baseG, g, baseFD, fd, listens)
	if !ok {
		t.Errorf("after %d session replacements: goroutines %d -> %d, fds %d -> %d, GET listeners %d", k, baseG, g, baseFD, fd, listens)
	}
}

// Checked, released: a legacy SSE session whose stream drops thirty times
// (each reconnection replays the handshake) ends with one stream and the
// goroutines and sockets it started with.
func TestSSEReconnectReleases(t *testing.T) {
	const k = 30
	var gets atomic.Int64
	drop := make(chan struct{})
	events := make(chan string, 16)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			gets.Add(1)
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "event: endpoint\ndata: /messages\n\n")
			w.(http.Flusher).Flush()
			for {
				select {
				case ev := <-events:
					fmt.Fprint(w, ev)
					w.(http.Flusher).Flush()
				case <-drop:
					return
				case <-r.Context().Done():
					return
				}
			}
		}
		body, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusAccepted)
		if f, err := frame.Parse(body); err == nil && f.Kind == frame.Request {
			events <- fmt.Sprintf("event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":%s}\n\n", f.ID(), review21InitResult)
		}
	}))
	t.Cleanup(ts.Close)
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	sess, err := Open(ctx, config.Backend{Name: "b1", Kind: config.KindSSE, URL: ts.URL + "/sse"}, review21Opts())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	review21Send(t, sess, `%s`, initRequest)
	review21Recv(t, sess, "1")
	review21Send(t, sess, `%s`, initialized)
	time.Sleep(200 * time.Millisecond)
	baseG, baseFD := runtime.NumGoroutine(), review21FDs()
	for i := range k {
		drop <- struct{}{}
		// The replayed handshake's notification, then a call on the new stream.
		ctx, cancel := context.WithTimeout(context.Background(), testWait)
		for {
			f, err := sess.Recv(ctx)
			if err != nil {
				t.Fatalf("reconnection %d: %v", i, err)
			}
			if f.Method == MethodReinitialized {
				break
			}
		}
		cancel()
		review21Send(t, sess, `{"jsonrpc":"2.0","id":%d,"method":"ping"}`, 100+i)
		review21Recv(t, sess, fmt.Sprint(100+i))
	}
	var g, fd int
	ok := review21Settle(12*time.Second, func() bool {
		g, fd = runtime.NumGoroutine(), review21FDs()
		return g <= baseG+4 && fd <= baseFD+4
	})
	t.Logf("after %d reconnections (%d GETs): goroutines %d -> %d, fds %d -> %d", k, gets.Load(), baseG, g, baseFD, fd)
	if !ok {
		t.Errorf("after %d reconnections: goroutines %d -> %d, fds %d -> %d", k, baseG, g, baseFD, fd)
	}
}

// When every POST slot is held by calls whose answer streams stay open,
// the host's cancellation of one of them could not be sent (queue full),
// so nothing ended that call's POST either, and the slots stayed taken
// for as long as the server kept the streams (twenty-fifth review's
// suspicion). Now a cancellation that finds no slot takes one of the
// cancellations' reserve, is POSTed, and then ends its call's POST, and
// the slot comes back.
func TestCancellationWithEveryPostSlotHeldFreesOne(t *testing.T) {
	posted := make(chan string, 16)
	ts := serveFake(t, &fakeStreamable{call: func(w http.ResponseWriter, r *http.Request, f *frame.Frame) {
		// an answer stream that stays open
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		posted <- string(f.ID())
		<-r.Context().Done()
	}})
	s, err := newStreamable(config.Backend{Name: "b1", Kind: config.KindHTTP, URL: ts.URL}, review21Opts())
	if err != nil {
		t.Fatal(err)
	}
	s.sem = make(chan struct{}, 4) // 4,096 in use
	t.Cleanup(func() { s.Close() })
	go func() {
		for {
			if _, err := s.Recv(context.Background()); err != nil {
				return
			}
		}
	}()
	review21Send(t, s, `%s`, initRequest)
	review21Send(t, s, `%s`, initialized)
	deadline := time.Now().Add(testWait)
	for len(s.sem) != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // initialize and initialized are over
	}
	for id := 10; id < 14; id++ {
		review21Send(t, s, `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"x","arguments":{}}}`, id)
		select {
		case <-posted:
		case <-time.After(testWait):
			t.Fatalf("call %d never reached the server", id)
		}
	}
	f, _ := frame.Parse([]byte(`{"jsonrpc":"2.0","id":20,"method":"tools/call","params":{"name":"x","arguments":{}}}`))
	if err := s.Send(f); err == nil {
		t.Fatal("a fifth call found a slot: the test's premise failed")
	}
	c, _ := frame.Parse([]byte(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":10,"reason":"user"}}`))
	_ = s.Send(c) // a reserve slot
	for {
		f, _ := frame.Parse([]byte(`{"jsonrpc":"2.0","id":21,"method":"tools/call","params":{"name":"x","arguments":{}}}`))
		if s.Send(f) == nil {
			return
		}
		if time.Now().After(deadline.Add(testWait)) {
			t.Fatalf("with every slot held, the cancellation of call 10 freed none: %d of %d held", len(s.sem), cap(s.sem))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// openReview21SSE opens a legacy SSE session to ts (fakeLegacySSE) and
// initializes it.
func openReview21SSE(t *testing.T, ts *httptest.Server) *sseSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	sess, err := Open(ctx, config.Backend{Name: "b1", Kind: config.KindSSE, URL: ts.URL + "/sse"}, review21Opts())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	s := sess.(*sseSession)
	review21Send(t, s, `%s`, initRequest)
	review21Recv(t, s, "1")
	review21Send(t, s, `%s`, initialized)
	return s
}
