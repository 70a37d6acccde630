package bridge

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/backends"
	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
)

// From the twenty-third review (a helper session's adversarial read of
// the fixes of the nineteenth to twenty-second): each test describes the
// bug it found, and failed before its fix.

// Twenty-third review (an adversarial read of 7479289..bd16fcb).

// r23Sess is a scripted backend that declares resources.subscribe. It
// holds the answer to resources/subscribe until the matching
// resources/unsubscribe arrives (a server slower to answer a subscribe
// than the host is to change its mind), then answers both, in order,
// with success. It counts the subscribes it received.
type r23Sess struct {
	*scriptedSess
	mu         sync.Mutex
	heldSub    []byte // id of the subscribe whose answer is held
	subscribes atomic.Int64
}

func newR23Sess() *r23Sess {
	return &r23Sess{scriptedSess: newScriptedSess(1024)}
}

func (s *r23Sess) Send(f *frame.Frame) error {
	select {
	case <-s.done:
		return backends.ErrClosed
	default:
	}
	if f.Kind != frame.Request {
		return nil
	}
	id := f.OutID()
	switch f.Method {
	case "initialize":
		s.emit(`{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-11-25","capabilities":{"resources":{"subscribe":true}},"serverInfo":{"name":"a","version":"1"}}}`, id)
	case "resources/subscribe":
		s.subscribes.Add(1)
		s.mu.Lock()
		s.heldSub = append([]byte(nil), id...)
		s.mu.Unlock()
	case "resources/unsubscribe":
		s.mu.Lock()
		held := s.heldSub
		s.heldSub = nil
		s.mu.Unlock()
		if held != nil {
			s.emit(`{"jsonrpc":"2.0","id":%s,"result":{}}`, held)
		}
		s.emit(`{"jsonrpc":"2.0","id":%s,"result":{}}`, id)
	default:
		s.emit(`{"jsonrpc":"2.0","id":%s,"result":{}}`, id)
	}
	return nil
}

// bd16fcb records a subscription only once the backend answered the
// subscribe with success (backendResponse: r.subscribed), but an
// unsubscribe still forgets it when it is routed (rememberState). A host
// that subscribes and unsubscribes before the backend's answer to the
// subscribe came back (pipelined, or a user toggling a watch) is left
// recorded as subscribed: the unsubscribe found nothing to delete, the
// subscribe's late success then added the entry. The host never
// unsubscribes again (it is not subscribed), so the entry stays for the
// bridge's life and every restart of the backend replays the subscribe.
// Before bd16fcb rememberState recorded the subscribe as it was routed,
// ahead of the unsubscribe, which removed it.
func TestUnsubscribeBeforeSubscribeAnswerIsForgotten(t *testing.T) {
	var opens atomic.Int64
	var cur atomic.Pointer[r23Sess]
	h := r21Run(t, Config{
		Backends: []config.Backend{{Name: "a", Kind: config.KindStdio, Command: "in-process"}},
		Open: func(ctx context.Context, b config.Backend, _ backends.Options) (backends.Session, error) {
			opens.Add(1)
			s := newR23Sess()
			cur.Store(s)
			return s, nil
		},
	})
	h.handshake()
	first := cur.Load()
	h.send(`{"jsonrpc":"2.0","id":10,"method":"resources/subscribe","params":{"uri":"test://a/watched"}}`)
	h.send(`{"jsonrpc":"2.0","id":11,"method":"resources/unsubscribe","params":{"uri":"test://a/watched"}}`)
	for _, id := range []string{"10", "11"} {
		r := h.await("answer "+id, func(f *frame.Frame) bool { return f.Kind == frame.Response && string(f.ID()) == id })
		if r.IsError() {
			t.Fatalf("answer %s: %s", id, r.Raw())
		}
	}
	var kept []string
	h.locked(func(r *router) {
		for uri := range r.host.subs {
			kept = append(kept, uri)
		}
	})

	// The backend restarts: what is recorded is replayed to it.
	first.Close()
	deadline := time.Now().Add(testTimeout)
	for (opens.Load() < 2 || !h.r.links[0].isReady()) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if opens.Load() < 2 {
		t.Fatalf("the backend was not restarted")
	}
	time.Sleep(300 * time.Millisecond)
	replayed := cur.Load().subscribes.Load()
	if len(kept) != 0 || replayed != 0 {
		t.Errorf("the host subscribed to test://a/watched and unsubscribed (both answered with success) before the backend answered the subscribe: host.subs still holds %q (want none), and the backend's restart replayed %d subscribe(s) (want 0)", kept, replayed)
	}
}
