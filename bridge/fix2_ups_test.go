package bridge

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/mcpbridge/mcpbridge/backends"
	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// From the twenty-fifth review (a helper session's adversarial read of
// cf69218): each test describes the bug it found, and failed before its fix.

// As TestEndedCallCancelsItsRequestsToTheHost, but the host's request is
// a resources/read of a URI no backend listed (several backends: the
// claim path, askWait). The host cancels it: claimed.cancel → askWait →
// cancelAsk, which sends the cancellation (the POST and its answer stream
// are ended) but never calls endUpsFor: the sampling request that came on
// that stream stays open at the host.
func TestClaimedCallCancelEndsItsUpcall(t *testing.T) {
	testDone, endTest := context.WithCancel(context.Background())
	srv := mcp.NewServer(&mcp.Implementation{Name: "h", Version: "1"}, nil)
	srv.AddResourceTemplate(&mcp.ResourceTemplate{URITemplate: "test://t/{x}", Name: "t"}, func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
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
		return nil, err
	})
	ts := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil))
	t.Cleanup(ts.Close)
	other := testServer("o")
	ts2 := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return other }, nil))
	t.Cleanup(ts2.Close)
	cfg := Config{}
	cfg.Backends = []config.Backend{{Name: "h", Kind: config.KindHTTP, URL: ts.URL}, {Name: "o", Kind: config.KindHTTP, URL: ts2.URL}}
	cfg.Open = backends.Open
	b := bridgedWire(t, cfg)
	t.Cleanup(endTest)
	handshake(b.wire)
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"test://t/one"}}`)
	req := b.WaitFor("sampling request", func(f *frame.Frame) bool { return f.Method == "sampling/createMessage" })
	b.Send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1,"reason":"user"}}`)
	b.WaitFor("the sampling request's cancellation", func(f *frame.Frame) bool {
		return f.Method == "notifications/cancelled" && string(f.Bytes(f.Param("requestId"))) == string(req.ID())
	})
}
