package bridge

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mcpbridge/mcpbridge/backends"
	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
)

// A restarted backend was sent notifications/roots/list_changed whenever
// the host had declared roots, also when the host had not declared
// roots.listChanged: the capability says the client sends that
// notification, and a host that did not declare it never does (twentieth
// review). Now the hint goes only when the host declared listChanged.
func TestRootsHintAfterRestartOnlyIfTheHostSendsThem(t *testing.T) {
	for _, tc := range []struct {
		name, roots string
		want        bool
	}{
		{"host declared listChanged", `{"listChanged":true}`, true},
		{"host declared roots only", `{}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var seen []string // what b's second session got
			var opens atomic.Int32
			firstEnd := make(chan io.Closer, 1)
			open := func(record bool) backends.Session {
				toSrvR, toSrvW := io.Pipe()
				fromSrvR, fromSrvW := io.Pipe()
				go func() {
					lr := frame.NewLineReader(toSrvR, 0)
					for {
						line, err := lr.Next()
						if err != nil {
							return
						}
						f, err := frame.Parse(line)
						if err != nil {
							continue
						}
						if record {
							mu.Lock()
							seen = append(seen, f.Method)
							mu.Unlock()
						}
						switch {
						case f.Method == "initialize":
							fmt.Fprintf(fromSrvW, `{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"b","version":"1"}}}`+"\n", f.ID())
						case f.Method == "tools/list":
							fmt.Fprintf(fromSrvW, `{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"t","inputSchema":{"type":"object"}}]}}`+"\n", f.ID())
						case f.Kind == frame.Request:
							fmt.Fprintf(fromSrvW, `{"jsonrpc":"2.0","id":%s,"result":{"content":[]}}`+"\n", f.ID())
						}
					}
				}()
				t.Cleanup(func() { toSrvW.Close(); fromSrvW.Close() })
				if !record {
					firstEnd <- fromSrvW
				}
				return backends.NewStream("b", fromSrvR, toSrvW, backends.Options{Logger: testLogger(t)})
			}
			srvA := testServer("a")
			b := bridgedWire(t, Config{
				Backends: []config.Backend{
					{Name: "a", Kind: config.KindStdio, Command: "in-process"},
					{Name: "b", Kind: config.KindStdio, Command: "in-process"},
				},
				Open: func(ctx context.Context, be config.Backend, _ backends.Options) (backends.Session, error) {
					if be.Name == "a" {
						return serve(t, "a", srvA), nil
					}
					return open(opens.Add(1) > 1), nil
				},
			})
			b.Send(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"roots":` + tc.roots + `},"clientInfo":{"name":"h","version":"1"}}}`)
			b.Response("0")
			b.Send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
			changed := func(f *frame.Frame) bool { return f.Method == "notifications/tools/list_changed" }
			before := b.Count(changed)

			(<-firstEnd).Close() // b's first session ends: the bridge restarts it
			// The restart's list_changed comes after the restored state
			// (restoreState, then backendChanged, on one goroutine), so a
			// call sent now reaches b after the hint, if there is one.
			b.WaitFor("list_changed after the restart", func(*frame.Frame) bool { return b.Count(changed) > before })
			b.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"b_t","arguments":{}}}`)
			if r := b.Response("1"); r.IsError() {
				t.Fatalf("b_t after the restart: %s", r.Raw())
			}
			mu.Lock()
			got := slices.Contains(seen, "notifications/roots/list_changed")
			methods := strings.Join(seen, ", ")
			mu.Unlock()
			if got != tc.want {
				t.Errorf("restarted backend got roots/list_changed: %v, want %v (it got: %s)", got, tc.want, methods)
			}
		})
	}
}
