package bridge

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"testing"

	"github.com/mcpbridge/mcpbridge/backends"
	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
)

// earlyBackend is a scripted stdio-like backend that answers initialize
// and then at once, before its notifications/initialized, sends the lines
// early returns; it answers any other request with an empty result.
func earlyBackend(t *testing.T, name string, early func(name string) []string) backends.Session {
	toR, toW := io.Pipe()
	fromR, fromW := io.Pipe()
	go func() {
		defer fromW.Close()
		sc := bufio.NewScanner(toR)
		for sc.Scan() {
			f, err := frame.Parse(append([]byte(nil), sc.Bytes()...))
			if err != nil || f.Kind != frame.Request {
				continue
			}
			if f.Method != "initialize" {
				io.WriteString(fromW, `{"jsonrpc":"2.0","id":`+string(f.ID())+`,"result":{}}`+"\n")
				continue
			}
			io.WriteString(fromW, `{"jsonrpc":"2.0","id":`+string(f.ID())+`,"result":{"protocolVersion":"2025-11-25","capabilities":{"logging":{}},"serverInfo":{"name":"`+name+`","version":"1"}}}`+"\n")
			for _, l := range early(name) {
				io.WriteString(fromW, l+"\n")
			}
		}
	}()
	t.Cleanup(func() { toW.Close() })
	return backends.NewStream(name, fromR, toW, backends.Options{Logger: testLogger(t)})
}

// TestEarlyBackendMessages: what backends send before the host's
// notifications/initialized is held and then reaches the host once, mapped
// once, in order. Log messages are allowed that early; with several
// backends their logger is tagged, and a held message tagged a second
// time when released made the bridge write a corrupt frame and crash. A
// backend's request and its own cancellation of it, both held, arrive
// as a pair under the same host-facing id.
func TestEarlyBackendMessages(t *testing.T) {
	cfg := Config{Open: func(ctx context.Context, b config.Backend, _ backends.Options) (backends.Session, error) {
		return earlyBackend(t, b.Name, func(name string) []string {
			return []string{
				`{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","logger":"core","data":"early"}}`,
				`{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"no logger"}}`,
				`{"jsonrpc":"2.0","id":"r1","method":"roots/list"}`,
				`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"r1","reason":"changed my mind"}}`,
			}
		}), nil
	}}
	h := bridgedWire(t, cfg, namedServer{"a", nil}, namedServer{"b", nil})
	handshake(h.wire)
	want := map[string]bool{"a/core": true, "a": true, "b/core": true, "b": true}
	roots := map[string]string{} // host-facing id of each backend's roots/list → its backend
	cancelled := 0
	h.WaitFor("every early message", func(f *frame.Frame) bool {
		switch {
		case f.Method == "notifications/message":
			var p struct{ Logger string }
			if err := json.Unmarshal(f.Params(), &p); err != nil || !want[p.Logger] {
				t.Errorf("log message with logger %q (%v): %s", p.Logger, err, f.Raw())
			}
			delete(want, p.Logger)
		case f.Kind == frame.Request && f.Method == "roots/list":
			roots[string(f.ID())] = "seen"
		case f.Method == "notifications/cancelled":
			id := string(f.Bytes(f.Param("requestId")))
			if roots[id] != "seen" {
				t.Errorf("a cancellation of a request the host was not sent first: %s", f.Raw())
			}
			roots[id] = "cancelled"
			cancelled++
		}
		return len(want) == 0 && cancelled == 2
	})
	h.Send(`{"jsonrpc":"2.0","id":"ping","method":"ping"}`)
	h.Response(`"ping"`) // still running
}
