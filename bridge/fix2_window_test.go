package bridge

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/backends"
	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// From the twenty-fifth review (a helper session's adversarial read of
// cf69218): each test describes the bug it found, and failed before its fix.

// The host cancels a streamable tools/call. hostCancel drops the call and
// runs endUpsFor at once, but the call's answer stream is aborted only
// once the cancellation's POST came back (outMsg.abortReq, deferred in
// postOther). A sampling request the server sends on that stream in the
// meantime reaches the host with no call (requestUp finds none for its
// Via), so nothing cancels it when the stream is then closed: the
// server's own cancellation of it goes to the aborted stream.
func TestUpcallInCancelWindowIsNotLeftOpen(t *testing.T) {
	t.Run("sampling-before-cancel(control)", func(t *testing.T) { r25Window(t, false) })
	t.Run("sampling-in-cancel-window", func(t *testing.T) { r25Window(t, true) })
}

func r25Window(t *testing.T, inWindow bool) {
	cancelSeen := make(chan struct{})
	var once sync.Once
	sctx, stopSampling := context.WithCancel(context.Background())
	t.Cleanup(stopSampling)
	srv := mcp.NewServer(&mcp.Implementation{Name: "h", Version: "1"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "sample"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		if inWindow {
			select {
			case <-cancelSeen:
			case <-sctx.Done():
				return nil, nil, sctx.Err()
			}
		}
		// On the call's stream (ctx values), ended by the test only.
		c, stop := context.WithCancel(context.WithoutCancel(ctx))
		defer stop()
		go func() {
			select {
			case <-sctx.Done():
			case <-c.Done():
			}
			stop()
		}()
		_, err := req.Session.CreateMessage(c, &mcp.CreateMessageParams{MaxTokens: 1, Messages: []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: "q"}}}})
		return nil, nil, err
	})
	inner := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			if bytes.Contains(body, []byte(`"notifications/cancelled"`)) {
				once.Do(func() { close(cancelSeen) })
				time.Sleep(400 * time.Millisecond) // the server is slow to take the cancellation
			}
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	cfg := Config{}
	cfg.Backends = []config.Backend{{Name: "h", Kind: config.KindHTTP, URL: ts.URL}}
	cfg.Open = backends.Open
	b := bridgedWire(t, cfg)
	t.Cleanup(stopSampling)
	handshake(b.wire)
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sample","arguments":{}}}`)
	var req *frame.Frame
	if !inWindow {
		req = b.WaitFor("sampling request", func(f *frame.Frame) bool { return f.Method == "sampling/createMessage" })
	}
	time.Sleep(300 * time.Millisecond)
	b.Send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1,"reason":"user"}}`)
	time.Sleep(800 * time.Millisecond) // the cancellation POSTed, the call's stream aborted
	stopSampling()                     // the server cancels its sampling request
	if inWindow {
		// Now the bridge answers a request made for a call that has
		// ended itself, with an error, and never shows it to the host;
		// one shown must have been cancelled.
		time.Sleep(300 * time.Millisecond)
		if b.Count(func(f *frame.Frame) bool { return f.Method == "sampling/createMessage" }) == 0 {
			return
		}
		req = b.WaitFor("sampling request", func(f *frame.Frame) bool { return f.Method == "sampling/createMessage" })
	}
	b.WaitFor("the sampling request's cancellation", func(f *frame.Frame) bool {
		return f.Method == "notifications/cancelled" && string(f.Bytes(f.Param("requestId"))) == string(req.ID())
	})
}
