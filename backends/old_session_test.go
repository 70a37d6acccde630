package backends

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/config"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// moveOffA sets up TestResumedStreamKeepsItsSession's scenario: call 3 of
// tool is open in session A when a stale 404 moves the bridge to session B.
func moveOffA(t *testing.T, tool func(ctx context.Context, req *mcp.CallToolRequest, in echoArgs) (*mcp.CallToolResult, any, error)) (*driver, *recorder, string) {
	srv := newMCPServer()
	mcp.AddTool(srv, &mcp.Tool{Name: "heldA"}, tool)
	ts, rc := serveStreamable(t, srv, false, mcp.NewMemoryEventStore(nil))
	d := newDriver(t, openTest(t, config.KindHTTP, ts.URL, nil))
	d.initialize()
	if got := d.call(2, "echo", "warm"); got != "warm" {
		t.Fatalf("echo = %q", got)
	}
	sidA := lastSessionID(rc)
	d.send(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"heldA","arguments":{"text":"kept"}}}`)
	time.Sleep(100 * time.Millisecond)
	rc.setIntercept(func(w http.ResponseWriter, r *http.Request, rec recorded) bool {
		if r.Method == http.MethodPost && rec.rpc == "tools/call" && rec.id == "4" && r.Header.Get(headerSessionID) == sidA {
			http.Error(w, "session not found", http.StatusNotFound)
			return true
		}
		return false
	})
	if got := d.call(4, "echo", "moved"); got != "moved" {
		t.Fatalf("echo = %q", got)
	}
	d.note(MethodReinitialized)
	return d, rc, sidA
}

// The host cancels call 3, kept in session A after the bridge moved to B:
// the cancellation must go to A, where the request runs.
func TestResumedCallCancelGoesToItsSession(t *testing.T) {
	startClose, handlerDone := make(chan struct{}), make(chan error, 1)
	d, rc, sidA := moveOffA(t, func(ctx context.Context, req *mcp.CallToolRequest, in echoArgs) (*mcp.CallToolResult, any, error) {
		<-startClose
		select {
		case <-ctx.Done():
			handlerDone <- ctx.Err()
		case <-time.After(3 * time.Second):
			handlerDone <- nil
		}
		return textResult("late"), nil, nil
	})
	d.send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3}}`)
	close(startClose)
	err := <-handlerDone
	var where []string
	for _, r := range rc.requests() {
		if r.method == http.MethodPost && r.rpc == "notifications/cancelled" {
			where = append(where, r.header.Get(headerSessionID))
		}
	}
	if err == nil {
		t.Fatalf("call 3's handler in session %s was never cancelled; the cancellation was POSTed to sessions %q", sidA, where)
	}
}
