//go:build linux

package main

import (
	"context"
	"math"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The benchmark itself runs in CI as `go run ./bench/compare -smoke`; these
// tests cover its arithmetic and its clean-up when a target misbehaves.

func TestPercentileAndMedian(t *testing.T) {
	d := make([]time.Duration, 100)
	for i := range d {
		d[i] = time.Duration(i + 1)
	}
	if got := percentile(d, 50); got != 50 {
		t.Errorf("p50 = %d, want 50", got)
	}
	if got := percentile(d, 99); got != 99 {
		t.Errorf("p99 = %d, want 99", got)
	}
	if got := percentile(d[:1], 99); got != 1 {
		t.Errorf("p99 of one = %d, want 1", got)
	}
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("median = %v, want 2", got)
	}
	if got := median([]float64{4, 1, 2, 3}); got != 2.5 {
		t.Errorf("median = %v, want 2.5", got)
	}
	if got := median(nil); !math.IsNaN(got) {
		t.Errorf("median(nil) = %v, want NaN", got)
	}
}

func TestParseFlags(t *testing.T) {
	cfg, err := parseFlags([]string{"-smoke", "-targets", "direct-http,bridge-stdio"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.rounds != 1 || len(cfg.targets) != 2 || len(cfg.payloads) != 2 || cfg.payloads[0].Calls != 50 {
		t.Errorf("smoke config: rounds %d, %d targets, payloads %+v", cfg.rounds, len(cfg.targets), cfg.payloads)
	}
	cfg, err = parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := []int{cfg.payloads[0].Calls, cfg.payloads[1].Calls, cfg.payloads[2].Calls}; got[0] != 2000 || got[1] != 200 || got[2] != 50 {
		t.Errorf("default calls = %v", got)
	}
	if _, err := parseFlags([]string{"-targets", "nope"}); err == nil {
		t.Error("unknown target accepted")
	}
}

func TestPayloadText(t *testing.T) {
	for _, n := range []int{13, 100 << 10} {
		if got := len(payloadText(n)); got != n {
			t.Errorf("len(payloadText(%d)) = %d", n, got)
		}
	}
}

// A target that exits or never answers fails within its deadline and leaves
// no process behind.
func TestMeasureFailingTargets(t *testing.T) {
	e := &env{dir: t.TempDir(), client: mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)}
	for _, argv := range [][]string{{"false"}, {"sleep", "60"}} {
		if _, err := exec.LookPath(argv[0]); err != nil {
			t.Skip(err)
		}
		tg := target{name: argv[0], command: func(*env, string, string) *exec.Cmd { return exec.Command(argv[0], argv[1:]...) }}
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		start := time.Now()
		_, errs := measureRound(ctx, e, []target{tg}, 0, allPayloads[:1])
		err := errs[0]
		cancel()
		if err == nil {
			t.Errorf("%v: no error", argv)
		}
		t.Logf("%v: %v", argv, err)
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("%v: took %v", argv, d)
		}
		procsMu.Lock()
		n := len(procs)
		procsMu.Unlock()
		if n != 0 {
			t.Errorf("%v: %d processes left", argv, n)
		}
	}
}

// In a round, a target that fails is reported as failed and the others
// still measure: the targets run side by side, so one must not take the
// round down.
func TestRoundOutlivesAFailingTarget(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the echo server")
	}
	e := &env{dir: t.TempDir(), client: mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)}
	e.echo = filepath.Join(e.dir, "echoserver")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := goBuild(ctx, "../..", e.echo, "./testdata/echoserver"); err != nil {
		t.Fatal(err)
	}
	good := allTargets[1] // direct-stdio
	if good.name != "direct-stdio" {
		t.Fatalf("allTargets[1] is %s", good.name)
	}
	bad := target{name: "false", command: func(*env, string, string) *exec.Cmd { return exec.Command("false") }}
	pl := []payload{{Name: "13 B", Bytes: 13, Calls: 25}}
	res, errs := measureRound(ctx, e, []target{bad, good, bad}, 0, pl)
	if errs[0] == nil || errs[2] == nil {
		t.Errorf("failing target: errors %v, %v", errs[0], errs[2])
	}
	if errs[1] != nil {
		t.Fatalf("direct-stdio: %v", errs[1])
	}
	r := res[1]
	if len(r.Payloads) != 1 || r.Payloads[0].P50 <= 0 || len(r.Problems) != 0 {
		t.Errorf("direct-stdio result: %+v", r)
	}
	procsMu.Lock()
	n := len(procs)
	procsMu.Unlock()
	if n != 0 {
		t.Errorf("%d processes left", n)
	}
}
