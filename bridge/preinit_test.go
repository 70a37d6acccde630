package bridge

import (
	"strings"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/frame"
)

// TestRequestsBeforeInitialized: between the initialize answer and the
// host's notifications/initialized, a ping is answered by the bridge and
// other requests are held, then answered by the backends once the host
// has initialized (found by a second stress review: with one backend a
// ping got "not initialized yet", and with several a tools/list came back
// empty).
func TestRequestsBeforeInitialized(t *testing.T) {
	for _, several := range []bool{false, true} {
		servers, call := oneOrTwo(several, "held")
		h := bridgedWire(t, Config{}, servers...)
		h.Send(initLine)
		h.Response("0")
		h.Send(`{"jsonrpc":"2.0","id":"p","method":"ping"}`)
		if r := h.Response(`"p"`); r.IsError() {
			t.Errorf("several=%v: ping before initialized: %s", several, r.Raw())
		}
		h.Send(`{"jsonrpc":"2.0","id":"l","method":"tools/list"}`)
		h.Send(call)
		time.Sleep(100 * time.Millisecond)
		h.Send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
		if r := h.Response(`"l"`); !strings.Contains(string(r.Result()), `echo"`) {
			t.Errorf("several=%v: tools/list before initialized: %s", several, r.Raw())
		}
		if r := h.Response("1"); !strings.Contains(string(r.Result()), "held") {
			t.Errorf("several=%v: a call before initialized: %s", several, r.Raw())
		}
	}
}

// TestNoInitializedStillAnsweredAtEOF: a host that never sends
// notifications/initialized gets an answer to its held request when its
// input ends, and the bridge stops (bridgedWire's clean-up checks that),
// instead of waiting for ever.
func TestNoInitializedStillAnsweredAtEOF(t *testing.T) {
	h := bridgedWire(t, Config{}, namedServer{"a", testServer("a")})
	h.Send(initLine)
	h.Response("0")
	h.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}}`)
	h.W.Close()
	h.Response("1")
}

// TestEOFWithABackendRequestPending: the host's input ends while a
// backend's sampling request waits on it. The backend is told at once
// that the host cannot answer, so the tool call waiting on it ends and
// is answered, and the bridge stops (found by a second stress review: it
// waited for the call until --timeout, five minutes by default).
func TestEOFWithABackendRequestPending(t *testing.T) {
	h := bridgedWire(t, Config{}, namedServer{"a", testServer("a")})
	handshake(h.wire)
	h.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sample","arguments":{}}}`)
	h.WaitFor("the backend's sampling request", func(f *frame.Frame) bool { return f.Method == "sampling/createMessage" })
	h.W.Close()
	h.Response("1")
}

// TestNoInitializedAnsweredAfterGrace: a host that asks without ever
// sending notifications/initialized and keeps its input open (a script
// piping initialize and a call, then waiting) is taken as initialized
// after assumeGrace: its call is held until then, then answered, in both
// modes. It waited for ever (until the input ended) before.
func TestNoInitializedAnsweredAfterGrace(t *testing.T) {
	for _, several := range []bool{false, true} {
		servers, call := oneOrTwo(several, "late")
		h := bridgedWire(t, Config{}, servers...)
		h.Send(initLine)
		h.Response("0")
		start := time.Now()
		h.Send(call)
		time.Sleep(assumeGrace / 4)
		isAnswer := func(f *frame.Frame) bool { return f.Kind == frame.Response && string(f.ID()) == "1" }
		if n := h.Count(isAnswer); n != 0 {
			t.Fatalf("several=%v: answered within %v, before the grace: %s", several, time.Since(start), h.Dump())
		}
		if r := h.Response("1"); !strings.Contains(string(r.Result()), "late") {
			t.Errorf("several=%v: the held call: %s", several, r.Raw())
		}
		if d := time.Since(start); d < assumeGrace {
			t.Errorf("several=%v: answered after %v, before the grace of %v", several, d, assumeGrace)
		}
		// The host's own initialized, coming late after all, changes nothing.
		h.Send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
		h.Send(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
		if r := h.Response("2"); !strings.Contains(string(r.Result()), `echo"`) {
			t.Errorf("several=%v: tools/list after: %s", several, r.Raw())
		}
	}
}

// oneOrTwo returns backend a alone, or a and b (several), and an echo call
// of text to a under the name the host sees in that mode.
func oneOrTwo(several bool, text string) ([]namedServer, string) {
	servers := []namedServer{{"a", testServer("a")}}
	name := "echo"
	if several {
		servers = append(servers, namedServer{"b", testServer("b")})
		name = "a_echo"
	}
	return servers, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + name + `","arguments":{"text":"` + text + `"}}}`
}
