package bridge

import (
	"context"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// tsToolsOnly is a tools-only server that answers resources/* the way the
// TypeScript SDK's McpServer does when it has no resources: -32601.
func tsToolsOnly(name string) *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: name, Version: "1"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "echo"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
		return textResult(name), nil, nil
	})
	srv.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, m string, req mcp.Request) (mcp.Result, error) {
			if strings.HasPrefix(m, "resources/") {
				return nil, &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: "Method not found"}
			}
			return next(ctx, m, req)
		}
	})
	return srv
}

// TestUnlistedURISkipsBackendsWithoutResources: a URI nobody listed is
// tried on each backend in order, moving on at "not found". A backend that
// never declared the resources capability (a tools-only TypeScript server,
// declared first) answers -32601, and that answer must not stop the
// fall-through to the backend that serves the URI.
func TestUnlistedURISkipsBackendsWithoutResources(t *testing.T) {
	var log readLog
	_, srvB := unlistedServers(&log, false)
	b := bridgedWire(t, Config{}, namedServer{"tools", tsToolsOnly("tools")}, namedServer{"b", srvB})
	handshake(b.wire)
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"secret://only-b"}}`)
	if r := b.Response("1"); !strings.Contains(string(r.Result()), "secret of b") {
		t.Errorf("secret://only-b is served by b, but the tools-only backend (no resources capability) was asked first and its -32601 was passed on; host got: %s", r.Raw())
	}
}

// TestSetLevelRefusedByEveryBackend: when every backend refuses a
// logging/setLevel (an invalid level: the TypeScript SDK answers -32602),
// the host must not be told it succeeded.
func TestSetLevelRefusedByEveryBackend(t *testing.T) {
	strict := func(name string) *mcp.Server {
		srv := testServer(name)
		srv.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
			return func(ctx context.Context, m string, req mcp.Request) (mcp.Result, error) {
				if m == "logging/setLevel" {
					if lv := req.GetParams().(*mcp.SetLoggingLevelParams).Level; lv == "bogus" {
						return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "invalid level"}
					}
				}
				return next(ctx, m, req)
			}
		})
		return srv
	}
	b := bridgedWire(t, Config{}, namedServer{"a", strict("a")}, namedServer{"b", strict("b")})
	handshake(b.wire)
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"logging/setLevel","params":{"level":"bogus"}}`)
	if r := b.Response("1"); !r.IsError() {
		t.Errorf("every backend refused the level with -32602, the host got success: %s", r.Raw())
	}
}
