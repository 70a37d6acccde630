package bridge

import (
	"context"
	"encoding/json"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/backends"
	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
)

// From the twenty-second review (a helper session's adversarial read of
// the day's diff): each test describes the bug it found, and failed before
// its fix.

// URL-mode elicitation ids are tagged NAME/id toward the host in
// elicitation/create, in notifications/elicitation/complete and in the
// data of a -32042 error answer (tagElicitationError), so that the host can
// match the completion to the elicitation it was shown. The -32042 tagging
// sits in backendResponse, on the forwarded path only: a resources/read of
// a URI no backend listed (a templated resource, typical of what needs a
// sign-in) is answered by aggregator.byURI through askWait and a.answer,
// which never tags. The host gets the backend's bare id in the error and
// "b/id" in the completion: it cannot tell the elicitation completed.
func TestURLElicitationRequiredOnUnlistedResourceRead(t *testing.T) {
	a := &scriptedServer{name: "a", caps: `{"tools":{}}`, handle: func(f *frame.Frame, write func(string, ...any)) {
		if f.Kind == frame.Request {
			write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"method not found"}}`, f.ID())
		}
	}}
	b := &scriptedServer{name: "b", caps: `{"resources":{}}`, handle: func(f *frame.Frame, write func(string, ...any)) {
		switch f.Method {
		case "resources/list":
			write(`{"jsonrpc":"2.0","id":%s,"result":{"resources":[]}}`, f.ID())
		case "resources/templates/list":
			write(`{"jsonrpc":"2.0","id":%s,"result":{"resourceTemplates":[{"uriTemplate":"secret://{x}","name":"s"}]}}`, f.ID())
		case "resources/read":
			write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32042,"message":"sign in first","data":{"elicitations":[{"mode":"url","elicitationId":"e1","url":"https://b.example.com/signin","message":"sign in"}]}}}`, f.ID())
			write(`{"jsonrpc":"2.0","method":"notifications/elicitation/complete","params":{"elicitationId":"e1"}}`)
		default:
			if f.Kind == frame.Request {
				write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"method not found"}}`, f.ID())
			}
		}
	}}
	w := bridgedScripted(t, Config{}, a, b)
	w.Send(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"elicitation":{"form":{},"url":{}}},"clientInfo":{"name":"wire-host","version":"1"}}}`)
	w.Response("0")
	w.Send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	w.Send(`{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"secret://42"}}`)
	r := w.Response("1")
	var e struct {
		Code int `json:"code"`
		Data struct {
			Elicitations []struct {
				ElicitationID string `json:"elicitationId"`
			} `json:"elicitations"`
		} `json:"data"`
	}
	if err := json.Unmarshal(r.Error(), &e); err != nil || e.Code != -32042 || len(e.Data.Elicitations) != 1 {
		t.Fatalf("resources/read: want b's -32042, got %s", r.Raw())
	}
	done := w.WaitFor("elicitation complete", func(f *frame.Frame) bool { return f.Method == "notifications/elicitation/complete" })
	var p struct {
		ElicitationID string `json:"elicitationId"`
	}
	_ = json.Unmarshal(done.Params(), &p)
	if got := e.Data.Elicitations[0].ElicitationID; got != p.ElicitationID {
		t.Errorf("the host got elicitationId %q in the -32042 answer and %q in its notifications/elicitation/complete: they never match (error: %s)", got, p.ElicitationID, strings.TrimSpace(string(r.Error())))
	}
}

// The same loss end to end (the backends package has the unit test,
// TestExitDrainKeepsOutputWhileTheRouterIsBusy): a stdio backend
// answers a tools/call after 3,000 log notifications and exits, as a
// one-shot server does. The host reads its stdout a second and a half
// late (it is busy; the bridge's writer to it, its queue and the
// backend's s.in fill up, so stream.readLoop waits on the router, not on
// the pipe). waitLoop closes the backend's stdout 0.5 s after the exit
// while the bridge still had the answer to read from it: the host gets
// -32603 "connection to the backend was lost" instead of the answer the
// backend wrote.
func TestSlowHostGetsTheLastAnswerOfAnExitingBackend(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the exit drain is Linux's")
	}
	script := `while IFS= read -r line; do
  id=$(printf '%s\n' "$line" | sed -n 's/^{"jsonrpc":"2.0","id":\([0-9][0-9]*\).*/\1/p')
  case "$line" in
    *'"method":"initialize"'*) printf '{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-11-25","capabilities":{"tools":{},"logging":{}},"serverInfo":{"name":"once","version":"1"}}}\n' "$id";;
    *'"method":"tools/call"'*)
      yes '{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"working working working working working working working"}}' | head -n 3000
      printf '{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"the-final-answer"}]}}\n' "$id"
      exit 0;;
  esac
done`
	cfg := Config{
		Backends: []config.Backend{{Name: "once", Kind: config.KindStdio, Command: "sh", Args: []string{"-c", script}}},
		Open:     backends.Open,
		Logger:   testLogger(t),
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { err := Run(ctx, cfg, inR, outW); outW.Close(); done <- err }()
	t.Cleanup(func() {
		cancel()
		inW.Close()
		go io.Copy(io.Discard, outR)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("the bridge did not stop")
		}
	})
	lr := frame.NewLineReader(outR, 0)
	readUntil := func(id string) *frame.Frame {
		for {
			line, err := lr.Next()
			if err != nil {
				t.Fatalf("host stdout ended before the answer to %s: %v", id, err)
			}
			f, err := frame.Parse(line)
			if err == nil && f.Kind == frame.Response && string(f.ID()) == id {
				return f
			}
		}
	}
	write := func(s string) {
		if _, err := io.WriteString(inW, s+"\n"); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"slow-host","version":"1"}}}`)
	readUntil("0")
	write(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	write(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"once","arguments":{}}}`)
	time.Sleep(1500 * time.Millisecond) // the host is busy
	got := make(chan *frame.Frame, 1)
	go func() { got <- readUntil("1") }()
	select {
	case r := <-got:
		if !strings.Contains(string(r.Result()), "the-final-answer") {
			t.Errorf("the backend answered and exited; the host, 1.5 s late to read, got: %.300s", r.Raw())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer to the call")
	}
}

// requestUp checked r.host.inputEnded and registered the upcall (addUp)
// under one hold of r.mu, so that failUpsAtEOF, which runs after
// inputEnded is set, answers every upcall the host will never answer.
// The new hostTaskRefusal check for a backend's tasks/get|result|cancel
// lets go of r.mu between the two: an upcall that passes the check after
// the host's input ended and failUpsAtEOF ran is registered and sent to a
// host that is gone. Nobody answers it: the backend's tool call waits on
// it, the bridge's drain waits on that call, and the idle --timeout is
// held for every call of the backend (a stdio upcall names no call)
// until --max-timeout.
//
// The interleaving is forced by holding the task table's lock (taken by
// hostTaskRefusal) while the host's input ends; in production it is the
// scheduler's.
func TestTaskUpcallRacingHostEOFIsAnswered(t *testing.T) {
	var mu sync.Mutex
	pollCall := ""
	srvA := &scriptedServer{name: "a", caps: `{"tools":{}}`, handle: func(f *frame.Frame, write func(string, ...any)) {
		id := string(f.ID())
		if f.Kind == frame.Response {
			if id == `"up-poll"` {
				mu.Lock()
				c := pollCall
				mu.Unlock()
				write(`{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"polled"}]}}`, c)
			}
			return
		}
		switch f.Method {
		case "tools/list":
			write(`{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"ask","inputSchema":{"type":"object"}},{"name":"poll","inputSchema":{"type":"object"}}]}}`, id)
		case "tools/call":
			switch tool, _ := f.String(f.Param("name")); tool {
			case "ask":
				write(`{"jsonrpc":"2.0","id":"up-ask","method":"sampling/createMessage","params":{"task":{"ttl":60000},"maxTokens":1,"messages":[]}}`)
				write(`{"jsonrpc":"2.0","id":%s,"result":{"content":[]}}`, id)
			case "poll":
				mu.Lock()
				pollCall = id
				mu.Unlock()
				write(`{"jsonrpc":"2.0","id":"up-poll","method":"tasks/get","params":{"taskId":"host-7"}}`)
			}
		default:
			if f.Kind == frame.Request {
				write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"method not found"}}`, id)
			}
		}
	}}
	srvB := &scriptedServer{name: "b", caps: `{"tools":{}}`, handle: func(f *frame.Frame, write func(string, ...any)) {
		if f.Kind == frame.Request {
			if f.Method == "tools/list" {
				write(`{"jsonrpc":"2.0","id":%s,"result":{"tools":[]}}`, f.ID())
				return
			}
			write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"method not found"}}`, f.ID())
		}
	}}
	by := map[string]*scriptedServer{"a": srvA, "b": srvB}
	cfg := Config{
		Backends: []config.Backend{
			{Name: "a", Kind: config.KindStdio, Command: "in-process"},
			{Name: "b", Kind: config.KindStdio, Command: "in-process"},
		},
		Open: func(ctx context.Context, be config.Backend, _ backends.Options) (backends.Session, error) {
			return by[be.Name].serve(t), nil
		},
		Logger:     testLogger(t),
		MaxTimeout: 6 * time.Second,
	}
	cfg.setDefaults()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	r := newRouter(cfg, outW)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { err := r.run(ctx, inR); outW.Close(); done <- err }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("the bridge did not stop")
		}
	})
	w := newWire(t, inW, outR)
	w.Send(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"sampling":{},"tasks":{"list":{},"cancel":{},"requests":{"sampling":{"createMessage":{}}}}},"clientInfo":{"name":"h","version":"1"}}}`)
	w.Response("0")
	w.Send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	w.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a_ask","arguments":{}}}`)
	up := w.WaitFor("a's sampling request", func(f *frame.Frame) bool { return f.Method == "sampling/createMessage" })
	w.Response("1")
	w.Send(`{"jsonrpc":"2.0","id":` + string(up.ID()) + `,"result":{"task":{"taskId":"host-7","status":"working","ttl":60000,"createdAt":"2026-11-29T00:00:00Z","lastUpdatedAt":"2026-11-29T00:00:00Z"}}}`)
	for i := 0; r.agg.tasks.owner(true, "host-7") == nil; i++ {
		if i > 200 {
			t.Fatal("the host's task for a was never learned")
		}
		time.Sleep(10 * time.Millisecond)
	}

	r.agg.tasks.mu.Lock() // hostTaskRefusal waits here, r.mu released
	w.Send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"a_poll","arguments":{}}}`)
	time.Sleep(300 * time.Millisecond) // a's tasks/get reached requestUp
	inW.Close()                        // the host's input ends
	for i := 0; ; i++ {
		r.mu.Lock()
		ended := r.host.inputEnded
		r.mu.Unlock()
		if ended {
			break
		}
		if i > 200 {
			r.agg.tasks.mu.Unlock()
			t.Fatal("the bridge did not see the end of the host's input")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // failUpsAtEOF has run
	r.agg.tasks.mu.Unlock()

	// Any upcall pending at EOF is answered "the host closed its input"
	// at once; the backend then answers its call and the bridge exits.
	start := time.Now()
	select {
	case <-done:
		done <- nil // for the cleanup
	case <-time.After(3 * time.Second):
	}
	r2 := w.WaitFor("the answer to a_poll", func(f *frame.Frame) bool { return f.Kind == frame.Response && string(f.ID()) == "2" })
	if el := time.Since(start); el > 2*time.Second || !strings.Contains(string(r2.Result()), "polled") {
		t.Errorf("a's tasks/get to the host, registered after the host's input ended, was never answered: the call waited %v for --max-timeout and got %.200s; tasks/get sent to the gone host: %v",
			el.Round(100*time.Millisecond), r2.Raw(), w.Count(func(f *frame.Frame) bool { return f.Method == "tasks/get" }) > 0)
	}
}
