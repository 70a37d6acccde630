package backends

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
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
	var gets atomic.Int32
	events := [3]chan string{nil, make(chan string, 16), make(chan string, 16)}
	refused := make(chan string, 4)
	big := strings.Repeat("x", 10000)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			n := gets.Add(1)
			if n > 2 {
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
		conn := 1
		if r.URL.Query().Get("s") == "2" {
			conn = 2
		}
		body, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusAccepted)
		f, err := frame.Parse(body)
		if err != nil {
			return
		}
		switch {
		case f.Method == "initialize":
			events[conn] <- "event: message\ndata: " + `{"jsonrpc":"2.0","id":` + string(f.ID()) + `,"result":{"protocolVersion":"` + testProtocol + `","capabilities":{},"serverInfo":{"name":"x","version":"1"}}}` + "\n\n"
		case f.Method == "notifications/initialized" && conn == 2:
			events[2] <- "event: message\ndata: " + `{"method":"sampling/createMessage","params":{"m":"` + big + `"},"jsonrpc":"2.0","id":0}` + "\n\n"
		case f.Method == "tools/call":
			events[1] <- "event: message\ndata: " + `{"jsonrpc":"2.0","id":0,"method":"sampling/createMessage","params":{}}` + "\n\n"
		case f.Kind == frame.Response:
			refused <- fmt.Sprintf("conn %d: %s", conn, f.Raw())
		}
	}))
	t.Cleanup(ts.Close)
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	s, err := Open(ctx, config.Backend{Name: "b1", Kind: config.KindSSE, URL: ts.URL + "/sse"}, Options{Logger: testLogger(t), MaxMessage: 4096})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	d := newDriver(t, s)
	d.initialize()
	d.send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x","arguments":{}}}`)
	d.wait(func(f *frame.Frame) bool { return f.Kind == frame.Request && f.Method == "sampling/createMessage" })
	events[1] <- "DROP" // the host has not answered request 0 yet
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
	events := make(chan string, 16)
	big := strings.Repeat("x", 10000)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "event: endpoint\ndata: /messages?s=1\n\n")
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
		body, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusAccepted)
		f, err := frame.Parse(body)
		if err != nil {
			return
		}
		switch {
		case f.Method == "initialize":
			events <- "event: message\ndata: " + `{"jsonrpc":"2.0","id":` + string(f.ID()) + `,"result":{"protocolVersion":"` + testProtocol + `","capabilities":{},"serverInfo":{"name":"x","version":"1"}}}` + "\n\n"
		case f.Method == "tools/call":
			events <- "event: debug\ndata: " + `{"jsonrpc":"2.0","id":2,"result":{"trace":"` + big + `"}}` + "\n\n"
			events <- "event: message\ndata: " + `{"jsonrpc":"2.0","id":2,"result":{"content":[]}}` + "\n\n"
		}
	}))
	t.Cleanup(ts.Close)
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	s, err := Open(ctx, config.Backend{Name: "b1", Kind: config.KindSSE, URL: ts.URL + "/sse"}, Options{Logger: testLogger(t), MaxMessage: 4096})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	d := newDriver(t, s)
	d.initialize()
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
