package bridge

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/backends"
	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
)

// taskServer is a small MCP server speaking tasks (2025-11-25), written by
// hand because go-sdk v1.8.0 has none (the interop suite drives the
// TypeScript SDK's, in server-everything). Its tool "research" must be
// called task-augmented and makes a task "NAME-N"; tasks/get, tasks/result
// and tasks/cancel say which server answered; tasks/list pages one task at
// a time. Its tool "ask" sends the host a task-augmented sampling request.
// Every notifications/tasks/status it receives is recorded.
type taskServer struct {
	name string
	mu   sync.Mutex
	n    int
	got  []string // taskId of each notifications/tasks/status received
}

func (s *taskServer) statuses() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

func (s *taskServer) serve(t *testing.T) backends.Session {
	task := func(id, status string) string {
		return fmt.Sprintf(`{"taskId":%q,"status":%q,"ttl":60000,"createdAt":"2026-11-29T00:00:00Z","lastUpdatedAt":"2026-11-29T00:00:00Z","servedBy":%q}`, id, status, s.name)
	}
	handle := func(f *frame.Frame, write func(string, ...any)) {
		id := string(f.ID())
		taskID, _ := f.String(f.Param("taskId"))
		switch f.Method {
		case "tools/list":
			write(`{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"research","inputSchema":{"type":"object"},"execution":{"taskSupport":"required"}},{"name":"ask","inputSchema":{"type":"object"}}]}}`, id)
		case "tools/call":
			switch name, _ := f.String(f.Param("name")); name {
			case "research":
				if !f.Param("task").Ok() {
					write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32600,"message":"research must be called as a task"}}`, id)
					return
				}
				s.mu.Lock()
				s.n++
				tid := fmt.Sprintf("%s-%d", s.name, s.n)
				s.mu.Unlock()
				write(`{"jsonrpc":"2.0","id":%s,"result":{"task":%s}}`, id, task(tid, "working"))
				write(`{"jsonrpc":"2.0","method":"notifications/tasks/status","params":%s}`, task(tid, "working"))
			case "ask":
				write(`{"jsonrpc":"2.0","id":"up-1","method":"sampling/createMessage","params":{"task":{"ttl":60000},"maxTokens":1,"messages":[]}}`)
				write(`{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"asked"}]}}`, id)
			}
		case "tasks/get", "tasks/cancel":
			status := map[string]string{"tasks/get": "working", "tasks/cancel": "cancelled"}[f.Method]
			write(`{"jsonrpc":"2.0","id":%s,"result":%s}`, id, task(taskID, status))
		case "tasks/result":
			write(`{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"result of %s from %s"}]}}`, id, taskID, s.name)
		case "tasks/list":
			// One task per page, the cursor naming the next.
			s.mu.Lock()
			n := s.n
			s.mu.Unlock()
			i := 1
			if c, ok := f.String(f.Param("cursor")); ok {
				fmt.Sscan(c, &i)
			}
			next := ""
			if i < n {
				next = fmt.Sprintf(`,"nextCursor":"%d"`, i+1)
			}
			items := ""
			if i <= n {
				items = task(fmt.Sprintf("%s-%d", s.name, i), "working")
			}
			write(`{"jsonrpc":"2.0","id":%s,"result":{"tasks":[%s]%s}}`, id, items, next)
		case "notifications/tasks/status":
			s.mu.Lock()
			s.got = append(s.got, taskID)
			s.mu.Unlock()
		default:
			if f.Kind == frame.Request {
				write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"method not found"}}`, id)
			}
		}
	}
	return (&scriptedServer{name: s.name, caps: taskCaps, handle: handle}).serve(t)
}

// bridgedTasks runs the bridge in front of task servers named a and b.
func bridgedTasks(t *testing.T) (*bridgedRun, map[string]*taskServer) {
	srvs := map[string]*taskServer{"a": {name: "a"}, "b": {name: "b"}}
	cfg := Config{Open: func(ctx context.Context, b config.Backend, _ backends.Options) (backends.Session, error) {
		return srvs[b.Name].serve(t), nil
	}}
	run := bridgedWire(t, cfg, namedServer{name: "a"}, namedServer{name: "b"})
	return run, srvs
}

// TestTasksRoutedByTaskID: with several backends the merged capabilities
// offer tasks, and each task's tasks/get, tasks/result and tasks/cancel
// reach the backend that made it, whether the bridge learned the task from
// the tool call's answer or only through tasks/list (issue #4).
func TestTasksRoutedByTaskID(t *testing.T) {
	b, _ := bridgedTasks(t)
	init := handshake(b.wire)
	var res struct {
		Capabilities map[string]json.RawMessage `json:"capabilities"`
	}
	if err := json.Unmarshal(init.Result(), &res); err != nil || !strings.Contains(string(res.Capabilities["tasks"]), `"list"`) || !strings.Contains(string(res.Capabilities["tasks"]), `"call"`) {
		t.Fatalf("merged capabilities lack tasks: %s", init.Result())
	}
	call := func(id int, tool string) {
		b.Send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":%q,"arguments":{},"task":{"ttl":60000}}}`, id, tool))
	}
	// One at a time: b numbers its tasks in the order calls reach it.
	for i, tool := range []string{"a_research", "b_research", "b_research"} {
		call(i+1, tool)
		want := []string{"a-1", "b-1", "b-2"}[i]
		if r := b.Response(fmt.Sprint(i + 1)); !strings.Contains(string(r.Result()), fmt.Sprintf(`"taskId":%q`, want)) {
			t.Fatalf("task-augmented call %d: %s", i+1, r.Raw())
		}
	}
	b.WaitFor("a's status notification", func(f *frame.Frame) bool {
		return f.Method == "notifications/tasks/status" && strings.Contains(string(f.Params()), `"a-1"`)
	})
	next := 10
	ask := func(method, task string) *frame.Frame {
		next++
		b.Send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q,"params":{"taskId":%q}}`, next, method, task))
		return b.Response(fmt.Sprint(next))
	}
	for _, task := range []string{"a-1", "b-1", "b-2"} {
		owner := task[:1]
		if r := ask("tasks/get", task); !strings.Contains(string(r.Result()), fmt.Sprintf(`"servedBy":%q`, owner)) {
			t.Errorf("tasks/get %s: %s", task, r.Raw())
		}
		if r := ask("tasks/result", task); !strings.Contains(string(r.Result()), fmt.Sprintf("result of %s from %s", task, owner)) {
			t.Errorf("tasks/result %s: %s", task, r.Raw())
		}
	}
	if r := ask("tasks/cancel", "b-2"); !strings.Contains(string(r.Result()), `"cancelled"`) || !strings.Contains(string(r.Result()), `"servedBy":"b"`) {
		t.Errorf("tasks/cancel b-2: %s", r.Raw())
	}
	// tasks/list: every backend's, every page, in one answer.
	r := ask("tasks/list", "")
	var list struct {
		Tasks      []struct{ TaskID string } `json:"tasks"`
		NextCursor *string                   `json:"nextCursor"`
	}
	if err := json.Unmarshal(r.Result(), &list); err != nil || list.NextCursor != nil {
		t.Fatalf("tasks/list: %s", r.Raw())
	}
	var ids []string
	for _, x := range list.Tasks {
		ids = append(ids, x.TaskID)
	}
	if strings.Join(ids, ",") != "a-1,b-1,b-2" {
		t.Errorf("tasks/list = %v, want a-1,b-1,b-2", ids)
	}
	if r := ask("tasks/get", "c-9"); !strings.Contains(string(r.Error()), "-32602") {
		t.Errorf("tasks/get of an unknown task: %s", r.Raw())
	}
}

// TestTaskLearnedThroughList: a task the bridge never saw created (made
// before, or forgotten) is found with tasks/list and then routed.
func TestTaskLearnedThroughList(t *testing.T) {
	b, srvs := bridgedTasks(t)
	handshake(b.wire)
	// b makes a task the bridge does not see: as if before a restart.
	srvs["b"].mu.Lock()
	srvs["b"].n = 3
	srvs["b"].mu.Unlock()
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"tasks/result","params":{"taskId":"b-3"}}`)
	if r := b.Response("1"); !strings.Contains(string(r.Result()), "result of b-3 from b") {
		t.Errorf("tasks/result of a task only tasks/list knows: %s", r.Raw())
	}
}

// TestHostTaskStatusGoesToItsBackend: a task the host runs for one
// backend's sampling request is that backend's business alone: the host's
// notifications/tasks/status about it reaches that backend, not the other.
func TestHostTaskStatusGoesToItsBackend(t *testing.T) {
	b, srvs := bridgedTasks(t)
	handshake(b.wire)
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"b_ask","arguments":{}}}`)
	up := b.WaitFor("b's sampling request", func(f *frame.Frame) bool { return f.Method == "sampling/createMessage" })
	b.Response("1")
	b.Send(`{"jsonrpc":"2.0","id":` + string(up.ID()) + `,"result":{"task":{"taskId":"host-7","status":"working","ttl":60000,"createdAt":"2026-11-29T00:00:00Z","lastUpdatedAt":"2026-11-29T00:00:00Z"}}}`)
	b.Send(`{"jsonrpc":"2.0","method":"notifications/tasks/status","params":{"taskId":"host-7","status":"completed","ttl":60000,"createdAt":"2026-11-29T00:00:00Z","lastUpdatedAt":"2026-11-29T00:00:01Z"}}`)
	deadline := time.Now().Add(testTimeout)
	for len(srvs["b"].statuses()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := srvs["b"].statuses(); len(got) != 1 || got[0] != "host-7" {
		t.Errorf("b received statuses %v, want [host-7]", got)
	}
	// A ping through both backends' queues: anything sent to a before it
	// has been read by now.
	b.Send(`{"jsonrpc":"2.0","id":2,"method":"tasks/list"}`)
	b.Response("2")
	if got := srvs["a"].statuses(); len(got) != 0 {
		t.Errorf("a received statuses %v of b's task", got)
	}
}
