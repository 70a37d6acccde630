package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/backends"
	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Twenty-first review: tables and goroutines that must shrink back once
// the traffic that filled them is over.
// (A helper session's review of leaks over a long life; each test here but
// the ones that check what was found released failed before its fix.)

// r21Host runs the router in process, keeping it for inspection, and
// reads the host's side into a channel (the wire's scans are quadratic
// over thousands of answers).
type r21Host struct {
	t      *testing.T
	r      *router
	in     io.WriteCloser
	frames chan *frame.Frame
}

func r21Run(t *testing.T, cfg Config) *r21Host {
	t.Helper()
	cfg.Logger = testLogger(t)
	cfg.setDefaults()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	r := newRouter(cfg, outW)
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		err := r.run(ctx, inR)
		outW.Close()
		done <- err
	}()
	h := &r21Host{t: t, r: r, in: inW, frames: make(chan *frame.Frame, 1<<15)}
	go func() {
		lr := frame.NewLineReader(outR, 0)
		for {
			line, err := lr.Next()
			if err != nil {
				return
			}
			if line[0] == '[' { // a batch answer: its members, one by one
				var items []json.RawMessage
				if json.Unmarshal(line, &items) != nil {
					t.Errorf("bad batch line %q", line)
				}
				for _, it := range items {
					if f, err := frame.Parse(it); err == nil {
						h.frames <- f
					}
				}
				continue
			}
			f, err := frame.Parse(line)
			if err != nil {
				t.Errorf("the bridge wrote a line that is not JSON-RPC: %q", line)
				continue
			}
			h.frames <- f
		}
	}()
	t.Cleanup(func() {
		inW.Close()
		select {
		case <-done:
		case <-time.After(testTimeout):
			t.Errorf("bridge did not stop after stdin EOF")
		}
		cancel()
	})
	return h
}

func (h *r21Host) send(format string, args ...any) {
	h.t.Helper()
	if _, err := fmt.Fprintf(h.in, format+"\n", args...); err != nil {
		h.t.Fatalf("writing to bridge: %v", err)
	}
}

// await returns the next frame that matches, dropping the others.
func (h *r21Host) await(what string, pred func(*frame.Frame) bool) *frame.Frame {
	h.t.Helper()
	deadline := time.After(testTimeout)
	for {
		select {
		case f := <-h.frames:
			if pred(f) {
				return f
			}
		case <-deadline:
			h.t.Fatalf("timed out waiting for %s", what)
			return nil
		}
	}
}

func (h *r21Host) handshake() {
	h.t.Helper()
	h.send("%s", initLine)
	h.await("initialize answer", func(f *frame.Frame) bool { return f.Kind == frame.Response && string(f.ID()) == "0" })
	h.send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
}

// locked runs fn under the router's lock.
func (h *r21Host) locked(fn func(r *router)) {
	h.r.mu.Lock()
	defer h.r.mu.Unlock()
	fn(h.r)
}

// A host that subscribes to resources the backend refuses (no such
// resource, access denied: an error answer) is not subscribed to
// anything; it will never unsubscribe. The router records every
// resources/subscribe before routing it (rememberState) and only an
// unsubscribe removes it, so host.subs grows by one entry per distinct
// refused URI, for the bridge's whole life, and each backend restart
// replays every one of them as a fresh subscribe.
func TestRefusedSubscriptionsAreForgotten(t *testing.T) {
	const n = 2000
	var subscribes atomic.Int64
	srv := mcp.NewServer(&mcp.Implementation{Name: "a", Version: "1"}, &mcp.ServerOptions{
		HasResources: true,
		SubscribeHandler: func(ctx context.Context, req *mcp.SubscribeRequest) error {
			subscribes.Add(1)
			return fmt.Errorf("no such resource: %s", req.Params.URI)
		},
		UnsubscribeHandler: func(ctx context.Context, req *mcp.UnsubscribeRequest) error { return nil },
	})
	var opens atomic.Int64
	first := make(chan *mcp.ServerSession, 1)
	h := r21Run(t, Config{
		Backends: []config.Backend{{Name: "a", Kind: config.KindStdio, Command: "in-process"}},
		Open: func(ctx context.Context, b config.Backend, _ backends.Options) (backends.Session, error) {
			if opens.Add(1) == 1 {
				s, ss := serveCounted(t, "a", srv)
				first <- ss
				return s, nil
			}
			return serve(t, "a", srv), nil
		},
	})
	h.handshake()
	for i := range n {
		h.send(`{"jsonrpc":"2.0","id":%d,"method":"resources/subscribe","params":{"uri":"test://a/missing-%d"}}`, 100+i, i)
		r := h.await("subscribe answer", func(f *frame.Frame) bool { return f.Kind == frame.Response })
		if !r.IsError() {
			t.Fatalf("subscribe %d was not refused: %s", i, r.Raw())
		}
	}
	var kept int
	h.locked(func(r *router) { kept = len(r.host.subs) })

	// The backend restarts: the router replays what it kept.
	before := subscribes.Load()
	(<-first).Close()
	deadline := time.Now().Add(testTimeout)
	for subscribes.Load() < before+int64(kept) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	replayed := subscribes.Load() - before
	if kept != 0 || replayed != 0 {
		t.Errorf("after %d resources/subscribe all refused by the backend, host.subs holds %d entries (want 0), and the backend's restart replayed %d subscribes (want 0)", n, kept, replayed)
	}
}

// scriptedSess is the plumbing the scripted backend sessions of these
// tests share (r21Sess here, r23Sess, r25Sess): what the script emits is
// received in order; Close ends the session.
type scriptedSess struct {
	out  chan *frame.Frame
	done chan struct{}
	once sync.Once
}

func newScriptedSess(queue int) *scriptedSess {
	return &scriptedSess{out: make(chan *frame.Frame, queue), done: make(chan struct{})}
}

func (s *scriptedSess) Name() string { return "a" }

func (s *scriptedSess) emit(format string, args ...any) {
	f, err := frame.Parse(fmt.Appendf(nil, format, args...))
	if err != nil {
		panic(err)
	}
	select {
	case s.out <- f:
	case <-s.done:
	}
}

func (s *scriptedSess) Recv(ctx context.Context) (*frame.Frame, error) {
	select {
	case f := <-s.out:
		return f, nil
	case <-s.done:
		return nil, errors.New("session ended")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *scriptedSess) Close() error { s.once.Do(func() { close(s.done) }); return nil }

// r21Sess is a scripted backend session: initialize is answered if
// answerInit; a tools/call of "crash" ends the session; other calls are
// answered at once.
type r21Sess struct {
	*scriptedSess
	answerInit bool
}

func newR21Sess(answerInit bool) *r21Sess {
	return &r21Sess{scriptedSess: newScriptedSess(1 << 14), answerInit: answerInit}
}

func (s *r21Sess) Send(f *frame.Frame) error {
	select {
	case <-s.done:
		return backends.ErrClosed
	default:
	}
	id := f.OutID()
	switch {
	case f.Method == "initialize":
		if s.answerInit {
			s.emit(`{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-11-25","capabilities":{"tools":{},"logging":{}},"serverInfo":{"name":"a","version":"1"}}}`, id)
		}
	case f.Method == "tools/call":
		if name, _ := f.String(f.Param("name")); name == "crash" {
			s.Close()
			return nil
		}
		s.emit(`{"jsonrpc":"2.0","id":%s,"result":{"content":[]}}`, id)
	case f.Kind == frame.Request:
		s.emit(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"method not found"}}`, id)
	}
	return nil
}

// A backend that restarts and whose new session does not answer
// initialize within --init-timeout: link.session closes that session and
// returns without failInFlight, so the bridge's own initialize request
// (no timer: initialize is never timed out by startTimer) stays in the id
// map. The next session that initializes is healthy, and the entry stays
// there for as long as that session lives (its end's failInFlight takes
// it out): one call per re-initialization that timed out in a row
// (bounded by restartGiveUp), held while the next session lives.
func TestTimedOutReinitializeLeavesNoCall(t *testing.T) {
	const cycles = 3
	var opens atomic.Int64
	var cur atomic.Pointer[r21Sess]
	h := r21Run(t, Config{
		Backends:    []config.Backend{{Name: "a", Kind: config.KindStdio, Command: "in-process"}},
		InitTimeout: 300 * time.Millisecond,
		Open: func(ctx context.Context, b config.Backend, _ backends.Options) (backends.Session, error) {
			n := opens.Add(1)
			s := newR21Sess(n%2 == 1) // every second start hangs in initialize
			cur.Store(s)
			return s, nil
		},
	})
	h.handshake()
	l := h.r.links[0]
	for c := range cycles {
		h.send(`{"jsonrpc":"2.0","id":"crash-%d","method":"tools/call","params":{"name":"crash","arguments":{}}}`, c)
		h.await("the crash call's failure", func(f *frame.Frame) bool { return f.Kind == frame.Response })
		want := int64(2*c + 3) // the hung start, then a good one
		deadline := time.Now().Add(testTimeout)
		for (opens.Load() < want || !l.isReady()) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if opens.Load() < want || !l.isReady() {
			t.Fatalf("cycle %d: backend not back (opens %d)", c, opens.Load())
		}
	}
	h.send(`{"jsonrpc":"2.0","id":"ok","method":"tools/call","params":{"name":"x","arguments":{}}}`)
	if r := h.await("a call", func(f *frame.Frame) bool { return f.Kind == frame.Response }); r.IsError() {
		t.Fatalf("the backend is not serving: %s", r.Raw())
	}
	time.Sleep(100 * time.Millisecond)
	var calls []string
	h.locked(func(r *router) {
		for _, c := range r.ids.calls {
			calls = append(calls, fmt.Sprintf("%s(backendID %d)", c.method, c.backendID))
		}
	})
	if len(calls) != 0 {
		t.Errorf("idle, after %d restarts whose initialize timed out, the id map holds %d calls (want 0): %s", cycles, len(calls), strings.Join(calls, ", "))
	}
}

// A host that sent initialize and never notifications/initialized (and
// no request, so the assume timer is never armed): every notification a
// backend sent meanwhile was appended to host.held, with no bound. Now at
// most maxHeld are kept.
func TestHeldBeforeInitializedIsBounded(t *testing.T) {
	const n = maxHeld + 1000
	s := newR21Sess(true)
	h := r21Run(t, Config{
		Backends: []config.Backend{{Name: "a", Kind: config.KindStdio, Command: "in-process"}},
		Open: func(ctx context.Context, b config.Backend, _ backends.Options) (backends.Session, error) {
			return s, nil
		},
	})
	h.send("%s", initLine)
	h.await("initialize answer", func(f *frame.Frame) bool { return f.Kind == frame.Response && string(f.ID()) == "0" })
	for i := range n {
		s.emit(`{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"line %d"}}`, i)
	}
	deadline := time.Now().Add(testTimeout)
	var held int
	for time.Now().Before(deadline) {
		h.locked(func(r *router) { held = len(r.host.held) })
		if held >= n || len(s.out) == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	h.locked(func(r *router) { held = len(r.host.held) })
	if held > maxHeld {
		t.Errorf("%d log notifications from a backend while the host has not sent notifications/initialized: host.held holds %d (no bound)", n, held)
	}
}

// r21Goroutines counts the goroutines whose stack mentions fn.
func r21Goroutines(fn string) int {
	buf := make([]byte, 64<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, fn) {
			n++
		}
	}
	return n
}

// r21Posting is the frame of a streamable session's POST of a request,
// from its start to the end of its answer.
const r21Posting = "backends.(*streamable).postRequest"

// A go-sdk streamable-HTTP backend whose tool is stuck (it ignores its
// context, as a tool blocked in I/O does). Each call hits --timeout: the
// host gets -32001 and the router forgets the call, and the bridge tells
// the backend it cancelled it. The server keeps the call's answer stream
// open (its handler has not returned), and the bridge never ends the POST
// it gave up on: each timed-out call holds a POST worker goroutine, a
// client connection (socket and two goroutines) and a POST slot of the
// session's 4096, until the tool returns, if ever.
func TestTimedOutHTTPCallEndsItsPost(t *testing.T) {
	const n = 300
	release := make(chan struct{})
	var stuck atomic.Int64
	srv := mcp.NewServer(&mcp.Implementation{Name: "a", Version: "1"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "stuck", Description: "ignores cancellation"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		stuck.Add(1)
		defer stuck.Add(-1)
		<-release
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "late"}}}, nil, nil
	})
	ts := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil))
	t.Cleanup(ts.Close)
	t.Cleanup(func() { close(release) })
	h := r21Run(t, Config{
		Backends: []config.Backend{{Name: "a", Kind: config.KindHTTP, URL: ts.URL}},
		Timeout:  100 * time.Millisecond,
	})
	h.handshake()
	h.send(`{"jsonrpc":"2.0","id":"list","method":"tools/list"}`)
	h.await("tools/list", func(f *frame.Frame) bool { return f.Kind == frame.Response })
	time.Sleep(300 * time.Millisecond)
	base := r21Goroutines(r21Posting)
	const group = 20 // in flight at once
	for i := 0; i < n; i += group {
		for j := range group {
			h.send(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"stuck","arguments":{}}}`, 100+i+j)
		}
		for range group {
			f := h.await("a timeout", func(f *frame.Frame) bool { return f.Kind == frame.Response })
			if !f.IsError() {
				t.Fatalf("not an error: %s", f.Raw())
			}
		}
	}
	time.Sleep(2 * time.Second)
	var calls int
	h.locked(func(r *router) { calls = len(r.ids.calls) })
	g := r21Goroutines(r21Posting)
	conns := r21Goroutines("net/http.(*persistConn).readLoop")
	t.Logf("after %d timed-out calls: router calls %d, POSTs of requests still running %d -> %d, client connections %d, server handlers stuck %d", n, calls, base, g, conns, stuck.Load())
	if g-base > n/10 {
		t.Errorf("%d calls timed out (the host got -32001 for each; the router holds %d): 2s later the bridge still runs %d of their POSTs (each a goroutine, its worker, and a busy client connection: %d client connections open); the POST of a call the bridge gave up on is never ended",
			n, calls, g-base, conns)
	}
}

// Checked, released: with two backends (the aggregator's paths), a mix of
// exchanges ending every way (answered, cancelled by the host before or
// after routing, --timeout and --max-timeout, progress, batches, ids
// reused after a cancellation, upcalls answered twice and never) leaves
// every table of the router empty and the goroutines where they were.
func TestRouterTablesDrain(t *testing.T) {
	const rounds, group = 150, 50
	h := r21Run(t, Config{
		Backends: []config.Backend{
			{Name: "a", Kind: config.KindStdio, Command: "in-process"},
			{Name: "b", Kind: config.KindStdio, Command: "in-process"},
		},
		Timeout:    150 * time.Millisecond,
		MaxTimeout: 400 * time.Millisecond,
		Open: func(ctx context.Context, b config.Backend, _ backends.Options) (backends.Session, error) {
			return serve(t, b.Name, testServer(b.Name)), nil
		},
	})
	h.handshake()
	h.send(`{"jsonrpc":"2.0","id":"list","method":"tools/list"}`)
	h.await("tools/list", func(f *frame.Frame) bool { return f.Kind == frame.Response && string(f.ID()) == `"list"` })
	time.Sleep(200 * time.Millisecond)
	baseG := runtime.NumGoroutine()
	call := func(id, tool, args string) string {
		return fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"method":"tools/call","params":{"name":%q,"arguments":%s}}`, id, tool, args)
	}
	for r0 := 0; r0 < rounds; r0 += group {
		want := map[string]bool{}
		for i := r0; i < r0+group; i++ {
			e, c, tt, p, b1, b2, sa, sb := fmt.Sprintf(`"e-%d"`, i), fmt.Sprintf(`"c-%d"`, i), fmt.Sprintf(`"t-%d"`, i), fmt.Sprintf(`"p-%d"`, i),
				fmt.Sprintf(`"b1-%d"`, i), fmt.Sprintf(`"b2-%d"`, i), fmt.Sprintf(`"sa-%d"`, i), fmt.Sprintf(`"sb-%d"`, i)
			h.send("%s", call(e, "a_echo", `{"text":"x"}`))
			// A sleep, not block: a cancellation that overtakes its request
			// (TestCancelBeforeTimerArmedLeavesNoTimers) would leave
			// block running forever at the backend, and the cleanup waiting.
			h.send("%s", call(c, "b_sleep", `{"ms":1500}`))
			h.send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":%s}}`, c)
			h.send("%s", call(c, "a_echo", `{"text":"reused"}`)) // the cancelled id, reused
			h.send("%s", call(tt, "a_sleep", `{"ms":10000}`))
			h.send(`{"jsonrpc":"2.0","id":%s,"method":"tools/call","params":{"name":"a_progress","arguments":{"steps":3},"_meta":{"progressToken":%s}}}`, p, p)
			h.send("[%s,%s]", call(b1, "a_echo", `{"text":"1"}`), call(b2, "b_echo", `{"text":"2"}`))
			h.send("%s", call(sa, "a_sample", `{}`)) // the host answers twice
			h.send("%s", call(sb, "b_sample", `{}`)) // the host never answers
			for _, id := range []string{e, c, tt, p, b1, b2, sa, sb} {
				want[id] = true
			}
		}
		deadline := time.After(testTimeout)
		for len(want) > 0 {
			select {
			case f := <-h.frames:
				switch {
				case f.Kind == frame.Response:
					delete(want, string(f.ID()))
				case f.Method == "sampling/createMessage" && strings.Contains(string(f.Params()), "from a"):
					ans := fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":{"role":"assistant","model":"m","content":{"type":"text","text":"s"}}}`, f.ID())
					h.send("%s", ans)
					h.send("%s", ans)
				}
			case <-deadline:
				t.Fatalf("answers missing: %d", len(want))
			}
		}
	}
	type sizes struct{ calls, byFront, ups, upByID, tokens, upToks, taskToks, upTaskToks, pending, batches, inflight, held, queued int }
	var got sizes
	idle := func() bool {
		h.locked(func(r *router) {
			m := r.ids
			got = sizes{len(m.calls), len(m.byFront), len(m.ups), len(m.upByID), len(m.tokens), len(m.upToks), len(m.taskToks), len(m.upTaskToks),
				len(r.pending), len(r.batches), r.inflight, len(r.host.held), len(r.host.queued)}
		})
		return got == sizes{}
	}
	deadline := time.Now().Add(5 * time.Second)
	for !idle() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got != (sizes{}) {
		t.Errorf("router tables not empty once idle: %+v", got)
	}
	var g int
	deadline = time.Now().Add(5 * time.Second)
	for g = runtime.NumGoroutine(); g > baseG+4 && time.Now().Before(deadline); g = runtime.NumGoroutine() {
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("tables %+v; goroutines %d -> %d", got, baseG, g)
	if g > baseG+4 {
		t.Errorf("goroutines %d -> %d after %d rounds", baseG, g, rounds)
	}
}

// r21LiveFrom counts the live heap objects (after a GC) allocated in a
// function whose name contains fn; runtime.MemProfileRate must be 1.
func r21LiveFrom(fn string) (objs int64) {
	runtime.GC()
	runtime.GC()
	var recs []runtime.MemProfileRecord
	n, _ := runtime.MemProfile(nil, false)
	for {
		recs = make([]runtime.MemProfileRecord, n+100)
		var ok bool
		if n, ok = runtime.MemProfile(recs, false); ok {
			recs = recs[:n]
			break
		}
	}
	for _, rec := range recs {
		frames := runtime.CallersFrames(rec.Stack())
		for {
			f, more := frames.Next()
			if strings.Contains(f.Function, fn) {
				objs += rec.InUseObjects()
				break
			}
			if !more {
				break
			}
		}
	}
	return objs
}

// With several backends a host request is forwarded from a goroutine of
// the aggregator: forward puts the call in the id map, unlocks, and only
// then startTimer arms its timers and the request is sent. A host
// cancellation handled by the reader in between drops the call and stops
// c.timer, still nil, and sends the backend its cancellation before the
// request itself. The timers are armed afterwards for a call nobody
// holds and keep it (and themselves) alive until they fire, at --timeout
// (5 min) and --max-timeout (1 h by default); and the backend, which got
// the cancellation first, runs the request to its end (a tool that waits
// for cancellation runs forever: expire sends no cancellation for a call
// already gone).
func TestCancelBeforeTimerArmedLeavesNoTimers(t *testing.T) {
	const n = 20000
	old := runtime.MemProfileRate
	runtime.MemProfileRate = 1
	t.Cleanup(func() { runtime.MemProfileRate = old })
	var ran atomic.Int64 // sleeps that ran to their end: their cancellation came first
	srvA, srvB := testServer("a"), testServer("b")
	srvA.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			res, err := next(ctx, method, req)
			if method == "tools/call" && err == nil {
				if r, ok := res.(*mcp.CallToolResult); ok && !r.IsError {
					ran.Add(1)
				}
			}
			return res, err
		}
	})
	h := r21Run(t, Config{
		Backends: []config.Backend{
			{Name: "a", Kind: config.KindStdio, Command: "in-process"},
			{Name: "b", Kind: config.KindStdio, Command: "in-process"},
		},
		Open: func(ctx context.Context, b config.Backend, _ backends.Options) (backends.Session, error) {
			if b.Name == "a" {
				return serve(t, "a", srvA), nil
			}
			return serve(t, "b", srvB), nil
		},
	})
	h.handshake()
	h.send(`{"jsonrpc":"2.0","id":"list","method":"tools/list"}`)
	h.await("tools/list", func(f *frame.Frame) bool { return f.Kind == frame.Response && string(f.ID()) == `"list"` })
	base := r21LiveFrom("bridge.(*router).startTimer")
	// Calibration: what one armed call holds.
	const k = 10
	for i := range k {
		h.send(`{"jsonrpc":"2.0","id":"k%d","method":"tools/call","params":{"name":"a_sleep","arguments":{"ms":1000}}}`, i)
	}
	time.Sleep(300 * time.Millisecond)
	perCall := float64(r21LiveFrom("bridge.(*router).startTimer")-base) / k
	for range k {
		h.await("calibration", func(f *frame.Frame) bool { return f.Kind == frame.Response && strings.HasPrefix(string(f.ID()), `"k`) })
	}
	base = r21LiveFrom("bridge.(*router).startTimer")
	for i := range n {
		h.send(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"a_sleep","arguments":{"ms":1500}}}`+"\n"+
			`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":%d}}`, i, i)
		if i%100 == 99 {
			// A ping through the reader: the ones before it are handled.
			h.send(`{"jsonrpc":"2.0","id":"p%d","method":"ping"}`, i)
			h.await("ping", func(f *frame.Frame) bool {
				return f.Kind == frame.Response && string(f.ID()) == fmt.Sprintf(`"p%d"`, i)
			})
		}
	}
	time.Sleep(2500 * time.Millisecond) // every sleep the backend ran is over
	var calls int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		h.locked(func(r *router) { calls = len(r.ids.calls) + len(r.pending) + r.inflight })
		if calls == 0 {
			break
		}
	}
	live := r21LiveFrom("bridge.(*router).startTimer") - base
	t.Logf("router calls+pending+inflight %d; calls the backend ran to the end although cancelled %d; live objects allocated in startTimer: %d (%.0f per armed call)", calls, ran.Load()-k, live, perCall)
	if calls == 0 && live > 0 {
		t.Errorf("after %d calls cancelled at once by the host (all gone from the router's tables), %d objects allocated by startTimer are still live, the timers of about %.0f cancelled calls (an armed call holds %.0f: its callTimer, two time.Timers, the closures holding the call), kept until --timeout/--max-timeout; and %d cancelled calls ran to their end at the backend, whose cancellation reached it before the request",
			n, live, float64(live)/perCall, perCall, ran.Load()-k)
	}
}
