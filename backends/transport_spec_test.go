package backends

// The streamable-HTTP and legacy-SSE clients against the transport spec,
// each test against a small hand-written loopback server that behaves as the
// MCP transport spec allows (from the tenth review; each failed before its fix).

import (
	"bytes"
	"context"
	"fmt"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
)

// fakeStreamable is a minimal streamable-HTTP server: initialize is
// answered with JSON and session "s1", notifications and responses with
// 202, DELETE with 200; call answers every other request, get every GET
// (405 when nil).
type fakeStreamable struct {
	mu    sync.Mutex
	log   []string // "POST method", "GET lastID", ...
	inits atomic.Int32
	call  func(w http.ResponseWriter, r *http.Request, f *frame.Frame)
	get   func(w http.ResponseWriter, r *http.Request)
}

func (fs *fakeStreamable) record(s string) {
	fs.mu.Lock()
	fs.log = append(fs.log, s)
	fs.mu.Unlock()
}

func (fs *fakeStreamable) entries() []string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return append([]string(nil), fs.log...)
}

func (fs *fakeStreamable) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		fs.record("GET Last-Event-ID=" + r.Header.Get(headerLastEventID))
		if fs.get == nil {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		fs.get(w, r)
	case http.MethodDelete:
		fs.record("DELETE")
	case http.MethodPost:
		body, _ := io.ReadAll(r.Body)
		f, err := frame.Parse(bytes.Clone(body))
		if err != nil {
			http.Error(w, "bad json", http.StatusBadRequest)
			return
		}
		fs.record("POST " + f.Method)
		switch {
		case f.Kind == frame.Request && f.Method == "initialize":
			fs.inits.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set(headerSessionID, "s1")
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":%q,"capabilities":{"tools":{}},"serverInfo":{"name":"fake","version":"1"}}}`, f.ID(), testProtocol)
		case f.Kind != frame.Request:
			w.WriteHeader(http.StatusAccepted)
		default:
			fs.call(w, r, f)
		}
	}
}

func serveFake(t *testing.T, fs *fakeStreamable) *httptest.Server {
	ts := httptest.NewServer(fs)
	t.Cleanup(ts.Close)
	return ts
}

func sseHeaders(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
}

func flush(w http.ResponseWriter) { w.(http.Flusher).Flush() }

const fakeResult = `{"content":[{"type":"text","text":"done"}]}`

// MCP 2025-11-25, "Sending Messages to the Server" 6: after an event
// with an id the server "MAY close the connection (without terminating the
// SSE stream) at any time in order to avoid holding a long-lived
// connection. The client SHOULD then "poll" the SSE stream by attempting to
// reconnect." Here a long tool is polled: every resumption succeeds, gets a
// fresh priming event (new id, retry 20 ms) and is closed again, five times,
// before the answer. The bridge counted each successful poll that brought
// no message as a failed resumption and failed the call after three.
func TestAnswerStreamPolledManyTimes(t *testing.T) {
	var polls atomic.Int32
	fs := &fakeStreamable{}
	fs.call = func(w http.ResponseWriter, r *http.Request, f *frame.Frame) {
		sseHeaders(w)
		fmt.Fprint(w, "id: ev-0\nretry: 20\ndata:\n\n") // priming event, then close
		flush(w)
	}
	fs.get = func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(headerLastEventID) == "" {
			w.WriteHeader(http.StatusMethodNotAllowed) // no standalone stream
			return
		}
		n := polls.Add(1)
		sseHeaders(w)
		if n <= 5 { // still working: prime with a new id and close again
			fmt.Fprintf(w, "id: ev-%d\nretry: 20\ndata:\n\n", n)
			flush(w)
			return
		}
		fmt.Fprintf(w, "id: ev-%d\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":%s}\n\n", n, fakeResult)
		flush(w)
	}
	ts := serveFake(t, fs)
	d := newDriver(t, openTest(t, config.KindHTTP, ts.URL, nil))
	d.initialize()
	d.send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"slow","arguments":{}}}`)
	ans := d.await("2")
	if ans.IsError() {
		t.Fatalf("a polled call failed after %d polls: %s\nserver saw: %q", polls.Load(), ans.Raw(), fs.entries())
	}
}

// MCP 2025-11-25, same section: the server "SHOULD send an SSE event
// with a standard retry field before closing the connection. The client
// MUST respect the retry field, waiting the given number of milliseconds
// before attempting to reconnect." The bridge capped the wait at 5 s.
func TestRetryFieldAboveFiveSecondsRespected(t *testing.T) {
	const retry = 6500 * time.Millisecond
	var closedAt, resumedAt atomic.Int64
	fs := &fakeStreamable{}
	fs.call = func(w http.ResponseWriter, r *http.Request, f *frame.Frame) {
		sseHeaders(w)
		fmt.Fprintf(w, "id: ev-0\nretry: %d\ndata:\n\n", retry.Milliseconds())
		flush(w)
		closedAt.Store(time.Now().UnixNano())
	}
	fs.get = func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(headerLastEventID) == "" {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		resumedAt.CompareAndSwap(0, time.Now().UnixNano())
		sseHeaders(w)
		fmt.Fprintf(w, "id: ev-1\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":%s}\n\n", fakeResult)
		flush(w)
	}
	ts := serveFake(t, fs)
	d := newDriver(t, openTest(t, config.KindHTTP, ts.URL, nil))
	d.initialize()
	d.send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"slow","arguments":{}}}`)
	d.await("2")
	waited := time.Duration(resumedAt.Load() - closedAt.Load())
	if waited < retry-100*time.Millisecond {
		t.Fatalf("the server asked for retry: %d and the bridge reconnected after %v", retry.Milliseconds(), waited.Round(time.Millisecond))
	}
}

// MCP 2025-03-26, "Sending Messages to the Server" 6: "The SSE stream
// SHOULD eventually include one JSON-RPC response per each JSON-RPC request
// sent in the POST body. These responses MAY be batched." The bridge
// unpacked a batch in an application/json answer but not in an SSE event:
// it skipped the event as "not JSON-RPC" and the call failed.
func TestBatchInAnSSEEvent(t *testing.T) {
	fs := &fakeStreamable{}
	fs.call = func(w http.ResponseWriter, r *http.Request, f *frame.Frame) {
		sseHeaders(w)
		fmt.Fprintf(w, "data: [{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"x\"}},{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":%s}]\n\n", f.ID(), fakeResult)
		flush(w)
	}
	ts := serveFake(t, fs)
	d := newDriver(t, openTest(t, config.KindHTTP, ts.URL, nil))
	d.send(strings.Replace(initRequest, testProtocol, "2025-03-26", 1))
	d.await("1")
	d.send(initialized)
	d.send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"t","arguments":{}}}`)
	if ans := d.await("2"); ans.IsError() {
		t.Fatalf("a batched answer on the SSE stream was lost: %s", ans.Raw())
	}
}

// HTML SSE standard (§9.2.6; MCP "Resumability and Redelivery"
// points to it): the last event ID buffer survives a reconnection, and an
// event without an id field keeps it. The standalone stream started each
// connection with an empty buffer, so one event without an id after a
// resumption wiped the id, and the next reconnection sent no
// Last-Event-ID: what the server held for the stream was not replayed.
func TestStandaloneStreamKeepsLastEventID(t *testing.T) {
	var gets atomic.Int32
	fs := &fakeStreamable{}
	fs.call = func(w http.ResponseWriter, r *http.Request, f *frame.Frame) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{}}`, f.ID())
	}
	third := make(chan string, 1)
	fs.get = func(w http.ResponseWriter, r *http.Request) {
		note := `{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}`
		switch gets.Add(1) {
		case 1:
			sseHeaders(w)
			fmt.Fprintf(w, "id: g-1\nretry: 10\ndata: %s\n\n", note)
		case 2:
			sseHeaders(w)
			fmt.Fprintf(w, "retry: 10\ndata: %s\n\n", note) // no id: g-1 stays the last one
		case 3:
			third <- r.Header.Get(headerLastEventID)
			sseHeaders(w)
			flush(w)
			<-r.Context().Done()
			return
		default:
			sseHeaders(w)
			flush(w)
			<-r.Context().Done()
			return
		}
		flush(w)
	}
	ts := serveFake(t, fs)
	d := newDriver(t, openTest(t, config.KindHTTP, ts.URL, nil))
	d.initialize()
	select {
	case id := <-third:
		if id != "g-1" {
			t.Fatalf("third GET of the standalone stream sent Last-Event-ID %q, want %q; server saw %q", id, "g-1", fs.entries())
		}
	case <-time.After(testWait):
		t.Fatalf("no third GET; server saw %q", fs.entries())
	}
}

// A request refused with HTTP 400 whose body is the JSON-RPC error
// for that very request is a request-level error, even when its message
// happens to contain the word "session" (a tool argument "session_id", say;
// go-sdk answers invalid params with 400 from protocol 2026-07-28 on). The
// bridge took it for a lost session: it threw the upstream session away,
// initialized a new one and sent the request a second time.
func TestRequestsOwn400IsNotASessionLoss(t *testing.T) {
	fs := &fakeStreamable{}
	fs.call = func(w http.ResponseWriter, r *http.Request, f *frame.Frame) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"error":{"code":-32602,"message":"invalid params: missing required property session_id"}}`, f.ID())
	}
	ts := serveFake(t, fs)
	d := newDriver(t, openTest(t, config.KindHTTP, ts.URL, nil))
	d.initialize()
	d.send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"browse","arguments":{}}}`)
	ans := d.await("2")
	if n := fs.inits.Load(); n != 1 {
		t.Fatalf("the session was re-initialized (%d initialize POSTs) for a request's own 400 error; server saw %q; answer %s", n, fs.entries(), ans.Raw())
	}
}

// Legacy HTTP+SSE: the endpoint must be on the stream's origin, but
// the check compared URL.Host strings, so the same origin spelled with its
// default port, or with the host in other case, was refused and the session
// could not open (the TypeScript SDK compares URL.origin, which normalizes
// both).
func TestSSEEndpointSameOriginSpelledDifferently(t *testing.T) {
	s, err := newSSE(config.Backend{Name: "b1", Kind: config.KindSSE, URL: "http://mcp.example.com/sse"}, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.shutdown()
	for _, ep := range []string{
		"http://mcp.example.com:80/messages?sessionId=1",
		"http://MCP.example.com/messages?sessionId=1",
	} {
		if _, err := s.resolve([]byte(ep)); err != nil {
			t.Errorf("endpoint %s on the same origin refused: %v", ep, err)
		}
	}
}

// pollingServer is go-sdk's own streamable server (with an event store) and
// a tool that, like a server shedding idle connections, closes its answer
// stream `closes` times (SEP-1699 CloseSSEStream, retry 10 ms) while it
// works, sending nothing in between, then answers.
func pollingServer(t *testing.T, closes int) *httptest.Server {
	srv := newMCPServer()
	mcp.AddTool(srv, &mcp.Tool{Name: "long"}, func(ctx context.Context, req *mcp.CallToolRequest, in echoArgs) (*mcp.CallToolResult, any, error) {
		for range closes {
			time.Sleep(200 * time.Millisecond) // the client has resumed by now
			req.Extra.CloseSSEStream(mcp.CloseSSEStreamArgs{RetryAfter: 10 * time.Millisecond})
		}
		time.Sleep(200 * time.Millisecond)
		return textResult(in.Text), nil, nil
	})
	ts, _ := serveStreamable(t, srv, false, mcp.NewMemoryEventStore(nil))
	return ts
}

// The polling case with go-sdk's server: four closes of a silent long call. The
// bridge failed the call ("resuming it failed 3 times") although every
// reconnection succeeded.
func TestAnswerStreamPolledByGoSDKServer(t *testing.T) {
	ts := pollingServer(t, 4)
	d := newDriver(t, openTest(t, config.KindHTTP, ts.URL, nil))
	d.initialize()
	if got := d.call(2, "long", "finished"); got != "finished" {
		t.Fatalf("long = %q", got)
	}
}

// The origin case end to end: a legacy server whose endpoint event is an absolute URL
// naming its host in upper case (a server that builds it from its own
// configuration). Same origin, yet Open fails.
func TestSSEEndpointUpperCaseHostOpens(t *testing.T) {
	var ts *httptest.Server
	ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		sseHeaders(w)
		u := strings.Replace(ts.URL, "127.0.0.1", "LOCALHOST", 1)
		fmt.Fprintf(w, "event: endpoint\ndata: %s/messages?sessionId=1\n\n", u)
		flush(w)
		<-r.Context().Done()
	}))
	t.Cleanup(ts.Close)
	base := strings.Replace(ts.URL, "127.0.0.1", "localhost", 1) + "/sse"
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	s, err := Open(ctx, config.Backend{Name: "b1", Kind: config.KindSSE, URL: base}, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Open %s: %v", base, err)
	}
	s.Close()
}
