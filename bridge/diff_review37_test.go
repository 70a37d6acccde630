package bridge

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/backends"
	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
)

// Thirty-seventh review: an adversarial read of the day's diff (0411b4e..12637e0); each test failed before its fix.

// r37WaitResponse polls the wire for the response with raw id for at
// most d, returning nil if none came.
func r37WaitResponse(w *bridgedRun, id string, d time.Duration) *frame.Frame {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		var got *frame.Frame
		w.Count(func(f *frame.Frame) bool {
			if f.Kind == frame.Response && string(f.ID()) == id {
				got = f
			}
			return false
		})
		if got != nil {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// The bridge's own URL elicitation (askURLs) is registered as an upcall of
// backend b with no call (upcall.call nil). startTimer's idle callback
// treats an upcall without a call as "the backend waits on the host for
// all its calls" (waitsOnHost), so while the host leaves the bridge's URL
// elicitation open (the user has not been to the URL: that can be hours),
// no call of b ever times out for idleness: only --max-timeout (an hour
// by default) ends a hung tools/call. b never asked anything of the host;
// nothing of b's waits on that answer.
func TestOwnURLElicitationHoldsNoCallTimeout(t *testing.T) {
	a := &scriptedServer{name: "a", caps: `{"tools":{}}`, handle: func(f *frame.Frame, write func(string, ...any)) {
		if f.Method == "tools/list" {
			write(`{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"echo","inputSchema":{"type":"object"}}]}}`, f.ID())
		} else if f.Kind == frame.Request {
			write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"method not found"}}`, f.ID())
		}
	}}
	bsrv := &scriptedServer{name: "b", caps: `{"tools":{},"prompts":{}}`, handle: func(f *frame.Frame, write func(string, ...any)) {
		switch {
		case f.Method == "tools/list":
			write(`{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"hang","inputSchema":{"type":"object"}}]}}`, f.ID())
		case f.Method == "prompts/list":
			write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32042,"message":"connect your account first","data":{"elicitations":[{"mode":"url","elicitationId":"conn-1","url":"https://b.example.com/connect","message":"Connect"}]}}}`, f.ID())
		case f.Method == "tools/call":
			// hangs: never answered
		case f.Kind == frame.Request:
			write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"method not found"}}`, f.ID())
		}
	}}
	const idle = 300 * time.Millisecond
	w := bridgedScripted(t, Config{Timeout: idle}, a, bsrv)
	urlHostHandshake(w)
	w.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	w.Response("1")

	// Control: with nothing pending at the host, b's hung call times out.
	w.Send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"b_hang","arguments":{}}}`)
	if r := r37WaitResponse(w, "2", 10*idle); r == nil || !r.IsError() {
		t.Fatalf("control: b's hung call did not time out within %v (--timeout %v)", 10*idle, idle)
	}

	// The host lists prompts: b refuses with -32042 and the bridge asks
	// the host itself; the host (the user) leaves it open.
	w.Send(`{"jsonrpc":"2.0","id":3,"method":"prompts/list"}`)
	w.Response("3")
	w.WaitFor("the bridge's own URL elicitation", func(f *frame.Frame) bool { return f.Method == "elicitation/create" })

	w.Send(`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"b_hang","arguments":{}}}`)
	if r := r37WaitResponse(w, "4", 10*idle); r == nil {
		t.Errorf("b's hung tools/call got no timeout within %v (--timeout %v) while the bridge's own URL elicitation for b is open at the host: the own upcall (call nil) makes waitsOnHost true for every call of b", 10*idle, idle)
	}
}

// The same hold, from the 35th review's related-task change: a task's own
// request (elicitation/create with the related-task _meta) that came on
// the tasks/result answer stream is no longer tied to that call
// (upcall.call stays nil), and so, while the host has it open (a task's
// input_required: the person may answer hours later, which is what tasks
// are for), waitsOnHost is true for every call of the backend: another,
// hung tools/call of the same backend no longer times out for idleness.
// Before the change the elicitation held only the tasks/result call
// (which has no idle timeout anyway).
func TestTaskInputHoldsNoOtherCallTimeout(t *testing.T) {
	srv := &r35TaskHTTP{answers: make(chan string, 4)}
	h := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodPost {
			body, _ := io.ReadAll(req.Body)
			if f, err := frame.Parse(bytes.TrimSpace(body)); err == nil && f.Method == "tools/call" {
				if name, _ := f.String(f.Param("name")); name == "hang" {
					srv.mu.Lock()
					w.Header().Set("Mcp-Session-Id", srv.session)
					srv.mu.Unlock()
					w.Header().Set("Content-Type", "text/event-stream")
					w.WriteHeader(http.StatusOK)
					w.(http.Flusher).Flush()
					<-req.Context().Done()
					return
				}
			}
			req.Body = io.NopCloser(bytes.NewReader(body))
		}
		srv.ServeHTTP(w, req)
	})
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	const idle = 300 * time.Millisecond
	b := bridgedWire(t, Config{
		Backends: []config.Backend{{Name: "tasky", Kind: config.KindHTTP, URL: ts.URL}},
		Open:     backends.Open,
		Timeout:  idle,
	})
	b.Send(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"elicitation":{"form":{}}},"clientInfo":{"name":"wire-host","version":"1"}}}`)
	b.Response("0")
	b.Send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)

	// Control: nothing pending at the host, the hung call times out.
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"hang","arguments":{}}}`)
	if r := r37WaitResponse(b, "1", 10*idle); r == nil || !r.IsError() {
		t.Fatalf("control: the hung call did not time out within %v (--timeout %v)", 10*idle, idle)
	}

	b.Send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"research","arguments":{},"task":{"ttl":60000}}}`)
	if r := b.Response("2"); !strings.Contains(string(r.Result()), `"t1"`) {
		t.Fatalf("task-augmented tools/call: %s", r.Raw())
	}
	b.Send(`{"jsonrpc":"2.0","id":3,"method":"tasks/result","params":{"taskId":"t1"}}`)
	b.WaitFor("the task's elicitation", func(f *frame.Frame) bool { return f.Method == "elicitation/create" })

	b.Send(`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"hang","arguments":{}}}`)
	if r := r37WaitResponse(b, "4", 10*idle); r == nil {
		t.Errorf("a hung tools/call got no timeout within %v (--timeout %v) while a task's elicitation (related-task, not tied to any call) is open at the host: it holds every call of the backend", 10*idle, idle)
	}
	// tasks/result has no idle timeout: give it up so that the bridge
	// can stop at EOF.
	b.Send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3}}`)
	b.Send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":4}}`)
}

// askURLs asks "once each" by elicitation id. A server that makes a new
// URL elicitation (a fresh elicitationId, as SDK examples do with a UUID)
// for each request it refuses gets one URL-mode elicitation/create sent to
// the host per list the host asks: a host that lists tools, prompts and
// resources at start (and again on every list_changed) shows the user one
// "go to this URL" prompt per list, all for the same account connection,
// up to maxURLAsked (256) open at once.
func TestFreshURLElicitationPerRefusalAskedOnce(t *testing.T) {
	a := &scriptedServer{name: "a", caps: `{"tools":{}}`, handle: func(f *frame.Frame, write func(string, ...any)) {
		if f.Method == "tools/list" {
			write(`{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"echo","inputSchema":{"type":"object"}}]}}`, f.ID())
		} else if f.Kind == frame.Request {
			write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"method not found"}}`, f.ID())
		}
	}}
	n := 0
	bsrv := &scriptedServer{name: "b", caps: `{"tools":{},"prompts":{},"resources":{}}`, handle: func(f *frame.Frame, write func(string, ...any)) {
		switch {
		case strings.HasSuffix(f.Method, "/list"):
			n++ // one goroutine per backend session reads and handles in order
			write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32042,"message":"connect your account first","data":{"elicitations":[{"mode":"url","elicitationId":"conn-%d","url":"https://b.example.com/connect?e=conn-%d","message":"Connect your account"}]}}}`, f.ID(), n, n)
		case f.Kind == frame.Request:
			write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"method not found"}}`, f.ID())
		}
	}}
	w := bridgedScripted(t, Config{}, a, bsrv)
	urlHostHandshake(w)
	for i, m := range []string{"tools/list", "prompts/list", "resources/list", "resources/templates/list", "tools/list"} {
		w.Send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q}`, i+1, m))
		w.Response(fmt.Sprint(i + 1))
	}
	time.Sleep(200 * time.Millisecond)
	if got := w.Count(func(f *frame.Frame) bool { return f.Method == "elicitation/create" }); got > 1 {
		t.Errorf("the host was sent %d URL elicitations for one backend's one pending account connection (five list requests, each refused with a fresh elicitationId); none was answered or completed yet", got)
	}
}
