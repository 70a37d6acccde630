package bridge

// Host-side edge cases from the eleventh review (a helper session); each
// test failed before its fix.

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/mcpbridge/mcpbridge/backends"
	"github.com/mcpbridge/mcpbridge/config"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mcpbridge/mcpbridge/frame"
)

// The host's answer to a backend's sampling request is over --max-message.
// The bridge must not write a JSON-RPC response to the host for it (the
// line was itself a response: JSON-RPC answers requests only, and the id
// is one the bridge issued, so the host's client matches this "answer" to
// its own request of the same id); and the backend that waits for the
// sample must learn the host's answer is lost, not hang until --timeout.
func TestOversizedHostAnswerToUpcall(t *testing.T) {
	b := bridgedWire(t, Config{MaxLine: 4096, Timeout: 20 * time.Second}, namedServer{"a", testServer("a")})
	handshake(b.wire)
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sample","arguments":{}}}`)
	req := b.WaitFor("sampling request", func(f *frame.Frame) bool { return f.Method == "sampling/createMessage" })
	upID := string(req.ID())
	// The host also has a request of its own with that very id in flight
	// (host ids and server ids are separate spaces: legal and common).
	b.Send(`{"jsonrpc":"2.0","id":` + upID + `,"method":"tools/call","params":{"name":"sleep","arguments":{"ms":3000}}}`)
	big := strings.Repeat("x", 5000)
	b.Send(`{"jsonrpc":"2.0","id":` + upID + `,"result":{"role":"assistant","model":"m","content":{"type":"text","text":"` + big + `"}}}`)
	// The first answer the host sees under upID must be its sleep call's.
	first := b.Response(upID)
	if first.IsError() {
		t.Errorf("the host got an error 'answer' under id %s, which is its own sleep call's id: %s", upID, first.Raw())
	}
	// The tool call that waits for the sample must end (with an error)
	// well before the one-minute --timeout.
	if !waitCount(b.wire, 8*time.Second, func(f *frame.Frame) bool { return f.Kind == frame.Response && string(f.ID()) == "1" }) {
		t.Errorf("the sampling tool call is still waiting 8s after the host's answer was dropped as too long (it waits for --timeout)")
	}
}

// waitCount reports whether a line satisfying pred arrives within d.
func waitCount(h *wire, d time.Duration, pred func(*frame.Frame) bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if h.Count(pred) > 0 {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// A backend whose tools/list cursor never ends (it returns the cursor it
// was given, or the same page over and over): the merged list the host
// gets must not hold the same tool many times (hosts refuse or mis-route
// duplicate tool names), and must not take a thousand round trips.
func TestEndlessCursorListsEachToolOnce(t *testing.T) {
	var pages atomic.Int64
	loop := &scriptedServer{name: "a", caps: `{"tools":{}}`, handle: func(f *frame.Frame, write func(string, ...any)) {
		switch f.Method {
		case "tools/list":
			pages.Add(1)
			write(`{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"t","inputSchema":{"type":"object"}}],"nextCursor":"again"}}`, f.ID())
		default:
			if f.Kind == frame.Request {
				write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"method not found"}}`, f.ID())
			}
		}
	}}
	other := &scriptedServer{name: "b", caps: `{"tools":{}}`, handle: func(f *frame.Frame, write func(string, ...any)) {
		if f.Method == "tools/list" {
			write(`{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"u","inputSchema":{"type":"object"}}]}}`, f.ID())
		} else if f.Kind == frame.Request {
			write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"method not found"}}`, f.ID())
		}
	}}
	b := bridgedScripted(t, Config{}, loop, other)
	handshake(b.wire)
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	r := b.Response("1")
	var res struct {
		Tools []struct {
			Name string `json:"name"`
		} `json:"tools"`
	}
	if err := json.Unmarshal(r.Result(), &res); err != nil {
		t.Fatalf("tools/list: %v: %s", err, r.Raw())
	}
	count := map[string]int{}
	for _, tl := range res.Tools {
		count[tl.Name]++
	}
	for n, c := range count {
		if c > 1 {
			t.Errorf("tool %q is listed %d times in the merged list", n, c)
		}
	}
	t.Logf("backend a was asked for %d pages", pages.Load())
}

// A backend's answer over --max-message was skipped by the backend reader
// and the host's request got no answer until --timeout, although the
// head of the line names the request; now it gets an error at once (the host's own oversized lines are
// answered at once with their id, issue #5).
func TestOversizedBackendAnswerEndsTheCall(t *testing.T) {
	big := &scriptedServer{name: "a", caps: `{"tools":{}}`, handle: func(f *frame.Frame, write func(string, ...any)) {
		switch f.Method {
		case "tools/call":
			write(`{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"%s"}]}}`, f.ID(), strings.Repeat("x", 8000))
		default:
			if f.Kind == frame.Request {
				write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"method not found"}}`, f.ID())
			}
		}
	}}
	cfg := Config{MaxLine: 4096, Timeout: 12 * time.Second, Open: func(ctx context.Context, be config.Backend, opts backends.Options) (backends.Session, error) {
		return serveScriptedWith(t, big, opts), nil
	}}
	b := bridgedWire(t, cfg, namedServer{name: "a"})
	handshake(b.wire)
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"big","arguments":{}}}`)
	start := time.Now()
	if !waitCount(b.wire, 5*time.Second, func(f *frame.Frame) bool { return f.Kind == frame.Response && string(f.ID()) == "1" }) {
		t.Errorf("no answer to the host's call 5s after the backend's oversized answer; it comes only at --timeout")
	}
	r := b.Response("1")
	t.Logf("answer after %v: %s", time.Since(start).Round(time.Millisecond), r.Raw())
}

// serveScriptedWith serves s on pipes as a stdio backend, with the
// bridge's backend options (MaxMessage above all) as a real one gets them;
// caps may be a whole initialize result.
func serveScriptedWith(t *testing.T, s *scriptedServer, opts backends.Options) backends.Session {
	toSrvR, toSrvW := io.Pipe()
	fromSrvR, fromSrvW := io.Pipe()
	var wmu sync.Mutex
	write := func(format string, args ...any) {
		wmu.Lock()
		defer wmu.Unlock()
		fmt.Fprintf(fromSrvW, format+"\n", args...)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer fromSrvW.Close()
		lr := frame.NewLineReader(toSrvR, 0)
		for {
			line, err := lr.Next()
			if err != nil {
				return
			}
			f, err := frame.Parse(line)
			if err != nil {
				continue
			}
			if f.Method == "initialize" {
				if strings.Contains(s.caps, `"serverInfo"`) { // a whole initialize result
					write(`{"jsonrpc":"2.0","id":%s,"result":%s}`, f.ID(), s.caps)
					continue
				}
				write(`{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-11-25","capabilities":%s,"serverInfo":{"name":%q,"version":"1"}}}`, f.ID(), s.caps, s.name)
				continue
			}
			s.handle(f, write)
		}
	}()
	t.Cleanup(func() {
		toSrvW.Close()
		<-done
	})
	opts.Logger = testLogger(t)
	return backends.NewStream(s.name, fromSrvR, toSrvW, opts)
}

// An oversized batch: the head was read up to the first '{' and the id of
// the batch's first member taken, so the host got a lone (non-array) error
// that said its request 1 failed, and nothing for the other members. JSON-RPC:
// a batch that cannot be processed gets one error with id null.
func TestOversizedBatchGetsOneError(t *testing.T) {
	b := bridgedWire(t, Config{MaxLine: 4096}, namedServer{"a", testServer("a")})
	handshake(b.wire)
	var ms []string
	for i := 1; i <= 5; i++ {
		ms = append(ms, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"text":"%s"}}}`, i, strings.Repeat("x", 1000)))
	}
	b.Send("[" + strings.Join(ms, ",") + "]")
	b.Send(`{"jsonrpc":"2.0","id":"after","method":"ping"}`)
	b.Response(`"after"`)
	if n := b.Count(func(f *frame.Frame) bool { return f.Kind == frame.Response && string(f.ID()) == "1" }); n > 0 {
		t.Errorf("the oversized batch was answered as if it were its first member, id 1:\n%s", b.Dump())
	}
}

// SIGTERM (Run's ctx) while the host is not reading stdout: the bridge
// closed its backends, then waited for the front writer without bound, so
// it never exited (the host's shutdown must escalate to SIGKILL). README:
// "bridge gets stdin EOF, SIGINT/SIGTERM ... every backend's process group
// is gone"; the MCP stdio shutdown sends SIGTERM to a server that does not
// exit after its stdin closed.
func TestSignalWithUnreadStdoutReturns(t *testing.T) {
	cfg := Config{ShutdownGrace: time.Second, Logger: testLogger(t)}
	cfg.Backends = []config.Backend{{Name: "a", Kind: config.KindStdio, Command: "in-process"}}
	srv := testServer("a")
	cfg.Open = func(ctx context.Context, b config.Backend, _ backends.Options) (backends.Session, error) {
		return serve(t, b.Name, srv), nil
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe() // nobody reads outR: the host is not reading
	defer outR.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, inR, outW) }()
	go func() {
		io.WriteString(inW, initLine+"\n")
		for i := 1; i <= 50; i++ {
			io.WriteString(inW, fmt.Sprintf(`{"jsonrpc":"2.0","id":"p%d","method":"ping"}`+"\n", i))
		}
	}()
	time.Sleep(500 * time.Millisecond)
	cancel() // SIGTERM
	select {
	case err := <-done:
		t.Logf("Run returned: %v", err)
	case <-time.After(10 * time.Second):
		t.Errorf("Run did not return 10s after its context was cancelled (ShutdownGrace 1s): the host is not reading stdout")
		outR.Close() // let it go
		<-done
	}
	inW.Close()
}

// A host line whose id is not valid UTF-8 was accepted as JSON and the id
// written back to stdout: the answer was then not JSON text either
// (RFC 8259 §8.1: JSON exchanged between systems MUST be UTF-8; MCP stdio:
// the server MUST NOT write anything to stdout that is not a valid MCP
// message). Now refused as invalid, with id null.
func TestInvalidUTF8IDRefused(t *testing.T) {
	b := bridgedWire(t, Config{}, namedServer{"a", testServer("a")})
	handshake(b.wire)
	b.Send("{\"jsonrpc\":\"2.0\",\"id\":\"\xff\xfe\",\"method\":\"ping\"}")
	b.Send(`{"jsonrpc":"2.0","id":"after","method":"ping"}`)
	b.Response(`"after"`)
	if l := b.Line(func(l []byte) bool { return !utf8.Valid(l) }); l != nil {
		t.Errorf("the bridge wrote a line that is not UTF-8: %q", l)
	}
}

// A tool call whose backend waits on the host (sampling here; elicitation
// is the same, and waits on a person) was cut by the bridge's idle
// --timeout while the host was still answering: the host got -32001 for
// its call and the backend was told to cancel, although the only party
// that is slow is the host itself. The bridge knows the backend has a
// request outstanding with the host (startTimer's comment: "Sampling and
// elicitation wait on a person").
func TestIdleTimeoutWaitsWhileTheHostIsAsked(t *testing.T) {
	b := bridgedWire(t, Config{Timeout: time.Second}, namedServer{"a", testServer("a")})
	handshake(b.wire)
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sample","arguments":{}}}`)
	req := b.WaitFor("sampling request", func(f *frame.Frame) bool { return f.Method == "sampling/createMessage" })
	time.Sleep(2 * time.Second) // the user reads the sampling prompt
	b.Send(`{"jsonrpc":"2.0","id":` + string(req.ID()) + `,"result":{"role":"assistant","model":"m","content":{"type":"text","text":"sampled!"}}}`)
	r := b.Response("1")
	if r.IsError() {
		t.Errorf("the call waiting on the host's sampling answer was cut by --timeout 1s: %s", r.Raw())
	}
}

// With one backend (raw mode) the host is to see "that server, as directly
// as possible", and README: "params and result are never re-encoded, so
// unknown fields, _meta ... arrive as sent". The backend's initialize
// result was rebuilt from four fields: its _meta (Result._meta, in every
// schema version) and any other member were lost.
func TestRawInitializeKeepsResultMeta(t *testing.T) {
	srv := &scriptedServer{name: "a", caps: `{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"a","version":"1"},"_meta":{"vendor.example/region":"eu"},"x-extra":1}`,
		handle: func(f *frame.Frame, write func(string, ...any)) {
			if f.Kind == frame.Request {
				write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"method not found"}}`, f.ID())
			}
		}}
	b := bridgedWire(t, Config{Open: func(ctx context.Context, be config.Backend, opts backends.Options) (backends.Session, error) {
		return serveScriptedWith(t, srv, opts), nil
	}}, namedServer{name: "a"})
	init := handshake(b.wire)
	if !strings.Contains(string(init.Result()), "vendor.example/region") {
		t.Errorf("the backend's initialize _meta is lost: %s", init.Raw())
	}
}

// The same crossing for a host answer that is invalid JSON-RPC (here both
// result and error, "error":null as some serializers write it): the bridge
// "answered" the host's answer with -32600 under the upcall's id, which the
// host matches to its own request of that id; the backend's tool call
// waited for --timeout. Now nothing answers it and the backend gets an error.
func TestInvalidHostAnswerGetsNoResponse(t *testing.T) {
	b := bridgedWire(t, Config{Timeout: 3 * time.Second}, namedServer{"a", testServer("a")})
	handshake(b.wire)
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sample","arguments":{}}}`)
	req := b.WaitFor("sampling request", func(f *frame.Frame) bool { return f.Method == "sampling/createMessage" })
	upID := string(req.ID())
	b.Send(`{"jsonrpc":"2.0","id":` + upID + `,"result":{"role":"assistant","model":"m","content":{"type":"text","text":"s"}},"error":null}`)
	b.Send(`{"jsonrpc":"2.0","id":"after","method":"ping"}`)
	b.Response(`"after"`)
	if n := b.Count(func(f *frame.Frame) bool { return f.Kind == frame.Response && string(f.ID()) == upID }); n > 0 {
		t.Errorf("the bridge wrote a response under id %s, the id of its own request to the host:\n%s", upID, b.Dump())
	}
}

// An oversized line whose numeric id is cut by the 4 KiB head kept for
// it: the cut number was decoded as a complete one and the -32600
// went out under another id (here 12 instead of 123456), which may be the
// id of another request the host has in flight.
func TestOversizedLineIDCutInTheHead(t *testing.T) {
	b := bridgedWire(t, Config{MaxLine: 4096}, namedServer{"a", testServer("a")})
	handshake(b.wire)
	prefix := `{"jsonrpc":"2.0","method":"tools/call","x":"`
	idPart := `","id":123456,`
	pad := 4096 - len(prefix) - len(`","id":12`) // the head ends after "12"
	line := prefix + strings.Repeat("p", pad) + idPart + `"params":{"name":"echo","arguments":{"text":"` + strings.Repeat("y", 5000) + `"}}}`
	b.Send(line)
	b.Send(`{"jsonrpc":"2.0","id":"after","method":"ping"}`)
	b.Response(`"after"`)
	if b.Count(func(f *frame.Frame) bool { return f.Kind == frame.Response && string(f.ID()) == "12" }) > 0 {
		t.Errorf("the oversized request 123456 was answered under id 12:\n%s", b.Dump())
	}
}
