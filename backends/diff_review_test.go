//go:build linux

package backends

import (
	"context"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/config"
)

// From the twenty-second review (a helper session's adversarial read of
// the day's diff): each test describes the bug it found, and failed before
// its fix.

// A backend writes 3,000 messages (about 400 KB, well inside its 1 MiB
// stdout pipe) and exits at once, as a one-shot server does after its last
// answer. Its reader (the router) is busy for a second (the host reads
// its stdout slowly: recvLoop blocks in toHost), so stream.readLoop sits
// on a full s.in channel, not on the pipe. waitLoop closes stdout 0.5 s
// after the exit although nothing but the bridge holds it: every message
// still in the pipe is dropped, the backend's final answer among them.
func TestExitDrainKeepsOutputWhileTheRouterIsBusy(t *testing.T) {
	const n = 3000
	line := `{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}}`
	cfg := config.Backend{Name: "s", Kind: config.KindStdio, Command: "sh",
		Args: []string{"-c", `yes '` + line + `' | head -n 2999; echo '{"jsonrpc":"2.0","id":1,"result":{"final":true}}'`}}
	s, err := Open(context.Background(), cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	time.Sleep(1500 * time.Millisecond) // the router is busy elsewhere
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, final := 0, false
	var end error
	for {
		f, err := s.Recv(ctx)
		if err != nil {
			end = err
			break
		}
		got++
		if string(f.ID()) == "1" {
			final = true
		}
	}
	if got != n || !final {
		t.Errorf("the backend wrote %d messages (the last its answer to request 1) and exited; the session delivered %d (final answer delivered: %v) and ended with %v", n, got, final, end)
	}
}
