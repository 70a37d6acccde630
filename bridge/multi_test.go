package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/backends"
	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
)

func toolNames(t *testing.T, f *frame.Frame) []string {
	t.Helper()
	var res struct {
		Tools []struct {
			Name string `json:"name"`
		} `json:"tools"`
	}
	if err := json.Unmarshal(f.Result(), &res); err != nil {
		t.Fatalf("tools/list: %v: %s", err, f.Raw())
	}
	var names []string
	for _, tl := range res.Tools {
		names = append(names, tl.Name)
	}
	return names
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestTwoBackendsAsOneServer(t *testing.T) {
	b := bridgedWire(t, Config{}, namedServer{"a", testServer("a")}, namedServer{"b", testServer("b")})
	init := handshake(b.wire)
	if !strings.Contains(string(init.Result()), `"mcpbridge"`) || !strings.Contains(string(init.Result()), "## a") {
		t.Errorf("initialize: want the bridge's serverInfo and labelled instructions: %s", init.Raw())
	}

	b.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	names := toolNames(t, b.Response("1"))
	for _, want := range []string{"a_echo", "b_echo", "a_whoami", "b_whoami"} {
		if !contains(names, want) {
			t.Errorf("tools/list lacks %s: %v", want, names)
		}
	}
	b.Send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"a_whoami","arguments":{}}}`)
	b.Send(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"b_whoami","arguments":{}}}`)
	if r := b.Response("2"); !strings.Contains(string(r.Result()), `"text":"a"`) {
		t.Errorf("a_whoami routed wrong: %s", r.Raw())
	}
	if r := b.Response("3"); !strings.Contains(string(r.Result()), `"text":"b"`) {
		t.Errorf("b_whoami routed wrong: %s", r.Raw())
	}
	b.Send(`{"jsonrpc":"2.0","id":4,"method":"prompts/get","params":{"name":"b_greet"}}`)
	if r := b.Response("4"); !strings.Contains(string(r.Result()), "hello from b") {
		t.Errorf("b_greet: %s", r.Raw())
	}
	b.Send(`{"jsonrpc":"2.0","id":5,"method":"resources/read","params":{"uri":"test://b/r"}}`)
	if r := b.Response("5"); !strings.Contains(string(r.Result()), "content of b") {
		t.Errorf("resource of b: %s", r.Raw())
	}
	b.Send(`{"jsonrpc":"2.0","id":6,"method":"resources/read","params":{"uri":"test://shared"}}`)
	if r := b.Response("6"); !strings.Contains(string(r.Result()), "shared from a") {
		t.Errorf("a URI both serve goes to the first declared: %s", r.Raw())
	}
	b.Send(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{}}}`)
	if r := b.Response("7"); !strings.Contains(string(r.Error()), "-32602") {
		t.Errorf("unprefixed name with two backends: %s", r.Raw())
	}
	b.Send(`{"jsonrpc":"2.0","id":8,"method":"logging/setLevel","params":{"level":"info"}}`)
	b.Response("8")
	b.Send(`{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"b_log","arguments":{}}}`)
	b.Response("9")
	b.WaitFor("log tagged with its backend", func(f *frame.Frame) bool {
		return f.Method == "notifications/message" && strings.Contains(string(f.Params()), `"logger":"b/core"`)
	})
}

// TestConcurrentServerRequestsDoNotCross has both backends ask the host to
// sample at once, and report progress at once.
func TestConcurrentServerRequestsDoNotCross(t *testing.T) {
	b := bridgedWire(t, Config{}, namedServer{"a", testServer("a")}, namedServer{"b", testServer("b")})
	handshake(b.wire)
	b.Send(`{"jsonrpc":"2.0","id":"sa","method":"tools/call","params":{"name":"a_sample","arguments":{}}}`)
	b.Send(`{"jsonrpc":"2.0","id":"sb","method":"tools/call","params":{"name":"b_sample","arguments":{}}}`)
	seen := map[string]bool{}
	for range 2 {
		req := b.WaitFor("sampling request", func(f *frame.Frame) bool {
			return f.Method == "sampling/createMessage" && !seen[string(f.ID())]
		})
		seen[string(req.ID())] = true
		from := "a"
		if strings.Contains(string(req.Params()), "from b") {
			from = "b"
		}
		b.Send(`{"jsonrpc":"2.0","id":` + string(req.ID()) + `,"result":{"role":"assistant","model":"m","content":{"type":"text","text":"answer for ` + from + `"}}}`)
	}
	if r := b.Response(`"sa"`); !strings.Contains(string(r.Result()), "answer for a") {
		t.Errorf("a got the wrong sample: %s", r.Raw())
	}
	if r := b.Response(`"sb"`); !strings.Contains(string(r.Result()), "answer for b") {
		t.Errorf("b got the wrong sample: %s", r.Raw())
	}

	b.Send(`{"jsonrpc":"2.0","id":"pa","method":"tools/call","params":{"name":"a_progress","arguments":{"steps":5},"_meta":{"progressToken":"ta"}}}`)
	b.Send(`{"jsonrpc":"2.0","id":"pb","method":"tools/call","params":{"name":"b_progress","arguments":{"steps":5},"_meta":{"progressToken":"tb"}}}`)
	b.Response(`"pa"`)
	b.Response(`"pb"`)
	for _, c := range []struct{ tok, from string }{{`"ta"`, `"message":"a"`}, {`"tb"`, `"message":"b"`}} {
		right := b.Count(func(f *frame.Frame) bool {
			return f.Method == "notifications/progress" && string(f.Bytes(f.Param("progressToken"))) == c.tok && strings.Contains(string(f.Params()), c.from)
		})
		all := b.Count(func(f *frame.Frame) bool {
			return f.Method == "notifications/progress" && string(f.Bytes(f.Param("progressToken"))) == c.tok
		})
		if right != 5 || all != 5 {
			t.Errorf("token %s: %d notifications, %d from the right backend; want 5 and 5", c.tok, all, right)
		}
	}
}

func TestFiltersHideAndRefuse(t *testing.T) {
	run := bridgedWireWith(t, func(bs []config.Backend) {
		bs[0].Deny = []string{"ech*"}
		bs[1].Allow = []string{"whoami"}
	}, namedServer{"a", testServer("a")}, namedServer{"b", testServer("b")})
	handshake(run.wire)
	run.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	names := toolNames(t, run.Response("1"))
	if contains(names, "a_echo") || contains(names, "b_echo") || !contains(names, "a_whoami") || !contains(names, "b_whoami") || contains(names, "b_log") {
		t.Errorf("filtered list: %v", names)
	}
	run.Send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"a_echo","arguments":{"text":"x"}}}`)
	if r := run.Response("2"); !strings.Contains(string(r.Error()), "-32602") || !strings.Contains(string(r.Error()), "filters") {
		t.Errorf("calling a filtered tool: %s", r.Raw())
	}
}

// bridgedWireWith is bridgedWire with a hook on the backend configs.
func bridgedWireWith(t *testing.T, edit func([]config.Backend), servers ...namedServer) *bridgedRun {
	var bs []config.Backend
	for _, s := range servers {
		bs = append(bs, config.Backend{Name: s.name, Kind: config.KindStdio, Command: "in-process"})
	}
	edit(bs)
	byName := map[string]namedServer{}
	for _, s := range servers {
		byName[s.name] = s
	}
	cfg := Config{Backends: bs, Open: func(ctx context.Context, b config.Backend, _ backends.Options) (backends.Session, error) {
		return serve(t, b.Name, byName[b.Name].srv), nil
	}}
	return bridgedWire(t, cfg)
}

func TestOneBackendDownOthersServe(t *testing.T) {
	cfg := Config{Backends: []config.Backend{
		{Name: "a", Kind: config.KindStdio, Command: "in-process"},
		{Name: "broken", Kind: config.KindStdio, Command: "in-process"},
	}}
	srvA := testServer("a")
	cfg.Open = func(ctx context.Context, b config.Backend, _ backends.Options) (backends.Session, error) {
		if b.Name == "broken" {
			return nil, errors.New("backend \"broken\": command \"nope\" not found in PATH=\"/nowhere\"")
		}
		return serve(t, b.Name, srvA), nil
	}
	b := bridgedWire(t, cfg)
	init := handshake(b.wire)
	if init.IsError() {
		t.Fatalf("initialize failed with one backend up: %s", init.Raw())
	}
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a_echo","arguments":{"text":"still here"}}}`)
	if r := b.Response("1"); !strings.Contains(string(r.Result()), "still here") {
		t.Errorf("a after broken failed: %s", r.Raw())
	}
}

func TestOnlyBackendFailsInitialize(t *testing.T) {
	cfg := Config{
		Backends: []config.Backend{{Name: "solo", Kind: config.KindStdio, Command: "in-process"}},
		Open: func(ctx context.Context, b config.Backend, _ backends.Options) (backends.Session, error) {
			return nil, errors.New(`backend "solo": command "nope" not found in PATH="/nowhere"`)
		},
	}
	b := bridgedWire(t, cfg)
	b.Send(initLine)
	r := b.Response("0")
	var e frame.ErrorObject
	_ = json.Unmarshal(r.Error(), &e)
	if e.Code != frame.CodeInternalError || !strings.Contains(e.Message, "solo") || !strings.Contains(e.Message, "not found") {
		t.Errorf("initialize error: %s", r.Raw())
	}
	select {
	case err := <-b.done:
		b.done <- err
		if !errors.Is(err, ErrBackendsFailed) {
			t.Errorf("Run = %v, want ErrBackendsFailed", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Run did not end after its only backend failed")
	}
}

// TestSlowBackendJoinsLate: a backend slower than the init timeout does not
// hold up the host's initialize; when it comes up the host gets
// list_changed and its tools appear (issue #4).
func TestSlowBackendJoinsLate(t *testing.T) {
	release := make(chan struct{})
	srvA, srvB := testServer("a"), testServer("slow")
	cfg := Config{
		InitTimeout: 300 * time.Millisecond,
		Backends: []config.Backend{
			{Name: "a", Kind: config.KindStdio, Command: "in-process"},
			{Name: "slow", Kind: config.KindStdio, Command: "in-process"},
		},
		Open: func(ctx context.Context, b config.Backend, _ backends.Options) (backends.Session, error) {
			if b.Name == "slow" {
				<-release
				return serve(t, b.Name, srvB), nil
			}
			return serve(t, b.Name, srvA), nil
		},
	}
	b := bridgedWire(t, cfg)
	if init := handshake(b.wire); init.IsError() {
		t.Fatalf("initialize waited for the slow backend and failed: %s", init.Raw())
	}
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"slow_whoami","arguments":{}}}`)
	if r := b.Response("1"); !r.IsError() {
		t.Fatalf("slow backend answered before it was up: %s", r.Raw())
	}
	close(release)
	b.WaitFor("tools/list_changed", func(f *frame.Frame) bool { return f.Method == "notifications/tools/list_changed" })
	b.Send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"slow_whoami","arguments":{}}}`)
	if r := b.Response("2"); !strings.Contains(string(r.Result()), `"text":"slow"`) {
		t.Errorf("slow backend after joining: %s", r.Raw())
	}
}
