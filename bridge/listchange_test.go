package bridge

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/backends"
	"github.com/mcpbridge/mcpbridge/frame"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestRestartWithNewToolsWhileCached: b's tools are cached; b dies and
// comes back with another tool set; the host is told and sees the new set.
func TestRestartWithNewToolsWhileCached(t *testing.T) {
	srvA := testServer("a")
	srvB1 := testServer("b")
	srvB2 := mcp.NewServer(&mcp.Implementation{Name: "b2", Version: "1"}, nil)
	mcp.AddTool(srvB2, &mcp.Tool{Name: "fresh"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
		return textResult("fresh b"), nil, nil
	})
	cfg, sess := oneRestarting(t, "a", "b", srvA, srvB1, func(context.Context, int64) (backends.Session, error) {
		return serve(t, "b", srvB2), nil
	})
	b := bridgedWire(t, cfg)
	handshake(b.wire)
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	if names := toolNames(t, b.Response("1")); !contains(names, "b_whoami") {
		t.Fatalf("first list: %v", names)
	}
	before := b.Count(func(f *frame.Frame) bool { return f.Method == mToolsChanged })
	(<-sess).Close()
	deadline := time.Now().Add(testTimeout)
	for b.Count(func(f *frame.Frame) bool { return f.Method == mToolsChanged }) == before {
		if time.Now().After(deadline) {
			t.Fatalf("no list_changed after restart:\n%s", b.Dump())
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Send(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
	names := toolNames(t, b.Response("2"))
	if !contains(names, "b_fresh") || contains(names, "b_whoami") {
		t.Errorf("after restart: %v", names)
	}
	b.Send(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"b_fresh","arguments":{}}}`)
	if r := b.Response("3"); !strings.Contains(string(r.Result()), "fresh b") {
		t.Errorf("b_fresh: %s", r.Raw())
	}
	b.Send(`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"b_whoami","arguments":{}}}`)
	if r := b.Response("4"); !r.IsError() {
		t.Errorf("b_whoami after restart: %s", r.Raw())
	}
}

// TestGivenUpBackendLeavesTheLists: a backend that keeps dying until the
// bridge gives up on it takes its tools out of the merged list, and the
// host is told (third review: they stayed listed, cached, for the
// bridge's life).
func TestGivenUpBackendLeavesTheLists(t *testing.T) {
	first, most := restartFirst, restartMax
	restartFirst, restartMax = time.Millisecond, 5*time.Millisecond
	t.Cleanup(func() { restartFirst, restartMax = first, most })
	var opens atomic.Int64
	cfg, sessB := oneRestarting(t, "a", "b", testServer("a"), testServer("b"), func(_ context.Context, n int64) (backends.Session, error) {
		opens.Store(n)
		return nil, errors.New("b is gone for good")
	})
	b := bridgedWire(t, cfg)
	handshake(b.wire)
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	if names := toolNames(t, b.Response("1")); !contains(names, "b_echo") {
		t.Fatalf("tools/list lacks b_echo: %v", names)
	}
	(<-sessB).Close()
	b.WaitFor("tools/list_changed", func(f *frame.Frame) bool { return f.Method == mToolsChanged })
	deadline := time.Now().Add(testTimeout)
	for opens.Load() <= restartGiveUp && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // the give-up follows the last failed start
	b.Send(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
	names := toolNames(t, b.Response("2"))
	if contains(names, "b_echo") || !contains(names, "a_echo") {
		t.Errorf("after giving up on b, tools/list = %v", names)
	}
}
