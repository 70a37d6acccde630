package bridge

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/backends"
	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// A streamable-HTTP server sends its request to the host (sampling here) on
// the answer stream of the call it is for, and the spec says such
// messages "SHOULD relate to the originating client request". The idle
// --timeout was held for every call of the backend while the host had it
// pending, so a call that hung on the same server was never cut by it
// (only by --max-timeout, an hour) for as long as a person took to answer
// the sampling prompt, or forever with a backend that keeps asking. Now the
// hold is for the call the request came for; the others time out.
func TestIdleHoldIsForTheCallAskedFor(t *testing.T) {
	srv := testServer("h")
	ts := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil))
	t.Cleanup(ts.Close)
	b := bridgedWire(t, Config{
		Backends: []config.Backend{{Name: "h", Kind: config.KindHTTP, URL: ts.URL}},
		Open:     backends.Open,
		Timeout:  500 * time.Millisecond,
	})
	handshake(b.wire)
	start := time.Now()
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sample","arguments":{}}}`)
	req := b.WaitFor("sampling request", func(f *frame.Frame) bool { return f.Method == "sampling/createMessage" })
	b.Send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"block","arguments":{}}}`)

	// The blocked call gets -32001 while the sampling request is still
	// unanswered (before, it waited as long as the host did: here until
	// the wire's 15 s bound).
	r := b.Response("2")
	if !strings.Contains(string(r.Error()), "-32001") {
		t.Fatalf("the hanging call, with its backend's sampling request for another call pending: %s", r.Raw())
	}

	// The call the sampling request is for is held past --timeout.
	time.Sleep(time.Second - time.Since(start))
	b.Send(`{"jsonrpc":"2.0","id":` + string(req.ID()) + `,"result":{"role":"assistant","model":"m","content":{"type":"text","text":"sampled!"}}}`)
	if r := b.Response("1"); r.IsError() || !strings.Contains(string(r.Result()), "sampled!") {
		t.Errorf("the call waiting on the host's sampling answer: %s", r.Raw())
	}
}

// When a call ends without its answer (the host cancels it, or
// --max-timeout ends it) the bridge closes its streamable answer stream,
// which is where the server sends its cancellation of the sampling
// request it made for the call: the host never heard it, and its sampling
// dialog stayed open (twenty-fourth review, with TypeScript-SDK servers).
// Now the bridge cancels, toward the host, the requests that came for the
// call.
func TestEndedCallCancelsItsRequestsToTheHost(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		end  func(b *bridgedRun)
	}{
		{"host cancels", Config{}, func(b *bridgedRun) {
			b.Send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1,"reason":"user"}}`)
		}},
		{"max-timeout", Config{MaxTimeout: 700 * time.Millisecond}, func(b *bridgedRun) {
			if r := b.Response("1"); !strings.Contains(string(r.Error()), "-32001") {
				t.Errorf("the call: %s", r.Raw())
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// go-sdk v1.8.0 does not end a tool's CreateMessage when the
			// tool call is cancelled, so the tool here also waits on the
			// test's own end, or closing the session (and the test
			// server) would wait for it for ever.
			testDone, endTest := context.WithCancel(context.Background())
			srv := mcp.NewServer(&mcp.Implementation{Name: "h", Version: "1"}, nil)
			mcp.AddTool(srv, &mcp.Tool{Name: "sample"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
				ctx, stop := context.WithCancel(ctx)
				defer stop()
				go func() {
					select {
					case <-testDone.Done():
						stop()
					case <-ctx.Done():
					}
				}()
				_, err := req.Session.CreateMessage(ctx, &mcp.CreateMessageParams{MaxTokens: 1, Messages: []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: "q"}}}})
				return nil, nil, err
			})
			ts := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil))
			t.Cleanup(ts.Close)
			cfg := tc.cfg
			cfg.Backends = []config.Backend{{Name: "h", Kind: config.KindHTTP, URL: ts.URL}}
			cfg.Open = backends.Open
			b := bridgedWire(t, cfg)
			t.Cleanup(endTest) // first: before the bridge closes its session
			handshake(b.wire)
			b.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sample","arguments":{}}}`)
			req := b.WaitFor("sampling request", func(f *frame.Frame) bool { return f.Method == "sampling/createMessage" })
			tc.end(b)
			b.WaitFor("the sampling request's cancellation", func(f *frame.Frame) bool {
				return f.Method == "notifications/cancelled" && string(f.Bytes(f.Param("requestId"))) == string(req.ID())
			})
		})
	}
}
