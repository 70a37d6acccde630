package bridge

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/backends"
	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
)

// Thirty-fourth review.
//
// link.session sets the restore gate (holdRequests) before the restarted
// backend's initialize, but the gate's 2 s bound (restoreWait) is armed
// only in restoreState, after initialize answered. With one backend
// forward runs on the host's reader (route -> forward -> awaitRestored),
// so a host request sent while a restarted backend is initializing stops
// the reader for as long as that initialize takes (up to --init-timeout,
// 60 s by default): the host's ping behind it (which "MUST" be answered
// promptly), its cancellations, its answers to the backend all wait.
// Before the change the request failed at once ("not available") and the
// ping was answered at once.
func TestRestartDoesNotHoldTheHostReader(t *testing.T) {
	first := newR32Sess("a", func(s *r32Sess, f *frame.Frame) {
		if f.Kind != frame.Request || r32Init(s, f, `{"tools":{}}`) {
			return
		}
		if f.Method == "tools/call" {
			s.Close() // the backend dies
			return
		}
		s.emit(`{"jsonrpc":"2.0","id":%s,"result":{}}`, f.ID())
	})
	initSeen := make(chan struct{})
	var once sync.Once
	second := newR32Sess("a", func(s *r32Sess, f *frame.Frame) {
		if f.Kind != frame.Request {
			return
		}
		if f.Method == "initialize" {
			once.Do(func() { close(initSeen) })
			id := append([]byte(nil), f.ID()...)
			go func() {
				time.Sleep(6 * time.Second) // a slow start (npx, a cold JVM)
				s.emit(`{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"a","version":"1"}}}`, id)
			}()
			return
		}
		s.emit(`{"jsonrpc":"2.0","id":%s,"result":{}}`, f.ID())
	})
	var opens int
	var mu sync.Mutex
	h := r21Run(t, Config{
		Backends:    []config.Backend{{Name: "a", Kind: config.KindStdio, Command: "in-process"}},
		InitTimeout: 20 * time.Second,
		Open: func(ctx context.Context, b config.Backend, _ backends.Options) (backends.Session, error) {
			mu.Lock()
			opens++
			n := opens
			mu.Unlock()
			if n == 1 {
				return first, nil
			}
			return second, nil
		},
	})
	h.handshake()
	h.send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x","arguments":{}}}`)
	h.await("the call the backend died on", func(f *frame.Frame) bool { return f.Kind == frame.Response && string(f.ID()) == "2" })
	select {
	case <-initSeen:
	case <-time.After(5 * time.Second):
		t.Fatal("the backend was not restarted")
	}
	start := time.Now()
	h.send(`{"jsonrpc":"2.0","id":3,"method":"tools/list"}`)
	h.send(`{"jsonrpc":"2.0","id":4,"method":"ping"}`)
	h.await("ping answer", func(f *frame.Frame) bool { return f.Kind == frame.Response && string(f.ID()) == "4" })
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Errorf("the host's ping sent while the restarted backend initialized was answered after %v; host requests are to wait at most 2 s (restoreWait), and a ping promptly", d.Round(100*time.Millisecond))
	}
}
