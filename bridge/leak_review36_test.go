package bridge

import (
	"context"
	"fmt"
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

// Thirty-sixth review: resource leaks and unbounded growth over a long
// life (a helper session's review; each test here failed on the code it
// was written against).

// A backend's task-augmented sampling request with a progress token: the
// host answers with a CreateTaskResult and runs the task; the bridge keeps
// the token routed for the task's life (keepUpTaskToken). The README says
// the mapping goes "when a notifications/tasks/status, tasks/get,
// tasks/cancel or tasks/result shows the task ended ... and the reverse
// for a task the host runs for a backend's request". But only the host's
// notifications/tasks/status frees it (taskStatus with host true): the
// host's answers to the backend's own tasks/result and tasks/get are never
// looked at (hostResponse), and a receiver need not send status
// notifications at all ("MAY"): a backend that polls, as the spec has
// requestors do, leaves one upToks and one upTaskToks entry per task (and,
// with several backends, one entry of the aggregator's client task table)
// until the table reaches maxTasks (10,000) and half of it is dropped at
// random, live tasks' tokens included.
func TestHostTaskTokensGoWhenTheBackendSeesTheTaskEnd(t *testing.T) {
	for _, n := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d-backends", n), func(t *testing.T) {
			const rounds = 40
			var answers atomic.Int64 // answers to the backend's tasks/result and tasks/get
			mk := func(name string) *scriptedServer {
				return &scriptedServer{name: name, caps: `{"tools":{}}`, handle: func(f *frame.Frame, write func(string, ...any)) {
					switch {
					case f.Method == "tools/list":
						write(`{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"ask","inputSchema":{"type":"object"}}]}}`, f.ID())
					case f.Method == "tools/call":
						i, _ := frame.Int(f.Bytes(f.Param("arguments", "i")))
						write(`{"jsonrpc":"2.0","id":"up-%d","method":"sampling/createMessage","params":{"task":{"ttl":60000},"maxTokens":1,"messages":[],"_meta":{"progressToken":"srv-tok-%d"}}}`, i, i)
						write(`{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"asked"}]}}`, f.ID())
					case f.Kind == frame.Response && strings.HasPrefix(string(f.ID()), `"up-`):
						// The host took the sampling as a task: poll it to its end,
						// with tasks/result (even rounds) or tasks/get (odd ones).
						task, _ := f.String(f.Field(f.ResultSpan(), "task", "taskId"))
						var i int
						fmt.Sscanf(task, "host-%d", &i)
						if i%2 == 0 {
							write(`{"jsonrpc":"2.0","id":"res-%d","method":"tasks/result","params":{"taskId":%q}}`, i, task)
						} else {
							write(`{"jsonrpc":"2.0","id":"get-%d","method":"tasks/get","params":{"taskId":%q}}`, i, task)
						}
					case f.Kind == frame.Response:
						answers.Add(1)
					}
				}}
			}
			h := r36Scripted(t, n, mk)
			h.handshake()
			tool := "ask"
			if n == 2 {
				tool = "a_ask"
			}
			for i := range rounds {
				h.send(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":%q,"arguments":{"i":%d}}}`, i, tool, i)
				up := h.await("sampling request", func(f *frame.Frame) bool { return f.Method == "sampling/createMessage" })
				h.await("call answer", func(f *frame.Frame) bool { return f.Kind == frame.Response && string(f.ID()) == fmt.Sprint(i) })
				task := fmt.Sprintf("host-%d", i)
				h.send(`{"jsonrpc":"2.0","id":%s,"result":{"task":%s}}`, up.ID(), taskJSON(task, "working"))
				// The backend polls the task; the host says it is over.
				poll := h.await("the backend's poll", func(f *frame.Frame) bool { return f.Method == "tasks/result" || f.Method == "tasks/get" })
				if poll.Method == "tasks/result" {
					h.send(`{"jsonrpc":"2.0","id":%s,"result":{"role":"assistant","model":"m","content":{"type":"text","text":"done"},"_meta":{"io.modelcontextprotocol/related-task":{"taskId":%q}}}}`, poll.ID(), task)
				} else {
					h.send(`{"jsonrpc":"2.0","id":%s,"result":%s}`, poll.ID(), taskJSON(task, "completed"))
				}
			}
			for deadline := time.Now().Add(testTimeout); answers.Load() < rounds && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
			}
			if answers.Load() < rounds {
				t.Fatalf("the backend got %d of its %d poll answers", answers.Load(), rounds)
			}
			var upToks, upTaskToks, clientTasks int
			h.locked(func(r *router) { upToks, upTaskToks = len(r.ids.upToks), len(r.ids.upTaskToks) })
			h.r.agg.tasks.mu.Lock()
			clientTasks = len(h.r.agg.tasks.client)
			h.r.agg.tasks.mu.Unlock()
			t.Logf("after %d host-run tasks the backend saw end: upToks %d, upTaskToks %d, aggregator client tasks %d", rounds, upToks, upTaskToks, clientTasks)
			if upToks != 0 || upTaskToks != 0 {
				t.Errorf("%d tasks the host ran for a backend's sampling requests ended (the backend got the host's tasks/result or a tasks/get saying completed), yet the bridge still routes their progress tokens: upToks %d, upTaskToks %d (one per task, kept until %d and then half dropped at random)",
					rounds, upToks, upTaskToks, maxTasks)
			}
		})
	}
}

// A streamable-HTTP backend's sampling request came on a call's answer
// stream (frame.Via), so it holds that call's idle timeout only. The call
// ends with its answer before the host answered the sampling request (a
// tool that asks and does not wait: the go-sdk server's request outlives
// the handler when its context is detached). When the host's answer comes,
// hostResponse "starts the idle window again" of the call it was for
// (forCall.progress), and Reset re-arms the idle timer the call's answer
// had stopped. The timer of a call nobody holds any more then fires after
// --timeout; while the backend has any request pending with the host that
// names no call (here a roots/list on the standalone stream the host never
// answers; README: such a request "holds all that backend's calls"),
// waitsOnHost is true for it and the callback re-arms it again, every
// --timeout, for ever: --max-timeout, whose timer was stopped, no longer
// bounds it. One timer (and the call it holds) per such call, cycling for
// the bridge's life.
func TestAnsweredUpcallDoesNotRearmAnEndedCall(t *testing.T) {
	const n = 40
	old := runtime.MemProfileRate
	runtime.MemProfileRate = 1
	t.Cleanup(func() { runtime.MemProfileRate = old })
	proceed := make(chan struct{}, 1)
	var sampled atomic.Int64
	srv := mcp.NewServer(&mcp.Implementation{Name: "a", Version: "1"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "fire", Description: "asks for a sample and does not wait for it"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		go func() {
			// On this call's answer stream (the context's values), not
			// ended with the call.
			if _, err := req.Session.CreateMessage(context.WithoutCancel(ctx), &mcp.CreateMessageParams{MaxTokens: 1, Messages: []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: "hi"}}}}); err == nil {
				sampled.Add(1)
			}
		}()
		select { // until the host has the sampling request
		case <-proceed:
		case <-time.After(testTimeout):
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "fired"}}}, nil, nil
	})
	ts := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil))
	t.Cleanup(ts.Close)
	h := r21Run(t, Config{
		Backends: []config.Backend{{Name: "a", Kind: config.KindHTTP, URL: ts.URL}},
		Timeout:  200 * time.Millisecond,
	})
	h.handshake()
	h.send(`{"jsonrpc":"2.0","id":"list","method":"tools/list"}`)
	h.await("tools/list", func(f *frame.Frame) bool { return f.Kind == frame.Response })
	// A request of the server's own, on its standalone stream, that the
	// host never answers.
	var rootsWG sync.WaitGroup
	rootsCtx, stopRoots := context.WithTimeout(context.Background(), testTimeout+10*time.Second)
	defer stopRoots()
	for ss := range srv.Sessions() {
		rootsWG.Add(1)
		go func() {
			defer rootsWG.Done()
			_, _ = ss.ListRoots(rootsCtx, nil)
		}()
	}
	h.await("roots/list on the standalone stream", func(f *frame.Frame) bool { return f.Method == "roots/list" })
	time.Sleep(200 * time.Millisecond)
	base := r21LiveFrom("bridge.(*router).startTimer")
	for i := range n {
		h.send(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"fire","arguments":{}}}`, i)
		up := h.await("sampling request", func(f *frame.Frame) bool { return f.Method == "sampling/createMessage" })
		proceed <- struct{}{}
		h.await("call answer", func(f *frame.Frame) bool { return f.Kind == frame.Response && string(f.ID()) == fmt.Sprint(i) })
		h.send(`{"jsonrpc":"2.0","id":%s,"result":{"role":"assistant","model":"m","content":{"type":"text","text":"s"}}}`, up.ID())
	}
	for deadline := time.Now().Add(testTimeout); sampled.Load() < n && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if sampled.Load() < n {
		t.Fatalf("the server got %d of the host's %d sampling answers", sampled.Load(), n)
	}
	time.Sleep(1500 * time.Millisecond) // several --timeout periods
	var calls, ups int
	h.locked(func(r *router) { calls, ups = len(r.ids.calls), len(r.ids.ups) })
	live := r21LiveFrom("bridge.(*router).startTimer") - base
	t.Logf("after %d ended calls whose sampling the host answered late: router calls %d, upcalls %d (the roots/list), live objects allocated in startTimer %d", n, calls, ups, live)
	if calls == 0 && live >= n {
		t.Errorf("%d calls ended (none left in the router) and the host then answered their sampling requests: %d objects allocated by startTimer are still live 1.5s later (--timeout 200ms): the host's answer re-armed each ended call's idle timer, which re-arms itself every --timeout while the backend's unanswered roots/list is pending, unbounded by --max-timeout", n, live)
	}
	stopRoots()
	rootsWG.Wait()
}

// The server side of the same: a task-augmented tools/call with a
// progress token keeps the token routed for the task's life, and
// tasks/result "shows the task ended" (README) only when it returns a
// result: taskAnswered returns at once for an error answer. But a task
// whose request failed ends exactly that way: tasks/result returns the
// JSON-RPC error the request would have returned (2025-11-25), and a host
// that waits for its tasks with tasks/result alone (the spec's blocking
// call; status notifications are optional) leaves one tokens and one
// taskToks entry per failed task, until maxTasks.
func TestFailedTaskTokenGoesWithItsTasksResult(t *testing.T) {
	for _, n := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d-backends", n), func(t *testing.T) {
			const rounds = 40
			mk := func(name string) *scriptedServer {
				var next atomic.Int64
				return &scriptedServer{name: name, caps: taskCaps, handle: func(f *frame.Frame, write func(string, ...any)) {
					switch f.Method {
					case "tools/list":
						write(`{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"slow","inputSchema":{"type":"object"},"execution":{"taskSupport":"required"}}]}}`, f.ID())
					case "tools/call":
						write(`{"jsonrpc":"2.0","id":%s,"result":{"task":%s}}`, f.ID(), taskJSON(fmt.Sprintf("%s-%d", name, next.Add(1)), "working"))
					case "tasks/result":
						// The task's request failed: its error is the answer.
						write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32603,"message":"the tool's request failed"}}`, f.ID())
					default:
						if f.Kind == frame.Request {
							write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"method not found"}}`, f.ID())
						}
					}
				}}
			}
			h := r36Scripted(t, n, mk)
			h.handshake()
			tool := "slow"
			if n == 2 {
				tool = "a_slow"
			}
			for i := range rounds {
				h.send(`{"jsonrpc":"2.0","id":"c%d","method":"tools/call","params":{"name":%q,"arguments":{},"task":{"ttl":60000},"_meta":{"progressToken":"host-tok-%d"}}}`, i, tool, i)
				r := h.await("CreateTaskResult", func(f *frame.Frame) bool {
					return f.Kind == frame.Response && string(f.ID()) == fmt.Sprintf(`"c%d"`, i)
				})
				task, _ := r.String(r.Field(r.ResultSpan(), "task", "taskId"))
				if task == "" {
					t.Fatalf("no task: %s", r.Raw())
				}
				h.send(`{"jsonrpc":"2.0","id":"r%d","method":"tasks/result","params":{"taskId":%q}}`, i, task)
				if a := h.await("tasks/result", func(f *frame.Frame) bool {
					return f.Kind == frame.Response && string(f.ID()) == fmt.Sprintf(`"r%d"`, i)
				}); !a.IsError() {
					t.Fatalf("tasks/result of a failed task: %s", a.Raw())
				}
			}
			var tokens, taskToks int
			h.locked(func(r *router) { tokens, taskToks = len(r.ids.tokens), len(r.ids.taskToks) })
			t.Logf("after %d failed tasks, each waited for with tasks/result: tokens %d, taskToks %d", rounds, tokens, taskToks)
			if tokens != 0 || taskToks != 0 {
				t.Errorf("%d tasks failed and the host got each one's error from tasks/result, yet the bridge still routes their progress tokens: tokens %d, taskToks %d (one per failed task, kept until %d)",
					rounds, tokens, taskToks, maxTasks)
			}
		})
	}
}

// Noted by the same review: with several backends, every list_changed a
// backend sent before the host's notifications/initialized started a
// goroutine of its own waiting for it (up to a minute, beside the cap on
// held messages), and the host then heard one list_changed per change.
func TestListChangedBeforeInitializedReachesTheHostOnce(t *testing.T) {
	const changes = 20
	mk := func(name string) *scriptedServer {
		return &scriptedServer{name: name, caps: `{"tools":{"listChanged":true}}`, handle: func(f *frame.Frame, write func(string, ...any)) {
			if f.Kind == frame.Request {
				write(`{"jsonrpc":"2.0","id":%s,"result":{"tools":[]}}`, f.ID())
			}
		}}
	}
	h := r36Scripted(t, 2, mk)
	h.send("%s", initLine)
	h.await("initialize answer", func(f *frame.Frame) bool { return f.Kind == frame.Response && string(f.ID()) == "0" })
	for range changes {
		h.r.agg.listChanged(h.r.links[0], "notifications/tools/list_changed")
	}
	h.r.agg.mu.Lock()
	waiting := len(h.r.agg.notifyWaiting)
	h.r.agg.mu.Unlock()
	if waiting != 1 {
		t.Errorf("%d list_changed methods wait for the host's initialized, want 1", waiting)
	}
	h.send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	n := 0
	for deadline := time.After(500 * time.Millisecond); ; {
		select {
		case f := <-h.frames:
			if f.Method == "notifications/tools/list_changed" {
				n++
			}
			continue
		case <-deadline:
		}
		break
	}
	if n != 1 {
		t.Errorf("the host heard %d list_changed for %d changes made before it initialized, want 1", n, changes)
	}
}

// r36Scripted runs the router in front of n scripted backends made by mk,
// named a and b.
func r36Scripted(t *testing.T, n int, mk func(name string) *scriptedServer) *r21Host {
	by := map[string]*scriptedServer{}
	var bes []config.Backend
	for _, name := range []string{"a", "b"}[:n] {
		by[name] = mk(name)
		bes = append(bes, config.Backend{Name: name, Kind: config.KindStdio, Command: "in-process"})
	}
	return r21Run(t, Config{
		Backends: bes,
		Open: func(ctx context.Context, b config.Backend, _ backends.Options) (backends.Session, error) {
			return by[b.Name].serve(t), nil
		},
	})
}

// Noted by the 35th review: with owners kept for the bridge's life, a full
// table dropped an arbitrary half, live tasks with the ended. Tasks seen to
// end go first.
func TestFullTaskTableForgetsEndedTasksFirst(t *testing.T) {
	var to taskOwners
	l := &link{name: "a"}
	for i := range maxTasks {
		id := fmt.Sprint("t", i)
		to.learn(false, id, l)
		if i%2 == 0 {
			to.ended(false, id)
		}
	}
	to.learn(false, "new", l)
	for i := 1; i < maxTasks; i += 2 {
		if to.owner(false, fmt.Sprint("t", i)) != l {
			t.Fatalf("live task t%d was forgotten while ended ones could go", i)
		}
	}
	if to.owner(false, "t0") != nil || to.owner(false, "new") != l {
		t.Errorf("the ended were kept or the new task not learned")
	}
}
