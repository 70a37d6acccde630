package bridge

import (
	"bufio"
	"context"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/backends"
	"github.com/mcpbridge/mcpbridge/config"
)

// A backend that worked, died, and whose restarted sessions now end while
// their initialize is in flight (the process reads it and crashes):
// link.initialize waited only for the answer, --init-timeout or the
// bridge's end, and the session's end was read only after it returned, so
// each such restart cost the whole --init-timeout instead of the restart
// backoff (here 1-5 ms): with the default 60 s, the 8 restarts before
// giving up took 8 minutes (nineteenth review). Now the session's end ends
// the wait.
func TestRestartThatDiesInInitializeIsRetriedAtOnce(t *testing.T) {
	first, most := restartFirst, restartMax
	restartFirst, restartMax = time.Millisecond, 5*time.Millisecond
	t.Cleanup(func() { restartFirst, restartMax = first, most })
	var opens atomic.Int64
	var sess0 atomic.Pointer[backends.Session]
	cfg := Config{
		InitTimeout: 20 * time.Second,
		Backends:    []config.Backend{{Name: "s", Kind: config.KindStdio, Command: "in-process"}},
		Open: func(ctx context.Context, _ config.Backend, _ backends.Options) (backends.Session, error) {
			if opens.Add(1) == 1 {
				s := serve(t, "s", testServer("s"))
				sess0.Store(&s)
				return s, nil
			}
			// A backend that reads its first line (the initialize) and dies.
			toSrvR, toSrvW := io.Pipe()
			fromSrvR, fromSrvW := io.Pipe()
			go func() {
				_, _ = bufio.NewReader(toSrvR).ReadString('\n')
				fromSrvW.Close()
				toSrvR.Close()
			}()
			return backends.NewStream("s", fromSrvR, toSrvW, backends.Options{Logger: testLogger(t)}), nil
		},
	}
	b := bridgedWire(t, cfg)
	handshake(b.wire)
	(*sess0.Load()).Close() // the first session ends: restart
	deadline := time.Now().Add(3 * time.Second)
	for opens.Load() < 4 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := opens.Load(); n < 4 {
		t.Errorf("3 s after the backend was lost it was opened %d times; a restart that dies in its initialize is retried only after --init-timeout (20 s)", n)
	}
}
