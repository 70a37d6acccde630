//go:build linux

package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Pinned in node/package.json; node_modules is reinstalled when it differs.
var pinned = map[string]string{
	"@modelcontextprotocol/sdk":                        "1.32.2",
	"@modelcontextprotocol/server-everything":          "2026.8.31",
	"@modelcontextprotocol/server-filesystem":          "2026.8.31",
	"@modelcontextprotocol/server-memory":              "2026.8.31",
	"@modelcontextprotocol/server-sequential-thinking": "2026.8.31",
}

var scenarios = []string{
	"basic", "sampling", "elicitation", "roots", "progress", "logging",
	"subscriptions", "list_changed", "cancellation", "big", "concurrent", "tasks",
}

const runTimeout = 60 * time.Second

// TestInterop runs every scenario of node/client.mjs for each backend
// transport, with the bridge in between. INTEROP_MODE=direct runs the same
// scenarios against server-everything without the bridge (a check of the
// driver itself). Pick subtests with -run, e.g. -run 'Interop/sse/'.
func TestInterop(t *testing.T) {
	nodeDir, err := filepath.Abs("node")
	if err != nil {
		t.Fatal(err)
	}
	requireNode(t)
	npmCI(t, nodeDir)
	serverJS := filepath.Join(nodeDir, "node_modules", "@modelcontextprotocol", "server-everything", "dist", "index.js")
	nodeBin, _ := exec.LookPath("node")

	direct := os.Getenv("INTEROP_MODE") == "direct"
	bridge := ""
	if !direct {
		bridge = buildBridge(t)
	}

	httpBase := startServer(t, nodeBin, serverJS, "streamableHttp", "MARKER=beta")
	sseBase := startServer(t, nodeBin, serverJS, "sse")

	base := map[string]any{
		"serverJs":    serverJS,
		"node":        nodeBin,
		"bridge":      bridge,
		"bridgeFlags": []string{"--log-level", "debug"},
		"mode":        map[bool]string{true: "direct", false: "bridge"}[direct],
	}
	transports := []struct{ name, url string }{
		{"stdio", ""},
		{"streamableHttp", httpBase + "/mcp"},
		{"sse", sseBase + "/sse"},
	}
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			for _, sc := range scenarios {
				t.Run(sc, func(t *testing.T) {
					cfg := clone(base)
					cfg["transport"] = tr.name
					cfg["url"] = tr.url
					runScenario(t, nodeDir, sc, cfg)
				})
			}
		})
	}
	// One bridge, two backends: server-everything on stdio (a, MARKER=alpha
	// through --env) and on streamable HTTP (b, a server started with
	// MARKER=beta). Kept apart: it depends on the multi-backend feature.
	t.Run("multi", func(t *testing.T) {
		if direct {
			t.Skip("multi needs the bridge")
		}
		cfg := clone(base)
		cfg["transport"] = "stdio"
		cfg["multiUrl"] = httpBase + "/mcp"
		runScenario(t, nodeDir, "multi", cfg)
	})
}

func clone(m map[string]any) map[string]any {
	c := make(map[string]any, len(m)+4)
	for k, v := range m {
		c[k] = v
	}
	return c
}

func requireNode(t *testing.T) {
	t.Helper()
	for _, b := range []string{"node", "npm"} {
		if _, err := exec.LookPath(b); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not found: the interop tests need Node.js and npm in CI", b)
			}
			t.Skipf("%s not found: skipping interop tests", b)
		}
	}
}

var npmOnce sync.Once

// npmCI installs node/node_modules from the lock file unless the pinned
// versions are already there.
func npmCI(t *testing.T, nodeDir string) {
	t.Helper()
	var fail string
	npmOnce.Do(func() {
		if installed(nodeDir) {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
		cmd.Dir = nodeDir
		out, err := cmd.CombinedOutput()
		if err != nil {
			fail = fmt.Sprintf("npm ci in %s: %v\n%s", nodeDir, err, tail(out, 4000))
		} else if !installed(nodeDir) {
			fail = "npm ci did not install the pinned packages"
		}
	})
	if fail != "" {
		t.Fatal(fail)
	}
	if !installed(nodeDir) {
		t.Fatal("node_modules missing (an earlier npm ci failed)")
	}
}

func installed(nodeDir string) bool {
	for pkg, want := range pinned {
		b, err := os.ReadFile(filepath.Join(nodeDir, "node_modules", pkg, "package.json"))
		if err != nil {
			return false
		}
		var p struct{ Version string }
		if json.Unmarshal(b, &p) != nil || p.Version != want {
			return false
		}
	}
	return true
}

func buildBridge(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "mcpbridge")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/mcpbridge/mcpbridge")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the bridge: %v\n%s", err, out)
	}
	return bin
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startServer runs server-everything on a free port (it binds all
// interfaces; we only ever talk to 127.0.0.1) and returns its base URL.
// The process group is killed and waited for in t.Cleanup.
func startServer(t *testing.T, nodeBin, serverJS, transport string, env ...string) string {
	t.Helper()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port := freePort(t)
		logPath := filepath.Join(t.TempDir(), transport+".log")
		logf, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(nodeBin, serverJS, transport)
		cmd.Env = append(append(os.Environ(), "PORT="+strconv.Itoa(port)), env...)
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			logf.Close()
			t.Fatalf("starting server-everything %s: %v", transport, err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		stop := func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(3 * time.Second):
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-done
			}
			logf.Close()
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		deadline := time.Now().Add(15 * time.Second)
		ready := false
		for !ready && time.Now().Before(deadline) {
			select {
			case <-done:
				deadline = time.Time{}
				continue
			default:
			}
			c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
			if err == nil {
				c.Close()
				ready = true
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if !ready {
			stop()
			out, _ := os.ReadFile(logPath)
			lastErr = fmt.Errorf("server-everything %s on port %d did not accept connections:\n%s", transport, port, tail(out, 2000))
			continue
		}
		t.Cleanup(func() {
			stop()
			if t.Failed() {
				out, _ := os.ReadFile(logPath)
				t.Logf("server-everything %s log (tail):\n%s", transport, tail(out, 3000))
			}
		})
		return "http://" + addr
	}
	t.Fatal(lastErr)
	return ""
}

// runScenario runs node client.mjs SCENARIO CONFIG with a timeout, in its own
// process group, and fails the test with the driver's reason and the
// bridge's stderr. Afterwards it checks that no process of the run survived.
func runScenario(t *testing.T, nodeDir, scenario string, cfg map[string]any) {
	t.Helper()
	runScript(t, nodeDir, "client.mjs", scenario, cfg)
}

func runScript(t *testing.T, nodeDir, script, scenario string, cfg map[string]any) {
	t.Helper()
	runScriptWithin(t, runTimeout, nodeDir, script, scenario, cfg)
}

// runScriptWithin is runScript with the driver killed after runTimeout
// (its own watchdog fires 5 s before).
func runScriptWithin(t *testing.T, runTimeout time.Duration, nodeDir, script, scenario string, cfg map[string]any) {
	t.Helper()
	dir := t.TempDir()
	stderrFile := filepath.Join(dir, "bridge-stderr.log")
	cfg["stderrFile"] = stderrFile
	cfg["spyDir"] = dir
	cfg["timeoutMs"] = int((runTimeout - 5*time.Second) / time.Millisecond)
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runID := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())

	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join(nodeDir, script), scenario, string(js))
	cmd.Dir = nodeDir
	cmd.Env = append(withoutEnv(os.Environ(), "MARKER", "INTEROP_RUN"), "MARKER=host", "INTEROP_RUN="+runID)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	runErr := cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // stragglers of the driver's group
	}
	elapsed := time.Since(start).Round(time.Millisecond)

	for _, l := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		if strings.HasPrefix(l, "PASS") || strings.HasPrefix(l, "WARN") {
			t.Log(l)
		}
	}
	if runErr != nil {
		reason := strings.TrimSpace(stderr.String())
		if ctx.Err() != nil {
			reason = fmt.Sprintf("killed after %v\n%s", runTimeout, reason)
		}
		t.Errorf("%s failed after %v: %v\n%s\n--- driver stdout:\n%s", scenario, elapsed, runErr, reason, tail(stdout.Bytes(), 3000))
		b, _ := os.ReadFile(stderrFile)
		t.Logf("--- bridge stderr (tail):\n%s", tail(b, 6000))
	}
	if leaked := leakedProcesses(runID, 3*time.Second); len(leaked) > 0 {
		t.Errorf("%s: processes of this run still alive after the driver exited (killed now):\n%s", scenario, strings.Join(leaked, "\n"))
	}
}

func withoutEnv(env []string, keys ...string) []string {
	out := env[:0:0]
next:
	for _, kv := range env {
		for _, k := range keys {
			if strings.HasPrefix(kv, k+"=") {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}

// leakedProcesses waits up to d for every process whose environment holds
// INTEROP_RUN=runID to go away; it SIGKILLs and describes those left.
func leakedProcesses(runID string, d time.Duration) []string {
	needle := []byte("\x00INTEROP_RUN=" + runID + "\x00")
	find := func() map[int]string {
		found := map[int]string{}
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == os.Getpid() {
				continue
			}
			env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
			if err != nil || !bytes.Contains(append([]byte{0}, env...), needle) {
				continue
			}
			cl, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			if len(cl) == 0 {
				continue // zombie
			}
			found[pid] = strings.TrimSpace(string(bytes.ReplaceAll(cl, []byte{0}, []byte{' '})))
		}
		return found
	}
	deadline := time.Now().Add(d)
	for {
		found := find()
		if len(found) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			var out []string
			for pid, cl := range found {
				if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
					cl += " (kill: " + err.Error() + ")"
				}
				out = append(out, fmt.Sprintf("  pid %d: %s", pid, cl))
			}
			return out
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tail(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return "…" + string(b[len(b)-n:])
}
