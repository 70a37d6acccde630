// Command drive makes sequential echo calls through a bridge command line
// that may be wrapped in a profiler (perf stat, perf record, strace -c),
// then closes the bridge's stdin so that it exits and the wrapper reports
// on it alone: what the bridge costs per call, apart from the client and
// the server. See PERFORMANCE.md, "Ninth session".
//
//	./scripts/build.sh /tmp/mcpbridge
//	go build -o /tmp/echoserver ./testdata/echoserver
//	go run ./bench/drive -size 102400 -calls 300 perf stat -e task-clock,context-switches /tmp/mcpbridge
//
// The command line gets "--log-level warn" and the echo server as its
// backend (--http, or --stdio with -stdio) appended.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/mcpbridge/mcpbridge/bench/internal/echohttp"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func main() {
	echo := flag.String("echo", "/tmp/echoserver", "testdata/echoserver binary")
	size := flag.Int("size", 100<<10, "bytes of text per echo call")
	calls := flag.Int("calls", 300, "measured calls (after 20 to warm up)")
	stdio := flag.Bool("stdio", false, "reach the echo server over stdio instead of streamable HTTP")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: drive [flags] COMMAND [ARGS...] (the bridge, maybe wrapped)")
		os.Exit(2)
	}
	if err := run(flag.Args(), *echo, *size, *calls, *stdio); err != nil {
		fmt.Fprintln(os.Stderr, "drive:", err)
		os.Exit(1)
	}
}

func run(command []string, echo string, size, calls int, stdio bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	argv := append(command, "--log-level", "warn")
	if stdio {
		argv = append(argv, "--stdio", "echo="+echo)
	} else {
		srv, url, err := echohttp.Start(ctx, echo)
		if err != nil {
			return err
		}
		defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
		argv = append(argv, "--http", "echo="+url)
	}
	br := exec.Command(argv[0], argv[1:]...)
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
		return fmt.Errorf("starting %s: %w", argv[0], err)
	}
	exited := make(chan error, 1)
	go func() { exited <- br.Wait() }()
	defer func() {
		// A clean EOF first, so that a wrapper can report; then a bound.
		_ = in.Close()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = br.Process.Kill()
			<-exited
		}
	}()

	client := mcp.NewClient(&mcp.Implementation{Name: "drive", Version: "1"}, nil)
	sess, err := client.Connect(ctx, &mcp.IOTransport{Reader: out, Writer: in, MaxLineLength: 64 << 20},
		&mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		return fmt.Errorf("connecting through the bridge: %w", err)
	}
	args := map[string]any{"text": strings.Repeat("x", size)}
	call := func() error {
		res, err := sess.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: args})
		if err == nil && res.IsError {
			err = errors.New("the echo tool answered with an error")
		}
		return err
	}
	for range 20 {
		if err := call(); err != nil {
			return err
		}
	}
	start := time.Now()
	for range calls {
		if err := call(); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "%d calls of %d bytes: mean %v\n", calls, size, time.Since(start)/time.Duration(calls))
	return sess.Close()
}
