package bridge

// MCP 2025-11-25 / 2025-06-18 protocol features through the bridge, mostly
// with several backends, from the twentieth review (a helper session that
// read the spec's schema against the router). Each test here failed before
// its fix; see the comment of each for the spec text it checks.

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/frame"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// completionServer is a go-sdk server with one listed resource
// (test://NAME/r), one template (tmpl://NAME/{x}) and a completion handler
// that says which server answered and for which reference.
func completionServer(name string) *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: name, Version: "1"}, &mcp.ServerOptions{
		CompletionHandler: func(ctx context.Context, req *mcp.CompleteRequest) (*mcp.CompleteResult, error) {
			return &mcp.CompleteResult{Completion: mcp.CompletionResultDetails{Values: []string{name + ":" + req.Params.Ref.URI + req.Params.Ref.Name}}}, nil
		},
	})
	srv.AddResource(&mcp.Resource{URI: "test://" + name + "/r", Name: "r"}, func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, Text: "content of " + name}}}, nil
	})
	srv.AddResourceTemplate(&mcp.ResourceTemplate{URITemplate: "tmpl://" + name + "/{x}", Name: "t"}, func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, Text: "templated of " + name}}}, nil
	})
	return srv
}

// TestCompletionRefResourceConcreteURI: schema 2025-11-25,
// ResourceTemplateReference.uri is "The URI or URI template of the
// resource". With several backends the bridge routes ref/resource only by
// exact equality with a listed template, so a host asking completions for a
// concrete resource URI that backend b listed (or that b's template
// produces) gets -32602 "no backend owns this reference", where the server
// itself answers. The template itself (control) is routed.
func TestCompletionRefResourceConcreteURI(t *testing.T) {
	// Direct: the go-sdk server answers a concrete URI.
	d := directWire(t, completionServer("b"))
	handshake(d)
	d.Send(`{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/resource","uri":"test://b/r"},"argument":{"name":"x","value":""}}}`)
	if r := d.Response("1"); r.IsError() {
		t.Fatalf("direct server refused a concrete URI reference: %s", r.Raw())
	}

	b := bridgedWire(t, Config{}, namedServer{"a", completionServer("a")}, namedServer{"b", completionServer("b")})
	handshake(b.wire)
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"resources/list"}`)
	b.Response("1")
	// Control: the template string itself is routed to b.
	b.Send(`{"jsonrpc":"2.0","id":2,"method":"completion/complete","params":{"ref":{"type":"ref/resource","uri":"tmpl://b/{x}"},"argument":{"name":"x","value":""}}}`)
	if r := b.Response("2"); !strings.Contains(string(r.Result()), `"b:tmpl://b/{x}"`) {
		t.Fatalf("template reference not routed to b: %s", r.Raw())
	}
	for i, uri := range []string{"test://b/r", "tmpl://b/42"} {
		id := fmt.Sprint(10 + i)
		b.Send(`{"jsonrpc":"2.0","id":` + id + `,"method":"completion/complete","params":{"ref":{"type":"ref/resource","uri":"` + uri + `"},"argument":{"name":"x","value":""},"context":{"arguments":{"y":"1"}}}}`)
		r := b.Response(id)
		if !strings.Contains(string(r.Result()), `"b:`+uri+`"`) {
			t.Errorf("completion/complete with ref/resource uri %q (b's resource) not routed to b: %s", uri, r.Raw())
		}
	}
}

// specTaskServer is a scripted 2025-11-25 task server. caps is its
// capabilities object; its tool "research" makes a task "NAME-N"
// (answer padded with pad bytes of _meta when pad > 0) and reports
// progress on the call's token after the CreateTaskResult; tasks/get
// answers "working", tasks/cancel "cancelled"; tasks/list (if asked) lists
// every task in one page and refuses a cursor it never issued with -32602.
func specTaskServer(name, caps string, pad int) *scriptedServer {
	n := 0
	task := func(id, status string) string {
		return fmt.Sprintf(`{"taskId":%q,"status":%q,"ttl":60000,"createdAt":"2026-11-29T00:00:00Z","lastUpdatedAt":"2026-11-29T00:00:00Z","servedBy":%q}`, id, status, name)
	}
	return &scriptedServer{name: name, caps: caps, handle: func(f *frame.Frame, write func(string, ...any)) {
		id := string(f.ID())
		taskID, _ := f.String(f.Param("taskId"))
		switch f.Method {
		case "tools/list":
			write(`{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"research","inputSchema":{"type":"object"},"execution":{"taskSupport":"optional"}}]}}`, id)
		case "tools/call":
			n++
			tid := fmt.Sprintf("%s-%d", name, n)
			meta := ""
			if pad > 0 {
				meta = fmt.Sprintf(`,"_meta":{"io.modelcontextprotocol/model-immediate-response":%q}`, strings.Repeat("r", pad))
			}
			write(`{"jsonrpc":"2.0","id":%s,"result":{"task":%s%s}}`, id, task(tid, "working"), meta)
			if tok := f.Param("_meta", "progressToken"); tok.Ok() {
				write(`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":%s,"progress":1,"total":2,"message":"halfway"}}`, f.Bytes(tok))
			}
		case "tasks/get", "tasks/cancel":
			status := map[string]string{"tasks/get": "working", "tasks/cancel": "cancelled"}[f.Method]
			write(`{"jsonrpc":"2.0","id":%s,"result":%s}`, id, task(taskID, status))
		case "tasks/list":
			if f.Param("cursor").Ok() {
				write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32602,"message":"invalid cursor"}}`, id)
				return
			}
			var items []string
			for i := 1; i <= n; i++ {
				items = append(items, task(fmt.Sprintf("%s-%d", name, i), "working"))
			}
			write(`{"jsonrpc":"2.0","id":%s,"result":{"tasks":[%s]}}`, id, strings.Join(items, ","))
		default:
			if f.Kind == frame.Request {
				write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"method not found"}}`, id)
			}
		}
	}}
}

const (
	fullTasksCaps   = `{"tools":{},"tasks":{"list":{},"cancel":{},"requests":{"tools":{"call":{}}}}}`
	noListTasksCaps = `{"tools":{},"tasks":{"requests":{"tools":{"call":{}}}}}`
)

// TestTasksListUnknownCursorRefused: tasks spec 2025-11-25, Error
// Handling: "Receivers MUST return standard JSON-RPC errors for the
// following protocol error cases: ... Invalid or nonexistent cursor in
// tasks/list: -32602 (Invalid params)". With several backends the bridge is
// the receiver of tasks/list; it never issues a cursor, so any cursor is
// nonexistent, yet it answers with the whole list. Each backend alone
// refuses the same cursor with -32602.
func TestTasksListUnknownCursorRefused(t *testing.T) {
	b := bridgedScripted(t, Config{}, specTaskServer("a", fullTasksCaps, 0), specTaskServer("b", fullTasksCaps, 0))
	handshake(b.wire)
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"tasks/list","params":{"cursor":"no-such-cursor"}}`)
	r := b.Response("1")
	if !strings.Contains(string(r.Error()), "-32602") {
		t.Errorf("tasks/list with a cursor the bridge never issued: want -32602, got %s", r.Raw())
	}
}

// TestMergedTasksListAndCancelOnlyWhenEveryBackendHasThem: backend a
// declares tasks.list and tasks.cancel, b runs tasks without them. The
// merged capabilities offered both (a union), so b's task, retrievable
// with tasks/get, was missing from the merged tasks/list (tasks spec
// 2025-11-25: "If a task is retrievable via tasks/get for a requestor, it
// MUST be retrievable via tasks/list"), and tasks/cancel of it got b's
// -32601 from a bridge that declared tasks.cancel (twentieth review). Now
// the bridge offers each only if every backend that runs tasks has it;
// what every backend has stays offered.
func TestMergedTasksListAndCancelOnlyWhenEveryBackendHasThem(t *testing.T) {
	tasksCaps := func(init *frame.Frame) map[string]json.RawMessage {
		var res struct {
			Capabilities struct {
				Tasks map[string]json.RawMessage `json:"tasks"`
			} `json:"capabilities"`
		}
		if err := json.Unmarshal(init.Result(), &res); err != nil || res.Capabilities.Tasks == nil {
			t.Fatalf("initialize: no tasks capability: %s", init.Raw())
		}
		return res.Capabilities.Tasks
	}
	noList := `{"tools":{},"tasks":{"cancel":{},"requests":{"tools":{"call":{}}}}}`
	noCancel := `{"tools":{},"tasks":{"list":{},"requests":{"tools":{"call":{}}}}}`
	for _, tc := range []struct {
		name, bCaps string
		want, not   []string
	}{
		{"b without list", noList, []string{"cancel", "requests"}, []string{"list"}},
		{"b without cancel", noCancel, []string{"list", "requests"}, []string{"cancel"}},
		{"both with both", fullTasksCaps, []string{"list", "cancel", "requests"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := bridgedScripted(t, Config{}, specTaskServer("a", fullTasksCaps, 0), specTaskServer("b", tc.bCaps, 0))
			caps := tasksCaps(handshake(b.wire))
			for _, k := range tc.want {
				if caps[k] == nil {
					t.Errorf("tasks.%s missing from the merged capabilities: %v", k, caps)
				}
			}
			for _, k := range tc.not {
				if caps[k] != nil {
					t.Errorf("tasks.%s offered though backend b lacks it: %v", k, caps)
				}
			}
		})
	}
}

// TestLargeCreateTaskResultKeepsItsTask: a CreateTaskResult over 4 KiB
// (here a _meta "io.modelcontextprotocol/model-immediate-response" string
// of 5,000 bytes, which the tasks spec suggests for a host to pass to the
// model) is not looked at (createdTask, taskResultMax). Tasks spec
// 2025-11-25: "The progressToken provided in the initial request remains
// valid throughout the task lifetime": the task's progress after the
// CreateTaskResult is dropped, with one backend as with two; and with two,
// a backend that does not list tasks has its task answered "unknown task"
// (-32602) by tasks/get, though it exists.
func TestLargeCreateTaskResultKeepsItsTask(t *testing.T) {
	// pad 0 is the control: the same exchange with a small answer passes.
	for _, pad := range []int{0, 5000} {
		for _, n := range []int{1, 2} {
			t.Run(fmt.Sprintf("pad-%d/%d-backends-progress", pad, n), func(t *testing.T) {
				srvs := []*scriptedServer{specTaskServer("a", fullTasksCaps, pad)}
				tool := "research"
				if n == 2 {
					srvs = append(srvs, specTaskServer("b", fullTasksCaps, pad))
					tool = "a_research"
				}
				b := bridgedScripted(t, Config{}, srvs...)
				handshake(b.wire)
				b.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + tool + `","arguments":{},"task":{"ttl":60000},"_meta":{"progressToken":"host-tok"}}}`)
				if r := b.Response("1"); !strings.Contains(string(r.Result()), `"taskId":"a-1"`) {
					t.Fatalf("tools/call: %s", r.Raw())
				}
				// A later answer from the same backend: the progress, written
				// before it, has been handled by then.
				b.Send(`{"jsonrpc":"2.0","id":2,"method":"tasks/get","params":{"taskId":"a-1"}}`)
				b.Response("2")
				got := b.Count(func(f *frame.Frame) bool {
					return f.Method == "notifications/progress" && strings.Contains(string(f.Params()), `"host-tok"`)
				})
				if got != 1 {
					t.Errorf("host got %d progress notifications for its task, want 1", got)
				}
			})
		}
		t.Run(fmt.Sprintf("pad-%d/2-backends-tasks-get", pad), func(t *testing.T) {
			b := bridgedScripted(t, Config{}, specTaskServer("a", noListTasksCaps, pad), specTaskServer("b", noListTasksCaps, pad))
			handshake(b.wire)
			b.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"b_research","arguments":{},"task":{"ttl":60000}}}`)
			if r := b.Response("1"); !strings.Contains(string(r.Result()), `"taskId":"b-1"`) {
				t.Fatalf("tools/call: %s", r.Raw())
			}
			b.Send(`{"jsonrpc":"2.0","id":2,"method":"tasks/get","params":{"taskId":"b-1"}}`)
			if r := b.Response("2"); !strings.Contains(string(r.Result()), `"servedBy":"b"`) {
				t.Errorf("tasks/get of the task b just created: %s", r.Raw())
			}
		})
	}
}

// urlElicitServer is a go-sdk server whose tool "connect" asks the host
// for a URL-mode elicitation with a fixed elicitationId (unique on that
// server), then says it completed.
func urlElicitServer(name string) *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: name, Version: "1"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "connect"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
		res, err := req.Session.Elicit(ctx, &mcp.ElicitParams{Mode: "url", Message: "connect " + name, URL: "https://" + name + ".example.com/connect", ElicitationID: "elicit-1"})
		if err != nil {
			return nil, nil, err
		}
		if err := req.Session.NotifyElicitationComplete(ctx, &mcp.ElicitationCompleteParams{ElicitationID: "elicit-1"}); err != nil {
			return nil, nil, err
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: res.Action}}}, nil, nil
	})
	return srv
}

// TestURLElicitationIDsKeptApartAcrossBackends: schema 2025-11-25,
// ElicitRequestURLParams.elicitationId: "The ID of the elicitation, which
// must be unique within the context of the server"; elicitation spec:
// clients "MUST ignore notifications referencing unknown or
// already-completed IDs". With several backends the host sees one server,
// but each backend's ids pass unchanged: two backends that each use a
// fresh id of their own give the host two elicitations with one id, and
// a's notifications/elicitation/complete cannot be told from b's (the host
// ignores the second as already completed).
func TestURLElicitationIDsKeptApartAcrossBackends(t *testing.T) {
	b := bridgedWire(t, Config{}, namedServer{"a", urlElicitServer("a")}, namedServer{"b", urlElicitServer("b")})
	b.Send(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"elicitation":{"form":{},"url":{}}},"clientInfo":{"name":"wire-host","version":"1"}}}`)
	b.Response("0")
	b.Send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	ids := map[string]string{} // elicitationId seen by the host → backend whose URL it carries
	for i, tool := range []string{"a_connect", "b_connect"} {
		b.Send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":%q,"arguments":{}}}`, i+1, tool))
		from := tool[:1]
		req := b.WaitFor("elicitation of "+from, func(f *frame.Frame) bool {
			return f.Method == "elicitation/create" && strings.Contains(string(f.Params()), "https://"+from+".")
		})
		var p struct {
			Mode          string `json:"mode"`
			ElicitationID string `json:"elicitationId"`
		}
		_ = json.Unmarshal(req.Params(), &p)
		if p.Mode != "url" {
			t.Fatalf("elicitation/create: %s", req.Raw())
		}
		if other, dup := ids[p.ElicitationID]; dup {
			t.Errorf("the host got elicitationId %q from %s and again from %s: not unique within the (one) server it talks to", p.ElicitationID, other, from)
		}
		ids[p.ElicitationID] = from
		b.Send(`{"jsonrpc":"2.0","id":` + string(req.ID()) + `,"result":{"action":"accept"}}`)
		b.Response(fmt.Sprint(i + 1))
	}
}

// TestMergedListUnknownCursorRefused (a SHOULD, not a MUST): pagination
// spec 2025-11-25, Error Handling: "Invalid cursors SHOULD result in an
// error with code -32602 (Invalid params)." The merged tools/list (the
// bridge never issues a cursor) answers a cursor it never gave with the
// whole list again, so a host that loops on pages it was given elsewhere
// sees every tool twice.
func TestMergedListUnknownCursorRefused(t *testing.T) {
	b := bridgedWire(t, Config{}, namedServer{"a", testServer("a")}, namedServer{"b", testServer("b")})
	handshake(b.wire)
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":"no-such-cursor"}}`)
	if r := b.Response("1"); !strings.Contains(string(r.Error()), "-32602") {
		t.Errorf("tools/list with a cursor the bridge never issued: want -32602, got %.200s", r.Raw())
	}
}

// TestBackendCannotReachAnotherBackendsHostTask: the host runs task
// "host-7" for backend a's task-augmented sampling request (the bridge
// records it as a's: aggregator.tasks.client). Tasks spec 2025-11-25,
// Security Considerations: "receivers MUST reject tasks/get, tasks/result,
// and tasks/cancel requests for tasks that do not belong to the same
// authorization context as the requestor." The host sees one requestor
// (the bridge) and cannot tell a from b; the bridge, which can, relayed
// backend b's tasks/cancel of a's task to the host (twentieth review). Now
// b gets -32602 "unknown task", a still reaches its own task, and the
// host's answer to b's tasks/list keeps only b's tasks.
func TestBackendCannotReachAnotherBackendsHostTask(t *testing.T) {
	var mu sync.Mutex
	answers := map[string]string{} // backend/request id → the answer it got
	srv := func(name string) *scriptedServer {
		return &scriptedServer{name: name, caps: `{"tools":{}}`, handle: func(f *frame.Frame, write func(string, ...any)) {
			id := string(f.ID())
			if f.Kind == frame.Response {
				mu.Lock()
				answers[name+"/"+id] = string(f.Raw())
				mu.Unlock()
				return
			}
			switch f.Method {
			case "tools/list":
				write(`{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"ask","inputSchema":{"type":"object"}},{"name":"meddle","inputSchema":{"type":"object"}},{"name":"mine","inputSchema":{"type":"object"}},{"name":"listall","inputSchema":{"type":"object"}}]}}`, id)
			case "tools/call":
				switch tool, _ := f.String(f.Param("name")); tool {
				case "ask":
					write(`{"jsonrpc":"2.0","id":"up-1","method":"sampling/createMessage","params":{"task":{"ttl":60000},"maxTokens":1,"messages":[]}}`)
				case "meddle":
					write(`{"jsonrpc":"2.0","id":"up-2","method":"tasks/cancel","params":{"taskId":"host-7"}}`)
				case "mine":
					write(`{"jsonrpc":"2.0","id":"up-3","method":"tasks/get","params":{"taskId":"host-7"}}`)
				case "listall":
					write(`{"jsonrpc":"2.0","id":"up-4","method":"tasks/list","params":{}}`)
				}
				write(`{"jsonrpc":"2.0","id":%s,"result":{"content":[]}}`, id)
			default:
				if f.Kind == frame.Request {
					write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"method not found"}}`, id)
				}
			}
		}}
	}
	answer := func(key string) string {
		for range 300 {
			mu.Lock()
			a, ok := answers[key]
			mu.Unlock()
			if ok {
				return a
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("backend request %s never answered", key)
		return ""
	}
	host7 := `{"taskId":"host-7","status":"working","ttl":60000,"createdAt":"2026-11-29T00:00:00Z","lastUpdatedAt":"2026-11-29T00:00:00Z"}`
	b := bridgedScripted(t, Config{}, srv("a"), srv("b"))
	b.Send(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"sampling":{},"tasks":{"list":{},"cancel":{},"requests":{"sampling":{"createMessage":{}}}}},"clientInfo":{"name":"h","version":"1"}}}`)
	b.Response("0")
	b.Send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a_ask","arguments":{}}}`)
	up := b.WaitFor("a's sampling request", func(f *frame.Frame) bool { return f.Method == "sampling/createMessage" })
	b.Response("1")
	b.Send(`{"jsonrpc":"2.0","id":` + string(up.ID()) + `,"result":{"task":` + host7 + `}}`)
	answer(`a/"up-1"`)

	b.Send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"b_meddle","arguments":{}}}`)
	b.Response("2")
	if got := answer(`b/"up-2"`); !strings.Contains(got, "-32602") {
		t.Errorf("b's tasks/cancel of a's host task: %s", got)
	}
	if n := b.Count(func(f *frame.Frame) bool { return f.Method == "tasks/cancel" }); n != 0 {
		t.Errorf("backend b's tasks/cancel of host-7, the host's task for backend a, reached the host:\n%s", b.Dump())
	}

	// a reaches its own task.
	b.Send(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"a_mine","arguments":{}}}`)
	get := b.WaitFor("a's tasks/get", func(f *frame.Frame) bool { return f.Method == "tasks/get" })
	b.Response("3")
	b.Send(`{"jsonrpc":"2.0","id":` + string(get.ID()) + `,"result":` + host7 + `}`)
	if got := answer(`a/"up-3"`); !strings.Contains(got, `"host-7"`) {
		t.Errorf("a's tasks/get of its own host task: %s", got)
	}

	// b lists the host's tasks: a's is not among them.
	b.Send(`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"b_listall","arguments":{}}}`)
	list := b.WaitFor("b's tasks/list", func(f *frame.Frame) bool { return f.Method == "tasks/list" })
	b.Response("4")
	b.Send(`{"jsonrpc":"2.0","id":` + string(list.ID()) + `,"result":{"tasks":[` + host7 + `]}}`)
	if got := answer(`b/"up-4"`); strings.Contains(got, "host-7") || !strings.Contains(got, `"tasks":[]`) {
		t.Errorf("b's tasks/list shows the host's task for a: %s", got)
	}
}

// The Python SDK's server turns any exception into an error of code 0, and
// FastMCP answers an unknown URI with "Unknown resource: URI": a read of a
// URI nobody listed stopped at the first Python backend instead of trying
// the next (twentieth review, a suspicion; the code is from its server).
func TestPythonSDKUnknownResourceIsNotFound(t *testing.T) {
	for _, tc := range []struct {
		code int
		msg  string
		want bool
	}{
		{0, "Unknown resource: x://y", true},
		{0, "Resource not found: x://y", true},
		{0, "[Errno 2] No such file: not found", false},
		{0, "database is down", false},
		{frame.CodeNotFound, "anything", true},
		{frame.CodeInternalError, "Unknown resource: x://y", false},
	} {
		f := frame.NewError([]byte("1"), frame.ErrorObject{Code: tc.code, Message: tc.msg})
		if got := resourceNotFound(f, "x://y"); got != tc.want {
			t.Errorf("code %d %q: not found %v, want %v", tc.code, tc.msg, got, tc.want)
		}
	}
}
