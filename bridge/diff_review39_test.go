package bridge

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/frame"
)

// Thirty-ninth review: an adversarial read of 12637e0..7fdcf19; each test failed before its fix.

// askURLs now puts at most one refusal's URL elicitations to the host per
// backend, until notifications/elicitation/complete marks them done
// (urlDone) or the backend changes. That notification is optional
// (elicitation 2025-11-25: servers MAY send it), and the host's answer to
// the bridge's own elicitation is dropped (hostResponse, u.own). So a
// backend that never sends the completion keeps its first elicitation
// "outstanding" for the rest of its session: the user connects (the
// backend lists fine afterwards), later the connection is revoked or
// expires and the backend refuses again with a new URL elicitation, and
// the bridge never tells the host: the backend silently drops out of the
// merged lists until it restarts. Before the change the new id was asked.
func TestURLElicitationWithoutCompletionBlocksNoLaterOne(t *testing.T) {
	a := &scriptedServer{name: "a", caps: `{"tools":{}}`, handle: func(f *frame.Frame, write func(string, ...any)) {
		if f.Method == "tools/list" {
			write(`{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"echo","inputSchema":{"type":"object"}}]}}`, f.ID())
		} else if f.Kind == frame.Request {
			write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"method not found"}}`, f.ID())
		}
	}}
	// b's prompts/list: 1st refused (conn-1), 2nd listed (the user
	// connected; b sends no completion, which is optional), 3rd refused
	// again (the connection was revoked): conn-2.
	var n atomic.Int32
	bsrv := &scriptedServer{name: "b", caps: `{"tools":{},"prompts":{}}`, handle: func(f *frame.Frame, write func(string, ...any)) {
		switch {
		case f.Method == "tools/list":
			write(`{"jsonrpc":"2.0","id":%s,"result":{"tools":[]}}`, f.ID())
		case f.Method == "prompts/list":
			switch n.Add(1) {
			case 2:
				write(`{"jsonrpc":"2.0","id":%s,"result":{"prompts":[{"name":"p"}]}}`, f.ID())
			default:
				k := n.Load()
				write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32042,"message":"connect your account first","data":{"elicitations":[{"mode":"url","elicitationId":"conn-%d","url":"https://b.example.com/connect?e=%d","message":"Connect your account"}]}}}`, f.ID(), k, k)
			}
		case f.Kind == frame.Request:
			write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"method not found"}}`, f.ID())
		}
	}}
	w := bridgedScripted(t, Config{}, a, bsrv)
	urlHostHandshake(w)

	elicits := func() []*frame.Frame {
		var got []*frame.Frame
		w.Count(func(f *frame.Frame) bool {
			if f.Method == "elicitation/create" {
				got = append(got, f)
			}
			return false
		})
		return got
	}

	// 1: refused; the host is asked, and the user accepts (goes to the URL).
	w.Send(`{"jsonrpc":"2.0","id":1,"method":"prompts/list"}`)
	w.Response("1")
	first := w.WaitFor("the URL elicitation for conn-1", func(f *frame.Frame) bool { return f.Method == "elicitation/create" })
	w.Send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":{"action":"accept"}}`, first.ID()))

	// 2: the user connected: b lists its prompt.
	w.Send(`{"jsonrpc":"2.0","id":2,"method":"prompts/list"}`)
	if r := w.Response("2"); !frameContains(r, `"b_p"`) {
		t.Fatalf("b's prompt once connected: %s", r.Raw())
	}

	// 3: the connection is gone: b refuses with a new elicitation.
	w.Send(`{"jsonrpc":"2.0","id":3,"method":"prompts/list"}`)
	w.Response("3")
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) && len(elicits()) < 2 {
		time.Sleep(20 * time.Millisecond)
	}
	if got := elicits(); len(got) < 2 {
		t.Errorf("b refused again with a new URL elicitation (conn-3) after it had listed fine, and the host was never asked: %d elicitation/create sent in all; the first (conn-1, answered accept, never completed by a notification, which is optional) still counts as outstanding, so b stays out of the merged lists until it restarts", len(got))
	}
}

func frameContains(f *frame.Frame, s string) bool {
	return f != nil && strings.Contains(string(f.Raw()), s)
}

// The same review's other half: the host's answer to the bridge's own
// elicitation was dropped, so a decline left it outstanding and the
// backend's next refusal (a new id) was never put to the host. Declined,
// it no longer counts.
func TestDeclinedURLElicitationBlocksNoLaterOne(t *testing.T) {
	var n atomic.Int32
	b := &scriptedServer{name: "b", caps: `{"tools":{}}`, handle: func(f *frame.Frame, write func(string, ...any)) {
		switch {
		case f.Method == "tools/list":
			k := n.Add(1)
			write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32042,"message":"connect first","data":{"elicitations":[{"mode":"url","elicitationId":"conn-%d","url":"https://b.example.com/c","message":"Connect"}]}}}`, f.ID(), k)
		case f.Kind == frame.Request:
			write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"method not found"}}`, f.ID())
		}
	}}
	a := &scriptedServer{name: "a", caps: `{"tools":{}}`, handle: func(f *frame.Frame, write func(string, ...any)) {
		if f.Kind == frame.Request {
			write(`{"jsonrpc":"2.0","id":%s,"result":{"tools":[]}}`, f.ID())
		}
	}}
	w := bridgedScripted(t, Config{}, a, b)
	urlHostHandshake(w)
	w.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	w.Response("1")
	first := w.WaitFor("the first URL elicitation", func(f *frame.Frame) bool { return f.Method == "elicitation/create" })
	w.Send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":{"action":"decline"}}`, first.ID()))
	time.Sleep(100 * time.Millisecond) // the answer is taken before the next list
	w.Send(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
	w.Response("2")
	second := w.WaitFor("a second URL elicitation after the decline", func(f *frame.Frame) bool {
		return f.Method == "elicitation/create" && string(f.ID()) != string(first.ID())
	})
	if !frameContains(second, `"b/conn-2"`) {
		t.Errorf("the second elicitation: %s", second.Raw())
	}
}

// Noted by the 35th review: a -32042 refusal of the fanned-out
// logging/setLevel reached the host without the NAME/ tagging its later
// notifications/elicitation/complete gets; and when another backend took
// the level, the refusal went unheard behind the host's {}.
func TestSetLevelRefusedForAURLElicitation(t *testing.T) {
	mk := func(name string, refuse bool) *scriptedServer {
		return &scriptedServer{name: name, caps: `{"tools":{},"logging":{}}`, handle: func(f *frame.Frame, write func(string, ...any)) {
			switch {
			case f.Method == "logging/setLevel" && refuse:
				write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32042,"message":"connect first","data":{"elicitations":[{"mode":"url","elicitationId":"log-1","url":"https://%s.example.com/c","message":"Connect"}]}}}`, f.ID(), name)
			case f.Method == "logging/setLevel":
				write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32603,"message":"no levels here"}}`, f.ID())
			case f.Kind == frame.Request:
				write(`{"jsonrpc":"2.0","id":%s,"result":{"tools":[]}}`, f.ID())
			}
		}}
	}
	start := func(a, b *scriptedServer) *bridgedRun {
		w := bridgedScripted(t, Config{}, a, b)
		urlHostHandshake(w)
		return w
	}
	t.Run("all refuse", func(t *testing.T) {
		w := start(mk("a", true), mk("b", false))
		w.Send(`{"jsonrpc":"2.0","id":1,"method":"logging/setLevel","params":{"level":"debug"}}`)
		r := w.Response("1")
		if !strings.Contains(string(r.Error()), "-32042") || !strings.Contains(string(r.Error()), `"a/log-1"`) {
			t.Errorf("the host's setLevel, refused by both (a first, with -32042): %s", r.Raw())
		}
	})
	t.Run("one takes it", func(t *testing.T) {
		ok := &scriptedServer{name: "a", caps: `{"tools":{},"logging":{}}`, handle: func(f *frame.Frame, write func(string, ...any)) {
			if f.Kind == frame.Request {
				write(`{"jsonrpc":"2.0","id":%s,"result":{}}`, f.ID())
			}
		}}
		w := start(ok, mk("b", true))
		w.Send(`{"jsonrpc":"2.0","id":1,"method":"logging/setLevel","params":{"level":"debug"}}`)
		if r := w.Response("1"); r.IsError() {
			t.Errorf("setLevel taken by a: %s", r.Raw())
		}
		el := w.WaitFor("b's URL elicitation", func(f *frame.Frame) bool { return f.Method == "elicitation/create" })
		if !frameContains(el, `"b/log-1"`) {
			t.Errorf("b's URL elicitation: %s", el.Raw())
		}
	})
}
