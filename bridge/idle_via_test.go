package bridge

import (
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
