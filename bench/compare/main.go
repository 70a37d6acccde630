//go:build linux

// Command compare is mcpbridge's side-by-side benchmark (issue #6). From the
// repository root:
//
//	go run ./bench/compare          # full run: 5 rounds, about 7 minutes on 2 cores
//	go run ./bench/compare -smoke   # a few seconds; fails on any failed call or count that is off
//
// It builds mcpbridge and testdata/echoserver (a go-sdk server whose echo tool
// returns its text argument) into a temporary directory and drives, with one
// go-sdk client pinned to protocol 2025-11-25, these targets:
//
//	direct-http   the echo server over streamable HTTP (the baseline)
//	direct-stdio  the echo server over stdio
//	bridge-http   mcpbridge --http echo=URL, in front of the HTTP echo server
//	bridge-stdio  mcpbridge -- echoserver, in front of a stdio echo server
//	mcp-remote    mcp-remote URL --transport http-only (needs node and npm)
//
// mcp-remote is pinned by bench/node/package-lock.json and installed with
// npm ci into bench/node/node_modules (gitignored); without node and npm, or
// if the install fails, it is skipped with a note.
//
// Each target gets a fresh echo server and client session. For each payload
// (13 B, 100 KiB, 1 MiB) it measures p50 and p99 of sequential calls, calls
// per second with 16 in flight, the proxy process's CPU seconds per 1,000
// calls and its resident memory (VmRSS after the sequential calls, VmHWM
// after the concurrent ones) from /proc, and the HTTP requests and sessions
// the echo server counted; per target, the cold start (spawn to the first
// tools/list that names echo), the sessions and HTTP requests at startup, and
// the wall time of 100 sequential small calls. The machine is assumed noisy:
// each round starts every target in a rotated order and keeps them all
// running; the sequential calls of each payload go to the targets in turns
// of 10 calls (the order rotating each turn), so a slow stretch of a shared
// machine falls on all targets alike; every difference and ratio against
// direct-http is taken within a round, and the table reports medians over
// rounds. Nothing here asserts timing.
//
// Flags: -rounds N, -calls N (sequential calls for 13 B, and as many with 16
// in flight; 100 KiB gets N/10 and 1 MiB N/40), -payloads, -targets (comma
// lists), -json FILE (raw results), -smoke.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

var allPayloads = []payload{
	{Name: "13 B", Bytes: 13},
	{Name: "100 KiB", Bytes: 100 << 10},
	{Name: "1 MiB", Bytes: 1 << 20},
}

const baseline = "direct-http"

type config struct {
	rounds   int
	calls    int
	smoke    bool
	targets  []target
	payloads []payload
	jsonFile string
	bridge   string // a prebuilt mcpbridge to measure instead of building one
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, cfg, os.Stdout)
	stop()
	killAll()
	if err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (*config, error) {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	rounds := fs.Int("rounds", 5, "rounds; each runs every target once, in a rotated order")
	calls := fs.Int("calls", 2000, "sequential calls for 13 B (and as many with 16 in flight); 100 KiB gets N/10, 1 MiB N/40")
	smoke := fs.Bool("smoke", false, "a few seconds: 1 round, 50 calls, 13 B and 100 KiB; fail if any count is off")
	targets := fs.String("targets", "", "comma-separated targets (default all): "+targetNames(allTargets))
	payloads := fs.String("payloads", "", `comma-separated payloads (default all): "13B,100KiB,1MiB"`)
	jsonFile := fs.String("json", "", "write the raw results to `FILE`")
	bridge := fs.String("bridge", "", "measure this mcpbridge `BINARY` instead of building one (to compare two builds)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	cfg := &config{rounds: *rounds, calls: *calls, smoke: *smoke, jsonFile: *jsonFile, bridge: *bridge}
	pls := *payloads
	if cfg.smoke {
		if !set["rounds"] {
			cfg.rounds = 1
		}
		if !set["calls"] {
			cfg.calls = 50
		}
		if !set["payloads"] {
			pls = "13B,100KiB"
		}
	}
	if cfg.rounds < 1 || cfg.calls < 1 {
		return nil, errors.New("-rounds and -calls must be positive")
	}

	cfg.targets = allTargets
	if *targets != "" {
		cfg.targets = nil
		for name := range strings.SplitSeq(*targets, ",") {
			i := slices.IndexFunc(allTargets, func(t target) bool { return t.name == strings.TrimSpace(name) })
			if i < 0 {
				return nil, fmt.Errorf("unknown target %q (have %s)", name, targetNames(allTargets))
			}
			cfg.targets = append(cfg.targets, allTargets[i])
		}
	}
	cfg.payloads = slices.Clone(allPayloads)
	if pls != "" {
		cfg.payloads = nil
		for name := range strings.SplitSeq(pls, ",") {
			i := slices.IndexFunc(allPayloads, func(p payload) bool {
				return strings.ReplaceAll(p.Name, " ", "") == strings.TrimSpace(name)
			})
			if i < 0 {
				return nil, fmt.Errorf("unknown payload %q (have 13B, 100KiB, 1MiB)", name)
			}
			cfg.payloads = append(cfg.payloads, allPayloads[i])
		}
	}
	for i := range cfg.payloads {
		switch cfg.payloads[i].Bytes {
		case 13:
			cfg.payloads[i].Calls = cfg.calls
		case 100 << 10:
			cfg.payloads[i].Calls = max(cfg.calls/10, 20)
		default:
			cfg.payloads[i].Calls = max(cfg.calls/40, 20)
		}
	}
	return cfg, nil
}

func targetNames(ts []target) string {
	var names []string
	for _, t := range ts {
		names = append(names, t.name)
	}
	return strings.Join(names, ",")
}

func has(ts []target, name string) bool {
	return slices.ContainsFunc(ts, func(t target) bool { return t.name == name })
}

// run builds what the targets need, runs the rounds and writes the report.
func run(ctx context.Context, cfg *config, out *os.File) (err error) {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "mcpbridge-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	defer killAll() // before the directory goes, should anything be left

	e := &env{
		dir:    dir,
		echo:   filepath.Join(dir, "echoserver"),
		bridge: filepath.Join(dir, "mcpbridge"),
		client: mcp.NewClient(&mcp.Implementation{Name: "mcpbridge-bench", Version: "1.0.0"}, nil),
	}
	if err := goBuild(ctx, root, e.echo, "./testdata/echoserver"); err != nil {
		return err
	}
	if cfg.bridge != "" {
		if e.bridge, err = filepath.Abs(cfg.bridge); err != nil {
			return err
		}
	} else if has(cfg.targets, "bridge-http") || has(cfg.targets, "bridge-stdio") {
		if err := buildBridge(ctx, root, e.bridge); err != nil {
			return err
		}
	}
	var notes []string
	nodeInfo := ""
	if has(cfg.targets, "mcp-remote") {
		var note string
		e.node, e.mcpRemote, nodeInfo, note = setupNode(ctx, root)
		if note != "" {
			notes = append(notes, note)
			fmt.Fprintln(os.Stderr, "compare:", note)
			cfg.targets = slices.DeleteFunc(slices.Clone(cfg.targets), func(t target) bool { return t.name == "mcp-remote" })
		}
	}

	var results []*result
	var failures []string
	for r := range cfg.rounds {
		if ctx.Err() != nil {
			break // interrupted: report what there is
		}
		order := make([]target, len(cfg.targets))
		for i := range order {
			order[i] = cfg.targets[(i+r)%len(cfg.targets)]
		}
		fmt.Fprintf(os.Stderr, "round %d/%d: %s\n", r+1, cfg.rounds, targetNames(order))
		res, errs := measureRound(ctx, e, order, r, cfg.payloads)
		for i, t := range order {
			if errs[i] != nil {
				msg := fmt.Sprintf("round %d, %s: %v", r+1, t.name, errs[i])
				fmt.Fprintln(os.Stderr, "compare: FAILED", msg)
				failures = append(failures, msg)
				continue
			}
			for _, p := range res[i].Problems {
				fmt.Fprintf(os.Stderr, "compare: round %d, %s: count off: %s\n", r+1, t.name, p)
			}
			results = append(results, res[i])
		}
	}

	m := machine(nodeInfo)
	command := "go run ./bench/compare " + strings.Join(os.Args[1:], " ")
	report(out, cfg, results, m, strings.TrimSpace(command), notes)
	if cfg.jsonFile != "" {
		raw := map[string]any{
			"machine": m, "command": command, "rounds": cfg.rounds, "payloads": cfg.payloads,
			"results": results, "failures": failures, "notes": notes,
		}
		b, _ := json.MarshalIndent(raw, "", "  ")
		if err := os.WriteFile(cfg.jsonFile, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if len(failures) > 0 {
		return fmt.Errorf("%d target runs failed", len(failures))
	}
	if cfg.smoke {
		for _, r := range results {
			if len(r.Problems) > 0 {
				return fmt.Errorf("smoke: %s: %s", r.Target, strings.Join(r.Problems, "; "))
			}
		}
	}
	return nil
}

func repoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("run from inside the mcpbridge module (go env GOMOD: %q, %v)", gomod, err)
	}
	return filepath.Dir(gomod), nil
}

func goBuild(ctx context.Context, root, out, pkg string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir, cmd.Stdout, cmd.Stderr = root, os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %w", pkg, err)
	}
	return nil
}

// buildBridge builds mcpbridge the way the README installs it
// (scripts/build.sh: static, without urfave/cli's docs generators).
func buildBridge(ctx context.Context, root, out string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "scripts", "build.sh"), out)
	cmd.Dir, cmd.Stdout, cmd.Stderr = root, os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("scripts/build.sh: %w", err)
	}
	return nil
}

// setupNode finds node and npm and installs the pinned mcp-remote with npm
// ci unless it is already there. A non-empty note means mcp-remote is
// skipped.
func setupNode(ctx context.Context, root string) (node, script, info, note string) {
	node, err1 := exec.LookPath("node")
	npm, err2 := exec.LookPath("npm")
	if err := errors.Join(err1, err2); err != nil {
		return "", "", "", "mcp-remote skipped: node and npm are needed (" + err.Error() + ")"
	}
	dir := filepath.Join(root, "bench", "node")
	var want struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	if err := readJSON(filepath.Join(dir, "package.json"), &want); err != nil {
		return "", "", "", "mcp-remote skipped: " + err.Error()
	}
	var have struct {
		Version string            `json:"version"`
		Bin     map[string]string `json:"bin"`
	}
	installed := filepath.Join(dir, "node_modules", "mcp-remote", "package.json")
	if readJSON(installed, &have) != nil || have.Version != want.Dependencies["mcp-remote"] {
		fmt.Fprintln(os.Stderr, "compare: npm ci in", dir)
		ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
		cmd.Dir, cmd.Stdout, cmd.Stderr = dir, os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return "", "", "", "mcp-remote skipped: npm ci failed: " + err.Error()
		}
		if err := readJSON(installed, &have); err != nil {
			return "", "", "", "mcp-remote skipped: " + err.Error()
		}
	}
	if have.Bin["mcp-remote"] == "" {
		return "", "", "", "mcp-remote skipped: no mcp-remote bin in " + installed
	}
	v, _ := exec.CommandContext(ctx, node, "--version").Output()
	info = fmt.Sprintf("node %s, mcp-remote %s", strings.TrimSpace(string(v)), have.Version)
	return node, filepath.Join(filepath.Dir(installed), have.Bin["mcp-remote"]), info, ""
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// machine describes where this ran.
func machine(nodeInfo string) string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	s := fmt.Sprintf("%s, %d cores, %s %s/%s", cpu, runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if nodeInfo != "" {
		s += ", " + nodeInfo
	}
	return s
}
