package bridge

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/backends"
	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
)

// waitShort polls the host wire for a line matching pred for at most d.
func waitShort(b *bridgedRun, d time.Duration, pred func(*frame.Frame) bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if b.Count(pred) > 0 {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// TestLateBackendGetsTheHostsLogLevel: the host sets a log level while one
// backend is still starting; when that backend joins late it must get the
// level too (as a restarted backend does), or its log messages never reach
// the host (go-sdk servers send none until a level is set).
func TestLateBackendGetsTheHostsLogLevel(t *testing.T) {
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
				select {
				case <-release:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
				return serve(t, b.Name, srvB), nil
			}
			return serve(t, b.Name, srvA), nil
		},
	}
	b := bridgedWire(t, cfg)
	if init := handshake(b.wire); init.IsError() {
		t.Fatalf("initialize: %s", init.Raw())
	}
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"logging/setLevel","params":{"level":"info"}}`)
	b.Response("1")
	close(release)
	b.WaitFor("tools/list_changed", func(f *frame.Frame) bool { return f.Method == "notifications/tools/list_changed" })

	b.Send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"a_log","arguments":{}}}`)
	b.Response("2")
	b.Send(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"slow_log","arguments":{}}}`)
	if r := b.Response("3"); r.IsError() {
		t.Fatalf("slow_log: %s", r.Raw())
	}
	if !waitShort(b, 2*time.Second, func(f *frame.Frame) bool {
		return f.Method == "notifications/message" && strings.Contains(string(f.Params()), `"logger":"a/core"`)
	}) {
		t.Fatalf("control: a's log never reached the host:\n%s", b.Dump())
	}
	if !waitShort(b, 2*time.Second, func(f *frame.Frame) bool {
		return f.Method == "notifications/message" && strings.Contains(string(f.Params()), `"logger":"slow/core"`)
	}) {
		t.Errorf("the late backend never got the host's logging/setLevel: its log message was lost; host got:\n%s", b.Dump())
	}
}
