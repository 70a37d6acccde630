//go:build linux

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// From the twenty-third review (a helper session's adversarial read of
// the fixes of the nineteenth to twenty-second): each test describes the
// bug it found, and failed before its fix.

// Twenty-third review (an adversarial read of 7479289..bd16fcb).

// r23Server is lcServer's protocol with one more tool: "crashtrickle"
// leaves a helper in a session of its own (setsid, as Python's
// start_new_session=True does) that keeps the backend's stdout and
// stderr and logs a line to stderr every 100 ms (a daemon's heartbeat),
// then exits 1. The helper's pid goes to R23_HOLDPID.
const r23Server = `#!/bin/sh
while IFS= read -r line; do
  id=$(printf '%s\n' "$line" | sed -n 's/^{"jsonrpc":"2.0","id":\([0-9][0-9]*\).*/\1/p')
  case "$line" in
    *'"method":"initialize"'*) printf '{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"r23","version":"1"}}}\n' "$id";;
    *'"name":"crashtrickle"'*)
      setsid sh -c 'echo $$ >> "$R23_HOLDPID"; i=0; while [ $i -lt 600 ]; do echo "heartbeat $i" >&2; i=$((i+1)); sleep 0.1; done' &
      sleep 0.2
      exit 1;;
    *'"method":"tools/call"'*) printf '{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"ok"}]}}\n' "$id";;
    *'"id":'*) [ -n "$id" ] && printf '{"jsonrpc":"2.0","id":%s,"result":{}}\n' "$id";;
  esac
done
exit 0
`

// bd16fcb made drainAfterExit close an exited backend's pipes only after
// exitDrain (0.5 s) "in which the readers waited for output and got
// none", and counts any stderr read as output. A helper that escaped the
// backend's process group keeping its stdout and stderr (the case
// 7d82a86 fixed: "a backend that exited while a process it started with
// setsid kept its stdout was never noticed") and that writes to stderr
// more often than every 0.5 s (any heartbeat or progress log) resets the
// quiet time for ever: the dead backend is never noticed again, its
// in-flight call waits for --timeout, it is not restarted, not reaped.
// 7d82a86 closed the pipes 0.5 s after the exit whatever came.
func TestLifecycleExitedBackendHoldingStdoutTricklingStderr(t *testing.T) {
	lcNeedSetsid(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "server.sh")
	if err := os.WriteFile(script, []byte(r23Server), 0o755); err != nil {
		t.Fatal(err)
	}
	holdPID := filepath.Join(dir, "hold.pid")
	p := startBridge(t, []string{"R23_HOLDPID=" + holdPID}, "--timeout", "20s", "--stdio", "s="+script)
	lcKillHolder(t, holdPID) // runs before the bridge's cleanup
	handshake(t, p)
	p.Send(lcCall(`"c"`, "crashtrickle"))
	r := lcWithin(p, `"c"`, 5*time.Second)
	if r == nil {
		heartbeats := strings.Count(p.stderr.String(), "heartbeat")
		t.Fatalf("the backend exited about 5 s ago and its in-flight call is still unanswered (its escaped helper holds its stdout and has logged %d stderr lines since; the pipes are never closed)", heartbeats)
	}
	if !strings.Contains(string(r.Error()), `"backend":"s"`) {
		t.Errorf("the crashed call: %s", r.Raw())
	}
}
