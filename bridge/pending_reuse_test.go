package bridge

import (
	"strings"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/frame"
)

// TestCancelledIDReusedBeforeRouted: with several backends, the host sends
// tools/call id 7, cancels it while the aggregator still waits for the
// tool lists (so it is only "pending"), and then reuses id 7 for a ping.
// The cancelled call must get no answer and the ping must get its own
// ({}). The pending table is keyed by raw id only: the ping's reply takes
// the cancellation mark meant for the call, the ping is dropped as if it
// had been cancelled, and the cancelled call is routed and answered under
// id 7 — the host reads a tools/call result as the answer to its ping.
func TestCancelledIDReusedBeforeRouted(t *testing.T) {
	for _, reuse := range []struct{ name, line, want string }{
		{"ping", `{"jsonrpc":"2.0","id":7,"method":"ping"}`, `{}`},
		// The two calls are routed by goroutines of their own, in either
		// order: the cancellation belongs to the first whichever goes first.
		{"call", `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"a_echo","arguments":{"text":"the new call"}}}`, `{"content":[{"type":"text","text":"the new call"}]}`},
	} {
		t.Run(reuse.name, func(t *testing.T) { cancelledIDReused(t, reuse.line, reuse.want) })
	}
}

func cancelledIDReused(t *testing.T, reuse, want string) {
	b, release := heldLists(t)
	handshake(b.wire)

	// No list yet: routing a_echo gathers the lists first, and b holds them.
	b.Send(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"a_echo","arguments":{"text":"the cancelled call"}}}` + "\n" +
		`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7,"reason":"user"}}` + "\n" +
		reuse)
	time.Sleep(300 * time.Millisecond)
	close(release)

	// A later request shows when everything before it has been handled.
	b.Send(`{"jsonrpc":"2.0","id":"after","method":"tools/call","params":{"name":"a_echo","arguments":{"text":"after"}}}`)
	b.Response(`"after"`)
	time.Sleep(200 * time.Millisecond)

	var answers []*frame.Frame
	b.Count(func(f *frame.Frame) bool {
		if f.Kind == frame.Response && string(f.ID()) == "7" {
			answers = append(answers, f)
		}
		return false
	})
	if len(answers) != 1 {
		t.Fatalf("id 7 (a cancelled call, then %s) got %d answers, want 1:\n%s", reuse, len(answers), b.Dump())
	}
	if got := string(answers[0].Raw()); strings.Contains(got, "the cancelled call") || string(answers[0].Result()) != want {
		t.Errorf("id 7 reused for %s was answered %s, want the result %s", reuse, got, want)
	}
}
