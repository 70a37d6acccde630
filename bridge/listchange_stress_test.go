package bridge

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/frame"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestStressListChangedWhileListing: b churns its tool list while the host
// lists and calls; every request gets exactly one right answer.
func TestStressListChangedWhileListing(t *testing.T) {
	srvA, srvB := testServer("a"), testServer("b")
	b := bridgedWire(t, Config{}, namedServer{"a", srvA}, namedServer{"b", srvB})
	handshake(b.wire)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 200; i++ {
			select {
			case <-stop:
				return
			default:
			}
			name := fmt.Sprintf("churn%d", i%5)
			mcp.AddTool(srvB, &mcp.Tool{Name: name}, func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
				return textResult("churn"), nil, nil
			})
			time.Sleep(2 * time.Millisecond)
			srvB.RemoveTools(name)
		}
	}()
	const n = 300
	for i := 0; i < n; i++ {
		id := fmt.Sprint(1000 + i)
		switch i % 3 {
		case 0:
			b.Send(`{"jsonrpc":"2.0","id":` + id + `,"method":"tools/list"}`)
		case 1:
			b.Send(`{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"a_whoami","arguments":{}}}`)
		case 2:
			b.Send(`{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"b_whoami","arguments":{}}}`)
		}
	}
	for i := 0; i < n; i++ {
		id := fmt.Sprint(1000 + i)
		r := b.Response(id)
		switch i % 3 {
		case 0:
			names := toolNames(t, r)
			if !contains(names, "a_whoami") || !contains(names, "b_whoami") {
				t.Errorf("list %s: %v", id, names)
			}
		case 1:
			if !strings.Contains(string(r.Result()), `"text":"a"`) {
				t.Errorf("a_whoami %s: %s", id, r.Raw())
			}
		case 2:
			if !strings.Contains(string(r.Result()), `"text":"b"`) {
				t.Errorf("b_whoami %s: %s", id, r.Raw())
			}
		}
	}
	close(stop)
	wg.Wait()
	time.Sleep(100 * time.Millisecond)
	for i := 0; i < n; i++ {
		id := fmt.Sprint(1000 + i)
		if c := b.Count(func(f *frame.Frame) bool { return f.Kind == frame.Response && string(f.ID()) == id }); c != 1 {
			t.Errorf("id %s answered %d times", id, c)
		}
	}
	// After the churn stopped, a fresh list must match b's real list.
	b.Send(`{"jsonrpc":"2.0","id":9999,"method":"tools/list"}`)
	names := toolNames(t, b.Response("9999"))
	for _, nm := range names {
		if strings.HasPrefix(nm, "b_churn") {
			t.Errorf("stale tool %s still listed after churn ended: %v", nm, names)
		}
	}
}
