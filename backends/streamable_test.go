package backends

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/rs/zerolog"
)

// The tests drive sessions with raw frames, as the router does, against
// go-sdk servers on loopback.

const (
	testProtocol = "2025-11-25"
	testWait     = 10 * time.Second // bound of every wait; never a timing assertion
	bigWait      = 2 * time.Minute  // for 16 MiB through go-sdk, slow under -race
	initRequest  = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"roots":{}},"clientInfo":{"name":"t","version":"1"}}}`
	initialized  = `{"jsonrpc":"2.0","method":"notifications/initialized"}`
)

type echoArgs struct {
	Text string `json:"text"`
}

func textResult(s string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
}

// newMCPServer returns a server with an echo tool and a roots tool that
// asks the client for its roots (a server-initiated request).
func newMCPServer() *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: "t", Version: "1"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "echo", Description: "echo"}, func(_ context.Context, _ *mcp.CallToolRequest, in echoArgs) (*mcp.CallToolResult, any, error) {
		return textResult(in.Text), nil, nil
	})
	mcp.AddTool(srv, &mcp.Tool{Name: "roots", Description: "roots"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		res, err := req.Session.ListRoots(ctx, nil)
		if err != nil {
			return nil, nil, err
		}
		uris := make([]string, len(res.Roots))
		for i, r := range res.Roots {
			uris[i] = r.URI
		}
		return textResult("roots: " + strings.Join(uris, ",")), nil, nil
	})
	return srv
}

// A recorded HTTP request.
type recorded struct {
	method  string // HTTP method
	rpc     string // JSON-RPC method of a POST body ("" for answers)
	id      string // JSON-RPC id of a POST body
	header  http.Header
	bodyLen int
}

// recorder wraps a handler, recording every request; intercept, if set,
// may answer a request itself (returning true).
type recorder struct {
	next      http.Handler
	mu        sync.Mutex
	reqs      []recorded
	intercept func(w http.ResponseWriter, r *http.Request, rec recorded) bool
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := recorded{method: r.Method, header: r.Header.Clone()}
	if r.Method == http.MethodPost {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec.bodyLen = len(body)
		if f, err := frame.Parse(bytes.Clone(body)); err == nil {
			rec.rpc, rec.id = f.Method, string(f.ID())
		}
	}
	rc.mu.Lock()
	rc.reqs = append(rc.reqs, rec)
	intercept := rc.intercept
	rc.mu.Unlock()
	if intercept != nil && intercept(w, r, rec) {
		return
	}
	rc.next.ServeHTTP(w, r)
}

func (rc *recorder) requests() []recorded {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]recorded(nil), rc.reqs...)
}

func (rc *recorder) count(httpMethod, rpc string) int {
	n := 0
	for _, r := range rc.requests() {
		if r.method == httpMethod && (rpc == "" || r.rpc == rpc) {
			n++
		}
	}
	return n
}

func (rc *recorder) setIntercept(f func(w http.ResponseWriter, r *http.Request, rec recorded) bool) {
	rc.mu.Lock()
	rc.intercept = f
	rc.mu.Unlock()
}

// serveStreamable serves srv with go-sdk's streamable handler behind a
// recorder, without go-sdk's 4 MiB body limit.
func serveStreamable(t *testing.T, srv *mcp.Server, jsonResponse bool, store mcp.EventStore) (*httptest.Server, *recorder) {
	t.Helper()
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{
		JSONResponse:        jsonResponse,
		MaxRequestBodyBytes: -1,
		EventStore:          store,
	})
	rc := &recorder{next: h}
	ts := httptest.NewServer(rc)
	t.Cleanup(ts.Close)
	return ts, rc
}

func testLogger(t *testing.T) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
}

func openTest(t *testing.T, kind config.Kind, url string, headers map[string]string) Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	s, err := Open(ctx, config.Backend{Name: "b1", Kind: kind, URL: url, Headers: headers}, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// A driver plays the router: it sends frames and reads every frame the
// session delivers, answering the server's roots/list requests.
type driver struct {
	t       *testing.T
	s       Session
	notes   []*frame.Frame          // notifications seen while waiting for something else
	answers map[string]*frame.Frame // responses seen while waiting for another
	timeout time.Duration           // bound of one wait
}

func newDriver(t *testing.T, s Session) *driver {
	return &driver{t: t, s: s, answers: make(map[string]*frame.Frame), timeout: testWait}
}

func (d *driver) send(raw string) {
	d.t.Helper()
	f, err := frame.Parse([]byte(raw))
	if err != nil {
		d.t.Fatalf("bad test frame %s: %v", raw, err)
	}
	if err := d.s.Send(f); err != nil {
		d.t.Fatalf("Send %s: %v", raw, err)
	}
}

// next reads one frame, answering server requests on the way.
func (d *driver) next(ctx context.Context) *frame.Frame {
	d.t.Helper()
	for {
		f, err := d.s.Recv(ctx)
		if err != nil {
			d.t.Fatalf("Recv: %v", err)
		}
		if f.Kind == frame.Request && f.Method == "roots/list" {
			ans, err := frame.Parse(fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%s,"result":{"roots":[{"uri":"file:///tmp/r1"}]}}`, f.ID()))
			if err != nil {
				d.t.Fatal(err)
			}
			if err := d.s.Send(ans); err != nil {
				d.t.Fatalf("Send answer: %v", err)
			}
			continue
		}
		if f.Kind == frame.Notification && f.Method == MethodReinitialized {
			// As the router does once it restored the host's state.
			if r, ok := d.s.(Restorer); ok {
				r.Restored()
			}
		}
		return f
	}
}

// await returns the response with id.
func (d *driver) await(id string) *frame.Frame {
	d.t.Helper()
	return d.wait(func(f *frame.Frame) bool { return f.Kind == frame.Response && string(f.ID()) == id })
}

// note returns a notification with method.
func (d *driver) note(method string) *frame.Frame {
	d.t.Helper()
	return d.wait(func(f *frame.Frame) bool { return f.Kind == frame.Notification && f.Method == method })
}

// wait returns the first frame, seen earlier or arriving now, that
// matches; the others are kept for later waits.
func (d *driver) wait(match func(*frame.Frame) bool) *frame.Frame {
	d.t.Helper()
	for i, f := range d.notes {
		if match(f) {
			d.notes = append(d.notes[:i], d.notes[i+1:]...)
			return f
		}
	}
	for id, f := range d.answers {
		if match(f) {
			delete(d.answers, id)
			return f
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.timeout)
	defer cancel()
	for {
		f := d.next(ctx)
		switch {
		case match(f):
			return f
		case f.Kind == frame.Response:
			d.answers[string(f.ID())] = f
		case f.Kind == frame.Notification:
			d.notes = append(d.notes, f)
		default:
			d.t.Logf("ignoring %s", f.Raw())
		}
	}
}

func (d *driver) initialize() {
	d.t.Helper()
	d.send(initRequest)
	res := d.await("1")
	if pv := protocolVersion(res); pv != testProtocol {
		d.t.Fatalf("initialize answered %s", res.Raw())
	}
	d.send(initialized)
}

// call sends tools/call and returns the text of the result.
func (d *driver) call(id int, tool, text string) string {
	d.t.Helper()
	args, _ := json.Marshal(map[string]any{"name": tool, "arguments": echoArgs{Text: text}})
	d.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":%s}`, id, args))
	return resultText(d.t, d.await(fmt.Sprint(id)))
}

// callRoots calls the roots tool. In JSON-response mode go-sdk sends the
// roots/list request on the GET stream, and fails it if that stream is
// not attached yet; so a failed call is tried again.
func (d *driver) callRoots(id int) string {
	d.t.Helper()
	deadline := time.Now().Add(testWait)
	for ; ; id += 1000 {
		d.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"roots","arguments":{}}}`, id))
		f := d.await(fmt.Sprint(id))
		if !bytes.Contains(f.Result(), []byte(`"isError":true`)) || time.Now().After(deadline) {
			return resultText(d.t, f)
		}
		d.t.Logf("roots failed, trying again: %s", f.Raw())
		time.Sleep(20 * time.Millisecond)
	}
}

func resultText(t *testing.T, f *frame.Frame) string {
	t.Helper()
	var r struct {
		Content []struct{ Text string } `json:"content"`
		IsError bool                    `json:"isError"`
	}
	if f.IsError() || json.Unmarshal(f.Result(), &r) != nil || len(r.Content) != 1 || r.IsError {
		t.Fatalf("not a tool result: %.300s", f.Raw())
	}
	return r.Content[0].Text
}

// errorOf returns the message and data.reason of an error response.
func errorOf(t *testing.T, f *frame.Frame) (msg string, code int) {
	t.Helper()
	var e frame.ErrorObject
	if !f.IsError() || json.Unmarshal(f.Error(), &e) != nil {
		t.Fatalf("not an error response: %.300s", f.Raw())
	}
	return e.Message, e.Code
}

func TestStreamableRoundTrip(t *testing.T) {
	for _, jsonMode := range []bool{false, true} {
		t.Run(fmt.Sprintf("json=%v", jsonMode), func(t *testing.T) {
			ts, rc := serveStreamable(t, newMCPServer(), jsonMode, nil)
			s := openTest(t, config.KindHTTP, ts.URL, map[string]string{"X-Test-Token": "secret"})
			d := newDriver(t, s)
			d.initialize()

			d.send(`{"jsonrpc":"2.0","id":"list","method":"tools/list"}`)
			if res := d.await(`"list"`); !bytes.Contains(res.Result(), []byte(`"echo"`)) {
				t.Fatalf("tools/list: %s", res.Raw())
			}
			if got := d.call(7, "echo", "hello"); got != "hello" {
				t.Fatalf("echo = %q", got)
			}
			if n := rc.count(http.MethodPost, "tools/call"); n != 1 {
				t.Errorf("%d POSTs for one tools/call", n)
			}
			// A server-initiated request: answered by the driver, and the
			// tool's result comes back.
			if got := d.callRoots(8); got != "roots: file:///tmp/r1" {
				t.Fatalf("roots = %q", got)
			}
			var sid string
			for _, r := range rc.requests() {
				if r.header.Get("X-Test-Token") != "secret" {
					t.Errorf("%s %s without the configured header", r.method, r.rpc)
				}
				if r.rpc == "initialize" {
					if r.header.Get(headerSessionID) != "" || r.header.Get(headerProtocol) != "" {
						t.Errorf("initialize carried session headers: %v", r.header)
					}
					continue
				}
				if sid == "" {
					sid = r.header.Get(headerSessionID)
				}
				if got := r.header.Get(headerSessionID); got == "" || got != sid {
					t.Errorf("%s %s: session id %q, want %q", r.method, r.rpc, got, sid)
				}
				if got := r.header.Get(headerProtocol); got != testProtocol {
					t.Errorf("%s %s: protocol header %q", r.method, r.rpc, got)
				}
			}
		})
	}
}

func TestStreamableLargePayload(t *testing.T) {
	for _, jsonMode := range []bool{false, true} {
		t.Run(fmt.Sprintf("json=%v", jsonMode), func(t *testing.T) {
			ts, _ := serveStreamable(t, newMCPServer(), jsonMode, nil)
			d := newDriver(t, openTest(t, config.KindHTTP, ts.URL, nil))
			d.timeout = bigWait
			d.initialize()
			big := strings.Repeat("0123456789abcdef", 1<<20) // 16 MiB
			if got := d.call(2, "echo", big); got != big {
				t.Fatalf("echo of %d bytes came back with %d", len(big), len(got))
			}
		})
	}
}

func TestStreamableStandaloneStream(t *testing.T) {
	for _, jsonMode := range []bool{false, true} {
		t.Run(fmt.Sprintf("json=%v", jsonMode), func(t *testing.T) {
			srv := newMCPServer()
			ts, rc := serveStreamable(t, srv, jsonMode, nil)
			d := newDriver(t, openTest(t, config.KindHTTP, ts.URL, nil))
			d.initialize()
			d.send(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
			d.await("2")

			// The server drops a change notification when no GET stream is
			// attached yet, so keep changing until one arrives.
			awaitListChanged(d, srv)
			if rc.count(http.MethodGet, "") == 0 {
				t.Fatal("no GET stream was opened")
			}
		})
	}
}

// The standalone stream is opened as soon as the initialize answer is in
// (as go-sdk's client does), before notifications/initialized. A server
// that refuses a GET until it saw initialized is asked once more after it,
// and its notifications still arrive.
func TestStreamableGETRefusedBeforeInitialized(t *testing.T) {
	srv := newMCPServer()
	ts, rc := serveStreamable(t, srv, false, nil)
	var mu sync.Mutex
	sawInitialized := false
	rc.setIntercept(func(w http.ResponseWriter, r *http.Request, rec recorded) bool {
		mu.Lock()
		defer mu.Unlock()
		if rec.rpc == methodInitialized {
			sawInitialized = true
		}
		if r.Method == http.MethodGet && !sawInitialized {
			http.Error(w, "session not initialized", http.StatusBadRequest)
			return true
		}
		return false
	})
	d := newDriver(t, openTest(t, config.KindHTTP, ts.URL, nil))
	d.send(initRequest)
	d.await("1")
	// The first GET needs no notifications/initialized.
	awaitGETCount(t, rc, "no GET before notifications/initialized")
	d.send(initialized)
	d.send(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
	d.await("2")
	// tools/list waits at most a second for the second GET: under load it
	// may come after the answer.
	for deadline := time.Now().Add(testWait); rc.count(http.MethodGet, "") < 2 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}

	var order []string
	for _, r := range rc.requests() {
		if r.method == http.MethodGet || r.rpc == methodInitialized {
			order = append(order, r.method+" "+r.rpc)
		}
	}
	if want := []string{"GET ", "POST " + methodInitialized, "GET "}; !slices.Equal(order, want) {
		t.Fatalf("GETs and initialized in this order: %q, want %q", order, want)
	}
	awaitListChanged(d, srv)
}

// A session the server loses between the initialize answer and
// notifications/initialized (its standalone stream, opened at the answer,
// sees the 404) is replaced, and the new session gets a standalone stream
// of its own: its notifications arrive.
func TestStreamableSessionLostBeforeInitialized(t *testing.T) {
	srv := newMCPServer()
	ts, rc := serveStreamable(t, srv, false, nil)
	d := newDriver(t, openTest(t, config.KindHTTP, ts.URL, nil))
	d.send(initRequest)
	d.await("1")
	awaitGETCount(t, rc, "no GET at the initialize answer")
	oldSID := ""
	for _, r := range rc.requests() {
		if r.method == http.MethodGet {
			oldSID = r.header.Get(headerSessionID)
		}
	}
	endSession(t, ts.URL, oldSID)
	d.note(MethodReinitialized)
	d.send(initialized)
	d.send(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
	d.await("2")

	awaitListChanged(d, srv)
	newGETs := 0
	for _, r := range rc.requests() {
		if r.method == http.MethodGet && r.header.Get(headerSessionID) != oldSID {
			newGETs++
		}
	}
	if newGETs == 0 {
		t.Fatal("no standalone GET for the new session")
	}
}

// sessionInUse starts a server and a session to it that has answered a
// call, and returns the session's id.
func sessionInUse(t *testing.T) (*httptest.Server, *recorder, *driver, string) {
	t.Helper()
	ts, rc := serveStreamable(t, newMCPServer(), false, nil)
	d := newDriver(t, openTest(t, config.KindHTTP, ts.URL, nil))
	d.initialize()
	if got := d.call(2, "echo", "before"); got != "before" {
		t.Fatalf("echo = %q", got)
	}
	return ts, rc, d, lastSessionID(rc)
}

func TestStreamableSessionLost(t *testing.T) {
	for _, flavour := range []string{"404", "400"} {
		t.Run(flavour, func(t *testing.T) {
			ts, rc, d, oldSID := sessionInUse(t)

			switch flavour {
			case "404": // the server forgets the session, as after a restart
				endSession(t, ts.URL, oldSID)
			case "400": // some servers say 400 and name the session
				rc.setIntercept(func(w http.ResponseWriter, r *http.Request, rec recorded) bool {
					if r.Header.Get(headerSessionID) == oldSID && r.Method == http.MethodPost {
						http.Error(w, "Bad Request: No valid session ID provided", http.StatusBadRequest)
						return true
					}
					return false
				})
			}

			// Concurrent calls: all succeed, with one re-initialization.
			const n = 5
			for i := range n {
				d.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"text":"after%d"}}}`, 10+i, i))
			}
			for i := range n {
				if got := resultText(t, d.await(fmt.Sprint(10+i))); got != fmt.Sprintf("after%d", i) {
					t.Fatalf("call %d = %q", i, got)
				}
			}
			d.note(MethodReinitialized)

			var inits []recorded
			for _, r := range rc.requests() {
				if r.rpc == "initialize" {
					inits = append(inits, r)
				}
			}
			if len(inits) != 2 || inits[1].id != `"mcpbridge-reinit-1"` {
				t.Fatalf("initialize POSTs: %+v, want the router's and one replay", inits)
			}
			if rc.count(http.MethodPost, "notifications/initialized") != 2 {
				t.Errorf("initialized was not replayed")
			}
			if sid := lastSessionID(rc); sid == oldSID || sid == "" {
				t.Errorf("still on session %q", sid)
			}
			if got := d.call(20, "echo", "later"); got != "later" {
				t.Fatalf("echo = %q", got)
			}
		})
	}
}

func lastSessionID(rc *recorder) string {
	reqs := rc.requests()
	for i := len(reqs) - 1; i >= 0; i-- {
		if sid := reqs[i].header.Get(headerSessionID); sid != "" && reqs[i].method == http.MethodPost {
			return sid
		}
	}
	return ""
}

func TestStreamableUnauthorized(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="t"`)
		http.Error(w, "no token", http.StatusUnauthorized)
	}))
	t.Cleanup(ts.Close)
	d := newDriver(t, openTest(t, config.KindHTTP, ts.URL, nil))
	d.send(initRequest)
	msg, code := errorOf(t, d.await("1"))
	if code != frame.CodeInternalError || !strings.Contains(msg, `--header 'b1:Authorization: Bearer`) || !strings.Contains(msg, "401") {
		t.Fatalf("error %d %q", code, msg)
	}
}

func TestStreamableErrors(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method != http.MethodPost:
			http.Error(w, "no", http.StatusMethodNotAllowed)
		case r.Header.Get(headerSessionID) == "": // initialize
			w.Header().Set(headerSessionID, "s1")
			w.Header().Set("Content-Type", mediaJSON)
			fmt.Fprint(w, `{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"x","version":"1"}}}`)
		default:
			body, _ := io.ReadAll(r.Body)
			f, _ := frame.Parse(body)
			switch string(f.ID()) {
			case "2": // a JSON-RPC error with a non-2xx status: delivered as is
				w.Header().Set("Content-Type", mediaJSON)
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprint(w, `{"jsonrpc":"2.0","id":2,"error":{"code":-32602,"message":"bad params"}}`)
			case "3":
				http.Error(w, strings.Repeat("overloaded ", 100), http.StatusServiceUnavailable)
			case "4": // the stream ends without the answer and without event ids
				w.Header().Set("Content-Type", mediaSSE)
				fmt.Fprint(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1,\"progress\":1}}\n\n")
			case "6": // the stream breaks after an event with an id; resuming fails
				w.Header().Set("Content-Type", mediaSSE)
				fmt.Fprint(w, "retry: 1\nid: e1\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":6,\"progress\":1}}\n\n")
			case "5": // a batch answer
				w.Header().Set("Content-Type", mediaJSON)
				fmt.Fprint(w, `[{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}},{"jsonrpc":"2.0","id":5,"result":{}}]`)
			default:
				w.WriteHeader(http.StatusAccepted)
			}
		}
	}))
	t.Cleanup(ts.Close)
	d := newDriver(t, openTest(t, config.KindHTTP, ts.URL, nil))
	d.initialize()

	d.send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{}}`)
	if msg, code := errorOf(t, d.await("2")); code != -32602 || msg != "bad params" {
		t.Errorf("id 2: %d %q", code, msg)
	}
	d.send(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{}}`)
	if msg, _ := errorOf(t, d.await("3")); !strings.Contains(msg, "503 Service Unavailable: overloaded") || len(msg) > 300 {
		t.Errorf("id 3: %q", msg)
	}
	d.send(`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{}}`)
	if msg, _ := errorOf(t, d.await("4")); !strings.Contains(msg, "before the answer") {
		t.Errorf("id 4: %q", msg)
	}
	d.note("notifications/progress")
	d.send(`{"jsonrpc":"2.0","id":5,"method":"ping"}`)
	if res := d.await("5"); res.IsError() {
		t.Errorf("id 5: %s", res.Raw())
	}
	d.note("notifications/message")
	d.send(`{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{}}`)
	if msg, _ := errorOf(t, d.await("6")); !strings.Contains(msg, "resuming it failed 3 times") {
		t.Errorf("id 6: %q", msg)
	}
}

func TestStreamableServerDown(t *testing.T) {
	ts := httptest.NewServer(http.NotFoundHandler())
	url := ts.URL
	ts.Close()
	d := newDriver(t, openTest(t, config.KindHTTP, url, nil))
	d.send(initRequest)
	msg, code := errorOf(t, d.await("1"))
	if code != frame.CodeInternalError || !strings.Contains(msg, "post:") {
		t.Fatalf("error %d %q", code, msg)
	}
}

// A server that closes the answer stream mid-call (SEP-1699) and is
// resumed with Last-Event-ID.
func TestStreamableResume(t *testing.T) {
	srv := newMCPServer()
	mcp.AddTool(srv, &mcp.Tool{Name: "slow"}, func(ctx context.Context, req *mcp.CallToolRequest, in echoArgs) (*mcp.CallToolResult, any, error) {
		req.Extra.CloseSSEStream(mcp.CloseSSEStreamArgs{RetryAfter: 10 * time.Millisecond})
		time.Sleep(50 * time.Millisecond)
		return textResult(in.Text), nil, nil
	})
	ts, rc := serveStreamable(t, srv, false, mcp.NewMemoryEventStore(nil))
	d := newDriver(t, openTest(t, config.KindHTTP, ts.URL, nil))
	d.initialize()
	if got := d.call(2, "slow", "resumed"); got != "resumed" {
		t.Fatalf("slow = %q", got)
	}
	resumed := false
	for _, r := range rc.requests() {
		if r.method == http.MethodGet && r.header.Get(headerLastEventID) != "" {
			resumed = true
		}
	}
	if !resumed {
		t.Fatal("no GET with Last-Event-ID")
	}
}

func TestStreamableClose(t *testing.T) {
	ts, rc := serveStreamable(t, newMCPServer(), false, nil)
	s := openTest(t, config.KindHTTP, ts.URL, nil)
	d := newDriver(t, s)
	d.initialize()
	d.send(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
	d.await("2")
	sid := lastSessionID(rc)
	done := make(chan error, 1)
	go func() {
		_, err := s.Recv(context.Background())
		done <- err
	}()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s.Close() // idempotent
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Recv after Close: %v", err)
		}
	case <-time.After(testWait):
		t.Fatal("Recv not unblocked by Close")
	}
	f, _ := frame.Parse([]byte(`{"jsonrpc":"2.0","id":9,"method":"ping"}`))
	if err := s.Send(f); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close: %v", err)
	}
	deleted := false
	for _, r := range rc.requests() {
		if r.method == http.MethodDelete && r.header.Get(headerSessionID) == sid {
			deleted = true
		}
	}
	if !deleted {
		t.Fatal("no DELETE for the session")
	}
}

func TestStreamableQueueFull(t *testing.T) {
	release := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(ts.Close)
	t.Cleanup(func() { close(release) }) // before ts.Close, which waits for the handlers
	s, err := newStreamable(config.Backend{Name: "b1", Kind: config.KindHTTP, URL: ts.URL}, Options{Logger: testLogger(t), Redact: func(s string) string { return s }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.sem = make(chan struct{}, 2)
	note := func() *frame.Frame {
		f, _ := frame.Parse([]byte(`{"jsonrpc":"2.0","method":"notifications/progress","params":{}}`))
		return f
	}
	for range 2 {
		if err := s.Send(note()); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Send(note()); !errors.Is(err, frame.ErrQueueFull) {
		t.Fatalf("third Send: %v, want ErrQueueFull", err)
	}
}

func TestStreamableWireID(t *testing.T) {
	f, err := frame.Parse([]byte(`{"jsonrpc":"2.0","method":"tools/call","params":{"s":"\"id\":5 \\\" }"},"id":"host-1"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(f.OutID()); got != `"host-1"` {
		t.Fatalf("unedited: %s", got)
	}
	f.SetID([]byte("42"))
	if got := string(f.OutID()); got != "42" {
		t.Fatalf("edited: %s", got)
	}
}

// awaitListChanged adds tools to srv until the session delivers a
// tools/list_changed. The server drops a change notification while no
// standalone stream is attached, so one change may not be enough.
func awaitListChanged(d *driver, srv *mcp.Server) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	got := make(chan struct{})
	defer close(got)
	go func() {
		for i := 0; ; i++ {
			srv.AddTool(&mcp.Tool{Name: fmt.Sprintf("late%d", i), InputSchema: json.RawMessage(`{"type":"object"}`)},
				func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
					return textResult("late"), nil
				})
			select {
			case <-got:
				return
			case <-ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	d.note("notifications/tools/list_changed")
}

// awaitGETCount waits for the recorder to have seen a GET, failing with
// msg if none comes.
func awaitGETCount(t *testing.T, rc *recorder, msg string) {
	t.Helper()
	for deadline := time.Now().Add(testWait); rc.count(http.MethodGet, "") == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
	}
}

// endSession makes the server forget session sid (DELETE), as a server
// restart or an expiry would.
func endSession(t *testing.T, url, sid string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, url, nil)
	req.Header.Set(headerSessionID, sid)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// TestCancelledBeforeItsPostIsNotSent: a request waiting behind
// notifications/initialized (held while the standalone stream comes up)
// and cancelled meanwhile is never POSTed, and neither is its
// cancellation; its answer is a local failure, which the router drops
// (review: the cancellation's own POST waited behind the same gate and
// lost the race to the request, which went out every time).
func TestCancelledBeforeItsPostIsNotSent(t *testing.T) {
	ts, rc := serveStreamable(t, newMCPServer(), false, nil)
	rc.setIntercept(func(w http.ResponseWriter, r *http.Request, rec recorded) bool {
		if r.Method == http.MethodGet {
			time.Sleep(500 * time.Millisecond)
		}
		return false
	})
	d := newDriver(t, openTest(t, config.KindHTTP, ts.URL, nil))
	d.send(initRequest)
	d.await("1")
	d.send(initialized)
	d.send(`{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}}`)
	time.Sleep(50 * time.Millisecond)
	d.send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":10}}`)
	if f := d.await("10"); !f.IsError() {
		t.Errorf("the cancelled request was answered: %s", f.Raw())
	}
	time.Sleep(600 * time.Millisecond) // past the gate
	for _, r := range rc.requests() {
		if r.rpc == "tools/call" || r.rpc == "notifications/cancelled" {
			t.Errorf("POSTed after its cancellation: %s id=%s", r.rpc, r.id)
		}
	}
}

// TestCancelledDuringItsPostIsNotResent: a cancellation that arrives while
// the request's POST is out, answered 404 (the session is gone), keeps the
// request from being sent again to the new session (review: it was sent
// again there and ran).
func TestCancelledDuringItsPostIsNotResent(t *testing.T) {
	_, rc, d, oldSID := sessionInUse(t)
	rc.setIntercept(func(w http.ResponseWriter, r *http.Request, rec recorded) bool {
		if r.Header.Get(headerSessionID) == oldSID && r.Method == http.MethodPost {
			if rec.rpc == "tools/call" {
				time.Sleep(300 * time.Millisecond)
			}
			http.Error(w, "session not found", http.StatusNotFound)
			return true
		}
		return false
	})
	d.send(`{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}}`)
	time.Sleep(100 * time.Millisecond)
	d.send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":10}}`)
	if f := d.await("10"); !f.IsError() {
		t.Errorf("the cancelled request was answered: %s", f.Raw())
	}
	for _, r := range rc.requests() {
		if r.rpc == "tools/call" && r.id == "10" && r.header.Get(headerSessionID) != oldSID {
			t.Errorf("the cancelled request was sent again to the new session")
		}
	}
}

// TestStreamableAnswerOfALostSessionIsDropped: the host's answer to a
// server request of a session the server lost, sent once the new session
// is up (before the router heard of the loss), is not POSTed into the new
// session, whose server numbers its own requests from the start again
// and could take it for one of them (third review: only SSE tracked
// where a request came from).
func TestStreamableAnswerOfALostSessionIsDropped(t *testing.T) {
	srv := newMCPServer()
	addSampleTool(srv)
	ts, rc := serveStreamable(t, srv, false, nil)
	d := newDriver(t, openTest(t, config.KindHTTP, ts.URL, nil))
	d.send(strings.Replace(initRequest, `"roots":{}`, `"roots":{},"sampling":{}`, 1))
	d.await("1")
	d.send(initialized)
	d.send(`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"sample","arguments":{}}}`)
	up := d.wait(func(f *frame.Frame) bool { return f.Kind == frame.Request && f.Method == "sampling/createMessage" })
	oldSID := lastSessionID(rc)
	endSession(t, ts.URL, oldSID)
	// A call finds the session gone (404) and starts a new one; its answer
	// comes once the new session is published.
	if got := d.call(6, "echo", "after"); got != "after" {
		t.Fatalf("echo = %q", got)
	}
	d.note(MethodReinitialized)
	d.send(`{"jsonrpc":"2.0","id":` + string(up.ID()) + `,"result":{"role":"assistant","content":{"type":"text","text":"STALE"},"model":"m"}}`)
	time.Sleep(300 * time.Millisecond)
	for _, r := range rc.requests() {
		if r.method == http.MethodPost && r.rpc == "" && r.id == string(up.ID()) && r.header.Get(headerSessionID) != oldSID {
			t.Errorf("the answer to the lost session's request was POSTed into the new session")
		}
	}
}

// addSampleTool gives srv a tool "sample" that asks the client to sample
// and returns what it got.
func addSampleTool(srv *mcp.Server) {
	mcp.AddTool(srv, &mcp.Tool{Name: "sample"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second) // the test server's clean-up waits for it
		defer cancel()
		res, err := req.Session.CreateMessage(ctx, &mcp.CreateMessageParams{MaxTokens: 1, Messages: []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: "q"}}}})
		if err != nil {
			return nil, nil, err
		}
		return &mcp.CallToolResult{Content: []mcp.Content{res.Content}}, nil, nil
	})
}

// TestErrorBodyEchoingTheTokenIsScrubbed: a server (a debugging proxy, an
// error page) that echoes the request's Authorization value in an error
// body must not put the token into the failure the host and the log get:
// an OAuth access token is no configured value, so the log redaction
// cannot know it.
func TestErrorBodyEchoingTheTokenIsScrubbed(t *testing.T) {
	const tok = "tok-1234567890abcdef"
	// Padded so that the failure's 200-byte cut falls before, inside and
	// after the token: no part of it may be left.
	for _, pad := range []int{0, 170, 180, 190} {
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, strings.Repeat("x", pad)+" Authorization: "+r.Header.Get("Authorization"), http.StatusBadGateway)
		}))
		d := newDriver(t, openTest(t, config.KindHTTP, ts.URL, map[string]string{"Authorization": "Bearer " + tok}))
		d.send(initRequest)
		f := d.await("1")
		msg, _ := errorOf(t, f)
		if strings.Contains(string(f.Raw()), "tok-") || !strings.Contains(msg, "502") || (pad == 0 && !strings.Contains(msg, "[REDACTED]")) {
			t.Errorf("pad %d: %s", pad, f.Raw())
		}
		ts.Close()
	}
}
