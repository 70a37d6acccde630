//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/frame"
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
    *'"name":"crashtrickleout"'*)
      setsid sh -c 'echo $$ >> "$R23_HOLDPID"; i=0; while [ $i -lt 600 ]; do echo "heartbeat $i"; i=$((i+1)); sleep 0.1; done' &
      sleep 0.2
      exit 1;;
    *'"name":"crashflood"'*)
      setsid sh -c 'echo $$ >> "$R23_HOLDPID"; exec timeout 30 yes "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"debug\",\"data\":\"flood\"}}"' &
      sleep 0.2
      exit 1;;
    *'"name":"crashflooderr"'*)
      setsid sh -c 'echo $$ >> "$R23_HOLDPID"; exec timeout 30 yes "flooding stderr"' >&2 &
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
	p, r := r23Crash(t, "crashtrickle")
	if r == nil {
		heartbeats := strings.Count(p.stderr.String(), "heartbeat")
		t.Fatalf("the backend exited about 5 s ago and its in-flight call is still unanswered (its escaped helper holds its stdout and has logged %d stderr lines since; the pipes are never closed)", heartbeats)
	}
	if !strings.Contains(string(r.Error()), `"backend":"s"`) {
		t.Errorf("the crashed call: %s", r.Raw())
	}
}

// r23Crash starts a bridge in front of r23Server, calls tool "c" (one of
// the crashing tools) and returns the call's answer, nil if none came
// within 5 s.
func r23Crash(t *testing.T, tool string) (*bridgeProc, *frame.Frame) {
	t.Helper()
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
	p.Send(lcCall(`"c"`, tool))
	return p, lcWithin(p, `"c"`, 5*time.Second)
}

// The same helper writing its heartbeat to the stdout it holds (the last
// session's "left" item): drainAfterExit counted every stdout line as the
// exited backend's output still being read, so a holder that writes more
// often than every 0.5 s kept the dead backend's session open for as long
// as it lived. Now stdout is closed once the pipe holds nothing unread:
// all the backend wrote has been read by then, since it can write no more.
func TestLifecycleExitedBackendWithHolderWritingToStdout(t *testing.T) {
	testExitedBackendWithWritingHolder(t, "crashtrickleout")
}

// A helper that writes to the stdout (or stderr) it holds faster than the
// bridge reads (34th review, finding 10): the pipe is never found empty,
// so the rule above never closes it. Bytes read from a pipe after the
// exit beyond what it held then were written by something else: once
// that many are read, all the backend wrote has been, and the pipe is
// closed.
func TestLifecycleExitedBackendWithHolderFloodingStdout(t *testing.T) {
	testExitedBackendWithWritingHolder(t, "crashflood")
}

// With stderr flooded, stdout ends as usual and the call is answered;
// but the process is reaped only once both pipes are at their end: it
// stayed a zombie (and a goroutine read the flood) as long as the helper
// wrote.
func TestLifecycleExitedBackendWithHolderFloodingStderr(t *testing.T) {
	p := testExitedBackendWithWritingHolder(t, "crashflooderr")
	var pid int
	for _, l := range strings.Split(p.stderr.String(), "\n") {
		if strings.Contains(l, `"backend started"`) {
			if _, err := fmt.Sscanf(l[strings.Index(l, `"pid":`):], `"pid":%d`, &pid); err == nil {
				break
			}
		}
	}
	if pid == 0 {
		t.Fatalf("no pid in the bridge's log:\n%s", p.stderr.String())
	}
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || !strings.Contains(string(stat), ") Z ") {
			return // reaped (or its pid already another's)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the crashed backend (pid %d) is still a zombie 3 s after its call was answered: its escaped helper floods the stderr it holds, and it is reaped only once that pipe ends", pid)
		}
	}
}

// testExitedBackendWithWritingHolder calls tool, whose backend exits
// leaving a helper that writes to its stdout or stderr, and checks that
// the call is answered with the backend's error and that a restarted
// backend answers the next.
func testExitedBackendWithWritingHolder(t *testing.T, tool string) *bridgeProc {
	p, r := r23Crash(t, tool)
	if r == nil {
		t.Fatalf("the backend exited about 5 s ago and its in-flight call is still unanswered (its escaped helper writes to what it holds: %d heartbeat lines logged; the session is never ended)", strings.Count(p.stderr.String(), "heartbeat"))
	}
	if !strings.Contains(string(r.Error()), `"backend":"s"`) {
		t.Errorf("the crashed call: %s", r.Raw())
	}
	// Restarted (after a backoff of 100-200 ms; calls before that are
	// refused at once): a call is answered by a new process.
	var last *frame.Frame
	for i, deadline := 0, time.Now().Add(5*time.Second); time.Now().Before(deadline); i++ {
		id := fmt.Sprintf(`"d%d"`, i)
		p.Send(lcCall(id, "echo"))
		if last = lcWithin(p, id, 2*time.Second); last != nil && last.Error() == nil {
			return p
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("no call was answered by a restarted backend within 5 s of its crash; the last answer: %s", last.Raw())
	return p
}
