package bridge

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/backends"
	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// From the twenty-fifth review (a helper session's adversarial read of
// cf69218): each test describes the bug it found, and failed before its fix.

// A server that keeps running a cancelled call (as the spec lets it)
// still waits on its sampling request. The host answers that request
// just as it cancels the call (its answer crosses the cancellation).
// endUpsFor dropped the upcall from the map: hostResponse drops the
// host's answer as one to an unknown request, and the server is never
// answered (not even with an error): its CreateMessage waits for ever.
// Before cf69218 the answer went through.
func TestHostAnswerCrossingCancelStillAnswersTheServer(t *testing.T) {
	got := make(chan error, 1)
	testDone, endTest := context.WithCancel(context.Background())
	srv := mcp.NewServer(&mcp.Implementation{Name: "h", Version: "1"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "sample"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		c, stop := context.WithCancel(context.WithoutCancel(ctx)) // ignores the call's cancellation
		defer stop()
		go func() { <-testDone.Done(); stop() }()
		_, err := req.Session.CreateMessage(c, &mcp.CreateMessageParams{MaxTokens: 1, Messages: []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: "q"}}}})
		if c.Err() == nil {
			got <- err
		}
		return nil, nil, err
	})
	ts := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil))
	t.Cleanup(ts.Close)
	cfg := Config{}
	cfg.Backends = []config.Backend{{Name: "h", Kind: config.KindHTTP, URL: ts.URL}}
	cfg.Open = backends.Open
	b := bridgedWire(t, cfg)
	t.Cleanup(endTest)
	handshake(b.wire)
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sample","arguments":{}}}`)
	req := b.WaitFor("sampling request", func(f *frame.Frame) bool { return f.Method == "sampling/createMessage" })
	b.Send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1,"reason":"user"}}`)
	b.Send(`{"jsonrpc":"2.0","id":` + string(req.ID()) + `,"result":{"role":"assistant","content":{"type":"text","text":"a"},"model":"m"}}`)
	select {
	case err := <-got:
		t.Logf("the server's sampling request was answered: %v", err)
	case <-time.After(3 * time.Second):
		t.Errorf("the host answered the server's sampling request (crossing its cancellation of the call): the server never got that answer, nor any error")
	}
}
