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

// From the twenty-fifth review (a helper session's adversarial read of
// cf69218): each test describes the bug it found, and failed before its fix.

// r25Sess: first session holds its first subscribe's answer; its second
// subscribe is refused, and then the held one answered with success; a
// tools/call also releases the held one. Later sessions take every
// subscribe.
type r25Sess struct {
	*scriptedSess
	first      bool
	mu         sync.Mutex
	held       []byte
	subscribes atomic.Int64
}

func (s *r25Sess) release() {
	s.mu.Lock()
	h := s.held
	s.held = nil
	s.mu.Unlock()
	if h != nil {
		s.emit(`{"jsonrpc":"2.0","id":%s,"result":{}}`, h)
	}
}
func (s *r25Sess) Send(f *frame.Frame) error {
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
		s.emit(`{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-11-25","capabilities":{"resources":{"subscribe":true},"tools":{}},"serverInfo":{"name":"a","version":"1"}}}`, id)
	case "resources/subscribe":
		n := s.subscribes.Add(1)
		switch {
		case !s.first:
			s.emit(`{"jsonrpc":"2.0","id":%s,"result":{}}`, id)
		case n == 1:
			s.mu.Lock()
			s.held = append([]byte(nil), id...)
			s.mu.Unlock()
		default:
			s.emit(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32603,"message":"busy"}}`, id)
			s.release()
		}
	case "tools/call":
		s.release()
		s.emit(`{"jsonrpc":"2.0","id":%s,"result":{"content":[]}}`, id)
	default:
		s.emit(`{"jsonrpc":"2.0","id":%s,"result":{}}`, id)
	}
	return nil
}

func r25Start(t *testing.T) (*r21Host, *atomic.Int64, *atomic.Pointer[r25Sess]) {
	var opens atomic.Int64
	var cur atomic.Pointer[r25Sess]
	h := r21Run(t, Config{
		Backends: []config.Backend{{Name: "a", Kind: config.KindStdio, Command: "in-process"}},
		Open: func(ctx context.Context, b config.Backend, _ backends.Options) (backends.Session, error) {
			s := &r25Sess{scriptedSess: newScriptedSess(1024), first: opens.Add(1) == 1}
			cur.Store(s)
			return s, nil
		},
	})
	h.handshake()
	return h, &opens, &cur
}

func r25Restart(t *testing.T, h *r21Host, opens *atomic.Int64, cur *atomic.Pointer[r25Sess]) int64 {
	cur.Load().Close()
	deadline := time.Now().Add(testTimeout)
	for (opens.Load() < 2 || !h.r.links[0].isReady()) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if opens.Load() < 2 {
		t.Fatalf("the backend was not restarted")
	}
	time.Sleep(300 * time.Millisecond)
	return cur.Load().subscribes.Load()
}

// The host subscribes to X (id 10), and again (id 11) before the first
// answer. The second is refused, the first succeeds: the backend holds
// the subscription and the host was told so; a restart must replay it.
// rememberState replaced the entry's front with 11; the refusal of 11
// deleted it; the success of 10 found a front that is not its own.
func TestResubscribeRefusedKeepsTakenSubscription(t *testing.T) {
	h, opens, cur := r25Start(t)
	h.send(`{"jsonrpc":"2.0","id":10,"method":"resources/subscribe","params":{"uri":"test://a/x"}}`)
	time.Sleep(100 * time.Millisecond)
	h.send(`{"jsonrpc":"2.0","id":11,"method":"resources/subscribe","params":{"uri":"test://a/x"}}`)
	r10 := h.await("answer 10", func(f *frame.Frame) bool { return f.Kind == frame.Response && string(f.ID()) == "10" })
	if r10.IsError() {
		t.Fatalf("10: %s", r10.Raw())
	}
	var n int
	h.locked(func(r *router) { n = len(r.host.subs) })
	if replayed := r25Restart(t, h, opens, cur); replayed != 1 || n != 1 {
		t.Errorf("subscribe 10 to test://a/x succeeded (the backend holds it; 11 was refused): host.subs has %d entries (want 1), restart replayed %d subscribes (want 1)", n, replayed)
	}
}

// The host's unsubscribe reuses the id of its subscribe still in flight:
// the bridge refuses it (-32600, never sent to the backend), but
// rememberState already forgot the subscription; the subscribe's success
// then finds nothing to confirm, and a restart replays nothing.
func TestRefusedDuplicateIDUnsubscribeKeepsSubscription(t *testing.T) {
	h, opens, cur := r25Start(t)
	h.send(`{"jsonrpc":"2.0","id":10,"method":"resources/subscribe","params":{"uri":"test://a/x"}}`)
	time.Sleep(100 * time.Millisecond)
	h.send(`{"jsonrpc":"2.0","id":10,"method":"resources/unsubscribe","params":{"uri":"test://a/x"}}`)
	dup := h.await("refusal", func(f *frame.Frame) bool { return f.Kind == frame.Response && string(f.ID()) == "10" })
	if !dup.IsError() {
		t.Fatalf("expected the duplicate-id unsubscribe refused first, got %s", dup.Raw())
	}
	h.send(`{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{"name":"go","arguments":{}}}`)
	r10 := h.await("answer 10", func(f *frame.Frame) bool { return f.Kind == frame.Response && string(f.ID()) == "10" })
	if r10.IsError() {
		t.Fatalf("10: %s", r10.Raw())
	}
	var n int
	h.locked(func(r *router) { n = len(r.host.subs) })
	if replayed := r25Restart(t, h, opens, cur); replayed != 1 || n != 1 {
		t.Errorf("subscribe 10 succeeded; the unsubscribe was refused as a duplicate id and never reached the backend: host.subs has %d entries (want 1), restart replayed %d (want 1)", n, replayed)
	}
}
