package bridge

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/frame"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestStaleListKeepsNewerRoutes: a merged tools/list that began before a
// backend's list_changed ends after a newer one; the tools the newer list
// showed the host stay callable (found by a stress review: the older
// gather overwrote the routing table while the newer list stayed cached,
// and a listed tool answered "unknown tool" until the next change).
func TestStaleListKeepsNewerRoutes(t *testing.T) {
	srv := testServer("a")
	var slow atomic.Bool
	srv.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if method == "tools/list" && slow.CompareAndSwap(true, false) {
				res, err := next(ctx, method, req) // the list as it is now, answered late
				time.Sleep(time.Second)
				return res, err
			}
			return next(ctx, method, req)
		}
	})
	h := bridgedWire(t, Config{Prefix: true}, namedServer{"a", srv})
	handshake(h.wire)
	isChanged := func(n int) func(*frame.Frame) bool {
		seen := 0
		return func(f *frame.Frame) bool {
			if f.Method == "notifications/tools/list_changed" {
				seen++
			}
			return seen == n
		}
	}
	addTool := func(name string) {
		mcp.AddTool(srv, &mcp.Tool{Name: name}, func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: name + " works"}}}, nil, nil
		})
	}
	h.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	h.Response("1")
	addTool("first") // a change: the cached list is dropped
	h.WaitFor("list_changed", isChanged(1))
	slow.Store(true)
	h.Send(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`) // the slow, older gather
	time.Sleep(200 * time.Millisecond)
	addTool("fresh")
	h.WaitFor("list_changed", isChanged(2))
	h.Send(`{"jsonrpc":"2.0","id":3,"method":"tools/list"}`) // the newer gather
	if r := h.Response("3"); !strings.Contains(string(r.Result()), `"a_fresh"`) {
		t.Fatalf("the newer list lacks a_fresh: %s", r.Raw())
	}
	h.Response("2") // the older gather ends
	h.Send(`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"a_fresh","arguments":{}}}`)
	if r := h.Response("4"); !strings.Contains(string(r.Result()), "fresh works") {
		t.Errorf("a tool the host was shown: %s", r.Raw())
	}
}

// TestSlowBackendJoinsDespiteRequestTimeout: a backend slower to
// initialize than both --init-timeout and --timeout still joins when it
// is up; --timeout bounds the host's requests, not the bridge's own
// initialize (found by a second stress review: the request timer ended
// the initialize and the backend never joined).
func TestSlowBackendJoinsDespiteRequestTimeout(t *testing.T) {
	slow := testServer("b")
	slow.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if method == "initialize" {
				time.Sleep(1500 * time.Millisecond)
			}
			return next(ctx, method, req)
		}
	})
	h := bridgedWire(t, Config{InitTimeout: 300 * time.Millisecond, Timeout: 500 * time.Millisecond},
		namedServer{"a", testServer("a")}, namedServer{"b", slow})
	handshake(h.wire)
	h.WaitFor("tools/list_changed when b joins", func(f *frame.Frame) bool {
		return f.Method == "notifications/tools/list_changed"
	})
	h.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	if r := h.Response("1"); !strings.Contains(string(r.Result()), `"b_echo"`) {
		t.Errorf("b's tools after it joined: %s", r.Raw())
	}
}

// TestListChangedOnlyAsAnnounced: the bridge's own list_changed
// notifications (a backend joined late, restarted) are sent only for the
// list kinds whose listChanged it announced: with tools-only backends, no
// prompts or resources notifications (found by a second stress review).
func TestListChangedOnlyAsAnnounced(t *testing.T) {
	toolsOnly := func(name string, initDelay time.Duration) *mcp.Server {
		srv := mcp.NewServer(&mcp.Implementation{Name: name, Version: "1"}, nil)
		mcp.AddTool(srv, &mcp.Tool{Name: "echo"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: name}}}, nil, nil
		})
		srv.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
			return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
				if method == "initialize" {
					time.Sleep(initDelay)
				}
				return next(ctx, method, req)
			}
		})
		return srv
	}
	h := bridgedWire(t, Config{InitTimeout: 300 * time.Millisecond},
		namedServer{"a", toolsOnly("a", 0)}, namedServer{"b", toolsOnly("b", time.Second)})
	init := handshake(h.wire)
	if caps := string(init.Result()); strings.Contains(caps, `"prompts"`) || strings.Contains(caps, `"resources"`) {
		t.Fatalf("capabilities offered for lists no backend has: %s", caps)
	}
	h.WaitFor("tools/list_changed when b joins", func(f *frame.Frame) bool {
		return f.Method == "notifications/tools/list_changed"
	})
	h.Send(`{"jsonrpc":"2.0","id":"p","method":"ping"}`)
	h.Response(`"p"`)
	time.Sleep(300 * time.Millisecond) // the notifications of one join go out together
	if n := h.Count(func(f *frame.Frame) bool {
		return f.Method == "notifications/prompts/list_changed" || f.Method == "notifications/resources/list_changed"
	}); n != 0 {
		t.Errorf("%d list_changed notification(s) for lists the host was not offered", n)
	}
}

// TestListsOnlyFromBackendsThatHaveThem: a merged list is asked only of
// the backends that declared that capability, and is then cached (found
// by a second stress review: a tools-only backend was asked for prompts,
// answered -32601, and the merged prompts list was never cached).
func TestListsOnlyFromBackendsThatHaveThem(t *testing.T) {
	var asked atomic.Int32
	toolsOnly := mcp.NewServer(&mcp.Implementation{Name: "b", Version: "1"}, nil)
	mcp.AddTool(toolsOnly, &mcp.Tool{Name: "echo"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "b"}}}, nil, nil
	})
	toolsOnly.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if method == "prompts/list" {
				asked.Add(1)
			}
			return next(ctx, method, req)
		}
	})
	h := bridgedWire(t, Config{}, namedServer{"a", testServer("a")}, namedServer{"b", toolsOnly})
	handshake(h.wire)
	for i := range 2 {
		id := strconv.Itoa(i + 1)
		h.Send(`{"jsonrpc":"2.0","id":` + id + `,"method":"prompts/list"}`)
		if r := h.Response(id); !strings.Contains(string(r.Result()), `"a_greet"`) {
			t.Fatalf("prompts/list: %s", r.Raw())
		}
	}
	if n := asked.Load(); n != 0 {
		t.Errorf("the tools-only backend was asked for prompts %d time(s)", n)
	}
}
