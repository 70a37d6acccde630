package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/backends"
	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
)

// Thirty-fifth review: the relay against MCP 2025-11-25 (tasks,
// elicitation, tool names, capabilities) as an aggregator must keep it.
// Each test failed on the code as reviewed (0411b4e) before its fix.

// r35TaskHTTP is a hand-written streamable-HTTP MCP server with tasks
// (go-sdk v1.8 has none): tools/call with params.task answers a
// CreateTaskResult for task "t1"; tasks/result keeps an SSE stream open
// and sends, on it, the task's elicitation/create (related-task t1), the
// way the tasks spec suggests for input_required ("One possible approach
// is maintaining an SSE stream on tasks/result"); the answer the client
// posts to that elicitation is recorded in answers.
type r35TaskHTTP struct {
	answers chan string   // the client's answers to the task's elicitation, raw
	caps    string        // the capabilities it declares; taskCaps if empty
	sampled chan struct{} // closed when the client answered the sampling request of tool "ask"

	mu      sync.Mutex
	session string // the current session id
	expire  bool   // the next request of the current session gets 404 (the session expired)
	inits   int
}

func (s *r35TaskHTTP) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	switch req.Method {
	case http.MethodGet:
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	case http.MethodDelete:
		w.WriteHeader(http.StatusOK)
		return
	}
	body, _ := io.ReadAll(req.Body)
	f, err := frame.Parse(bytes.TrimSpace(body))
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	if f.Method == "initialize" {
		s.inits++
		s.session = fmt.Sprintf("s35-%d", s.inits)
	} else if s.expire && req.Header.Get("Mcp-Session-Id") == s.session {
		s.expire = false
		s.mu.Unlock()
		w.WriteHeader(http.StatusNotFound) // the session expired: the client starts a new one
		return
	}
	w.Header().Set("Mcp-Session-Id", s.session)
	s.mu.Unlock()
	switch f.Kind {
	case frame.Notification:
		w.WriteHeader(http.StatusAccepted)
		return
	case frame.Response:
		if string(f.ID()) == `"s1"` && s.sampled != nil {
			close(s.sampled)
		}
		if string(f.ID()) == `"e1"` {
			select {
			case s.answers <- string(f.Raw()):
			default:
			}
		}
		w.WriteHeader(http.StatusAccepted)
		return
	}
	result := func(res string) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":%s}`, f.ID(), res)
	}
	switch f.Method {
	case "initialize":
		caps := s.caps
		if caps == "" {
			caps = taskCaps
		}
		result(`{"protocolVersion":"2025-11-25","capabilities":` + caps + `,"serverInfo":{"name":"tasky","version":"1"}}`)
	case "tools/list":
		result(`{"tools":[{"name":"research","inputSchema":{"type":"object"},"execution":{"taskSupport":"required"}},{"name":"ask","inputSchema":{"type":"object"}}]}`)
	case "tools/call":
		if name, _ := f.String(f.Param("name")); name == "ask" {
			// A tool that has the client run a sampling request as a task.
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusOK)
			fmt.Fprintf(w, "id: a1\ndata: %s\n\n", `{"jsonrpc":"2.0","id":"s1","method":"sampling/createMessage","params":{"messages":[{"role":"user","content":{"type":"text","text":"summarize"}}],"maxTokens":10,"task":{"ttl":60000}}}`)
			w.(http.Flusher).Flush()
			select {
			case <-s.sampled:
			case <-req.Context().Done():
				return
			}
			fmt.Fprintf(w, "id: a2\ndata: %s\n\n", fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"asked"}]}}`, f.ID()))
			return
		}
		result(`{"task":` + taskJSON("t1", "working") + `}`)
	case "tasks/get":
		result(taskJSON("t1", "input_required"))
	case "tasks/cancel":
		result(taskJSON("t1", "cancelled"))
	case "tasks/result":
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		fmt.Fprintf(w, "id: r1\ndata: %s\n\n", `{"jsonrpc":"2.0","id":"e1","method":"elicitation/create","params":{"mode":"form","message":"which dataset?","requestedSchema":{"type":"object","properties":{"ds":{"type":"string"}}},"_meta":{"io.modelcontextprotocol/related-task":{"taskId":"t1"}}}}`)
		w.(http.Flusher).Flush()
		<-req.Context().Done() // the client gives this stream up
	default:
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"method not found"}}`, f.ID())
	}
}

// TestTaskInputOutlivesACancelledTasksResult: tasks spec
// 2025-11-25 ("Input Required Status", "Retrieving Task Results"): a
// task's input request (here elicitation/create with the related-task
// _meta) belongs to the task, and a requestor may give up a tasks/result
// and poll tasks/get instead ("if their previous tasks/result request
// failed or was cancelled"); the task, and its pending input request, go
// on. The TypeScript SDK's client cancels any request after 60 s by
// default, so a person slower than that at the form does exactly this.
//
// The bridge ties a server request that came on a streamable answer
// stream to that request (frame.Via → upcall.call), and when the host
// cancels the request, endUpsFor sends the host notifications/cancelled
// for the elicitation (its dialog closes) and the backend an error answer
// ("cancelled by mcpbridge: ..."): the task's input is failed by the
// relay, and the host's real answer, sent a moment later, is dropped.
// Directly connected, the server would have got the host's answer.
func TestTaskInputOutlivesACancelledTasksResult(t *testing.T) {
	srv := &r35TaskHTTP{answers: make(chan string, 4)}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	b := bridgedWire(t, Config{
		Backends: []config.Backend{{Name: "tasky", Kind: config.KindHTTP, URL: ts.URL}},
		Open:     backends.Open,
	})
	b.Send(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"elicitation":{"form":{}}},"clientInfo":{"name":"wire-host","version":"1"}}}`)
	b.Response("0")
	b.Send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)

	b.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"research","arguments":{},"task":{"ttl":60000}}}`)
	if r := b.Response("1"); !strings.Contains(string(r.Result()), `"t1"`) {
		t.Fatalf("task-augmented tools/call: %s", r.Raw())
	}
	b.Send(`{"jsonrpc":"2.0","id":2,"method":"tasks/result","params":{"taskId":"t1"}}`)
	el := b.WaitFor("the task's elicitation", func(f *frame.Frame) bool { return f.Method == "elicitation/create" })

	// The host stops waiting on tasks/result (and would poll tasks/get),
	// while the person is still at the form; then answers it.
	b.Send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":2,"reason":"request timed out"}}`)
	time.Sleep(700 * time.Millisecond) // the bridge posts a cancellation at most 0.5 s after its request
	b.Send(`{"jsonrpc":"2.0","id":` + string(el.ID()) + `,"result":{"action":"accept","content":{"ds":"census"}}}`)

	select {
	case got := <-srv.answers:
		if !strings.Contains(got, `"accept"`) {
			t.Errorf("the task's elicitation was answered by the bridge, not the host: the server got %s (want the host's accept)", got)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("the server never got an answer to the task's elicitation")
	}
	if n := b.Count(func(f *frame.Frame) bool {
		return f.Method == "notifications/cancelled" && string(f.Bytes(f.Param("requestId"))) == string(el.ID())
	}); n > 0 {
		t.Errorf("the host was told the task's elicitation was cancelled (its dialog closes), though the task goes on")
	}
}

// r35Mixed runs the bridge in front of an HTTP backend (URL) and
// in-process go-sdk test servers (by name), in that order.
func r35Mixed(t *testing.T, httpName, url string, others ...string) *bridgedRun {
	cfg := Config{Backends: []config.Backend{{Name: httpName, Kind: config.KindHTTP, URL: url}}}
	for _, n := range others {
		cfg.Backends = append(cfg.Backends, config.Backend{Name: n, Kind: config.KindStdio, Command: "in-process"})
	}
	cfg.Open = func(ctx context.Context, b config.Backend, opts backends.Options) (backends.Session, error) {
		if b.Kind == config.KindHTTP {
			return backends.Open(ctx, b, opts)
		}
		return serve(t, b.Name, testServer(b.Name)), nil
	}
	return bridgedWire(t, cfg)
}

// TestTaskSurvivesASessionRenewal: tasks spec 2025-11-25: tasks
// are durable ("integrate seamlessly with external job APIs"), bound to
// an authorization context rather than to a session, and a receiver MAY
// delete one only "after a task's ttl lifetime has elapsed"; a receiver
// that cannot identify requestors "SHOULD NOT declare the tasks.list
// capability". So a server without tasks.list is the recommended kind.
//
// With several backends the bridge routes tasks/get, tasks/result and
// tasks/cancel by a table of task owners, and aggregator.backendChanged
// calls tasks.forget for the backend whenever its streamable-HTTP
// session is renewed (a 404 for an expired session: link.reinitialized),
// as on a restart. A forgotten task is looked for only with tasks/list;
// a backend without tasks.list is never asked, and the host's tasks/get
// of a task the bridge itself created a minute before is answered
// -32602 "unknown task" while the server still has it.
func TestTaskSurvivesASessionRenewal(t *testing.T) {
	srv := &r35TaskHTTP{answers: make(chan string, 4), caps: `{"tools":{},"tasks":{"cancel":{},"requests":{"tools":{"call":{}}}}}`}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	b := r35Mixed(t, "tasky", ts.URL, "plain")
	handshake(b.wire)
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"tasky_research","arguments":{},"task":{"ttl":600000}}}`)
	if r := b.Response("1"); !strings.Contains(string(r.Result()), `"t1"`) {
		t.Fatalf("task-augmented tools/call: %s", r.Raw())
	}
	b.Send(`{"jsonrpc":"2.0","id":2,"method":"tasks/get","params":{"taskId":"t1"}}`)
	if r := b.Response("2"); r.IsError() {
		t.Fatalf("tasks/get before the session renewal: %s", r.Raw())
	}
	// The server's session expires; the next request opens a new one.
	srv.mu.Lock()
	srv.expire = true
	srv.mu.Unlock()
	b.Send(`{"jsonrpc":"2.0","id":3,"method":"tasks/get","params":{"taskId":"t1"}}`)
	if r := b.Response("3"); r.IsError() {
		t.Fatalf("tasks/get across the session renewal: %s", r.Raw())
	}
	b.WaitFor("list_changed after the renewal", func(f *frame.Frame) bool { return f.Method == "notifications/tools/list_changed" })
	b.Send(`{"jsonrpc":"2.0","id":4,"method":"tasks/get","params":{"taskId":"t1"}}`)
	if r := b.Response("4"); r.IsError() {
		t.Errorf("tasks/get of the bridge's own task after its backend's session was renewed (the server still has it, ttl 10 min): %s", r.Raw())
	}
	b.Send(`{"jsonrpc":"2.0","id":5,"method":"tasks/cancel","params":{"taskId":"t1"}}`)
	if r := b.Response("5"); r.IsError() {
		t.Errorf("tasks/cancel of it: %s", r.Raw())
	}
}

// TestToolTaskSupportFollowsItsServersCapability: tasks spec
// 2025-11-25, "Tool-Level Negotiation": "If a server's capabilities do
// not include tasks.requests.tools.call, then clients MUST NOT attempt to
// use task augmentation on that server's tools, regardless of the
// execution.taskSupport value", and such a receiver "MUST process
// requests normally, ignoring any task-augmentation metadata" (it answers
// a CallToolResult, not the CreateTaskResult the host then waits for).
//
// Merged, capabilities are a union: one backend's tasks.requests.tools.call
// is declared for all, and the tools of a backend that never declared it
// keep their execution.taskSupport as listed. The host, which sees one
// server, is told it may task-augment them; the rule it must follow can
// only be kept by the bridge, which knows whose tool it is.
func TestToolTaskSupportFollowsItsServersCapability(t *testing.T) {
	a := &scriptedServer{name: "a", caps: taskCaps, handle: func(f *frame.Frame, write func(string, ...any)) {
		switch {
		case f.Method == "tools/list":
			write(`{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"research","inputSchema":{"type":"object"},"execution":{"taskSupport":"optional"}}]}}`, f.ID())
		case f.Kind == frame.Request:
			write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"method not found"}}`, f.ID())
		}
	}}
	bsrv := &scriptedServer{name: "b", caps: `{"tools":{}}`, handle: func(f *frame.Frame, write func(string, ...any)) {
		switch {
		case f.Method == "tools/list":
			write(`{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"lookup","inputSchema":{"type":"object"},"execution":{"taskSupport":"optional"}}]}}`, f.ID())
		case f.Method == "tools/call":
			write(`{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"plain answer"}]}}`, f.ID())
		case f.Kind == frame.Request:
			write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"method not found"}}`, f.ID())
		}
	}}
	w := bridgedScripted(t, Config{}, a, bsrv)
	init := handshake(w.wire)
	if !strings.Contains(string(init.Result()), `"call"`) {
		t.Fatalf("merged capabilities lack tasks.requests.tools.call: %s", init.Result())
	}
	w.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	r := w.Response("1")
	var list struct {
		Tools []struct {
			Name      string `json:"name"`
			Execution *struct {
				TaskSupport string `json:"taskSupport"`
			} `json:"execution"`
		} `json:"tools"`
	}
	if err := json.Unmarshal(r.Result(), &list); err != nil {
		t.Fatalf("tools/list: %s", r.Raw())
	}
	for _, tl := range list.Tools {
		if tl.Name == "b_lookup" && tl.Execution != nil && (tl.Execution.TaskSupport == "optional" || tl.Execution.TaskSupport == "required") {
			t.Errorf("b_lookup is offered with taskSupport %q under a merged tasks.requests.tools.call that its server (b) never declared", tl.Execution.TaskSupport)
		}
	}
}

// TestURLElicitationRequiredReachesTheHostThroughAMergedList:
// elicitation spec 2025-11-25, "URL Elicitation Required Error": "When a
// request cannot be processed until an elicitation is completed, the
// server MAY return a URLElicitationRequiredError (code -32042)"; the
// error "MUST include a list of elicitations that are required to
// complete before the original can be retried". Nothing limits it to
// tools/call: a server that must be connected to a third party first
// (the spec's own example) may refuse tools/list with it.
//
// With one backend the host gets the -32042 and can open the URL. With
// several, aggregator.gather logs the failure and leaves the backend out
// of the merged list: the host gets the other backends' tools and no
// word that one backend is waiting for the user at a URL, so it never
// retries, and that backend's tools stay hidden. Either the error (ids
// tagged as elsewhere) or a URL-mode elicitation/create for it must
// reach the host.
func TestURLElicitationRequiredReachesTheHostThroughAMergedList(t *testing.T) {
	a := &scriptedServer{name: "a", caps: `{"tools":{}}`, handle: func(f *frame.Frame, write func(string, ...any)) {
		switch {
		case f.Method == "tools/list":
			write(`{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"echo","inputSchema":{"type":"object"}}]}}`, f.ID())
		case f.Kind == frame.Request:
			write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"method not found"}}`, f.ID())
		}
	}}
	bsrv := &scriptedServer{name: "b", caps: `{"tools":{}}`, handle: func(f *frame.Frame, write func(string, ...any)) {
		switch {
		case f.Method == "tools/list":
			write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32042,"message":"connect your account first","data":{"elicitations":[{"mode":"url","elicitationId":"conn-1","url":"https://b.example.com/connect?e=conn-1","message":"Connect your b.example.com account"}]}}}`, f.ID())
		case f.Kind == frame.Request:
			write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"method not found"}}`, f.ID())
		}
	}}
	w := bridgedScripted(t, Config{}, a, bsrv)
	w.Send(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"elicitation":{"form":{},"url":{}}},"clientInfo":{"name":"wire-host","version":"1"}}}`)
	w.Response("0")
	w.Send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	w.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	r := w.Response("1")
	time.Sleep(300 * time.Millisecond) // an elicitation/create of the bridge's, if any, comes with it
	told := strings.Contains(string(r.Error()), "-32042") ||
		w.Count(func(f *frame.Frame) bool {
			return f.Method == "elicitation/create" && strings.Contains(string(f.Params()), "https://b.example.com/connect")
		}) > 0
	if !told {
		t.Errorf("backend b refused tools/list with -32042 (a URL elicitation is required); the host got %s and nothing about b's URL", r.Raw())
	}
}

// TestHostTaskStatusStaysWithItsRequestor: tasks spec 2025-11-25:
// notifications/tasks/status goes from the receiver to the requestor,
// and task state is bound to the requestor ("MUST ensure the returned
// task list includes only tasks associated with the requestor's
// authorization context"); the README: "the host's
// notifications/tasks/status about it goes to it alone".
//
// Backend a has the host run its sampling request as task "h1". Then a's
// streamable-HTTP session is renewed (404): backendChanged →
// tasks.forget(a) drops the client-side owner of h1 too, though the host
// runs it on. The host's next notifications/tasks/status for h1 (its
// statusMessage may summarize a's sampling) is not dropped but sent to
// every backend: b, which never asked for it, gets it.
func TestHostTaskStatusStaysWithItsRequestor(t *testing.T) {
	srv := &r35TaskHTTP{answers: make(chan string, 4), sampled: make(chan struct{})}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	var mu sync.Mutex
	var bGot []string
	bsrv := &scriptedServer{name: "b", caps: `{"tools":{}}`, handle: func(f *frame.Frame, write func(string, ...any)) {
		switch {
		case f.Kind == frame.Notification:
			mu.Lock()
			bGot = append(bGot, string(f.Raw()))
			mu.Unlock()
		case f.Method == "tools/list":
			write(`{"jsonrpc":"2.0","id":%s,"result":{"tools":[]}}`, f.ID())
		case f.Kind == frame.Request:
			write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"method not found"}}`, f.ID())
		}
	}}
	cfg := Config{Backends: []config.Backend{
		{Name: "a", Kind: config.KindHTTP, URL: ts.URL},
		{Name: "b", Kind: config.KindStdio, Command: "in-process"},
	}}
	cfg.Open = func(ctx context.Context, be config.Backend, opts backends.Options) (backends.Session, error) {
		if be.Kind == config.KindHTTP {
			return backends.Open(ctx, be, opts)
		}
		return bsrv.serve(t), nil
	}
	w := bridgedWire(t, cfg)
	w.Send(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"sampling":{},"tasks":{"list":{},"cancel":{},"requests":{"sampling":{"createMessage":{}}}}},"clientInfo":{"name":"wire-host","version":"1"}}}`)
	w.Response("0")
	w.Send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	w.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a_ask","arguments":{}}}`)
	req := w.WaitFor("a's task-augmented sampling request", func(f *frame.Frame) bool { return f.Method == "sampling/createMessage" })
	w.Send(`{"jsonrpc":"2.0","id":` + string(req.ID()) + `,"result":{"task":` + taskJSON("h1", "working") + `}}`)
	if r := w.Response("1"); r.IsError() {
		t.Fatalf("a_ask: %s", r.Raw())
	}
	// a's session expires and is renewed on its next request.
	srv.mu.Lock()
	srv.expire = true
	srv.mu.Unlock()
	w.Send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"a_research","arguments":{},"task":{"ttl":60000}}}`)
	w.Response("2")
	w.WaitFor("list_changed after the renewal", func(f *frame.Frame) bool { return f.Method == "notifications/tools/list_changed" })

	w.Send(`{"jsonrpc":"2.0","method":"notifications/tasks/status","params":` + strings.Replace(taskJSON("h1", "completed"), `"status"`, `"statusMessage":"summary of a's private document","status"`, 1) + `}`)
	// A marker every backend gets, after it: b has seen what came before.
	w.Send(`{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}`)
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		seen := strings.Contains(strings.Join(bGot, "\n"), "roots/list_changed")
		mu.Unlock()
		if seen || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, n := range bGot {
		if strings.Contains(n, "notifications/tasks/status") {
			t.Errorf("backend b got the status of the host's task for backend a: %s", n)
		}
	}
}

// TestTasksCancelNotNarrowedByABackendThatRunsNoTasks: tasks spec
// 2025-11-25: "The set of capabilities in capabilities.tasks.requests is
// exhaustive. If a request type is not present, it does not support
// task-augmentation", and for task-augmented requests "the tasks/cancel
// request MUST be used instead of the notifications/cancelled
// notification": without tasks.cancel a host has no way at all to cancel
// a task.
//
// narrowTasks drops tasks.list and tasks.cancel from the merged
// capabilities when any backend that has a "tasks" member lacks them,
// whether or not it can run a task: b declares tasks without
// requests.tools.call (the only server-side request a task can wrap), so
// it never makes one, yet a's tasks lose tasks/cancel (and tasks/list).
func TestTasksCancelNotNarrowedByABackendThatRunsNoTasks(t *testing.T) {
	a := &scriptedServer{name: "a", caps: taskCaps, handle: func(f *frame.Frame, write func(string, ...any)) {
		if f.Kind == frame.Request {
			write(`{"jsonrpc":"2.0","id":%s,"result":{"tools":[]}}`, f.ID())
		}
	}}
	bsrv := &scriptedServer{name: "b", caps: `{"tools":{},"tasks":{"list":{}}}`, handle: func(f *frame.Frame, write func(string, ...any)) {
		if f.Kind == frame.Request {
			write(`{"jsonrpc":"2.0","id":%s,"result":{"tools":[]}}`, f.ID())
		}
	}}
	w := bridgedScripted(t, Config{}, a, bsrv)
	init := handshake(w.wire)
	var res struct {
		Capabilities struct {
			Tasks map[string]json.RawMessage `json:"tasks"`
		} `json:"capabilities"`
	}
	if err := json.Unmarshal(init.Result(), &res); err != nil || res.Capabilities.Tasks == nil {
		t.Fatalf("initialize: %s", init.Result())
	}
	if _, ok := res.Capabilities.Tasks["cancel"]; !ok {
		t.Errorf("merged tasks capability lost cancel because of b, which runs no tasks: %s", init.Result())
	}
}

// The whole path of the fix above: the bridge asks the host once (a second
// tools/list that b refuses the same way asks nothing more), the host's
// answer goes to no backend, and when b completes the elicitation the host
// hears list_changed and b's tools come with the next tools/list.
func TestURLElicitationRequiredByAListIsAskedOnceAndCompleted(t *testing.T) {
	a := &scriptedServer{name: "a", caps: `{"tools":{}}`, handle: func(f *frame.Frame, write func(string, ...any)) {
		if f.Method == "tools/list" {
			write(`{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"echo","inputSchema":{"type":"object"}}]}}`, f.ID())
		} else if f.Kind == frame.Request {
			write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"method not found"}}`, f.ID())
		}
	}}
	var mu sync.Mutex
	lists := 0
	var answers []string // what b got that answers a request
	bsrv := &scriptedServer{name: "b", caps: `{"tools":{"listChanged":true}}`, handle: func(f *frame.Frame, write func(string, ...any)) {
		switch {
		case f.Kind == frame.Response:
			mu.Lock()
			answers = append(answers, string(f.Raw()))
			mu.Unlock()
		case f.Method == "tools/list":
			mu.Lock()
			lists++
			n := lists
			mu.Unlock()
			if n <= 2 {
				write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32042,"message":"connect your account first","data":{"elicitations":[{"mode":"url","elicitationId":"conn-1","url":"https://b.example.com/connect?e=conn-1","message":"Connect your account"}]}}}`, f.ID())
				if n == 2 {
					// The user has been to the URL meanwhile.
					write(`{"jsonrpc":"2.0","method":"notifications/elicitation/complete","params":{"elicitationId":"conn-1"}}`)
				}
				return
			}
			write(`{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"lookup","inputSchema":{"type":"object"}}]}}`, f.ID())
		case f.Kind == frame.Request:
			write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"method not found"}}`, f.ID())
		}
	}}
	w := bridgedScripted(t, Config{}, a, bsrv)
	urlHostHandshake(w)
	w.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	if r := w.Response("1"); !strings.Contains(string(r.Result()), "a_echo") || strings.Contains(string(r.Result()), "b_lookup") {
		t.Fatalf("first tools/list: %s", r.Raw())
	}
	el := w.WaitFor("the bridge's URL elicitation", func(f *frame.Frame) bool { return f.Method == "elicitation/create" })
	for _, want := range []string{`"mode":"url"`, `"elicitationId":"b/conn-1"`, `"url":"https://b.example.com/connect?e=conn-1"`} {
		if !strings.Contains(string(el.Params()), want) {
			t.Errorf("the elicitation lacks %s: %s", want, el.Raw())
		}
	}
	w.Send(`{"jsonrpc":"2.0","id":` + string(el.ID()) + `,"result":{"action":"accept"}}`)
	w.Send(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
	w.Response("2")
	w.WaitFor("the completion, tagged", func(f *frame.Frame) bool {
		return f.Method == "notifications/elicitation/complete" && strings.Contains(string(f.Params()), `"b/conn-1"`)
	})
	w.WaitFor("list_changed after the completion", func(f *frame.Frame) bool { return f.Method == "notifications/tools/list_changed" })
	w.Send(`{"jsonrpc":"2.0","id":3,"method":"tools/list"}`)
	if r := w.Response("3"); !strings.Contains(string(r.Result()), "b_lookup") {
		t.Errorf("tools/list after the completion lacks b's tools: %s", r.Raw())
	}
	if n := w.Count(func(f *frame.Frame) bool { return f.Method == "elicitation/create" }); n != 1 {
		t.Errorf("the host was asked %d times for one elicitation, want once", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(answers) > 0 {
		t.Errorf("b got answers to requests it never sent: %q", answers)
	}
}

// From the 38th review (real npm servers merged): two memory servers both
// list memory://knowledge-graph; reads and subscriptions go to the first
// (README), yet the host was shown the URI twice, the second entry one it
// could never reach. The merged list now shows it once, the first
// backend's.
func TestShadowedResourceListedOnce(t *testing.T) {
	mk := func(name string) *scriptedServer {
		return &scriptedServer{name: name, caps: `{"resources":{}}`, handle: func(f *frame.Frame, write func(string, ...any)) {
			switch {
			case f.Method == "resources/list":
				write(`{"jsonrpc":"2.0","id":%s,"result":{"resources":[{"uri":"memory://knowledge-graph","name":"graph of %s"},{"uri":"memory://%s-only","name":"%s's own"}]}}`, f.ID(), name, name, name)
			case f.Method == "resources/read":
				write(`{"jsonrpc":"2.0","id":%s,"result":{"contents":[{"uri":"memory://knowledge-graph","text":"from %s"}]}}`, f.ID(), name)
			case f.Kind == frame.Request:
				write(`{"jsonrpc":"2.0","id":%s,"result":{}}`, f.ID())
			}
		}}
	}
	w := bridgedScripted(t, Config{}, mk("a"), mk("b"))
	handshake(w.wire)
	w.Send(`{"jsonrpc":"2.0","id":1,"method":"resources/list"}`)
	r := w.Response("1")
	res := string(r.Result())
	if n := strings.Count(res, `"memory://knowledge-graph"`); n != 1 {
		t.Errorf("the shared URI is listed %d times, want once: %s", n, res)
	}
	for _, want := range []string{"graph of a", "memory://a-only", "memory://b-only"} {
		if !strings.Contains(res, want) {
			t.Errorf("the merged list lacks %s: %s", want, res)
		}
	}
	w.Send(`{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"memory://knowledge-graph"}}`)
	if r := w.Response("2"); !strings.Contains(string(r.Result()), "from a") {
		t.Errorf("the shared URI is read from: %s", r.Raw())
	}
}

// urlHostHandshake initializes w as a host that takes URL-mode
// elicitation.
func urlHostHandshake(w *bridgedRun) {
	w.Send(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"elicitation":{"url":{}}},"clientInfo":{"name":"wire-host","version":"1"}}}`)
	w.Response("0")
	w.Send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
}
