package bridge

import (
	"strings"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/frame"
)

// A batch with a ping and an invalid member shaped like a response (no
// "jsonrpc"): the member was counted as one the batch waits an error for,
// but handleFrontLine took it for the host's answer to an upcall and
// answered nothing, so the batch never completed and the ping in it got
// no answer at all (thirteenth review; now such a member is not counted).
func TestBatchWithInvalidResponseMember(t *testing.T) {
	b := bridgedWire(t, Config{}, namedServer{"a", testServer("a")})
	handshake(b.wire)
	b.Send(`[{"jsonrpc":"2.0","id":"in-batch","method":"ping"},{"id":77,"result":{}}]`)
	b.Send(`{"jsonrpc":"2.0","id":"after","method":"ping"}`)
	b.Response(`"after"`)
	deadline := time.Now().Add(3 * time.Second)
	for b.Line(func(l []byte) bool { return strings.Contains(string(l), `"in-batch"`) }) == nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if b.Line(func(l []byte) bool { return strings.Contains(string(l), `"in-batch"`) }) == nil {
		t.Fatalf("the ping in the batch got no answer 3s later:\n%s", b.Dump())
	}
}

// The idle --timeout is "held while its backend waits on the host", and
// route.go says "the idle window starts again once nothing of its is
// pending with the host". It did not start again: the timer kept the
// phase it had, so when the host answered shortly before the timer's next
// tick, the call was expired at that tick, before the backend could use
// the answer (here --timeout 2s: the host answers the sampling request
// 3.4s after the call, the backend answers the call 1s later; the timer
// ticked at 2s (held, re-armed for 4s) and at 4s the upcall is gone, so
// the call gets -32001 0.6s after the host answered).
// The same race made TestIdleTimeoutWaitsWhileTheHostIsAsked flaky
// (thirteenth review; the window now runs from the host's last answer).
func TestIdleWindowRestartsAfterTheHostAnswers(t *testing.T) {
	srv := &scriptedServer{name: "a", caps: `{"tools":{}}`, handle: func(f *frame.Frame, write func(string, ...any)) {
		switch {
		case f.Method == "tools/call":
			write(`{"jsonrpc":"2.0","id":"s-%s","method":"sampling/createMessage","params":{"messages":[],"maxTokens":1}}`, f.ID())
		case f.Kind == frame.Response && strings.HasPrefix(string(f.ID()), `"s-`):
			callID := strings.TrimSuffix(strings.TrimPrefix(string(f.ID()), `"s-`), `"`)
			go func() {
				time.Sleep(time.Second) // uses the sample
				write(`{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"done"}]}}`, callID)
			}()
		case f.Kind == frame.Request:
			write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"method not found"}}`, f.ID())
		}
	}}
	b := bridgedScripted(t, Config{Timeout: 2 * time.Second}, srv)
	handshake(b.wire)
	start := time.Now()
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{}}}`)
	req := b.WaitFor("sampling request", func(f *frame.Frame) bool { return f.Method == "sampling/createMessage" })
	time.Sleep(3400*time.Millisecond - time.Since(start)) // the user answers after 3.4s
	answered := time.Now()
	b.Send(`{"jsonrpc":"2.0","id":` + string(req.ID()) + `,"result":{"role":"assistant","model":"m","content":{"type":"text","text":"s"}}}`)
	r := b.Response("1")
	if r.IsError() {
		t.Fatalf("the call expired %v after the host answered its backend's sampling request (--timeout 2s): %s",
			time.Since(answered).Round(10*time.Millisecond), r.Raw())
	}
}
