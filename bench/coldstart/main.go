//go:build linux

// Command coldstart compares the cold start of mcpbridge builds: spawn to
// the first tools/list answer, in front of a freshly started HTTP echo
// server, the way bench/compare times it, but many times over and with the
// builds interleaved, so that two builds can be told apart on a noisy
// machine. Each iteration also times a go-sdk client connecting to a fresh
// server directly (the baseline). It reports each build's median, its
// median difference from the first build within the same iteration, and
// the bridge's median minor page faults (getrusage; they include the pages
// mcpbridge populates at start on purpose, so they cannot compare builds
// with and without that).
//
//	./scripts/build.sh /tmp/new && git stash && ./scripts/build.sh /tmp/old && git stash pop
//	go build -o /tmp/echoserver ./testdata/echoserver
//	go run ./bench/coldstart -echo /tmp/echoserver -n 60 /tmp/old /tmp/new
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"time"

	"github.com/mcpbridge/mcpbridge/bench/internal/echohttp"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func main() {
	echo := flag.String("echo", "", "testdata/echoserver binary (required)")
	n := flag.Int("n", 30, "iterations")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: coldstart -echo ECHOSERVER [-n N] MCPBRIDGE...")
		flag.PrintDefaults()
	}
	flag.Parse()
	bins := flag.Args()
	if *echo == "" || len(bins) == 0 || *n < 1 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*echo, bins, *n); err != nil {
		fmt.Fprintln(os.Stderr, "coldstart:", err)
		os.Exit(1)
	}
}

func run(echo string, bins []string, n int) error {
	client := mcp.NewClient(&mcp.Implementation{Name: "coldstart", Version: "1"}, nil)
	direct := make([]time.Duration, 0, n)
	cold := make([][]time.Duration, len(bins))
	faults := make([][]int64, len(bins))
	for i := range n {
		d, _, err := once(client, echo, "")
		if err != nil {
			return fmt.Errorf("direct: %w", err)
		}
		direct = append(direct, d)
		for k := range bins {
			b := (k + i) % len(bins) // rotate the order every iteration
			d, flt, err := once(client, echo, bins[b])
			if err != nil {
				return fmt.Errorf("%s: %w", bins[b], err)
			}
			cold[b] = append(cold[b], d)
			faults[b] = append(faults[b], flt)
		}
	}
	fmt.Printf("%d iterations; cold start = spawn (or connect) to the first tools/list answer, fresh echo server each time\n", n)
	fmt.Printf("%-40s median %8v\n", "direct-http (a running client)", median(direct))
	for b, bin := range bins {
		diffs := make([]time.Duration, n)
		for i := range n {
			diffs[i] = cold[b][i] - cold[0][i]
		}
		fmt.Printf("%-40s median %8v   vs %s %+8v   minflt %d\n", bin, median(cold[b]), bins[0], median(diffs), median(faults[b]))
	}
	return nil
}

// once starts a fresh echo server and times one cold start through bin
// (directly when bin is ""). It returns the bridge's minor page faults.
func once(client *mcp.Client, echo, bin string) (time.Duration, int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, url, err := echohttp.Start(ctx, echo)
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = srv.Process.Signal(os.Interrupt); _ = srv.Wait() }()
	time.Sleep(20 * time.Millisecond) // let the server settle, as bench/compare's does

	var br *exec.Cmd
	var transport mcp.Transport
	start := time.Now()
	if bin == "" {
		transport = &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: &http.Client{Transport: &http.Transport{}}}
	} else {
		br = exec.CommandContext(ctx, bin, "--log-level", "warn", "--http", "echo="+url)
		br.Stderr = os.Stderr
		in, err := br.StdinPipe()
		if err != nil {
			return 0, 0, err
		}
		out, err := br.StdoutPipe()
		if err != nil {
			return 0, 0, err
		}
		if err := br.Start(); err != nil {
			return 0, 0, err
		}
		defer func() { _ = br.Process.Kill(); _ = br.Wait() }()
		transport = &mcp.IOTransport{Reader: out, Writer: in}
	}
	sess, err := client.Connect(ctx, transport, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		return 0, 0, err
	}
	res, err := sess.ListTools(ctx, nil)
	d := time.Since(start)
	if err == nil && len(res.Tools) == 0 {
		err = errors.New("tools/list answered with no tools")
	}
	_ = sess.Close()
	if err != nil || br == nil {
		return d, 0, err
	}
	if err := br.Wait(); err != nil { // stdin closed: the bridge exits
		return d, 0, fmt.Errorf("mcpbridge exited: %w", err)
	}
	var flt int64
	if ru, ok := br.ProcessState.SysUsage().(*syscall.Rusage); ok {
		flt = ru.Minflt
	}
	return d, flt, nil
}

func median[T int64 | time.Duration](s []T) T {
	s = slices.Clone(s)
	slices.Sort(s)
	return s[len(s)/2]
}
