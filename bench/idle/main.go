//go:build linux

// Command idle measures what mcpbridge pays for a call that comes after an
// idle pause, as sparse real tool calls do: page faults and CPU per call
// of the bridge process (from /proc/PID/stat) and mean latency, for calls
// made back to back and for calls each followed by a pause. See
// PERFORMANCE.md, "Large messages after an idle pause".
//
//	./scripts/build.sh /tmp/mcpbridge
//	go build -o /tmp/echoserver ./testdata/echoserver
//	go run ./bench/idle -bridge /tmp/mcpbridge -echo /tmp/echoserver [-size 1048576] [-pause 2s]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/mcpbridge/mcpbridge/bench/internal/echohttp"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func main() {
	bridge := flag.String("bridge", "", "mcpbridge binary (required)")
	echo := flag.String("echo", "", "testdata/echoserver binary (required)")
	size := flag.Int("size", 1<<20, "bytes of text per echo call")
	pause := flag.Duration("pause", 2*time.Second, "idle time after each call of the paused phase")
	calls := flag.Int("calls", 20, "calls per phase (CPU is read in 10 ms clock ticks)")
	flag.Parse()
	if *bridge == "" || *echo == "" {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*bridge, *echo, *size, *pause, *calls); err != nil {
		fmt.Fprintln(os.Stderr, "idle:", err)
		os.Exit(1)
	}
}

func run(bridge, echo string, size int, pause time.Duration, calls int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	srv, url, err := echohttp.Start(ctx, echo)
	if err != nil {
		return err
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()

	br := exec.CommandContext(ctx, bridge, "--log-level", "warn", "--http", "echo="+url)
	br.Stderr = os.Stderr
	in, err := br.StdinPipe()
	if err != nil {
		return err
	}
	out, err := br.StdoutPipe()
	if err != nil {
		return err
	}
	if err := br.Start(); err != nil {
		return fmt.Errorf("starting mcpbridge: %w", err)
	}
	defer func() { _ = br.Process.Kill(); _ = br.Wait() }()

	client := mcp.NewClient(&mcp.Implementation{Name: "idle", Version: "1"}, nil)
	sess, err := client.Connect(ctx, &mcp.IOTransport{Reader: out, Writer: in, MaxLineLength: 64 << 20},
		&mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		return fmt.Errorf("connecting through mcpbridge: %w", err)
	}
	defer sess.Close()

	args := map[string]any{"text": strings.Repeat("x", size)}
	call := func() error {
		res, err := sess.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: args})
		if err == nil && res.IsError {
			err = errors.New("the echo tool answered with an error")
		}
		return err
	}
	for range 20 { // warm up: connections, buffers, code
		if err := call(); err != nil {
			return err
		}
	}
	fmt.Printf("%d calls of %d bytes per phase; mcpbridge's page faults and CPU from /proc/%d/stat\n", calls, size, br.Process.Pid)
	for _, ph := range []struct {
		name  string
		pause time.Duration
	}{{"back to back", 0}, {"after " + pause.String() + " idle", pause}, {"back to back", 0}, {"after " + pause.String() + " idle", pause}} {
		f0, c0, err := procStat(br.Process.Pid)
		if err != nil {
			return err
		}
		var lat time.Duration
		for range calls {
			if ph.pause > 0 {
				time.Sleep(ph.pause) // the bridge idles; then one call
			}
			start := time.Now()
			if err := call(); err != nil {
				return err
			}
			lat += time.Since(start)
		}
		f1, c1, err := procStat(br.Process.Pid)
		if err != nil {
			return err
		}
		n := float64(calls)
		fmt.Printf("%-20s page faults/call %6.1f   CPU/call %6.2f ms   mean latency %7.2f ms\n",
			ph.name, (f1-f0)/n, (c1-c0)*1000/n, float64(lat.Microseconds())/1000/n)
	}
	return nil
}

// procStat returns the minor page faults and the CPU seconds (user +
// system) of pid so far.
func procStat(pid int) (faults, cpu float64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	minflt, _ := strconv.ParseFloat(f[7], 64)
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return minflt, (utime + stime) / 100, nil // clock ticks: 100 a second on Linux
}
