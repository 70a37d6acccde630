//go:build linux

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/frame"
)

// The stdio backend's process lifecycle (nineteenth review), probed with small
// POSIX shell backends (lcServer) and the test binary's go-sdk server.
// Each test describes the bug it found; each failed before its fix.

// lcServer is a minimal MCP server in sh. The bridge numbers its requests
// to a backend itself, so the id is always a number right after
// "jsonrpc". Environment:
//
//	LC_STARTS   file that gets one line (the pid) per start
//	LC_MARK     file made by the first start; with LC_LATER=initcrash
//	             every later start reads one line (the initialize) and exits 1
//	LC_HOLD     stdout|stderr|stderr-trickle: leave a child in a session of its own
//	             (setsid, as Python's start_new_session=True does) that keeps
//	             that stream of the backend open; its pid is added to LC_HOLDPID
//	LC_PIDFILE  file that gets the pid of the current start
//
// Tools: "crash" exits 1; "closein" closes the server's stdin and keeps
// running with stdout open; any other tools/call answers "ok".
const lcServer = `#!/bin/sh
[ -n "$LC_STARTS" ] && echo $$ >> "$LC_STARTS"
[ -n "$LC_PIDFILE" ] && echo $$ > "$LC_PIDFILE"
if [ -n "$LC_MARK" ] && [ -e "$LC_MARK" ] && [ "$LC_LATER" = initcrash ]; then
  IFS= read -r line
  echo "crashing during initialize" >&2
  exit 1
fi
[ -n "$LC_MARK" ] && : > "$LC_MARK"
case "$LC_HOLD" in
  stdout) setsid sleep 30 2>/dev/null & echo $! >> "$LC_HOLDPID";;
  stderr) setsid sleep 30 >/dev/null & echo $! >> "$LC_HOLDPID";;
  stderr-trickle) setsid sh -c 'i=0; while [ $i -lt 300 ]; do echo tick >&2; sleep 0.1; i=$((i+1)); done' >/dev/null & echo $! >> "$LC_HOLDPID";;
esac
while IFS= read -r line; do
  id=$(printf '%s\n' "$line" | sed -n 's/^{"jsonrpc":"2.0","id":\([0-9][0-9]*\).*/\1/p')
  case "$line" in
    *'"method":"initialize"'*) printf '{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"lc","version":"1"}}}\n' "$id";;
    *'"name":"crash"'*) exit 1;;
    *'"name":"closein"'*) exec 0<&-; sleep 30; exit 0;;
    *'"method":"tools/call"'*) printf '{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"ok"}]}}\n' "$id";;
    *'"method":"tools/list"'*) printf '{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"echo","inputSchema":{"type":"object"}}]}}\n' "$id";;
    *'"id":'*) [ -n "$id" ] && printf '{"jsonrpc":"2.0","id":%s,"result":{}}\n' "$id";;
  esac
done
exit 0
`

// lcScript writes lcServer to dir/name and returns its path.
func lcScript(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(lcServer), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func lcCall(id, tool string) string {
	return `{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"` + tool + `","arguments":{}}}`
}

// lcWithin polls the host wire for the response id for at most d.
func lcWithin(p *bridgeProc, id string, d time.Duration) *frame.Frame {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		var got *frame.Frame
		p.Count(func(f *frame.Frame) bool {
			if f.Kind == frame.Response && string(f.ID()) == id {
				got = f
			}
			return false
		})
		if got != nil {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// lcKillHolder kills, by pid, the escaped children whose pids the
// script's starts wrote (one a line), once the test is over.
func lcKillHolder(t *testing.T, pidFile string) {
	t.Cleanup(func() {
		b, _ := os.ReadFile(pidFile)
		for _, f := range strings.Fields(string(b)) {
			if pid, _ := strconv.Atoi(f); pid > 1 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
}

func lcNeedSetsid(t *testing.T) {
	if _, err := exec.LookPath("setsid"); err != nil {
		t.Skip("needs setsid(1)")
	}
}

func lcLines(path string) int {
	b, _ := os.ReadFile(path)
	return strings.Count(string(b), "\n")
}

// TestLifecycleRelativeCommandInRelativeCwd: README: "--cwd NAME=DIR working
// directory of a stdio backend" (a relative DIR stays relative to the
// bridge's), and a relative command is resolved against that directory
// (lookPath joins them). But the joined path, still relative, is then run
// by os/exec with cmd.Dir set, which resolves it against Dir once more:
// sub/./server.sh becomes sub/sub/server.sh, "no such file or directory".
// The same happens with `--config servers.json` (a relative file: its
// entries' cwd stay relative) and "command": "./server".
func TestLifecycleRelativeCommandInRelativeCwd(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	lcScript(t, filepath.Join(dir, "sub"), "server.sh")
	config := `{"mcpServers":{"s":{"command":"./server.sh","cwd":"sub"}}}`
	if err := os.WriteFile(filepath.Join(dir, "servers.json"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
	}{
		{"flags", []string{"--cwd", "s=sub", "--stdio", "s=./server.sh"}},
		{"config", []string{"--config", "servers.json"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := startBridgeIn(t, dir, nil, c.args...)
			p.Send(initLine)
			if r := p.Response("0"); r.IsError() {
				t.Fatalf("a relative command in a relative cwd did not start: %s", r.Raw())
			}
		})
	}
}

// TestLifecycleCrashDuringReinitializeIsRetriedPromptly: a backend that
// worked once, crashed, and now exits while its restart's initialize is
// in flight (a crash loop at startup) must be retried with the restart
// backoff (200 ms doubling; "gives up after 8 quick failures"). The
// restart path (link.session, attempt > 0) waits in link.initialize for
// the answer or --init-timeout and does not watch the session's end, so
// each such restart takes the whole --init-timeout (default 60 s: eight
// of them are 8 minutes of "not available", not seconds).
func TestLifecycleCrashDuringReinitializeIsRetriedPromptly(t *testing.T) {
	dir := t.TempDir()
	script := lcScript(t, dir, "server.sh")
	starts := filepath.Join(dir, "starts")
	env := []string{"LC_STARTS=" + starts, "LC_MARK=" + filepath.Join(dir, "mark"), "LC_LATER=initcrash"}
	p := startBridge(t, env, "--init-timeout", "30s", "--stdio", "s="+script)
	handshake(t, p)
	p.Send(lcCall(`"c"`, "crash"))
	p.Response(`"c"`)
	// Backoff before restarts 1, 2, 3: at most 0.2 + 0.4 + 0.8 s.
	deadline := time.Now().Add(6 * time.Second)
	for lcLines(starts) < 4 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := lcLines(starts); n < 4 {
		t.Errorf("6 s after the crash the backend was started %d times (1 + %d restarts); each restart that dies in its initialize waits --init-timeout (30 s) before the next", n, n-1)
	}
}

// TestLifecycleExitedBackendWithEscapedStdoutHolder: README: "stdio backend
// crashes mid-call: in-flight requests get -32603 naming it at once ...
// restarted". A backend that started a helper in a session of its own
// (setsid; Python's start_new_session=True) without redirecting its
// stdout exits: trackExit sees the exit but only kills the backend's own
// group, and the session ends only at stdout EOF (readLoop), which the
// helper keeps from coming. The call waits for --timeout, the backend is
// not restarted, and the dead backend stays a zombie (waitLoop reaps only
// after stdout and stderr EOF). (--timeout 6s here only so that the
// bridge exits soon after the test.)
func TestLifecycleExitedBackendWithEscapedStdoutHolder(t *testing.T) {
	lcNeedSetsid(t)
	dir := t.TempDir()
	script := lcScript(t, dir, "server.sh")
	holdPID, pidFile := filepath.Join(dir, "hold.pid"), filepath.Join(dir, "backend.pid")
	lcKillHolder(t, holdPID)
	p := startBridge(t, []string{"LC_HOLD=stdout", "LC_HOLDPID=" + holdPID, "LC_PIDFILE=" + pidFile}, "--timeout", "6s", "--stdio", "s="+script)
	handshake(t, p)
	b, _ := os.ReadFile(pidFile)
	backendPID, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	p.Send(lcCall(`"c"`, "crash"))
	r := lcWithin(p, `"c"`, 4*time.Second)
	if r == nil {
		state := "gone"
		if st, err := os.ReadFile("/proc/" + strconv.Itoa(backendPID) + "/stat"); err == nil {
			state = strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+1:]))[0]
		}
		t.Fatalf("the backend (pid %d, now in state %s) exited 4 s ago and its in-flight call is still unanswered", backendPID, state)
	}
	if !strings.Contains(string(r.Error()), `"backend":"s"`) {
		t.Errorf("the crashed call: %s", r.Raw())
	}
}

// TestLifecycleExitedBackendWithEscapedStderrHolder: the same helper, but
// holding only the backend's stderr. The call is answered (stdout ended),
// but waitLoop waits for stderr EOF before it reaps the backend: the
// exited backend stays a zombie for as long as the helper lives, Close
// walks its whole ladder (1.5 s x 3, "did not exit after SIGKILL") before
// session() returns, and so the restart (200 ms backoff) comes about 6 s
// after the crash. Each such crash leaks a zombie and two goroutines.
//
// The "trickle" case: a helper that keeps writing to the stderr it holds
// (a log line every 0.1 s) must not keep the exited backend unreaped
// either (twenty-second review's suspicion of the first fix, which waited
// for a quiet pipe).
func TestLifecycleExitedBackendWithEscapedStderrHolder(t *testing.T) {
	lcNeedSetsid(t)
	for _, hold := range []string{"stderr", "stderr-trickle"} {
		t.Run(hold, func(t *testing.T) { testEscapedStderrHolder(t, hold) })
	}
}

func testEscapedStderrHolder(t *testing.T, hold string) {
	dir := t.TempDir()
	script := lcScript(t, dir, "server.sh")
	holdPID, pidFile, starts := filepath.Join(dir, "hold.pid"), filepath.Join(dir, "backend.pid"), filepath.Join(dir, "starts")
	lcKillHolder(t, holdPID)
	p := startBridge(t, []string{"LC_HOLD=" + hold, "LC_HOLDPID=" + holdPID, "LC_PIDFILE=" + pidFile, "LC_STARTS=" + starts}, "--stdio", "s="+script)
	handshake(t, p)
	b, _ := os.ReadFile(pidFile)
	backendPID, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	p.Send(lcCall(`"c"`, "crash"))
	if lcWithin(p, `"c"`, 4*time.Second) == nil {
		t.Fatal("the crashed call was not answered")
	}
	time.Sleep(3 * time.Second)
	if st, err := os.ReadFile("/proc/" + strconv.Itoa(backendPID) + "/stat"); err == nil {
		t.Errorf("the crashed backend (pid %d) is not reaped 3 s after it exited: /proc stat state %q", backendPID, strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+1:]))[0])
	}
	if n := lcLines(starts); n < 2 {
		t.Errorf("the backend was not restarted within 3 s of its crash (restart backoff 100-200 ms): %d start(s)", n)
	}
}

// TestLifecycleBackendThatClosedItsStdin: a backend closes its stdin but
// keeps running with stdout open. The bridge's next write to it fails
// (EPIPE, logged at debug: "writing to backend"), writeLoop ends, and from
// then on Send keeps queueing frames nobody will write: that call and
// every later one wait for --timeout (5 min by default) instead of
// failing, and the backend is never restarted.
func TestLifecycleBackendThatClosedItsStdin(t *testing.T) {
	dir := t.TempDir()
	script := lcScript(t, dir, "server.sh")
	p := startBridge(t, nil, "--timeout", "6s", "--stdio", "s="+script)
	handshake(t, p)
	p.Send(lcCall(`"x"`, "closein"))
	time.Sleep(500 * time.Millisecond)
	p.Send(lcCall(`"a"`, "echo"))
	time.Sleep(200 * time.Millisecond)
	p.Send(lcCall(`"b"`, "echo"))
	time.Sleep(4 * time.Second) // the writes failed at once; --timeout is 6 s
	for _, id := range []string{`"a"`, `"b"`} {
		if r := lcWithin(p, id, 10*time.Millisecond); r == nil {
			t.Errorf("call %s to a backend whose stdin is closed (the write failed with EPIPE) is unanswered after 4 s", id)
		}
	}
}

// TestLifecycleInFlightAnswersAtSignal: on SIGTERM the bridge answers the
// host's in-flight calls with -32603 before the close ladder
// (link.session: "Answer what was in flight"), but it does so after
// r.cancel(), and toHost queues with front.Put(r.life, f): a select
// between a free queue slot and the done context, which Go picks at
// random. About half of the answers are dropped ("dropping a message for
// the host at shutdown", debug), a different half each run.
func TestLifecycleInFlightAnswersAtSignal(t *testing.T) {
	p := startBridge(t, serverEnvFor("sigflight"), "--log-level", "debug", "--stdio", stdioBackend("sigflight"))
	handshake(t, p)
	const n = 20
	for i := range n {
		p.Send(`{"jsonrpc":"2.0","id":` + strconv.Itoa(i+1) + `,"method":"tools/call","params":{"name":"block","arguments":{}}}`)
	}
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(p.stderr.String(), `"method":"tools/call"`) < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.waitExit(t, 8*time.Second)
	got := p.Count(func(f *frame.Frame) bool {
		id, ok := frame.Int(f.ID())
		return f.Kind == frame.Response && ok && id >= 1 && id <= n
	})
	if got != n {
		t.Errorf("%d of %d in-flight calls were answered at SIGTERM (the rest dropped at random; %d 'dropping a message' log lines)", got, n, strings.Count(p.stderr.String(), "dropping a message for the host at shutdown"))
	}
}
