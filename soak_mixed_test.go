//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/frame"
	"github.com/mcpbridge/mcpbridge/internal/wiretest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// mixedReq is one request instance the soak host sent (an id may carry
// several instances over time: it is reused once its answer came).
type mixedReq struct {
	seq       int64
	id        string // raw id
	backend   string // the backend it is aimed at ("" for a merged list)
	kind      string // echo, whoami, sleep, progress, sample, roots, crash, tools/list, resources/read
	want      string // substring a success must carry
	uri       string // resources/read
	token     string // raw progress token, or ""
	cancelled bool   // the host sent notifications/cancelled for it
	answers   int
	answer    *frame.Frame
	finished  time.Time // when its answer came (zero while none)
	done      chan struct{}
}

// mixedUp is one request the bridge sent the host (sampling, roots, ...).
type mixedUp struct {
	id        string // host-facing raw id
	method    string
	backend   string // from the sampling message ("from NAME"); "" for roots
	cancelled bool   // the bridge sent notifications/cancelled for it
	answered  bool
	usedBy    int64 // seq of the tool result that carried its answer
}

// TestSoakMixed is TestSoak's workload made adversarial: besides plain
// calls it mixes in host cancellations (right after sending, or racing the
// answer), tools that ask the host back (sampling, roots) whose upcalls the
// host answers after random delays or, once cancelled, sometimes not at
// all, tools that report progress on host tokens, merged tools/list and
// resources/read, and ids reused right after their answer, all while stdio
// backends crash, HTTP sessions expire and SSE streams drop. It checks:
//
//   - an uncancelled request gets exactly one answer, a cancelled one at
//     most one, and every answer carries its own request's data (unique
//     echo texts, backend names);
//   - the answer of each upcall reaches the backend that asked, once: a
//     sampling answer names the backend its request came from and is
//     carried by a tool result of that backend, and no upcall answer is
//     carried by two results;
//   - every progress notification carries the token of one of the host's
//     own progress requests still in flight (or just finished or
//     cancelled), with the name of that request's backend;
//   - the bridge's upcall ids are never reused, and the cancellations it
//     sends name upcalls it sent;
//   - goroutines, heap and processes return to their baselines.
//
// SOAK_MIXED_CALLS scales it (default 5,000: about 4 s, or 15 s
// under the race detector); SOAK_SEED fixes the random choices.
func TestSoakMixed(t *testing.T) {
	if testing.Short() {
		t.Skip("soak test skipped in -short mode")
	}
	calls := 5000
	if n, err := strconv.Atoi(os.Getenv("SOAK_MIXED_CALLS")); err == nil {
		calls = n
	}
	seed := uint64(time.Now().UnixNano())
	if n, err := strconv.ParseUint(os.Getenv("SOAK_SEED"), 10, 64); err == nil {
		seed = n
	}
	t.Logf("SOAK_SEED=%d", seed)
	marker := fmt.Sprintf("MCPBRIDGE_SOAK=%d-mixed", os.Getpid())
	self, _ := os.Executable()

	base := takeSoakBaseline()

	// h's sessions expire (every 300th POST with a session id): the server
	// really drops the session (its streams end), as one that lost it
	// would; SOAK_STALE404=1 only answers that request 404 and keeps the
	// session and its streams (a load balancer that sent one request to
	// the wrong instance).
	rig := newSoakRig(os.Getenv("SOAK_STALE404") == "")
	ets := rig.ets
	// A tool call of a session the bridge left (an SSE stream that
	// dropped, an HTTP session it replaced) may wait for ever on an upcall
	// whose answer the bridge rightly drops, and go-sdk's server then
	// blocks in closing that session (and httptest's Close with it): the
	// in-process servers' handlers end with the test.
	teardown, endHandlers := context.WithCancel(context.Background())
	defer endHandlers()
	for _, srv := range []*mcp.Server{rig.httpSrv, rig.sseSrv} {
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
	}
	outR, done := rig.start(self, marker)
	send := rig.send

	var (
		hm      sync.Mutex
		live    = map[string]*mixedReq{} // raw id → the instance that owns it now
		all     []*mixedReq
		byToken = map[string]*mixedReq{}
		ups     = map[string]*mixedUp{}
		stray   int // answers to ids nobody owns
	)
	var progress, lateProgress, upcalls, upCancels, upDropped, upLate atomic.Int64
	var upWG sync.WaitGroup // the host's upcall answerers
	hostRng := rand.New(rand.NewPCG(seed, 99))
	var hostRngMu sync.Mutex
	hostRand := func(n int) int {
		hostRngMu.Lock()
		defer hostRngMu.Unlock()
		return hostRng.IntN(n)
	}
	fromRe := regexp.MustCompile(`"text":"from ([a-z0-9]+)"`)
	sampledRe := regexp.MustCompile(`"text":"S:([a-z0-9]+):([^"]+)"`)
	rootRe := regexp.MustCompile(`file:///r/([^"\\]+)`)

	// answerUp answers the bridge's request u after a random small delay;
	// one the bridge cancelled meanwhile is answered late only sometimes
	// (that answer must be dropped).
	answerUp := func(u *mixedUp) {
		defer upWG.Done()
		d := hostRand(25)
		if hostRand(20) == 0 {
			d = 100 + hostRand(150) // long enough for the outer call's cancellation
		}
		time.Sleep(time.Duration(d) * time.Millisecond)
		hm.Lock()
		cancelled := u.cancelled
		hm.Unlock()
		if cancelled && hostRand(3) != 0 {
			upDropped.Add(1)
			return
		}
		if cancelled {
			upLate.Add(1)
		}
		var res string
		switch u.method {
		case "sampling/createMessage":
			res = `{"role":"assistant","model":"m","content":{"type":"text","text":"S:` + u.backend + `:` + strings.Trim(u.id, `"`) + `"}}`
		case "roots/list":
			res = `{"roots":[{"uri":"file:///r/` + strings.Trim(u.id, `"`) + `","name":"R` + strings.Trim(u.id, `"`) + `"}]}`
		case "elicitation/create":
			res = `{"action":"decline"}`
		default:
			res = `{}`
		}
		hm.Lock()
		u.answered = true
		hm.Unlock()
		send(`{"jsonrpc":"2.0","id":` + u.id + `,"result":` + res + `}`)
	}

	readDone := wiretest.Frames(t, outR, func(f *frame.Frame) {
		switch f.Kind {
		case frame.Response:
			id := string(f.ID())
			hm.Lock()
			q := live[id]
			switch {
			case q == nil:
				stray++
				t.Errorf("answer to id %s, which no request owns (a second answer, or a stranger's): %.300s", id, f.Raw())
			default:
				q.answers++
				if q.answers == 1 {
					q.answer = f
					q.finished = time.Now()
					close(q.done)
				} else {
					t.Errorf("request %s (%s %s, cancelled %v) got %d answers; now %.300s", id, q.kind, q.backend, q.cancelled, q.answers, f.Raw())
				}
				if !q.cancelled {
					delete(live, id) // the id may be reused now
				}
			}
			hm.Unlock()
		case frame.Request:
			var p struct {
				Method string `json:"method"`
			}
			_ = json.Unmarshal(f.Raw(), &p)
			id := string(f.ID())
			u := &mixedUp{id: id, method: p.Method}
			if m := fromRe.FindSubmatch(f.Params()); m != nil {
				u.backend = string(m[1])
			}
			if p.Method == "sampling/createMessage" && u.backend == "" {
				t.Errorf("sampling request without its backend's text: %.300s", f.Raw())
			}
			hm.Lock()
			if ups[id] != nil {
				t.Errorf("the bridge reused upcall id %s: %.300s", id, f.Raw())
			}
			ups[id] = u
			hm.Unlock()
			upcalls.Add(1)
			upWG.Add(1)
			go answerUp(u)
		case frame.Notification:
			switch f.Method {
			case "notifications/progress":
				var p struct {
					Token    json.RawMessage `json:"progressToken"`
					Progress float64         `json:"progress"`
					Total    float64         `json:"total"`
					Message  string          `json:"message"`
				}
				_ = json.Unmarshal(f.Params(), &p)
				hm.Lock()
				q := byToken[string(p.Token)]
				switch {
				case q == nil:
					t.Errorf("progress with a token the host never gave: %.300s", f.Raw())
				case q.kind != "progress" || p.Message != q.backend:
					t.Errorf("progress for request %s (%s on %s) carries another's data: %.300s", q.id, q.kind, q.backend, f.Raw())
				case q.answers > 0 && time.Since(q.finished) > 2*time.Second:
					t.Errorf("progress for request %s long after its answer: %.300s", q.id, f.Raw())
				case q.answers > 0 || q.cancelled:
					lateProgress.Add(1)
				}
				hm.Unlock()
				progress.Add(1)
			case "notifications/cancelled":
				var p struct {
					RequestID json.RawMessage `json:"requestId"`
				}
				_ = json.Unmarshal(f.Params(), &p)
				hm.Lock()
				if u := ups[string(p.RequestID)]; u == nil {
					t.Errorf("the bridge cancelled upcall %s, which it never sent: %.300s", p.RequestID, f.Raw())
				} else {
					u.cancelled = true
				}
				hm.Unlock()
				upCancels.Add(1)
			}
		}
	})

	initMixed := `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"sampling":{},"elicitation":{},"roots":{"listChanged":true}},"clientInfo":{"name":"soak","version":"1"}}}`
	initReq := &mixedReq{id: "0", kind: "initialize", done: make(chan struct{})}
	hm.Lock()
	live["0"] = initReq
	all = append(all, initReq)
	hm.Unlock()
	send(initMixed)
	select {
	case <-initReq.done:
		if initReq.answer.IsError() {
			t.Fatalf("initialize: %s", initReq.answer.Raw())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("no answer to initialize")
	}
	send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)

	names := []string{"s1", "s2", "h", "e"}
	var next, seq atomic.Int64
	var ok, failed, cancelled, reused, notFound atomic.Int64
	kinds := []struct {
		kind   string
		weight int
	}{{"echo", 18}, {"whoami", 8}, {"sleep", 12}, {"progress", 16}, {"sample", 16}, {"roots", 8}, {"tools/list", 6}, {"resources/read", 12}}
	total := 0
	for _, k := range kinds {
		total += k.weight
	}
	const callers = 16
	deadline := time.Now().Add(4 * time.Minute)
	var wg sync.WaitGroup
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed+uint64(c)+1, 7))
			lastID := ""
			for time.Now().Before(deadline) {
				n := next.Add(1)
				if n > int64(calls) {
					return
				}
				q := &mixedReq{seq: seq.Add(1), done: make(chan struct{})}
				// The id: the last one again right after its answer, or a
				// fresh one (numbers and strings).
				if lastID != "" && rng.IntN(3) == 0 {
					q.id = lastID
					reused.Add(1)
				} else if n%2 == 0 {
					q.id = `"m-` + strconv.FormatInt(n, 10) + `"`
				} else {
					q.id = strconv.FormatInt(n, 10)
				}
				q.backend = names[rng.IntN(len(names))]
				w := rng.IntN(total)
				for _, k := range kinds {
					if w < k.weight {
						q.kind = k.kind
						break
					}
					w -= k.weight
				}
				switch {
				case rng.IntN(1500) == 0 && strings.HasPrefix(q.backend, "s"):
					q.kind = "crash"
				case rng.IntN(1500) == 0 && q.backend == "e":
					ets.CloseClientConnections() // the SSE stream drops
				}
				var line string
				tool := func(name, args string, meta string) string {
					return `{"jsonrpc":"2.0","id":` + q.id + `,"method":"tools/call","params":{` + meta + `"name":"` + q.backend + `_` + name + `","arguments":` + args + `}}`
				}
				switch q.kind {
				case "echo":
					text := fmt.Sprintf("t%d-%s", q.seq, q.backend)
					q.want = `"text":"` + text + `"`
					line = tool("echo", `{"text":"`+text+`"}`, "")
				case "whoami":
					q.want = `"text":"` + q.backend + `"`
					line = tool("whoami", `{}`, "")
				case "sleep":
					q.want = `"text":"slept"`
					line = tool("sleep", fmt.Sprintf(`{"ms":%d}`, rng.IntN(40)), "")
				case "progress":
					if rng.IntN(2) == 0 {
						q.token = `"p-` + strconv.FormatInt(q.seq, 10) + `"`
					} else {
						q.token = strconv.FormatInt(1_000_000_000+q.seq, 10)
					}
					q.want = `"text":"done ` + q.backend + `"`
					line = tool("progress", fmt.Sprintf(`{"steps":%d}`, 1+rng.IntN(5)), `"_meta":{"progressToken":`+q.token+`},`)
				case "sample":
					q.want = `"text":"S:` + q.backend + `:`
					line = tool("sample", `{}`, "")
				case "roots":
					q.want = `file:///r/`
					line = tool("roots", `{}`, "")
				case "crash":
					line = tool("crash", `{}`, "")
				case "tools/list":
					q.backend = ""
					q.want = `"tools":[`
					line = `{"jsonrpc":"2.0","id":` + q.id + `,"method":"tools/list"}`
				case "resources/read":
					if rng.IntN(6) == 0 {
						// Listed by nobody: tried on every backend in turn
						// (a request the bridge answers itself), not found.
						q.uri = "test://nobody/" + strconv.FormatInt(q.seq, 10)
						q.want = "no success"
						q.backend = ""
					} else if rng.IntN(4) == 0 {
						q.uri = "test://shared"
						q.want = `"text":"shared from `
						q.backend = ""
					} else {
						q.uri = "test://" + q.backend + "/r"
						q.want = `"text":"content of ` + q.backend + `"`
					}
					line = `{"jsonrpc":"2.0","id":` + q.id + `,"method":"resources/read","params":{"uri":"` + q.uri + `"}}`
				}
				if q.token != "" {
					hm.Lock()
					byToken[q.token] = q
					hm.Unlock()
				}
				hm.Lock()
				if live[q.id] != nil {
					t.Errorf("test bug: id %s reused while owned", q.id)
				}
				live[q.id] = q
				all = append(all, q)
				hm.Unlock()
				send(line)

				// Cancellation: none, at once, or racing the answer.
				cancelAfter := time.Duration(-1)
				if q.kind != "crash" {
					switch r := rng.IntN(100); {
					case r < 8:
						cancelAfter = 0
					case r < 22 || (q.kind == "sample" || q.kind == "roots") && r < 40:
						cancelAfter = time.Duration(rng.IntN(30000)) * time.Microsecond
					}
				}
				if cancelAfter >= 0 {
					select {
					case <-q.done:
					case <-time.After(cancelAfter):
					}
					hm.Lock()
					doCancel := q.answers == 0
					if doCancel {
						q.cancelled = true // the id stays its own: never reused
					}
					hm.Unlock()
					if doCancel {
						lastID = ""
						cancelled.Add(1)
						rid := q.id
						send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":` + rid + `,"reason":"soak"}}`)
						continue
					}
				}
				select {
				case <-q.done:
				case <-time.After(60 * time.Second):
					t.Errorf("no answer to %s (%s %s)", q.id, q.kind, q.backend)
					lastID = ""
					continue
				}
				lastID = q.id
				f := q.answer
				if f.IsError() {
					var e frame.ErrorObject
					_ = json.Unmarshal(f.Error(), &e)
					okErr := e.Code == frame.CodeInternalError && (q.backend == "" || strings.Contains(e.Message, `"`+q.backend+`"`))
					if q.kind == "resources/read" && e.Code == frame.CodeInternalError && strings.Contains(string(f.Error()), `"backend":"`) {
						// A URI its backend did not list (it was down) is
						// tried on the others in turn, and a failure of one
						// of them (a crash) ends the search naming it.
						okErr = true
					}
					if q.kind == "resources/read" && (e.Code == frame.CodeNotFound || e.Code == frame.CodeInvalidParams && strings.Contains(string(f.Error()), `"uri":"`+q.uri+`"`)) {
						// Its backend was down when the URIs were listed:
						// the others' "not found" is passed on (README).
						okErr = true
						if q.want != "no success" {
							notFound.Add(1)
						}
					}
					if q.want == "no success" && !strings.Contains(string(f.Error()), q.uri) && e.Code != frame.CodeInternalError {
						// (-32603: a backend tried failed, e.g. crashed: the
						// search stops there and names it.)
						t.Errorf("%s read of %s: a failure about something else: %s", q.id, q.uri, f.Raw())
					}
					if !okErr && q.kind != "crash" {
						t.Errorf("%s %s on %s: unexpected failure: %s", q.id, q.kind, q.backend, f.Raw())
					}
					failed.Add(1)
					if os.Getenv("SOAK_VERBOSE") != "" {
						t.Logf("failure: %s %s on %s: %.300s", q.id, q.kind, q.backend, f.Raw())
					}
					continue
				}
				res := string(f.Result())
				toolErr := strings.Contains(res, `"isError":true`)
				switch {
				case q.kind == "crash":
				case toolErr && (q.kind == "sample" || q.kind == "roots"):
					// Its upcall was cancelled (session lost, crash).
					failed.Add(1)
					if os.Getenv("SOAK_VERBOSE") != "" {
						t.Logf("tool failure: %s %s on %s: %.300s", q.id, q.kind, q.backend, f.Raw())
					}
				case !strings.Contains(res, q.want):
					t.Errorf("%s %s on %s answered with another request's data (want %s): %.400s", q.id, q.kind, q.backend, q.want, f.Raw())
				default:
					ok.Add(1)
				}
				// Which upcall answer did it carry?
				var up string
				switch q.kind {
				case "sample":
					if m := sampledRe.FindStringSubmatch(res); m != nil {
						if m[1] != q.backend {
							t.Errorf("%s sample on %s carries the sampling answer for %s: %s", q.id, q.backend, m[1], res)
						}
						up = m[2]
					}
				case "roots":
					if m := rootRe.FindStringSubmatch(res); m != nil {
						up = m[1]
					}
				case "tools/list":
					var lr struct {
						Tools []struct {
							Name string `json:"name"`
						} `json:"tools"`
					}
					_ = json.Unmarshal(f.Result(), &lr)
					seen := map[string]bool{}
					for _, tl := range lr.Tools {
						if seen[tl.Name] {
							t.Errorf("tools/list names %s twice", tl.Name)
						}
						seen[tl.Name] = true
						if i := strings.IndexByte(tl.Name, '_'); i < 0 || !slicesContains(names, tl.Name[:i]) {
							t.Errorf("tools/list has a name of no backend: %s", tl.Name)
						}
					}
				}
				if up != "" {
					hm.Lock()
					u := ups[up]
					if u == nil {
						u = ups[`"`+up+`"`]
					}
					switch {
					case u == nil:
						t.Errorf("%s %s on %s carries an answer to upcall %s, which the bridge never sent", q.id, q.kind, q.backend, up)
					case u.usedBy != 0:
						t.Errorf("the answer to upcall %s reached two tool calls: %d and %d", up, u.usedBy, q.seq)
					case q.kind == "sample" && u.method != "sampling/createMessage" || q.kind == "roots" && u.method != "roots/list":
						t.Errorf("%s %s carries the answer to a %s upcall", q.id, q.kind, u.method)
					default:
						u.usedBy = q.seq
					}
					hm.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	sent := int(min(next.Load(), int64(calls)))
	t.Logf("%d calls: %d succeeded, %d failed (faults injected; %d resources not found while their backend was down), %d cancelled, %d on a reused id; %d upcalls (%d cancelled by the bridge, %d then left unanswered, %d answered late); %d progress notifications (%d after the answer or cancellation); HTTP requests %d",
		sent, ok.Load(), failed.Load(), notFound.Load(), cancelled.Load(), reused.Load(), upcalls.Load(), upCancels.Load(), upDropped.Load(), upLate.Load(), progress.Load(), lateProgress.Load(), rig.httpReqs.Load())
	if ok.Load() < int64(sent)/3 {
		t.Errorf("only %d of %d calls succeeded", ok.Load(), sent)
	}

	// Let late answers of cancelled requests and upcalls come (and be
	// counted), then end the host's input.
	time.Sleep(300 * time.Millisecond)
	upWG.Wait()
	rig.stop(t, done, readDone, func() { upWG.Wait(); endHandlers() })

	hm.Lock()
	lateAnswers := 0
	for _, q := range all {
		switch {
		case !q.cancelled && q.answers != 1:
			t.Errorf("request %s #%d (%s %s) got %d answers", q.id, q.seq, q.kind, q.backend, q.answers)
		case q.cancelled && q.answers > 1:
			t.Errorf("cancelled request %s #%d (%s %s) got %d answers", q.id, q.seq, q.kind, q.backend, q.answers)
		case q.cancelled && q.answers == 1:
			lateAnswers++
		}
	}
	t.Logf("%d cancelled requests were answered anyway (the answer crossed the cancellation); %d stray answers", lateAnswers, stray)
	hm.Unlock()

	base.check(t, marker)
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
