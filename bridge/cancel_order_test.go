package bridge

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/backends"
	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
)

// When a call ends without its answer (cancelled by the host, timed out),
// its backend hears the cancellation before the error answers to the
// requests it made for the call (the twenty-sixth review: over streamable
// HTTP a TypeScript-SDK tool saw its sampling request fail, returned, and
// never learnt the call was cancelled).

// r26Sess is a streamable-like scripted backend: a tools/call is not
// answered; instead a sampling/createMessage is sent on the call's answer
// stream (Via = the call's id). Every message the bridge sends it after
// that is logged, in order.
type r26Sess struct {
	*scriptedSess
	mu  sync.Mutex
	log []string
}

func (s *r26Sess) Send(f *frame.Frame) error {
	select {
	case <-s.done:
		return backends.ErrClosed
	default:
	}
	id := f.OutID()
	switch {
	case f.Method == "initialize":
		s.emit(`{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"a","version":"1"}}}`, id)
	case f.Method == "tools/call":
		up, err := frame.Parse([]byte(`{"jsonrpc":"2.0","id":0,"method":"sampling/createMessage","params":{"messages":[{"role":"user","content":{"type":"text","text":"q"}}],"maxTokens":1}}`))
		if err != nil {
			panic(err)
		}
		up.Via = append([]byte(nil), id...)
		select {
		case s.out <- up:
		case <-s.done:
		}
	case f.Method == "notifications/cancelled":
		s.mu.Lock()
		s.log = append(s.log, "cancelled "+string(f.Bytes(f.Param("requestId"))))
		s.mu.Unlock()
	case f.Kind == frame.Response:
		s.mu.Lock()
		s.log = append(s.log, "response "+string(f.ID()))
		s.mu.Unlock()
	}
	return nil
}

func (s *r26Sess) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.log...)
}

func r26Check(t *testing.T, s *r26Sess, how string) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for len(s.seen()) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	got := s.seen()
	if len(got) < 1 || !strings.HasPrefix(got[0], "cancelled ") {
		t.Errorf("%s a tool call whose sampling request waits on the host: the backend got %q, in that order; "+
			"want the call's notifications/cancelled first, then the error answer to its sampling request", how, got)
	}
}

func r26Start(t *testing.T, cfg Config) (*r21Host, *r26Sess) {
	s := &r26Sess{scriptedSess: newScriptedSess(64)}
	cfg.Backends = []config.Backend{{Name: "a", Kind: config.KindHTTP, URL: "http://127.0.0.1:1/mcp"}}
	cfg.Open = func(ctx context.Context, b config.Backend, _ backends.Options) (backends.Session, error) {
		return s, nil
	}
	h := r21Run(t, cfg)
	h.send(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"sampling":{}},"clientInfo":{"name":"h","version":"1"}}}`)
	h.await("initialize answer", func(f *frame.Frame) bool { return f.Kind == frame.Response && string(f.ID()) == "0" })
	h.send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	h.send(`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"sample","arguments":{}}}`)
	h.await("the sampling request", func(f *frame.Frame) bool { return f.Method == "sampling/createMessage" })
	return h, s
}

// The host cancels the call: hostCancel sends the cancellation, then
// endUpsFor answers the backend's sampling request with an error.
func TestCancelledCallIsCancelledBeforeItsSamplingFails(t *testing.T) {
	h, s := r26Start(t, Config{})
	h.send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":5,"reason":"user"}}`)
	r26Check(t, s, "the host cancelled")
}

// --max-timeout ends the call: expire keeps the same order.
func TestTimedOutCallIsCancelledBeforeItsSamplingFails(t *testing.T) {
	_, s := r26Start(t, Config{Timeout: 200 * time.Millisecond, MaxTimeout: 400 * time.Millisecond})
	r26Check(t, s, "--max-timeout ended")
}
