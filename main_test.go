//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/backends"
	"github.com/mcpbridge/mcpbridge/frame"
	"github.com/mcpbridge/mcpbridge/internal/oauthtest"
	"github.com/mcpbridge/mcpbridge/internal/testserver"
	"github.com/mcpbridge/mcpbridge/internal/wiretest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// End-to-end tests: the real mcpbridge binary, built once, driven over its
// real stdin/stdout by a line-level host, in front of real backends: this
// test binary re-executed as a go-sdk stdio server, and go-sdk HTTP and SSE
// servers on loopback. Every line the bridge writes to stdout must be
// JSON-RPC (wiretest fails the test otherwise).

// serverEnv makes this test binary act as a stdio MCP server (go-sdk
// cmd_test.go style): the value is the server's name.
const serverEnv = "MCPBRIDGE_E2E_SERVER"

var bridgeBin string

func TestMain(m *testing.M) {
	if name := os.Getenv(serverEnv); name != "" {
		runTestServer(name)
		return
	}
	if len(os.Args) == 3 && os.Args[1] == fakeBrowserArg {
		// A browser run by the bridge: careless openers print to stdout,
		// which must not reach the bridge's.
		fmt.Println("Opening in existing browser session.")
		os.Exit(oauthtest.FakeBrowser(os.Args[2]))
	}
	dir, err := os.MkdirTemp("", "mcpbridge-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// No bridge a test starts may store OAuth tokens in the user's
	// directory or open a browser.
	os.Setenv("MCPBRIDGE_OAUTH_DIR", filepath.Join(dir, "oauth"))
	os.Setenv("MCPBRIDGE_BROWSER", "true")
	bridgeBin = filepath.Join(dir, "mcpbridge")
	if out, err := exec.Command("go", "build", "-o", bridgeBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building mcpbridge: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runTestServer serves testserver.New(name) on stdin/stdout. With
// E2E_NOISE set it first prints junk to stdout and a secret to stderr, as
// careless servers do; with E2E_GRANDCHILD it leaves a sleeping child.
func runTestServer(name string) {
	testserver.AllowCrash = true
	if os.Getenv("E2E_NOISE") != "" {
		fmt.Println("Starting server... (a banner on stdout)")
		fmt.Fprintln(os.Stderr, "token is "+os.Getenv("SECRET_TOKEN"))
	}
	if os.Getenv("E2E_GRANDCHILD") != "" {
		c := exec.Command("sleep", "300")
		if os.Getenv("E2E_GRANDCHILD_STDOUT") != "" {
			c.Stdout = os.Stdout // holds the backend's stdout open after it exits
		}
		if err := c.Start(); err == nil {
			os.WriteFile(os.Getenv("E2E_GRANDCHILD"), []byte(strconv.Itoa(c.Process.Pid)), 0o644)
		}
	}
	if os.Getenv("E2E_STUCK") != "" {
		runStuckServer()
		return
	}
	srv := testserver.New(name)
	t := &mcp.IOTransport{Reader: os.Stdin, Writer: os.Stdout, MaxLineLength: -1}
	if err := srv.Run(context.Background(), t); err != nil {
		fmt.Fprintln(os.Stderr, "test server:", err)
	}
}

// runStuckServer answers initialize and one tools/list, then never reads
// its stdin again: a backend that stopped reading.
func runStuckServer() {
	lr := frame.NewLineReader(os.Stdin, 0)
	for answered := 0; answered < 2; {
		line, err := lr.Next()
		if err != nil {
			return
		}
		f, err := frame.Parse(line)
		if err != nil || f.Kind != frame.Request {
			continue
		}
		result := `{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"stuck","version":"1"}}`
		if f.Method == "tools/list" {
			result = `{"tools":[{"name":"sink","inputSchema":{"type":"object"}}]}`
		}
		os.Stdout.Write(append(frame.NewResult(f.ID(), []byte(result)).Encoded(), '\n'))
		answered++
	}
	time.Sleep(time.Hour)
}

// bridgeProc is one running mcpbridge.
type bridgeProc struct {
	*wiretest.Wire
	cmd    *exec.Cmd
	stderr *syncBuffer
	exited chan struct{}
	err    error // exit error, set before exited closes
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startBridge(t *testing.T, env []string, args ...string) *bridgeProc {
	t.Helper()
	return startBridgeIn(t, "", env, args...)
}

// startBridgeIn is startBridge with the bridge's working directory set
// ("": the test's).
func startBridgeIn(t *testing.T, dir string, env []string, args ...string) *bridgeProc {
	t.Helper()
	cmd := exec.Command(bridgeBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &bridgeProc{cmd: cmd, stderr: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.Wire = wiretest.New(t, stdin, stdout)
	go func() {
		<-p.Wire.EOF
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-p.exited
			t.Errorf("mcpbridge did not exit after stdin EOF")
		}
		if t.Failed() {
			t.Logf("mcpbridge stderr:\n%s", tail(p.stderr.String(), 4000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// awaitLog waits up to 10 s for the bridge's log to contain text.
func (p *bridgeProc) awaitLog(t *testing.T, text string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.stderr.String(), text) {
		if time.Now().After(deadline) {
			t.Fatalf("the bridge did not log %q within 10 s", text)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitExit waits for the bridge to exit and returns its status.
func (p *bridgeProc) waitExit(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(within):
		t.Fatalf("mcpbridge still running after %v", within)
	}
	if p.err == nil {
		return 0
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	t.Fatalf("wait: %v", p.err)
	return -1
}

// stdioBackend is the --stdio value that runs this test binary as server name.
func stdioBackend(name string) string {
	self, _ := os.Executable()
	return name + "=" + self
}

func serverEnvFor(name string) []string { return []string{serverEnv + "=" + name} }

const initLine = `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"sampling":{},"roots":{"listChanged":true}},"clientInfo":{"name":"e2e","version":"1"}}}`

func handshake(t *testing.T, p *bridgeProc) *frame.Frame {
	t.Helper()
	p.Send(initLine)
	f := p.Response("0")
	if f.IsError() {
		t.Fatalf("initialize failed: %s", f.Raw())
	}
	p.Send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	return f
}

func echoCall(id, text string) string {
	return `{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"echo","arguments":{"text":"` + text + `"}}}`
}

// countingHandler counts HTTP requests by method and MCP sessions.
type countingHandler struct {
	h                   http.Handler
	posts, gets, others atomic.Int64
	sessions            atomic.Int64
}

func (c *countingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
		c.posts.Add(1)
		if r.Header.Get("Mcp-Session-Id") == "" {
			c.sessions.Add(1) // only initialize comes without a session
		}
	case http.MethodGet:
		c.gets.Add(1)
	default:
		c.others.Add(1)
	}
	c.h.ServeHTTP(w, r)
}

func (c *countingHandler) total() int64 { return c.posts.Load() + c.gets.Load() + c.others.Load() }

func httpBackend(t *testing.T, name string) (*countingHandler, string) {
	srv := testserver.New(name)
	h := &countingHandler{h: mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil)}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return h, ts.URL + "/mcp"
}

func sseBackend(t *testing.T, name string) string {
	srv := testserver.New(name)
	ts := httptest.NewServer(mcp.NewSSEHandler(func(*http.Request) *mcp.Server { return srv }, nil))
	t.Cleanup(ts.Close)
	return ts.URL + "/sse"
}

// TestStdioBackendEndToEnd covers the main path over a real child process:
// raw ids, progress token 0, junk on the backend's stdout, secrets kept out
// of the log, and a clean exit on stdin EOF.
func TestStdioBackendEndToEnd(t *testing.T) {
	self, _ := os.Executable()
	env := append(serverEnvFor("solo"), "E2E_NOISE=1")
	p := startBridge(t, env, "--env", "solo:SECRET_TOKEN=hunter2-secret", "--stdio", "solo="+self)
	handshake(t, p)
	ids := []string{"9007199254740993", `"str-id"`, "1.5"}
	for _, id := range ids {
		p.Send(echoCall(id, "hi "+strings.Trim(id, `"`)))
	}
	for _, id := range ids {
		if r := p.Response(id); !strings.Contains(string(r.Result()), "hi ") {
			t.Errorf("id %s: %s", id, r.Raw())
		}
	}
	p.Send(`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"progress","arguments":{"steps":2},"_meta":{"progressToken":0}}}`)
	p.Response("5")
	if n := p.Count(func(f *frame.Frame) bool {
		return f.Method == "notifications/progress" && string(f.Bytes(f.Param("progressToken"))) == "0"
	}); n != 2 {
		t.Errorf("progress with token 0: %d notifications, want 2", n)
	}
	p.Send(`{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"env","arguments":{"name":"SECRET_TOKEN"}}}`)
	if r := p.Response("6"); !strings.Contains(string(r.Result()), "hunter2-secret") {
		t.Errorf("--env did not reach the backend: %s", r.Raw())
	}
	p.W.Close()
	if code := p.waitExit(t, 5*time.Second); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
	logs := p.stderr.String()
	if strings.Contains(logs, "hunter2-secret") {
		t.Errorf("a configured secret reached the log")
	}
	if !strings.Contains(logs, "not JSON-RPC") {
		t.Errorf("the backend's junk line was not logged as skipped")
	}
}

// TestHTTPBackendCounts asserts the session model on the wire: one
// backend session, few requests at startup, exactly one HTTP request per
// call and no new session (issue #6).
func TestHTTPBackendCounts(t *testing.T) {
	h, url := httpBackend(t, "remote")
	p := startBridge(t, nil, "--http", "remote="+url)
	handshake(t, p)
	p.Send(`{"jsonrpc":"2.0","id":"warm","method":"ping"}`)
	p.Response(`"warm"`)
	// The standalone GET stream may open a moment after initialized.
	time.Sleep(200 * time.Millisecond)
	startup := h.total()
	if startup > 4 || h.sessions.Load() != 1 {
		t.Errorf("startup: %d HTTP requests, %d sessions; want at most 4 and exactly 1", startup, h.sessions.Load())
	}
	const calls = 20
	for i := range calls {
		id := strconv.Itoa(100 + i)
		p.Send(echoCall(id, "c"+id))
		p.Response(id)
	}
	if got := h.total() - startup; got != calls {
		t.Errorf("%d calls made %d HTTP requests, want exactly %d", calls, got, calls)
	}
	if h.sessions.Load() != 1 {
		t.Errorf("calls opened new sessions: %d in all", h.sessions.Load())
	}
}

func TestSSEBackend(t *testing.T) {
	url := sseBackend(t, "legacy")
	p := startBridge(t, nil, "--sse", "legacy="+url)
	handshake(t, p)
	p.Send(echoCall("1", "over sse"))
	if r := p.Response("1"); !strings.Contains(string(r.Result()), "over sse") {
		t.Errorf("sse call: %s", r.Raw())
	}
}

// TestThreeKindsAsOneServer runs a stdio, an HTTP and an SSE backend
// behind one bridge (issue #4).
func TestThreeKindsAsOneServer(t *testing.T) {
	_, httpURL := httpBackend(t, "h")
	sseURL := sseBackend(t, "s")
	p := startBridge(t, serverEnvFor("l"), "--stdio", stdioBackend("l"), "--http", "h="+httpURL, "--sse", "s="+sseURL)
	handshake(t, p)
	for i, name := range []string{"l", "h", "s"} {
		id := strconv.Itoa(i + 1)
		p.Send(`{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"` + name + `_whoami","arguments":{}}}`)
		if r := p.Response(id); !strings.Contains(string(r.Result()), `"text":"`+name+`"`) {
			t.Errorf("%s_whoami: %s", name, r.Raw())
		}
	}
}

// TestBackendCrashIsAnsweredAndRestarted: a crash mid-call gets an error
// naming the backend quickly, and the backend comes back (issue #5).
func TestBackendCrashIsAnsweredAndRestarted(t *testing.T) {
	p := startBridge(t, serverEnvFor("fragile"), "--stdio", stdioBackend("fragile"))
	handshake(t, p)
	p.Send(`{"jsonrpc":"2.0","id":"b","method":"tools/call","params":{"name":"block","arguments":{}}}`)
	// A request of the backend's own waits on the host when it dies.
	p.Send(`{"jsonrpc":"2.0","id":"s","method":"tools/call","params":{"name":"sample","arguments":{}}}`)
	up := p.WaitFor("the backend's sampling request", func(f *frame.Frame) bool {
		return f.Kind == frame.Request && f.Method == "sampling/createMessage"
	})
	start := time.Now()
	p.Send(`{"jsonrpc":"2.0","id":"c","method":"tools/call","params":{"name":"crash","arguments":{}}}`)
	r := p.Response(`"b"`)
	if !strings.Contains(string(r.Error()), `fragile`) {
		t.Errorf("in-flight call after a crash: %s", r.Raw())
	}
	if d := time.Since(start); d > 3*time.Second { // the issue asks for 1 s; generous margin
		t.Errorf("the error took %v", d)
	}
	p.Response(`"c"`)
	p.WaitFor("the host told the backend's request is cancelled", func(f *frame.Frame) bool {
		return f.Kind == frame.Notification && f.Method == "notifications/cancelled" && string(f.Bytes(f.Param("requestId"))) == string(up.ID())
	})
	// Restarted with backoff: a later call succeeds.
	awaitRestart(t, p)
}

// awaitRestart calls echo until a call succeeds: the backend is back
// after its restart backoff.
func awaitRestart(t *testing.T, p *bridgeProc) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		id := strconv.Itoa(1000 + i)
		p.Send(echoCall(id, "back"))
		if r := p.Response(id); r.Result() != nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatal("the backend was not restarted")
}

// startWithGrandchild starts a bridge whose backend leaves a sleeping
// child, and returns the child's pid.
func startWithGrandchild(t *testing.T, name string) (*bridgeProc, int) {
	pidFile := filepath.Join(t.TempDir(), "grandchild.pid")
	p := startBridge(t, append(serverEnvFor(name), "E2E_GRANDCHILD="+pidFile), "--stdio", stdioBackend(name))
	handshake(t, p)
	return p, grandchildPID(t, pidFile, 0)
}

// grandchildPID waits for the backend to write its child's pid to pidFile,
// one other than not, and returns it.
func grandchildPID(t *testing.T, pidFile string, not int) int {
	t.Helper()
	for range 250 {
		b, _ := os.ReadFile(pidFile)
		if pid, _ := strconv.Atoi(string(b)); pid != 0 && pid != not {
			return pid
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the backend did not start its grandchild")
	return 0
}

// requireGone waits up to 5 s for pid to be gone, and kills it if not.
func requireGone(t *testing.T, pid int, after string) {
	t.Helper()
	for range 100 {
		if !alive(pid) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, _ := exec.Command("ps", "-eo", "pid,ppid,pgid,stat,cmd").Output()
	syscall.Kill(pid, syscall.SIGKILL)
	t.Fatalf("grandchild %d outlived %s:\n%s", pid, after, out)
}

// alive reports whether pid is a live process (a zombie counts as gone).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

// TestProcessTreeIsGone: a grandchild left by a backend is gone after the
// bridge exits (issue #5), here on stdin EOF.
func TestProcessTreeIsGone(t *testing.T) {
	p, pid := startWithGrandchild(t, "parent")
	p.W.Close()
	p.waitExit(t, 8*time.Second)
	requireGone(t, pid, "the bridge's exit on stdin EOF")
}

// TestKilledBridgeTakesTheTreeAlong: SIGKILL of the bridge itself leaves
// no backend process behind, grandchildren included: the bridge's guard
// reads EOF on its pipe and kills the backend's group, then ends too.
func TestKilledBridgeTakesTheTreeAlong(t *testing.T) {
	p, pid := startWithGrandchild(t, "orphan")
	guards := childrenWithArg(p.cmd.Process.Pid, backends.GuardArg)
	if len(guards) != 1 {
		t.Errorf("%d guard processes, want 1", len(guards))
	}
	p.cmd.Process.Kill()
	requireGone(t, pid, "a SIGKILL of the bridge")
	for _, g := range guards {
		requireGone(t, g, "a SIGKILL of the bridge (the guard itself)")
	}
}

// TestGuardIsReplaced: a guard that dies is replaced at the next backend
// start, and the new one is handed the groups alive: a SIGKILL of the
// bridge still takes the restarted backend's tree along.
func TestGuardIsReplaced(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "grandchild.pid")
	p := startBridge(t, append(serverEnvFor("reguard"), "E2E_GRANDCHILD="+pidFile), "--stdio", stdioBackend("reguard"))
	handshake(t, p)
	first := grandchildPID(t, pidFile, 0)
	guards := childrenWithArg(p.cmd.Process.Pid, backends.GuardArg)
	if len(guards) != 1 {
		t.Fatalf("%d guard processes, want 1", len(guards))
	}
	syscall.Kill(guards[0], syscall.SIGKILL)
	requireGone(t, guards[0], "its SIGKILL")

	p.Send(`{"jsonrpc":"2.0","id":"c","method":"tools/call","params":{"name":"crash","arguments":{}}}`)
	p.Response(`"c"`)
	requireGone(t, first, "its backend's exit")
	second := grandchildPID(t, pidFile, first)
	awaitRestart(t, p)
	if guards := childrenWithArg(p.cmd.Process.Pid, backends.GuardArg); len(guards) != 1 {
		t.Fatalf("%d guard processes after the restart, want 1", len(guards))
	}
	p.cmd.Process.Kill()
	requireGone(t, second, "a SIGKILL of the bridge, after its guard was replaced")
}

// TestExitedBackendTakesItsGroupAlong: a backend that exits while a child
// of its own still holds its stdout is noticed at once (the child is
// killed with the backend's group, so stdout ends), its call is answered
// with an error, and it is restarted.
func TestExitedBackendTakesItsGroupAlong(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "grandchild.pid")
	p := startBridge(t, append(serverEnvFor("holder"), "E2E_GRANDCHILD="+pidFile, "E2E_GRANDCHILD_STDOUT=1"), "--stdio", stdioBackend("holder"))
	handshake(t, p)
	pid := grandchildPID(t, pidFile, 0)
	start := time.Now()
	p.Send(`{"jsonrpc":"2.0","id":"c","method":"tools/call","params":{"name":"crash","arguments":{}}}`)
	if r := p.Response(`"c"`); !strings.Contains(string(r.Error()), "holder") {
		t.Errorf("the call that crashed the backend: %s", r.Raw())
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the error took %v", d)
	}
	requireGone(t, pid, "its backend's exit")
	awaitRestart(t, p)
}

// childrenWithArg lists the children of ppid whose command line has arg.
func childrenWithArg(ppid int, arg string) []int {
	var pids []int
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) < 2 || fields[1] != strconv.Itoa(ppid) {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if slices.Contains(strings.Split(string(cmdline), "\x00"), arg) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestSignalStopsWithinFiveSeconds(t *testing.T) {
	p := startBridge(t, serverEnvFor("sig"), "--stdio", stdioBackend("sig"))
	handshake(t, p)
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.waitExit(t, 6*time.Second); code != 0 {
		t.Errorf("exit status after SIGTERM: %d", code)
	}
}

func TestOnlyBackendMissingExitsNonZero(t *testing.T) {
	p := startBridge(t, []string{"PATH=/nonexistent"}, "--stdio", "ghost=no-such-server-binary --flag")
	p.Send(initLine)
	r := p.Response("0")
	if !strings.Contains(string(r.Error()), "ghost") || !strings.Contains(string(r.Error()), "/nonexistent") {
		t.Errorf("initialize error should name the backend and the PATH searched: %s", r.Raw())
	}
	if code := p.waitExit(t, 5*time.Second); code == 0 {
		t.Errorf("exit status 0 after the only backend failed")
	}
}

// TestCommandLineNeverWritesStdout: help, version and usage errors go to
// stderr, and bad input exits 2 before anything starts.
func TestCommandLineNeverWritesStdout(t *testing.T) {
	cases := []struct {
		name string
		args []string
		code int
	}{
		{"help", []string{"--help"}, 0},
		{"version", []string{"--version"}, 0},
		{"unknown flag", []string{"--no-such-flag"}, 2},
		{"no backends", nil, 2},
		{"bad name", []string{"--http", "bad name=http://127.0.0.1:1/mcp"}, 2},
		{"unreadable config", []string{"--config", "/nonexistent/mcp.json"}, 2},
		{"env for unknown backend", []string{"--stdio", "a=cat", "--env", "b:K=V"}, 2},
		{"negative init timeout", []string{"--init-timeout", "-1s", "--stdio", "a=cat"}, 2},
		{"tiny max message", []string{"--max-message", "0", "--stdio", "a=cat"}, 2},
		{"empty separator", []string{"--separator", "", "--stdio", "a=cat"}, 2},
		{"dot separator", []string{"--separator", ".", "--stdio", "a=cat"}, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(bridgeBin, c.args...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			cmd.Stdin = strings.NewReader("")
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
			if code != c.code {
				t.Errorf("exit status %d, want %d; stderr: %s", code, c.code, stderr.String())
			}
			if stdout.Len() != 0 {
				t.Errorf("wrote to stdout: %q", stdout.String())
			}
			if stderr.Len() == 0 {
				t.Errorf("nothing on stderr")
			}
		})
	}
}

// TestScriptedSession is the README's first command: a recorded session
// piped through the bridge prints every reply and exits 0.
func TestScriptedSession(t *testing.T) {
	session, err := os.ReadFile("testdata/session.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	cmd := exec.Command(bridgeBin, "--", self)
	cmd.Env = append(os.Environ(), serverEnvFor("demo")...)
	cmd.Stdin = bytes.NewReader(session)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("mcpbridge: %v\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		t.Fatal("mcpbridge did not exit after the scripted session")
	}
	requests := 0
	for _, l := range bytes.Split(session, []byte("\n")) {
		if f, err := frame.Parse(bytes.Clone(l)); err == nil && f.Kind == frame.Request {
			requests++
		}
	}
	replies := 0
	for _, l := range bytes.Split(bytes.TrimSpace(stdout.Bytes()), []byte("\n")) {
		f, err := frame.Parse(bytes.Clone(l))
		if err != nil {
			t.Fatalf("stdout line is not JSON-RPC: %q", l)
		}
		if f.Kind == frame.Response {
			replies++
		}
	}
	if replies != requests {
		t.Errorf("%d requests got %d replies:\n%s", requests, replies, stdout.String())
	}
}

// TestHTTPServerRestartsAtSameURL: the remote server process goes away
// (calls fail fast, naming the backend) and comes back at the same URL
// with all sessions lost; the bridge picks it up again within seconds
// (issue #5).
func TestHTTPServerRestartsAtSameURL(t *testing.T) {
	first := serveHTTP(t, "127.0.0.1:0", "first")
	addr := first.Listener.Addr().String()
	p := startBridge(t, nil, "--http", "r=http://"+addr+"/mcp")
	handshake(t, p)
	p.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}`)
	if r := p.Response("1"); !strings.Contains(string(r.Result()), `"text":"first"`) {
		t.Fatalf("before the restart: %s", r.Raw())
	}

	// The server process dies: connections drop (the bridge's GET stream
	// included) and nothing listens any more.
	kill(first)
	start := time.Now()
	p.Send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"whoami","arguments":{}}}`)
	if r := p.Response("2"); !strings.Contains(string(r.Error()), `"r"`) {
		t.Errorf("while the server is down: %s", r.Raw())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the error while down took %v", d)
	}

	serveHTTP(t, addr, "second")
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		id := strconv.Itoa(100 + i)
		p.Send(`{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"whoami","arguments":{}}}`)
		if r := p.Response(id); strings.Contains(string(r.Result()), `"text":"second"`) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatal("the restarted server was not picked up within 10 s")
}

// serveHTTP serves the test server name over streamable HTTP at addr
// ("127.0.0.1:0": any port; a server's old address: its restart) until
// the test ends.
func serveHTTP(t *testing.T, addr, name string) *httptest.Server {
	t.Helper()
	return serveServer(t, addr, testserver.New(name))
}

// serveServer serves srv over streamable HTTP at addr, as serveHTTP.
func serveServer(t *testing.T, addr string, srv *mcp.Server) *httptest.Server {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	ts := httptest.NewUnstartedServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil))
	ts.Listener.Close()
	ts.Listener = ln
	ts.Start()
	t.Cleanup(func() { kill(ts) })
	return ts
}

// kill stops a test HTTP server the way a dying process does: every
// connection drops.
func kill(ts *httptest.Server) {
	ts.CloseClientConnections()
	ts.Close()
}

// TestUpcallsOfALostHTTPSession: a backend's sampling request is waiting
// on the host when the HTTP server restarts and the bridge sets up a new
// session. The host is told the old request is cancelled; the new
// session's own sampling request (numbered from the start again) reaches
// the host; and the host's late answer to the old one is dropped, not
// taken as the answer to the new one (found by a stress review: the new
// request was refused as a duplicate, or got the stale answer).
func TestUpcallsOfALostHTTPSession(t *testing.T) {
	first := serveHTTP(t, "127.0.0.1:0", "first")
	addr := first.Listener.Addr().String()
	p := startBridge(t, nil, "--http", "r=http://"+addr+"/mcp")
	handshake(t, p)
	isSampling := func(f *frame.Frame) bool { return f.Kind == frame.Request && f.Method == "sampling/createMessage" }
	p.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sample","arguments":{}}}`)
	old := p.WaitFor("the first session's sampling request", isSampling)

	kill(first)
	serveHTTP(t, addr, "second")
	p.Response("1") // lost with its answer stream
	// Not into the dying server's keep-alive connection:
	p.awaitLog(t, "starting a new one")

	p.Send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"sample","arguments":{}}}`)
	p.WaitFor("the host told the old request is cancelled", func(f *frame.Frame) bool {
		return f.Kind == frame.Notification && f.Method == "notifications/cancelled" && string(f.Bytes(f.Param("requestId"))) == string(old.ID())
	})
	fresh := p.WaitFor("the new session's sampling request", func(f *frame.Frame) bool {
		return isSampling(f) && string(f.ID()) != string(old.ID())
	})
	p.Send(`{"jsonrpc":"2.0","id":` + string(old.ID()) + `,"result":{"role":"assistant","content":{"type":"text","text":"STALE"},"model":"m"}}`)
	p.Send(`{"jsonrpc":"2.0","id":` + string(fresh.ID()) + `,"result":{"role":"assistant","content":{"type":"text","text":"fresh"},"model":"m"}}`)
	if r := p.Response("2"); !strings.Contains(string(r.Result()), `"fresh"`) {
		t.Errorf("the new session's call: %s", r.Raw())
	}
}

// TestCancelWhileTheSessionIsReplaced: the HTTP server restarts, the host's
// next call finds the session gone and waits while the bridge sets up a
// new one (whose initialize takes a second here), and the host cancels the
// call meanwhile. The call must not be left running in the new session:
// it is either never sent or cancelled there (found by a stress review:
// the cancellation was posted without a session id and lost, and the
// call ran on).
func TestCancelWhileTheSessionIsReplaced(t *testing.T) {
	var started, cancelled atomic.Int32
	testserver.OnBlockCancelled = func(string) { cancelled.Add(1) }
	t.Cleanup(func() { testserver.OnBlockCancelled = nil })
	first := serveHTTP(t, "127.0.0.1:0", "first")
	addr := first.Listener.Addr().String()
	p := startBridge(t, nil, "--http", "r=http://"+addr+"/mcp")
	handshake(t, p)
	p.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}}`)
	p.Response("1")

	kill(first)
	second := testserver.New("second")
	second.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			switch method {
			case "initialize":
				time.Sleep(time.Second)
			case "tools/call":
				if req.GetParams().(*mcp.CallToolParamsRaw).Name == "block" {
					started.Add(1)
				}
			}
			return next(ctx, method, req)
		}
	})
	serveServer(t, addr, second)
	// The bridge finds the session gone (its standalone stream drops) and
	// starts a new one; a call sent earlier could meet the dying server's
	// connection instead and fail before it is cancelled.
	p.awaitLog(t, "starting a new one")
	p.Send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"block","arguments":{}}}`)
	time.Sleep(400 * time.Millisecond) // the new session's initialize is under way
	p.Send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":2,"reason":"user"}}`)
	p.Send(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"whoami","arguments":{}}}`)
	if r := p.Response("3"); !strings.Contains(string(r.Result()), `"second"`) {
		t.Fatalf("a call in the new session: %s", r.Raw())
	}
	deadline := time.Now().Add(5 * time.Second)
	for started.Load() != cancelled.Load() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if s, c := started.Load(), cancelled.Load(); s != c {
		t.Errorf("the new session got the cancelled call %d time(s) and saw %d cancellation(s) of it", s, c)
	}
	if n := p.Count(func(f *frame.Frame) bool { return f.Kind == frame.Response && string(f.ID()) == "2" }); n != 0 {
		t.Errorf("the host got %d answer(s) to the call it cancelled", n)
	}
}

// TestThousandCallsInFlight: 1,000 calls in flight at once on a slow
// backend are all answered, and the bridge's resident memory per call in
// flight is reported (issue #6; reported, not asserted).
func TestThousandCallsInFlight(t *testing.T) {
	p := startBridge(t, serverEnvFor("slow"), "--stdio", stdioBackend("slow"))
	handshake(t, p)
	p.Send(`{"jsonrpc":"2.0","id":"warm","method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}}`)
	p.Response(`"warm"`)
	idle := rssKiB(t, p.cmd.Process.Pid)
	const n = 1000
	for i := range n {
		p.Send(`{"jsonrpc":"2.0","id":` + strconv.Itoa(i+1) + `,"method":"tools/call","params":{"name":"sleep","arguments":{"ms":3000}}}`)
	}
	time.Sleep(1500 * time.Millisecond) // all sent and waiting in the backend; a reading, not an assertion
	busy := rssKiB(t, p.cmd.Process.Pid)
	for i := range n {
		if r := p.Response(strconv.Itoa(i + 1)); r.Result() == nil {
			t.Fatalf("call %d: %s", i+1, r.Raw())
		}
	}
	t.Logf("bridge RSS: %d KiB idle, %d KiB with %d calls in flight: %.2f KiB per call in flight", idle, busy, n, float64(busy-idle)/n)
}

// TestBurstOfCallsAllAnswered: a host's burst of a few thousand calls to a
// healthy stdio backend is queued and answered, none refused as "queue
// full" (the bridge's one thread reads a whole pipeful of calls before its
// writer to the backend runs; a 1,024-frame queue refused hundreds).
func TestBurstOfCallsAllAnswered(t *testing.T) {
	p := startBridge(t, serverEnvFor("burst"), "--stdio", stdioBackend("burst"))
	handshake(t, p)
	const n = 3000
	var burst strings.Builder
	for i := range n {
		burst.WriteString(`{"jsonrpc":"2.0","id":` + strconv.Itoa(i+1) + `,"method":"tools/call","params":{"name":"echo","arguments":{"text":"t` + strconv.Itoa(i+1) + `"}}}` + "\n")
	}
	p.Send(strings.TrimSuffix(burst.String(), "\n"))
	for i := range n {
		r := p.Response(strconv.Itoa(i + 1))
		if r.Result() == nil || !strings.Contains(string(r.Result()), `"t`+strconv.Itoa(i+1)+`"`) {
			t.Fatalf("call %d of the burst: %s", i+1, wiretest.Truncate(r.Raw()))
		}
	}
}

// TestCancelBeforeRouted: a host request cancelled before the bridge has
// routed it (queued behind initialize, or waiting in the aggregator of
// several backends) is dropped: no answer reaches the host, and the
// cancellation is not lost as "not in flight" (found by a stress review:
// both answered the cancelled call).
func TestCancelBeforeRouted(t *testing.T) {
	self, _ := os.Executable()
	call := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"%s","arguments":{"ms":800}}}`
	cancel := `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7,"reason":"user"}}`
	check := func(t *testing.T, p *bridgeProc) {
		t.Helper()
		time.Sleep(1500 * time.Millisecond) // the call would have been answered by now
		p.Send(`{"jsonrpc":"2.0","id":"ping","method":"ping"}`)
		p.Response(`"ping"`)
		if n := p.Count(func(f *frame.Frame) bool { return f.Kind == frame.Response && string(f.ID()) == "7" }); n != 0 {
			t.Errorf("the host got %d answer(s) to the request it cancelled", n)
		}
		if strings.Contains(p.stderr.String(), "cancel for a request not in flight") {
			t.Errorf("the cancellation was lost:\n%s", p.stderr.String())
		}
	}
	t.Run("pipelined behind initialize", func(t *testing.T) {
		p := startBridge(t, serverEnvFor("pipe"), "--log-level", "debug", "--stdio", stdioBackend("pipe"))
		p.Send(strings.Join([]string{initLine, `{"jsonrpc":"2.0","method":"notifications/initialized"}`,
			fmt.Sprintf(call, "sleep"), cancel}, "\n"))
		p.Response("0")
		check(t, p)
	})
	t.Run("several backends", func(t *testing.T) {
		p := startBridge(t, serverEnvFor("a"), "--log-level", "debug", "--stdio", "a="+self,
			"--stdio", "b=env "+serverEnv+"=b "+self)
		handshake(t, p)
		p.Send(fmt.Sprintf(call, "a_sleep") + "\n" + cancel)
		check(t, p)
	})
}

// rssKiB reads a process's resident set size from /proc.
func rssKiB(t *testing.T, pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.Fields(rest)[0])
			return kb
		}
	}
	return 0
}

// TestStuckBackendStallsNoOther: a backend that stops reading its stdin
// gets "queue full" errors once its queue is full, while another backend's
// calls are answered all along (issue #5).
func TestStuckBackendStallsNoOther(t *testing.T) {
	self, _ := os.Executable()
	// At stdin EOF the bridge waits for the stuck calls, bounded by the
	// request timeout: keep it short here.
	p := startBridge(t, serverEnvFor("ok"), "--timeout", "2s", "--stdio", "ok="+self,
		"--stdio", "stuck=env E2E_STUCK=1 "+serverEnv+"=stuck "+self)
	handshake(t, p)
	p.Send(`{"jsonrpc":"2.0","id":"list","method":"tools/list"}`)
	if r := p.Response(`"list"`); !strings.Contains(string(r.Result()), "stuck_sink") {
		t.Fatalf("tools/list: %s", wiretest.Truncate(r.Raw()))
	}
	big := strings.Repeat("x", 32<<10)
	const flood = 2000 // 64 MiB: more than the pipe and the 1,024-frame queue hold
	for i := range flood {
		p.Send(`{"jsonrpc":"2.0","id":"s` + strconv.Itoa(i) + `","method":"tools/call","params":{"name":"stuck_sink","arguments":{"x":"` + big + `"}}}`)
	}
	p.Send(`{"jsonrpc":"2.0","id":"healthy","method":"tools/call","params":{"name":"ok_echo","arguments":{"text":"still here"}}}`)
	if r := p.Response(`"healthy"`); !strings.Contains(string(r.Result()), "still here") {
		t.Errorf("the healthy backend: %s", r.Raw())
	}
	r := p.Response(`"s` + strconv.Itoa(flood-1) + `"`)
	if !strings.Contains(string(r.Error()), "queue full") || !strings.Contains(string(r.Error()), "stuck") {
		t.Errorf("a request the stuck backend cannot take: %s", r.Raw())
	}
}

const fakeBrowserArg = "fake-browser"

// TestOAuthEndToEnd: the real binary in front of an HTTP backend that
// asks for OAuth (a go-sdk server behind go-sdk's bearer check, a loopback
// authorization server): the host's initialize is answered after one
// authorization flow through a browser that prints to its stdout (nothing
// of it reaches the bridge's, which wiretest checks line by line), calls
// carry the token, and a second bridge starts from the stored token
// without the browser. With --no-oauth the 401 is the answer.
func TestOAuthEndToEnd(t *testing.T) {
	dir := t.TempDir()
	env := []string{"MCPBRIDGE_OAUTH_DIR=" + dir, "MCPBRIDGE_BROWSER='" + os.Args[0] + "' " + fakeBrowserArg}
	as := oauthtest.NewAS(t, time.Hour)
	url := oauthtest.ServeProtected(t, as, testserver.New("remote"), false, nil)
	for run := 1; run <= 2; run++ {
		p := startBridge(t, env, "--http", "remote="+url)
		handshake(t, p)
		p.Send(echoCall("1", "through OAuth"))
		if r := p.Response("1"); r.IsError() || !strings.Contains(string(r.Result()), "through OAuth") {
			t.Fatalf("run %d: call: %s\n%s", run, r.Raw(), p.stderr.String())
		}
		if as.Authorizes.Load() != 1 || as.Registers.Load() != 1 {
			t.Fatalf("run %d: want one flow in all: %s", run, as.Counts())
		}
		p.W.Close()
		p.waitExit(t, 10*time.Second)
	}
	// The record, and the lock file beside it (bridges for one server take
	// turns through it).
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) != 2 || !strings.HasSuffix(files[1], files[0][len(dir):]+".lock") {
		t.Errorf("OAuth directory holds %q, want a record and its lock", files)
	}
	for _, f := range files {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v (%v), want 0600", f, fi.Mode().Perm(), err)
		}
	}
	p := startBridge(t, env, "--no-oauth", "remote", "--http", "remote="+url)
	p.Send(initLine)
	if r := p.Response("0"); !r.IsError() || !strings.Contains(string(r.Error()), "401") {
		t.Errorf("--no-oauth: want the 401 as the answer: %s", r.Raw())
	}
	if as.Authorizes.Load() != 1 {
		t.Errorf("--no-oauth started a flow: %s", as.Counts())
	}
}

// TestOAuthPreregisteredClientEndToEnd: the --oauth-* flags reach the
// flow through the binary: an authorization server without dynamic
// registration, a client made in its "console", its secret from the
// environment (${VAR}), its redirect port and scopes; the secret never
// reaches the log.
func TestOAuthPreregisteredClientEndToEnd(t *testing.T) {
	dir := t.TempDir()
	const secret = "console-secret-4711"
	env := []string{"MCPBRIDGE_OAUTH_DIR=" + dir, "MCPBRIDGE_BROWSER='" + os.Args[0] + "' " + fakeBrowserArg, "APP_SECRET=" + secret}
	as := oauthtest.NewAS(t, time.Hour)
	as.NoRegistration.Store(true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	as.Preregister("console-app", fmt.Sprintf("http://127.0.0.1:%d/callback", port))
	url := oauthtest.ServeProtected(t, as, testserver.New("remote"), false, nil)
	p := startBridge(t, env, "--log-level", "debug", "--http", "remote="+url, "--oauth-client", "remote:console-app",
		"--oauth-client-secret", "remote:${APP_SECRET}", "--oauth-callback-port", fmt.Sprintf("remote:%d", port),
		"--oauth-scopes", "remote:mcp tools:run")
	handshake(t, p)
	p.Send(echoCall("1", "preregistered"))
	if r := p.Response("1"); r.IsError() || !strings.Contains(string(r.Result()), "preregistered") {
		t.Fatalf("call: %s\n%s", r.Raw(), p.stderr.String())
	}
	if as.Registers.Load() != 0 || as.Authorizes.Load() != 1 {
		t.Fatalf("want one flow with the preregistered client: %s", as.Counts())
	}
	if sc := as.Scopes(); len(sc) != 1 || !strings.Contains(sc[0], "tools:run") {
		t.Errorf("scopes asked for: %q", sc)
	}
	p.W.Close()
	p.waitExit(t, 10*time.Second)
	if strings.Contains(p.stderr.String(), secret) {
		t.Errorf("the client secret reached the log")
	}
}

// TestSignalStopsWithUnreadStdout: a host that stopped reading the
// bridge's stdout (hung, or busy) and then sends SIGTERM, as the MCP stdio
// shutdown does after closing stdin, still sees the bridge exit (eleventh
// review: the bridge waited for ever for its writer, stuck in a write).
func TestSignalStopsWithUnreadStdout(t *testing.T) {
	cmd := exec.Command(bridgeBin, "--stdio", stdioBackend("unread"))
	cmd.Env = append(os.Environ(), serverEnvFor("unread")...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe() // never read
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		stdout.Close()
	})
	// Answers of about 4 MiB in all: more than any pipe holds.
	var b strings.Builder
	b.WriteString(initLine + "\n" + `{"jsonrpc":"2.0","method":"notifications/initialized"}` + "\n")
	text := strings.Repeat("y", 4000)
	for i := 1; i <= 1000; i++ {
		b.WriteString(echoCall(strconv.Itoa(i), text) + "\n")
	}
	go func() { stdin.Write([]byte(b.String())) }()
	// Until the bridge has answered enough to be stuck writing.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(stderr.String(), "backend initialized") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		t.Fatalf("mcpbridge still running 15 s after SIGTERM with its stdout unread; stderr:\n%s", tail(stderr.String(), 3000))
	}
}
