package bridge

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/backends"
	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
)

// scriptedServer is a hand-written MCP server on pipes: initialize is
// answered with caps; every other line goes to handle.
type scriptedServer struct {
	name   string
	caps   string
	handle func(f *frame.Frame, write func(format string, args ...any))
}

func (s *scriptedServer) serve(t *testing.T) backends.Session {
	return serveScriptedWith(t, s, backends.Options{})
}

func bridgedScripted(t *testing.T, cfg Config, srvs ...*scriptedServer) *bridgedRun {
	by := map[string]*scriptedServer{}
	var named []namedServer
	for _, s := range srvs {
		by[s.name] = s
		named = append(named, namedServer{name: s.name})
	}
	cfg.Open = func(ctx context.Context, b config.Backend, _ backends.Options) (backends.Session, error) {
		return by[b.Name].serve(t), nil
	}
	return bridgedWire(t, cfg, named...)
}

const taskCaps = `{"tools":{},"tasks":{"list":{},"cancel":{},"requests":{"tools":{"call":{}}}}}`

func taskJSON(id, status string) string {
	return fmt.Sprintf(`{"taskId":%q,"status":%q,"ttl":60000,"createdAt":"2026-11-29T00:00:00Z","lastUpdatedAt":"2026-11-29T00:00:00Z"}`, id, status)
}

// progressTaskServer: its tool "slow" answers a task-augmented call with a
// CreateTaskResult and then reports progress on the call's own token, as
// the spec says: "The progressToken provided in the initial request
// remains valid throughout the task lifetime."
func progressTaskServer(name string) *scriptedServer {
	return &scriptedServer{name: name, caps: taskCaps, handle: func(f *frame.Frame, write func(string, ...any)) {
		switch f.Method {
		case "tools/list":
			write(`{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"slow","inputSchema":{"type":"object"},"execution":{"taskSupport":"required"}}]}}`, f.ID())
		case "tools/call":
			tok := f.Bytes(f.Param("_meta", "progressToken"))
			write(`{"jsonrpc":"2.0","id":%s,"result":{"task":%s}}`, f.ID(), taskJSON(name+"-1", "working"))
			write(`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":%s,"progress":1,"total":2,"message":"halfway"}}`, tok)
		default:
			if f.Kind == frame.Request {
				write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"method not found"}}`, f.ID())
			}
		}
	}}
}

// TestTaskProgressAfterCreateTaskResult: a task's progress, sent on the
// token of the task-augmented tools/call after its CreateTaskResult, must
// reach the host (spec 2025-11-25, tasks: "Task Progress Notifications").
// Both with one backend (raw relay) and with several.
func TestTaskProgressAfterCreateTaskResult(t *testing.T) {
	for _, n := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d-backends", n), func(t *testing.T) {
			srvs := []*scriptedServer{progressTaskServer("a")}
			tool := "slow"
			if n == 2 {
				srvs = append(srvs, progressTaskServer("b"))
				tool = "a_slow"
			}
			b := bridgedScripted(t, Config{}, srvs...)
			handshake(b.wire)
			b.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + tool + `","arguments":{},"task":{"ttl":60000},"_meta":{"progressToken":"host-tok"}}}`)
			if r := b.Response("1"); !strings.Contains(string(r.Result()), `"taskId"`) {
				t.Fatalf("tools/call: %s", r.Raw())
			}
			// A later request through the same backend, so that the
			// progress (written before its answer) has been handled.
			b.Send(`{"jsonrpc":"2.0","id":2,"method":"tasks/get","params":{"taskId":"a-1"}}`)
			b.Response("2")
			got := b.Count(func(f *frame.Frame) bool {
				return f.Method == "notifications/progress" && strings.Contains(string(f.Params()), `"host-tok"`)
			})
			if got != 1 {
				t.Errorf("host got %d progress notifications for its task, want 1; wire:\n%s", got, b.Dump())
			}
		})
	}
}

// TestHostTaskProgressAfterCreateTaskResult: the other direction. A
// backend's task-augmented sampling request carries a progress token; the
// host answers with a CreateTaskResult and then reports the task's
// progress on that token. The backend must get it.
func TestHostTaskProgressAfterCreateTaskResult(t *testing.T) {
	for _, n := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d-backends", n), func(t *testing.T) {
			var mu sync.Mutex
			var got []string
			mk := func(name string) *scriptedServer {
				return &scriptedServer{name: name, caps: `{"tools":{}}`, handle: func(f *frame.Frame, write func(string, ...any)) {
					switch f.Method {
					case "tools/list":
						write(`{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"ask","inputSchema":{"type":"object"}}]}}`, f.ID())
					case "tools/call":
						write(`{"jsonrpc":"2.0","id":"up-1","method":"sampling/createMessage","params":{"task":{"ttl":60000},"maxTokens":1,"messages":[],"_meta":{"progressToken":"srv-tok"}}}`)
						write(`{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"asked"}]}}`, f.ID())
					case "notifications/progress":
						mu.Lock()
						got = append(got, string(f.Params()))
						mu.Unlock()
					}
				}}
			}
			srvs := []*scriptedServer{mk("a")}
			tool := "ask"
			if n == 2 {
				srvs = append(srvs, mk("b"))
				tool = "a_ask"
			}
			b := bridgedScripted(t, Config{}, srvs...)
			handshake(b.wire)
			b.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + tool + `","arguments":{}}}`)
			up := b.WaitFor("sampling request", func(f *frame.Frame) bool { return f.Method == "sampling/createMessage" })
			b.Response("1")
			tok := string(up.Bytes(up.Param("_meta", "progressToken")))
			b.Send(`{"jsonrpc":"2.0","id":` + string(up.ID()) + `,"result":{"task":` + taskJSON("host-1", "working") + `}}`)
			b.Send(`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":` + tok + `,"progress":1,"total":2}}`)
			deadline := time.Now().Add(2 * time.Second)
			for time.Now().Before(deadline) {
				mu.Lock()
				k := len(got)
				mu.Unlock()
				if k > 0 {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(got) != 1 || !strings.Contains(got[0], `"srv-tok"`) {
				t.Errorf("backend got progress %v, want one on \"srv-tok\"", got)
			}
		})
	}
}

// TestTaskResultOutlivesIdleTimeout: tasks/result blocks until the task
// ends (spec: "it MUST block the response until the task reaches a
// terminal status"); the task reports progress meanwhile. The bridge's
// idle timeout (--timeout, 5m by default) cuts it off with -32001 and
// tells the backend to cancel, although the task is alive and reporting.
func TestTaskResultOutlivesIdleTimeout(t *testing.T) {
	srv := &scriptedServer{name: "a", caps: taskCaps}
	var tok []byte
	srv.handle = func(f *frame.Frame, write func(string, ...any)) {
		switch f.Method {
		case "tools/list":
			write(`{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"slow","inputSchema":{"type":"object"},"execution":{"taskSupport":"required"}}]}}`, f.ID())
		case "tools/call":
			tok = f.Bytes(f.Param("_meta", "progressToken"))
			write(`{"jsonrpc":"2.0","id":%s,"result":{"task":%s}}`, f.ID(), taskJSON("a-1", "working"))
		case "tasks/result":
			id := string(f.ID())
			go func() {
				// The task works for 1.2 s, reporting every 100 ms (on the
				// original token, and with a status notification).
				for i := range 12 {
					time.Sleep(100 * time.Millisecond)
					write(`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":%s,"progress":%d,"total":12}}`, tok, i+1)
					write(`{"jsonrpc":"2.0","method":"notifications/tasks/status","params":%s}`, taskJSON("a-1", "working"))
				}
				write(`{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"done"}],"_meta":{"io.modelcontextprotocol/related-task":{"taskId":"a-1"}}}}`, id)
			}()
		default:
			if f.Kind == frame.Request {
				write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"method not found"}}`, f.ID())
			}
		}
	}
	b := bridgedScripted(t, Config{Timeout: 400 * time.Millisecond}, srv)
	handshake(b.wire)
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"slow","arguments":{},"task":{"ttl":60000},"_meta":{"progressToken":7}}}`)
	b.Response("1")
	b.Send(`{"jsonrpc":"2.0","id":2,"method":"tasks/result","params":{"taskId":"a-1"}}`)
	if r := b.Response("2"); !strings.Contains(string(r.Result()), "done") {
		t.Errorf("tasks/result of a live, reporting task: %s", r.Raw())
	}
}

// TestTaskOwnersFirstLearnRace: a task owner looked up while the first
// task is learned (run with -race: the table was read before the lock).
func TestTaskOwnersFirstLearnRace(t *testing.T) {
	for range 200 {
		var to taskOwners
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); to.learn(false, "t-1", nil) }()
		go func() { defer wg.Done(); _ = to.owner(false, "t-1") }()
		wg.Wait()
	}
}

// TestTaskTokensEnd: a task's kept progress token goes when the task ends,
// when its backend's session goes, and the table stays bounded.
func TestTaskTokensEnd(t *testing.T) {
	m := newIDMap()
	a, b := &link{name: "a"}, &link{name: "b"}
	keep := func(l *link, id string) *call {
		c := &call{backend: l, method: "tools/call"}
		m.addCall(c, true)
		m.dropCall(c)
		m.keepTaskToken(l, id, c)
		return c
	}
	c1 := keep(a, "t1")
	keep(b, "t1")
	if m.tokens[c1.token] != c1 || len(m.taskToks) != 2 {
		t.Fatalf("token not kept: %v", m.taskToks)
	}
	m.endTask(a, "t1", false)
	if m.tokens[c1.token] != nil || len(m.taskToks) != 1 {
		t.Errorf("ended task still routed: %v", m.taskToks)
	}
	m.dropTasksOf(b)
	if len(m.taskToks) != 0 || len(m.tokens) != 0 {
		t.Errorf("tokens of a gone session kept: %v %v", m.taskToks, m.tokens)
	}
	for i := range maxTasks + 10 {
		keep(a, fmt.Sprint(i))
	}
	if len(m.taskToks) > maxTasks || len(m.tokens) != len(m.taskToks) {
		t.Errorf("table unbounded or out of step: %d tasks, %d tokens", len(m.taskToks), len(m.tokens))
	}
}
