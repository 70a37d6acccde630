package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
	"github.com/mcpbridge/mcpbridge/internal/wiretest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// resumeServer is go-sdk's streamable server with an event store, in front
// of one tool, "work", that within one call, at random: sleeps short times,
// reports progress on the host's token, closes its answer stream
// (CloseSSEStream, SEP-1699) with a small retry, and asks the host for
// sampling or roots. Its answer carries the call's text and what the
// upcalls answered. An HTTP wrapper counts requests and expires sessions.
type resumeServer struct {
	srv  *mcp.Server
	ts   *httptest.Server
	seed uint64

	closes, closesNoRetry atomic.Int64
	posts, gets           atomic.Int64 // all POSTs and GETs
	resumes               atomic.Int64 // GETs with a Last-Event-ID of an answer stream
	resumeStatus          sync.Map     // status code -> *atomic.Int64
	expired               atomic.Int64
	expireEvery           int64 // every nth POST with a session id expires it (0: never)
	lastGET               atomic.Int64
	teardown              context.Context
	store                 *trackingStore
	// foreign counts resumption GETs that name a stream of another session
	// than the one they carry (or none).
	foreign    atomic.Int64
	foreignEx  sync.Once
	foreignMsg string
}

// A trackingStore is go-sdk's memory event store that remembers which
// session each stream belongs to.
type trackingStore struct {
	*mcp.MemoryEventStore
	owner sync.Map // stream id -> session id
}

func (s *trackingStore) Open(ctx context.Context, sessionID, streamID string) error {
	s.owner.Store(streamID, sessionID)
	return s.MemoryEventStore.Open(ctx, sessionID, streamID)
}

type workIn struct {
	Text   string `json:"text"`
	Steps  int    `json:"steps"`
	Ms     int    `json:"ms"`
	Close  int    `json:"close"` // percent chance of a close per step
	Sample bool   `json:"sample"`
	Roots  bool   `json:"roots"`
	Hang   int    `json:"hang"` // ms to sleep silently at the end (timeouts)
}

func newResumeServer(t *testing.T, seed uint64, teardown context.Context) *resumeServer {
	rs := &resumeServer{seed: seed, teardown: teardown, expireEvery: 250}
	srv := mcp.NewServer(&mcp.Implementation{Name: "h", Version: "1"}, nil)
	var calls atomic.Uint64
	mcp.AddTool(srv, &mcp.Tool{Name: "work"}, func(ctx context.Context, req *mcp.CallToolRequest, in workIn) (*mcp.CallToolResult, any, error) {
		rng := rand.New(rand.NewPCG(seed, calls.Add(1)))
		tok := req.Params.GetProgressToken()
		var out []string
		out = append(out, "R:"+in.Text)
		maybeClose := func() {
			if in.Close > 0 && rng.IntN(100) < in.Close && req.Extra != nil && req.Extra.CloseSSEStream != nil {
				retry := time.Duration(1+rng.IntN(25)) * time.Millisecond
				if rng.IntN(50) == 0 {
					retry = 0 // no retry field: the client's default delay
					rs.closesNoRetry.Add(1)
				}
				rs.closes.Add(1)
				req.Extra.CloseSSEStream(mcp.CloseSSEStreamArgs{RetryAfter: retry})
			}
		}
		for i := 1; i <= in.Steps; i++ {
			maybeClose()
			if in.Ms > 0 {
				select {
				case <-time.After(time.Duration(rng.IntN(in.Ms+1)) * time.Millisecond):
				case <-ctx.Done():
					return nil, nil, ctx.Err()
				}
			}
			if tok != nil {
				if err := req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: tok, Progress: float64(i), Total: float64(in.Steps), Message: in.Text}); err != nil {
					return nil, nil, err
				}
			}
			if i == 1 && in.Sample {
				maybeClose()
				res, err := req.Session.CreateMessage(ctx, &mcp.CreateMessageParams{MaxTokens: 10, Messages: []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: "for " + in.Text}}}})
				if err != nil {
					return nil, nil, err
				}
				if tc, ok := res.Content.(*mcp.TextContent); ok {
					out = append(out, tc.Text)
				}
			}
			if i == in.Steps && in.Roots {
				maybeClose()
				res, err := req.Session.ListRoots(ctx, nil)
				if err != nil {
					return nil, nil, err
				}
				for _, r := range res.Roots {
					out = append(out, r.URI)
				}
			}
		}
		maybeClose()
		if in.Hang > 0 {
			select {
			case <-time.After(time.Duration(in.Hang) * time.Millisecond):
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			}
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: strings.Join(out, "|")}}}, nil, nil
	})
	// Handlers end with the test: one waiting on an upcall of a session the
	// bridge left would block go-sdk's session close (see TestSoakMixed).
	srv.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			ctx, stop := context.WithCancel(ctx)
			defer stop()
			go func() {
				select {
				case <-teardown.Done():
					stop()
				case <-ctx.Done():
				}
			}()
			return next(ctx, method, req)
		}
	})
	rs.srv = srv
	rs.store = &trackingStore{MemoryEventStore: mcp.NewMemoryEventStore(nil)}
	inner := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{
		EventStore:          rs.store,
		MaxRequestBodyBytes: -1,
	})
	rs.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sid := r.Header.Get("Mcp-Session-Id")
		switch r.Method {
		case http.MethodPost:
			n := rs.posts.Add(1)
			if sid != "" && rs.expireEvery > 0 && n%rs.expireEvery == 0 {
				// The server forgets the session: its streams end, its
				// events are gone, and it answers 404 from now on.
				for ss := range srv.Sessions() {
					if ss.ID() == sid {
						ss.Close()
						rs.expired.Add(1)
					}
				}
			}
		case http.MethodGet:
			rs.gets.Add(1)
			rs.lastGET.Store(time.Now().UnixNano())
			if lid := r.Header.Get("Last-Event-ID"); lid != "" && !strings.HasPrefix(lid, "_") {
				rs.resumes.Add(1)
				if i := strings.LastIndexByte(lid, '_'); i > 0 {
					if owner, ok := rs.store.owner.Load(lid[:i]); ok && owner.(string) != sid {
						rs.foreign.Add(1)
						rs.foreignEx.Do(func() {
							rs.foreignMsg = fmt.Sprintf("Last-Event-ID %s of session %s, sent with Mcp-Session-Id %q", lid, owner, sid)
						})
					}
				}
				sw := &statusWriter{ResponseWriter: w}
				inner.ServeHTTP(sw, r)
				c, _ := rs.resumeStatus.LoadOrStore(sw.code, new(atomic.Int64))
				c.(*atomic.Int64).Add(1)
				return
			}
		}
		inner.ServeHTTP(w, r)
	}))
	return rs
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(c int) {
	if w.code == 0 {
		w.code = c
	}
	w.ResponseWriter.WriteHeader(c)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = 200
	}
	if w.code >= 400 && os.Getenv("RESUME_STRESS_VERBOSE") != "" {
		fmt.Fprintf(os.Stderr, "RESUME %d: %s", w.code, b)
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() { w.ResponseWriter.(http.Flusher).Flush() }

func (rs *resumeServer) statuses() string {
	var parts []string
	rs.resumeStatus.Range(func(k, v any) bool {
		parts = append(parts, fmt.Sprintf("%d×%d", k, v.(*atomic.Int64).Load()))
		return true
	})
	return strings.Join(parts, " ")
}

// A stressCall is one tools/call the host sent.
type stressCall struct {
	id        string
	text      string
	token     string
	sample    bool
	roots     bool
	hang      bool
	cancelled bool
	answers   int
	answer    *frame.Frame
	finished  time.Time
	done      chan struct{}
}

// TestResumeStress drives bridge.Run in front of go-sdk's streamable server
// with an event store whose tool closes its answer stream at random (small
// retry values, sometimes none), reports progress, asks the host for
// sampling and roots mid-call and sleeps short random times, while the host
// keeps 16–64 calls in flight, cancels some (at once, or racing the answer),
// lets some time out (--timeout), and the server forgets sessions. It
// checks that every call not cancelled gets exactly one answer carrying its
// own data (text, its own sampling answer and roots), a cancelled one at
// most one, that no answer goes to an id nobody owns, that progress comes
// only on the host's own tokens with its call's text, that stdout carries
// only JSON-RPC, and that once every call ended no answer stream is being
// resumed any more (the server's GET count and the bridge's resumption
// goroutines settle) and the goroutines come back after Run.
//
// RESUME_STRESS_CALLS scales it (default 3000), RESUME_STRESS_SEED fixes
// the random choices.
func TestResumeStress(t *testing.T) {
	if testing.Short() {
		t.Skip("stress test skipped in -short mode")
	}
	calls := 3000
	if n, err := strconv.Atoi(os.Getenv("RESUME_STRESS_CALLS")); err == nil {
		calls = n
	}
	seed := uint64(time.Now().UnixNano())
	if n, err := strconv.ParseUint(os.Getenv("RESUME_STRESS_SEED"), 10, 64); err == nil {
		seed = n
	}
	t.Logf("RESUME_STRESS_SEED=%d", seed)
	runtime.GC()
	baseG := runtime.NumGoroutine()

	teardown, endHandlers := context.WithCancel(context.Background())
	defer endHandlers()
	rs := newResumeServer(t, seed, teardown)
	if n, err := strconv.ParseInt(os.Getenv("RESUME_STRESS_EXPIRE"), 10, 64); err == nil {
		rs.expireEvery = n // every nth POST with a session id expires it; 0: never
	}
	defer rs.ts.Close()

	cfg := Config{
		Backends:    []config.Backend{{Name: "h", Kind: config.KindHTTP, URL: rs.ts.URL + "/mcp"}},
		Logger:      testLogger(t),
		InitTimeout: 20 * time.Second,
		Timeout:     1500 * time.Millisecond,
		Prefix:      true,
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	runDone := make(chan error, 1)
	go func() {
		err := Run(context.Background(), cfg, inR, outW)
		outW.Close()
		runDone <- err
	}()
	var wmu sync.Mutex
	send := func(line string) {
		wmu.Lock()
		defer wmu.Unlock()
		io.WriteString(inW, line+"\n")
	}

	var (
		hm       sync.Mutex
		byID     = map[string]*stressCall{}
		byToken  = map[string]*stressCall{}
		byText   = map[string]*stressCall{}
		ups      = map[string]bool{}
		stray    int
		progress atomic.Int64
		late     atomic.Int64
		upcalls  atomic.Int64
		upCanc   atomic.Int64
	)
	var upWG sync.WaitGroup
	forRe := regexp.MustCompile(`"text":"for ([^"]+)"`)
	answerUp := func(id, method string, params []byte) {
		defer upWG.Done()
		time.Sleep(time.Duration(rand.IntN(15)) * time.Millisecond)
		var res string
		switch method {
		case "sampling/createMessage":
			m := forRe.FindSubmatch(params)
			if m == nil {
				t.Errorf("sampling request without its call's text: %s", params)
				return
			}
			res = `{"role":"assistant","model":"m","content":{"type":"text","text":"S:` + string(m[1]) + `"}}`
		case "roots/list":
			res = `{"roots":[{"uri":"file:///root/` + strings.Trim(id, `"`) + `"}]}`
		default:
			res = `{}`
		}
		send(`{"jsonrpc":"2.0","id":` + id + `,"result":` + res + `}`)
	}

	readDone := wiretest.Frames(t, outR, func(f *frame.Frame) {
		switch f.Kind {
		case frame.Response:
			id := string(f.ID())
			hm.Lock()
			q := byID[id]
			if q == nil {
				stray++
				t.Errorf("answer to id %s, which no request owns: %.300s", id, f.Raw())
			} else {
				q.answers++
				if q.answers == 1 {
					q.answer, q.finished = f, time.Now()
					close(q.done)
				} else {
					t.Errorf("call %s (cancelled %v) got %d answers; now %.300s", id, q.cancelled, q.answers, f.Raw())
				}
			}
			hm.Unlock()
		case frame.Request:
			id := string(f.ID())
			hm.Lock()
			if ups[id] {
				t.Errorf("the bridge reused upcall id %s", id)
			}
			ups[id] = true
			hm.Unlock()
			upcalls.Add(1)
			upWG.Add(1)
			go answerUp(id, f.Method, bytes.Clone(f.Params()))
		case frame.Notification:
			switch f.Method {
			case "notifications/progress":
				var p struct {
					Token   json.RawMessage `json:"progressToken"`
					Message string          `json:"message"`
				}
				_ = json.Unmarshal(f.Params(), &p)
				hm.Lock()
				q := byToken[string(p.Token)]
				switch {
				case q == nil:
					t.Errorf("progress on a token the host never gave: %.300s", f.Raw())
				case p.Message != q.text:
					t.Errorf("progress on %s's token carries another call's text: %.300s", q.id, f.Raw())
				case q.answers > 0 && time.Since(q.finished) > 2*time.Second:
					t.Errorf("progress for %s long after its answer: %.300s", q.id, f.Raw())
				case q.answers > 0 || q.cancelled:
					late.Add(1)
				}
				hm.Unlock()
				progress.Add(1)
			case "notifications/cancelled":
				upCanc.Add(1)
			}
		}
	})

	// The handshake.
	init := &stressCall{id: "0", done: make(chan struct{})}
	hm.Lock()
	byID["0"] = init
	hm.Unlock()
	send(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"sampling":{},"roots":{"listChanged":true}},"clientInfo":{"name":"stress","version":"1"}}}`)
	select {
	case <-init.done:
		if init.answer.IsError() {
			t.Fatalf("initialize: %s", init.answer.Raw())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no answer to initialize")
	}
	send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)

	var (
		next                                              atomic.Int64
		ok, failed, timedOut, cancelled, lateAns, inFlMax atomic.Int64
		inFlight                                          atomic.Int64
	)
	start := time.Now()
	deadline := start.Add(90 * time.Second)
	// 16 to 64 callers: the number in flight varies over the run.
	callers := 64
	var wg sync.WaitGroup
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed+uint64(c)+1, 3))
			for time.Now().Before(deadline) {
				// Callers above 16 pause at times, so 16..64 are in flight.
				if c >= 16 && rng.IntN(8) == 0 {
					time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond)
				}
				n := next.Add(1)
				if n > int64(calls) {
					return
				}
				q := &stressCall{done: make(chan struct{}), text: "t" + strconv.FormatInt(n, 10)}
				if n%2 == 0 {
					q.id = `"s-` + strconv.FormatInt(n, 10) + `"`
				} else {
					q.id = strconv.FormatInt(n, 10)
				}
				in := workIn{Text: q.text, Steps: 1 + rng.IntN(4), Ms: rng.IntN(20), Close: []int{0, 30, 60, 100}[rng.IntN(4)]}
				in.Sample = rng.IntN(4) == 0
				in.Roots = rng.IntN(6) == 0
				if rng.IntN(60) == 0 {
					in.Hang = 2500 // past --timeout (1.5 s idle)
					q.hang = true
				}
				q.sample, q.roots = in.Sample, in.Roots
				meta := ""
				if rng.IntN(2) == 0 {
					q.token = `"p-` + strconv.FormatInt(n, 10) + `"`
					if n%3 == 0 {
						q.token = strconv.FormatInt(1_000_000+n, 10)
					}
					meta = `"_meta":{"progressToken":` + q.token + `},`
				}
				args, _ := json.Marshal(in)
				hm.Lock()
				byID[q.id] = q
				byText[q.text] = q
				if q.token != "" {
					byToken[q.token] = q
				}
				hm.Unlock()
				if v := inFlight.Add(1); v > inFlMax.Load() {
					inFlMax.Store(v)
				}
				send(`{"jsonrpc":"2.0","id":` + q.id + `,"method":"tools/call","params":{` + meta + `"name":"h_work","arguments":` + string(args) + `}}`)
				cancelAfter := time.Duration(-1)
				switch r := rng.IntN(100); {
				case r < 4:
					cancelAfter = 0
				case r < 14:
					cancelAfter = time.Duration(rng.IntN(60000)) * time.Microsecond
				}
				if cancelAfter >= 0 {
					select {
					case <-q.done:
					case <-time.After(cancelAfter):
					}
					hm.Lock()
					do := q.answers == 0
					if do {
						q.cancelled = true
					}
					hm.Unlock()
					if do {
						cancelled.Add(1)
						send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":` + q.id + `,"reason":"stress"}}`)
						inFlight.Add(-1)
						continue
					}
				}
				select {
				case <-q.done:
				case <-time.After(30 * time.Second):
					t.Errorf("no answer to %s (%+v)", q.id, in)
					inFlight.Add(-1)
					continue
				}
				inFlight.Add(-1)
				f := q.answer
				if f.IsError() {
					var e frame.ErrorObject
					_ = json.Unmarshal(f.Error(), &e)
					switch {
					case e.Code == frame.CodeTimeout:
						timedOut.Add(1)
						if !q.hang && os.Getenv("RESUME_STRESS_VERBOSE") != "" {
							t.Logf("timeout of a call that does not hang: %s %+v: %.300s", q.id, in, f.Raw())
						}
					case e.Code == frame.CodeInternalError && strings.Contains(e.Message, `"h"`):
						failed.Add(1)
						if os.Getenv("RESUME_STRESS_VERBOSE") != "" {
							t.Logf("failure: %s %+v: %.300s", q.id, in, f.Raw())
						}
					default:
						t.Errorf("%s: unexpected failure: %.300s", q.id, f.Raw())
					}
					continue
				}
				res := string(f.Result())
				if strings.Contains(res, `"isError":true`) {
					// A tool error: its upcall failed (session lost).
					failed.Add(1)
					if os.Getenv("RESUME_STRESS_VERBOSE") != "" {
						t.Logf("tool failure: %s %+v: %.300s", q.id, in, f.Raw())
					}
					continue
				}
				var cr struct {
					Content []struct {
						Text string `json:"text"`
					} `json:"content"`
				}
				_ = json.Unmarshal(f.Result(), &cr)
				text := ""
				if len(cr.Content) > 0 {
					text = cr.Content[0].Text
				}
				parts := strings.Split(text, "|")
				switch {
				case len(parts) == 0 || parts[0] != "R:"+q.text:
					t.Errorf("%s answered with another call's data (want R:%s): %.300s", q.id, q.text, f.Raw())
				case q.sample && (len(parts) < 2 || parts[1] != "S:"+q.text):
					t.Errorf("%s carries another call's sampling answer (want S:%s): %.300s", q.id, q.text, f.Raw())
				default:
					ok.Add(1)
				}
				if q.roots && !strings.HasPrefix(parts[len(parts)-1], "file:///root/") {
					t.Errorf("%s carries no roots answer: %.300s", q.id, f.Raw())
				}
				if q.hang {
					lateAns.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	sent := int(min(next.Load(), int64(calls)))

	// Settle: once every call ended (cancelled calls may still be unwinding
	// in the bridge for at most their last retry delay), no answer stream
	// is being resumed: the resumption GETs stop and no goroutine of the
	// bridge is still in an answer stream's resumption.
	settled := false
	var stuck string
	for range 60 {
		time.Sleep(100 * time.Millisecond)
		buf := make([]byte, 8<<20)
		st := string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(st, "(*streamable).readStreamAnswer") {
			settled = true
			break
		}
		stuck = st
	}
	if !settled {
		t.Errorf("answer streams still read or resumed 6 s after every call ended:\n%s", filterStacks(stuck, "readStreamAnswer"))
	}
	g0 := rs.resumes.Load()
	time.Sleep(1500 * time.Millisecond)
	if g1 := rs.resumes.Load(); g1 != g0 {
		t.Errorf("answer streams resumed after every call ended: %d resumption GETs in 1.5 s", g1-g0)
	}

	t.Logf("%d calls in %v (max %d in flight): %d succeeded, %d failed, %d timed out, %d cancelled, %d hanging calls answered; %d upcalls (%d cancellations to the host); %d progress (%d after the answer or cancellation); server: %d POSTs, %d GETs, %d answer-stream resumptions [%s], %d stream closes (%d without retry), %d sessions expired; %d resumptions in another session",
		sent, elapsed.Round(time.Millisecond), inFlMax.Load(), ok.Load(), failed.Load(), timedOut.Load(), cancelled.Load(), lateAns.Load(),
		upcalls.Load(), upCanc.Load(), progress.Load(), late.Load(),
		rs.posts.Load(), rs.gets.Load(), rs.resumes.Load(), rs.statuses(), rs.closes.Load(), rs.closesNoRetry.Load(), rs.expired.Load(), rs.foreign.Load())
	if n := rs.foreign.Load(); n > 0 {
		rs.foreignEx.Do(func() {}) // foreignMsg is set
		t.Errorf("%d answer streams were resumed outside their own session (e.g. %s)", n, rs.foreignMsg)
	}
	if ok.Load() < int64(sent)/2 {
		t.Errorf("only %d of %d calls succeeded", ok.Load(), sent)
	}

	upWG.Wait()
	inW.Close()
	select {
	case err := <-runDone:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not end after stdin EOF")
	}
	<-readDone
	endHandlers()
	rs.ts.Close()
	for ss := range rs.srv.Sessions() {
		ss.Close()
	}

	hm.Lock()
	crossed := 0
	for _, q := range byID {
		switch {
		case !q.cancelled && q.answers != 1:
			t.Errorf("call %s got %d answers", q.id, q.answers)
		case q.cancelled && q.answers > 1:
			t.Errorf("cancelled call %s got %d answers", q.id, q.answers)
		case q.cancelled && q.answers == 1:
			crossed++
		}
	}
	t.Logf("%d cancelled calls answered anyway (crossed the cancellation); %d stray answers", crossed, stray)
	hm.Unlock()

	var g int
	for range 50 {
		runtime.GC()
		if g = runtime.NumGoroutine(); g <= baseG+3 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if g > baseG+3 {
		buf := make([]byte, 4<<20)
		t.Errorf("goroutines: %d before, %d after\n%s", baseG, g, buf[:runtime.Stack(buf, true)])
	}
	t.Logf("goroutines %d → %d", baseG, g)
}

// filterStacks keeps the goroutine stacks of st that mention s.
func filterStacks(st, s string) string {
	var out []string
	for _, g := range strings.Split(st, "\n\n") {
		if strings.Contains(g, s) {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}
