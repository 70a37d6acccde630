package bridge

import (
	"context"
	"strings"
	"testing"

	"github.com/mcpbridge/mcpbridge/backends"
	"github.com/mcpbridge/mcpbridge/config"
)

// TestInitializedBeforeFirstRequest: a host that writes initialized and a
// request back to back; the backend must get its notifications/initialized
// first (servers on the Python SDK refuse requests before it). Repeated,
// since the old bug was a race lost nearly every time.
func TestInitializedBeforeFirstRequest(t *testing.T) {
	for range 20 {
		var rec *recordingSession
		srv := testServer("one")
		cfg := Config{
			Backends: []config.Backend{{Name: "one", Kind: config.KindStdio, Command: "in-process"}},
			Open: func(ctx context.Context, b config.Backend, _ backends.Options) (backends.Session, error) {
				rec = &recordingSession{Session: serve(t, b.Name, srv)}
				return rec, nil
			},
		}
		b := bridgedWire(t, cfg)
		b.Send(initLine)
		b.Response("0")
		b.Send(`{"jsonrpc":"2.0","method":"notifications/initialized"}` + "\n" + `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
		b.Response("1")
		rec.mu.Lock()
		got := strings.Join(rec.sent, ",")
		rec.mu.Unlock()
		if !strings.HasPrefix(got, "initialize,notifications/initialized,tools/list") {
			t.Fatalf("the backend got %s", got)
		}
	}
}
