package backends

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
)

// TestSSEOversizedRequestRefusedAfterReconnect: a legacy SSE server
// that numbers its requests per connection (as a server that makes a new
// transport per GET does) sends request 0 on its first connection (left
// unanswered by the host), the stream drops, and on the new connection it
// sends an oversized request, also id 0. The bridge must refuse it on the
// new connection; tooLong did not note it as the new connection's, so
// Send found the old connection's entry for id 0 and post dropped the
// refusal as "an answer to a request of a lost connection" (eighteenth
// review, fixed).
func TestSSEOversizedRequestRefusedAfterReconnect(t *testing.T) {
	refused := make(chan string, 4)
	big := strings.Repeat("x", 10000)
	ts, emit := fakeLegacySSE(t, 2, func(conn int, f *frame.Frame, emit func(int, string)) {
		switch {
		case f.Method == "initialize":
			emit(conn, initEvent(f))
		case f.Method == "notifications/initialized" && conn == 2:
			emit(2, "event: message\ndata: "+`{"method":"sampling/createMessage","params":{"m":"`+big+`"},"jsonrpc":"2.0","id":0}`+"\n\n")
		case f.Method == "tools/call":
			emit(1, "event: message\ndata: "+`{"jsonrpc":"2.0","id":0,"method":"sampling/createMessage","params":{}}`+"\n\n")
		case f.Kind == frame.Response:
			refused <- fmt.Sprintf("conn %d: %s", conn, f.Raw())
		}
	})
	d := openSmallSSE(t, ts)
	d.send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x","arguments":{}}}`)
	d.wait(func(f *frame.Frame) bool { return f.Kind == frame.Request && f.Method == "sampling/createMessage" })
	emit(1, "DROP") // the host has not answered request 0 yet
	select {
	case r := <-refused:
		if !strings.HasPrefix(r, "conn 2:") || !strings.Contains(r, "-32600") {
			t.Errorf("refusal: %s", r)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("the oversized request 0 of the new connection was never refused")
	}
}

// TestSSEOversizedOtherEventTypeIgnored: an event of a type other
// than "message" is never a JSON-RPC message to the bridge (read skips
// it); an oversized one must not end a pending call either.
func TestSSEOversizedOtherEventTypeIgnored(t *testing.T) {
	big := strings.Repeat("x", 10000)
	ts, _ := fakeLegacySSE(t, 1, func(conn int, f *frame.Frame, emit func(int, string)) {
		switch f.Method {
		case "initialize":
			emit(1, initEvent(f))
		case "tools/call":
			emit(1, "event: debug\ndata: "+`{"jsonrpc":"2.0","id":2,"result":{"trace":"`+big+`"}}`+"\n\n")
			emit(1, "event: message\ndata: "+`{"jsonrpc":"2.0","id":2,"result":{"content":[]}}`+"\n\n")
		}
	})
	d := openSmallSSE(t, ts)
	d.send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x","arguments":{}}}`)
	if f := d.await("2"); f.IsError() {
		t.Errorf("call 2 answered %s", f.Raw())
	}
}

// TestOversizedTailAtCapJoin: Tail is "the last 512 bytes of the
// data": when a data line ends exactly at the cap and another data line
// follows, the "\n" joining them was left out of Tail (eighteenth review).
func TestOversizedTailAtCapJoin(t *testing.T) {
	line1 := strings.Repeat("a", 1000)
	rd := newSSEReader(strings.NewReader("data: "+line1+"\ndata: bbb\n\n"), 1000)
	if _, err := rd.Next(); err == nil {
		t.Fatal("not too long")
	}
	data := line1 + "\nbbb"
	if want := data[len(data)-512:]; string(rd.Tail) != want {
		t.Errorf("Tail ends %q, want %q", rd.Tail[len(rd.Tail)-8:], want[len(want)-8:])
	}
}

// fakeLegacySSE is a hand-written legacy SSE server of conns connections:
// the n-th GET gets endpoint /messages?s=n and the events emitted for n
// ("DROP" ends that stream); a GET beyond conns gets 503. Each POST is
// answered 202 and handed to post with the connection it names. emit is
// returned too, for events the test sends itself.
func fakeLegacySSE(t *testing.T, conns int, post func(conn int, f *frame.Frame, emit func(conn int, ev string))) (*httptest.Server, func(conn int, ev string)) {
	var gets atomic.Int32
	events := make([]chan string, conns+1)
	for i := range events {
		events[i] = make(chan string, 16)
	}
	emit := func(conn int, ev string) { events[conn] <- ev }
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			n := int(gets.Add(1))
			if n > conns {
				http.Error(w, "no", http.StatusServiceUnavailable)
				return
			}
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprintf(w, "event: endpoint\ndata: /messages?s=%d\n\n", n)
			w.(http.Flusher).Flush()
			for {
				select {
				case ev := <-events[n]:
					if ev == "DROP" {
						return
					}
					fmt.Fprint(w, ev)
					w.(http.Flusher).Flush()
				case <-r.Context().Done():
					return
				}
			}
		}
		conn, _ := strconv.Atoi(r.URL.Query().Get("s"))
		body, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusAccepted)
		if f, err := frame.Parse(body); err == nil && conn >= 1 && conn <= conns {
			post(conn, f, emit)
		}
	}))
	t.Cleanup(ts.Close)
	return ts, emit
}

// initEvent is the event answering initialize request f.
func initEvent(f *frame.Frame) string {
	return "event: message\ndata: " + `{"jsonrpc":"2.0","id":` + string(f.ID()) + `,"result":{"protocolVersion":"` + testProtocol + `","capabilities":{},"serverInfo":{"name":"x","version":"1"}}}` + "\n\n"
}

// openSmallSSE opens a legacy SSE session to ts with a 4 KiB
// --max-message and initializes it.
func openSmallSSE(t *testing.T, ts *httptest.Server) *driver {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	s, err := Open(ctx, config.Backend{Name: "b1", Kind: config.KindSSE, URL: ts.URL + "/sse"}, Options{Logger: testLogger(t), MaxMessage: 4096})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	d := newDriver(t, s)
	d.initialize()
	return d
}
