package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mcpbridge/mcpbridge/backends"
	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The scenario lines a host sends after the handshake. The ids are ones
// go-sdk's own server keeps intact (it rounds ids through float64);
// TestHostIDsComeBackRaw covers the others through the bridge alone.
var relayScenario = []string{
	`{"jsonrpc":"2.0","id":9007199254740991,"method":"tools/list"}`,
	`{"jsonrpc":"2.0","id":"a-string","method":"tools/call","params":{"name":"echo","arguments":{"text":"héllo \u2603"},"_meta":{"vendor/x":[1.50,2e3]}}}`,
	`{"jsonrpc":"2.0","id":"1.5","method":"prompts/list"}`,
	`{"jsonrpc":"2.0","id":"p","method":"prompts/get","params":{"name":"greet"}}`,
	`{"jsonrpc":"2.0","id":7,"method":"resources/list"}`,
	`{"jsonrpc":"2.0","id":8,"method":"resources/read","params":{"uri":"test://one/r"}}`,
	`{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"nope","arguments":{}}}`,
	`{"jsonrpc":"2.0","id":10,"method":"no/such/method"}`,
	`{"jsonrpc":"2.0","id":11,"method":"ping"}`,
}

func scenarioIDs() []string {
	var ids []string
	for _, l := range relayScenario {
		f, _ := frame.Parse([]byte(l))
		ids = append(ids, string(f.ID()))
	}
	return ids
}

// TestRelayMatchesDirect runs the same conversation directly against a
// go-sdk server and through the bridge, and requires the same bytes back
// (issue #3: payloads and ids stay raw).
func TestRelayMatchesDirect(t *testing.T) {
	direct := directWire(t, testServer("one"))
	bridged := bridgedWire(t, Config{}, namedServer{"one", testServer("one")})

	dInit := handshake(direct)
	bInit := handshake(bridged.wire)
	var dRes, bRes map[string]any
	_ = json.Unmarshal(dInit.Result(), &dRes)
	_ = json.Unmarshal(bInit.Result(), &bRes)
	if diff := cmp.Diff(dRes, bRes); diff != "" {
		t.Errorf("initialize result differs (-direct +bridged):\n%s", diff)
	}
	for _, l := range relayScenario {
		direct.Send(l)
		bridged.Send(l)
	}
	for _, id := range scenarioIDs() {
		d, b := direct.Response(id), bridged.Response(id)
		if string(d.Raw()) != string(b.Raw()) {
			t.Errorf("id %s differs:\n direct: %s\nbridged: %s", id, d.Raw(), b.Raw())
		}
	}
}

// TestHostIDsComeBackRaw sends ids that a float64 round trip would
// damage; the bridge must return each byte for byte (issue #3).
func TestHostIDsComeBackRaw(t *testing.T) {
	b := bridgedWire(t, Config{}, namedServer{"one", testServer("one")})
	handshake(b.wire)
	ids := []string{"9007199254740993", "1.5", "-7", "1e3", "123456789012345678901234567890", `"é\u00e9\""`, `""`}
	for _, id := range ids {
		b.Send(`{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}}`)
	}
	for _, id := range ids {
		if r := b.Response(id); r.Result() == nil {
			t.Errorf("id %s: %s", id, r.Raw())
		}
	}
}

func TestProgressTokenZeroAndStrings(t *testing.T) {
	b := bridgedWire(t, Config{}, namedServer{"one", testServer("one")})
	handshake(b.wire)
	b.Send(`{"jsonrpc":"2.0","id":100,"method":"tools/call","params":{"name":"progress","arguments":{"steps":3},"_meta":{"progressToken":0}}}`)
	b.Send(`{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"progress","arguments":{"steps":2},"_meta":{"progressToken":"tok-é"}}}`)
	b.Response("100")
	b.Response(`"x"`)
	// go-sdk sends progress before the result on the same stream, and the
	// bridge keeps one backend's order.
	count := func(tok string) int {
		return b.Count(func(f *frame.Frame) bool {
			return f.Method == "notifications/progress" && string(f.Bytes(f.Param("progressToken"))) == tok
		})
	}
	if n := count("0"); n != 3 {
		t.Errorf("progress with token 0: got %d notifications, want 3\n%s", n, b.Dump())
	}
	if n := count(`"tok-é"`); n != 2 {
		t.Errorf("progress with string token: got %d, want 2", n)
	}
}

func TestSamplingAndRootsReachTheHost(t *testing.T) {
	b := bridgedWire(t, Config{}, namedServer{"one", testServer("one")})
	handshake(b.wire)
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sample","arguments":{}}}`)
	req := b.WaitFor("sampling request", func(f *frame.Frame) bool { return f.Method == "sampling/createMessage" })
	if string(req.ID()) == "0" {
		t.Errorf("the bridge used id 0 toward the host")
	}
	b.Send(`{"jsonrpc":"2.0","id":` + string(req.ID()) + `,"result":{"role":"assistant","model":"m","content":{"type":"text","text":"sampled!"}}}`)
	res := b.Response("1")
	if !strings.Contains(string(res.Result()), "sampled!") {
		t.Errorf("tool result lacks the host's sample: %s", res.Raw())
	}

	b.Send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"roots","arguments":{}}}`)
	req = b.WaitFor("roots request", func(f *frame.Frame) bool { return f.Method == "roots/list" })
	b.Send(`{"jsonrpc":"2.0","id":` + string(req.ID()) + `,"result":{"roots":[{"uri":"file:///tmp/x","name":"x"}]}}`)
	if res := b.Response("2"); !strings.Contains(string(res.Result()), "file:///tmp/x") {
		t.Errorf("roots not relayed: %s", res.Raw())
	}
}

func TestBadInputKeepsTheBridgeAnswering(t *testing.T) {
	b := bridgedWire(t, Config{}, namedServer{"one", testServer("one")})
	handshake(b.wire)
	b.Send(`this is not json`)
	b.Send(`{"jsonrpc":"2.0","id":"v","method":42}`)
	b.Send(`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","arguments":{"text":"ok"}}}`)
	if r := b.Response("null"); !strings.Contains(string(r.Error()), "-32700") {
		t.Errorf("parse error: %s", r.Raw())
	}
	if r := b.Response(`"v"`); !strings.Contains(string(r.Error()), "-32600") {
		t.Errorf("invalid request: %s", r.Raw())
	}
	if r := b.Response("5"); !strings.Contains(string(r.Result()), `"ok"`) {
		t.Errorf("request after garbage: %s", r.Raw())
	}
}

func TestDuplicateIDInFlight(t *testing.T) {
	release := make(chan struct{})
	srv := testServer("one")
	mcp.AddTool(srv, &mcp.Tool{Name: "block"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "released"}}}, nil, nil
	})
	b := bridgedWire(t, Config{}, namedServer{"one", srv})
	handshake(b.wire)
	b.Send(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"block","arguments":{}}}`)
	b.Send(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"text":"dup"}}}`)
	dup := b.Response("3")
	if !strings.Contains(string(dup.Error()), "already in use") {
		t.Fatalf("duplicate id: %s", dup.Raw())
	}
	close(release)
	orig := b.WaitFor("original answer", func(f *frame.Frame) bool {
		return f.Kind == frame.Response && string(f.ID()) == "3" && f.Result() != nil
	})
	if !strings.Contains(string(orig.Result()), "released") {
		t.Errorf("original: %s", orig.Raw())
	}
}

// TestCancelReachesTheBackend checks the host's cancel arrives with the
// backend's id (the tool's context ends) and no answer follows.
func TestCancelReachesTheBackend(t *testing.T) {
	cancelled := make(chan struct{})
	srv := testServer("one")
	mcp.AddTool(srv, &mcp.Tool{Name: "block"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
		select {
		case <-ctx.Done():
			close(cancelled)
		case <-time.After(testTimeout):
		}
		return nil, nil, ctx.Err()
	})
	b := bridgedWire(t, Config{}, namedServer{"one", srv})
	handshake(b.wire)
	b.Send(`{"jsonrpc":"2.0","id":"c","method":"tools/call","params":{"name":"block","arguments":{}}}`)
	time.Sleep(50 * time.Millisecond) // let the call reach the tool; not a timing assertion
	b.Send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"c","reason":"user"}}`)
	select {
	case <-cancelled:
	case <-time.After(testTimeout):
		t.Fatal("the backend's tool was never cancelled")
	}
	b.Send(`{"jsonrpc":"2.0","id":"after","method":"ping"}`)
	b.Response(`"after"`)
	if n := b.Count(func(f *frame.Frame) bool { return string(f.ID()) == `"c"` }); n != 0 {
		t.Errorf("a cancelled request was answered %d times", n)
	}
}

func TestTimeoutCancelsAtTheBackend(t *testing.T) {
	cancelled := make(chan struct{})
	srv := testServer("one")
	mcp.AddTool(srv, &mcp.Tool{Name: "hang"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
		<-ctx.Done()
		close(cancelled)
		return nil, nil, ctx.Err()
	})
	b := bridgedWire(t, Config{Timeout: 200 * time.Millisecond}, namedServer{"one", srv})
	handshake(b.wire)
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"hang","arguments":{}}}`)
	r := b.Response("1")
	var e frame.ErrorObject
	_ = json.Unmarshal(r.Error(), &e)
	if e.Code != frame.CodeTimeout || !strings.Contains(e.Message, "timed out") {
		t.Errorf("timeout answer: %s", r.Raw())
	}
	select {
	case <-cancelled:
	case <-time.After(testTimeout):
		t.Fatal("the backend was not told to cancel")
	}
}

func TestPipelinedScriptAndEOF(t *testing.T) {
	// A script writes everything at once and closes stdin: every reply
	// must still come, and Run must end cleanly.
	b := bridgedWire(t, Config{}, namedServer{"one", testServer("one")})
	b.Send(initLine)
	b.Send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	for i := 1; i <= 20; i++ {
		b.Send(`{"jsonrpc":"2.0","id":` + itoa(i) + `,"method":"tools/call","params":{"name":"echo","arguments":{"text":"n` + itoa(i) + `"}}}`)
	}
	b.W.Close()
	select {
	case err := <-b.done:
		b.done <- err // for the cleanup's own wait
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Run did not end after stdin EOF")
	}
	for i := 1; i <= 20; i++ {
		if r := b.Response(itoa(i)); !strings.Contains(string(r.Result()), `"n`+itoa(i)+`"`) {
			t.Errorf("reply %d: %s", i, r.Raw())
		}
	}
}

func itoa(i int) string { return string(frame.AppendInt(nil, int64(i))) }

// TestBatchIsAnsweredWithAnArray: a 2025-03-26 host may send a JSON array;
// it gets one array with an answer per request (issue #3).
func TestBatchIsAnsweredWithAnArray(t *testing.T) {
	b := bridgedWire(t, Config{}, namedServer{"one", testServer("one")})
	b.Send(strings.Replace(initLine, "2025-11-25", "2025-03-26", 1))
	b.Response("0")
	b.Send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	b.Send(`[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"one"}}},` +
		`{"jsonrpc":"2.0","method":"notifications/roots/list_changed"},` +
		`{"jsonrpc":"2.0","id":"two","method":"ping"},` +
		`{"jsonrpc":"2.0","id":3,"method":7}]`)
	b.Send(`{"jsonrpc":"2.0","id":"after","method":"ping"}`)
	b.Response(`"after"`)
	deadline := time.Now().Add(testTimeout)
	for time.Now().Before(deadline) {
		if line := b.Line(func(l []byte) bool { return len(l) > 0 && l[0] == '[' }); line != nil {
			var items []map[string]any
			if err := json.Unmarshal(line, &items); err != nil || len(items) != 3 {
				t.Fatalf("batch answer: %s (%v)", line, err)
			}
			ids := map[string]bool{}
			for _, it := range items {
				ids[fmt.Sprint(it["id"])] = true
			}
			if !ids["1"] || !ids["two"] || !ids["3"] {
				t.Errorf("batch answer ids: %v", ids)
			}
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no batch answer:\n%s", b.Dump())
}

// TestProgressResetsTheIdleTimeout: a call that keeps reporting progress
// outlives the idle timeout; the absolute cap still ends it (issue #5).
func TestProgressResetsTheIdleTimeout(t *testing.T) {
	srv := testServer("one")
	type slowIn struct {
		Steps int `json:"steps"`
	}
	mcp.AddTool(srv, &mcp.Tool{Name: "slow"}, func(ctx context.Context, req *mcp.CallToolRequest, in slowIn) (*mcp.CallToolResult, any, error) {
		for i := range in.Steps {
			select {
			case <-time.After(100 * time.Millisecond):
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			}
			req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: req.Params.GetProgressToken(), Progress: float64(i)})
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "finished"}}}, nil, nil
	})
	b := bridgedWire(t, Config{Timeout: 400 * time.Millisecond, MaxTimeout: 3 * time.Second}, namedServer{"one", srv})
	handshake(b.wire)
	// 8 steps of 100 ms: 800 ms in all, twice the idle timeout.
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"slow","arguments":{"steps":8},"_meta":{"progressToken":"p"}}}`)
	if r := b.Response("1"); !strings.Contains(string(r.Result()), "finished") {
		t.Errorf("a call with progress was cut by the idle timeout: %s", r.Raw())
	}
	// 60 steps: 6 s, over the 3 s cap despite progress.
	b.Send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"slow","arguments":{"steps":60},"_meta":{"progressToken":"q"}}}`)
	r := b.Response("2")
	var e frame.ErrorObject
	_ = json.Unmarshal(r.Error(), &e)
	if e.Code != frame.CodeTimeout {
		t.Errorf("the absolute cap did not end the call: %s", r.Raw())
	}
}

// oneBackend is a Run config with one in-process test server, "a".
func oneBackend(t *testing.T) Config {
	srv := testServer("a")
	return Config{
		Backends: []config.Backend{{Name: "a", Kind: config.KindStdio, Command: "in-process"}},
		Open: func(ctx context.Context, b config.Backend, _ backends.Options) (backends.Session, error) {
			return serve(t, b.Name, srv), nil
		},
		Logger: testLogger(t),
	}
}

// A host whose output fails (the bridge cannot write its answers) ends Run
// with that error, promptly, although the host's input stays open: the
// bridge must not hang waiting for a writer that already stopped.
func TestHostWriteErrorEndsRun(t *testing.T) {
	cfg := oneBackend(t)
	inR, inW := io.Pipe()
	defer inW.Close()
	done := make(chan error, 1)
	out := &switchWriter{}
	out.fail.Store(true)
	go func() { done <- Run(context.Background(), cfg, inR, out) }()
	go inW.Write([]byte(initLine + "\n"))
	awaitWriteError(t, done)
}

// awaitWriteError waits for Run's result, which must be switchWriter's
// error, within 10 s.
func awaitWriteError(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "host output gone") {
			t.Errorf("Run returned %v, want the write error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run still running 10 s after the host's output failed")
	}
}

// switchWriter passes writes to w until fail is set, then fails them
// (all of them, with fail set from the start).
type switchWriter struct {
	fail atomic.Bool
	w    io.Writer
}

func (s *switchWriter) Write(p []byte) (int, error) {
	if s.fail.Load() {
		return 0, errors.New("host output gone")
	}
	return s.w.Write(p)
}

// The host closes its input with requests in flight, and then its output
// fails: the drain must end with the write error instead of waiting for
// answers that have nowhere to go (a blocked request would hold it until
// its timeout, 5 minutes by default).
func TestHostWriteErrorEndsDrain(t *testing.T) {
	cfg := oneBackend(t)
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	defer outR.Close()
	out := &switchWriter{w: outW}
	done := make(chan error, 1)
	go func() { done <- Run(context.Background(), cfg, inR, out) }()
	h := newWire(t, inW, outR)
	handshake(h)
	h.Send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"block","arguments":{}}}`)
	h.Send(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"sleep","arguments":{"ms":300}}}`)
	time.Sleep(50 * time.Millisecond) // both read by the bridge
	out.fail.Store(true)
	inW.Close()
	awaitWriteError(t, done)
}
