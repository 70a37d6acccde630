//go:build linux

package interop

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRealServersMerged plays a desktop host (the TypeScript SDK's client,
// node/real-servers.mjs) against the built bridge in front of four
// reference servers from npm, merged from a Claude Desktop mcpServers
// file: filesystem (its allowed directory from the host's roots, reads
// inside and refusals outside), memory (entities, its knowledge-graph
// resource subscribed and updated), sequential-thinking (state across
// calls) and everything (listed and named only; the other interop tests
// drive it). It checks names, routing, errors, that stdout carries only
// JSON-RPC, that every request is answered exactly once, and that the
// bridge and every child are gone after the client closes. From the 38th
// review, which found no bug with them.
func TestRealServersMerged(t *testing.T) {
	nodeDir, err := filepath.Abs("node")
	if err != nil {
		t.Fatal(err)
	}
	requireNode(t)
	npmCI(t, nodeDir)
	t.Parallel()
	nodeBin, _ := exec.LookPath("node")
	bridge := buildBridge(t)

	tmp := t.TempDir()
	allowed, outside := filepath.Join(tmp, "allowed"), filepath.Join(tmp, "outside")
	for _, f := range []struct{ path, text string }{
		{filepath.Join(allowed, "a.txt"), "hello allowed\n"},
		{filepath.Join(allowed, "sub", "b.md"), "sub\n"},
		{filepath.Join(outside, "s.txt"), "secret\n"},
	} {
		if err := os.MkdirAll(filepath.Dir(f.path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f.path, []byte(f.text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mod := filepath.Join(nodeDir, "node_modules", "@modelcontextprotocol")
	js := func(pkg string) string { return filepath.Join(mod, pkg, "dist", "index.js") }
	conf, _ := json.Marshal(map[string]any{"mcpServers": map[string]any{
		"filesystem": map[string]any{"command": nodeBin, "args": []string{js("server-filesystem"), allowed}},
		"memory": map[string]any{"command": nodeBin, "args": []string{js("server-memory")},
			"env": map[string]string{"MEMORY_FILE_PATH": filepath.Join(tmp, "memory.json")}},
		"sequential-thinking": map[string]any{"command": nodeBin, "args": []string{js("server-sequential-thinking")}},
		"everything":          map[string]any{"command": nodeBin, "args": []string{js("server-everything")}},
	}})
	confPath := filepath.Join(tmp, "claude_desktop_config.json")
	if err := os.WriteFile(confPath, conf, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, _ := json.Marshal(map[string]any{
		"label":     "merged",
		"command":   bridge,
		"args":      []string{"--config", confPath},
		"root":      allowed,
		"outside":   outside,
		"servers":   map[string]string{"fs": "filesystem_", "mem": "memory_", "think": "sequential-thinking_"},
		"timeoutMs": 60000,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodeBin, filepath.Join(nodeDir, "real-servers.mjs"), string(cfg))
	cmd.Dir = nodeDir
	out, err := cmd.CombinedOutput()
	var failed []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "FAIL") {
			failed = append(failed, l)
		}
	}
	if err != nil || len(failed) > 0 || !strings.Contains(string(out), "DONE [merged] fails=0") {
		t.Fatalf("real-servers.mjs: %v\n%s\nits output:\n%s", err, strings.Join(failed, "\n"), tail(out, 8000))
	}
	t.Logf("%d checks passed", strings.Count(string(out), "\nok "))
}
