//go:build linux

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

const (
	protocolVersion = "2025-11-25"
	inFlight        = 16
	callTimeout     = 60 * time.Second
	connectTimeout  = 60 * time.Second
	maxLine         = 64 << 20
)

// A target is one way of reaching the echo server.
type target struct {
	name string
	// http: the target needs an echo server over streamable HTTP.
	http bool
	// command builds the stdio process the client talks to; nil means the
	// client speaks streamable HTTP to the echo server itself. statsFile is
	// where a stdio echo server writes its counts.
	command func(e *env, url, statsFile string) *exec.Cmd
	// proxy: the stdio process is a proxy whose CPU and memory are reported.
	proxy bool
	// thirdParty: the counts are only reported, not checked against what
	// mcpbridge promises (one backend session, one HTTP request per call).
	thirdParty bool
}

var allTargets = []target{
	{name: "direct-http", http: true},
	{name: "direct-stdio", command: func(e *env, _, stats string) *exec.Cmd {
		return exec.Command(e.echo, "-stats", stats)
	}},
	{name: "bridge-http", http: true, proxy: true, command: func(e *env, url, _ string) *exec.Cmd {
		return exec.Command(e.bridge, "--http", "echo="+url)
	}},
	{name: "bridge-stdio", proxy: true, command: func(e *env, _, stats string) *exec.Cmd {
		return exec.Command(e.bridge, "--", e.echo, "-stats", stats)
	}},
	{name: "mcp-remote", http: true, proxy: true, thirdParty: true, command: func(e *env, url, _ string) *exec.Cmd {
		cmd := exec.Command(e.node, e.mcpRemote, url, "--transport", "http-only")
		cmd.Env = append(cmd.Environ(), "MCP_REMOTE_CONFIG_DIR="+filepath.Join(e.dir, "mcp-auth"))
		return cmd
	}},
}

// env is what the targets run: binaries built for this run and a scratch dir.
type env struct {
	dir       string // scratch, removed at exit
	echo      string
	bridge    string
	node      string
	mcpRemote string // mcp-remote's proxy.js
	client    *mcp.Client
}

type payload struct {
	Name  string `json:"name"`
	Bytes int    `json:"bytes"`
	Calls int    `json:"calls"` // sequential calls, and calls with 16 in flight
}

// payloadResult is one payload against one target in one round.
type payloadResult struct {
	Payload string        `json:"payload"`
	Calls   int           `json:"calls"`
	P50     time.Duration `json:"p50_ns"`
	P99     time.Duration `json:"p99_ns"`
	PerSec  float64       `json:"calls_per_sec_16_in_flight"`
	// Proxy process only; -1 when there is none.
	CPUPer1000 float64 `json:"cpu_s_per_1000_calls"`
	RSSKiB     int64   `json:"rss_kib_after_seq"`
	PeakKiB    int64   `json:"peak_rss_kib"`
	// HTTP echo server only: counted over both phases.
	Requests    int64 `json:"http_requests"`
	NewSessions int64 `json:"new_sessions"`
}

// result is one target in one round.
type result struct {
	Target    string        `json:"target"`
	Round     int           `json:"round"`
	ColdStart time.Duration `json:"cold_start_ns"`
	Seq100    time.Duration `json:"seq100_ns"`
	// At startup (connect and the first tools/list naming echo). For stdio
	// echo servers, Sessions counts the whole run (read at exit) and
	// Requests is -1.
	Sessions int64           `json:"startup_sessions"`
	Requests int64           `json:"startup_http_requests"`
	Payloads []payloadResult `json:"payloads"`
	Problems []string        `json:"problems,omitempty"` // counts that are off

	thirdParty bool
}

func (r *result) problem(format string, args ...any) {
	if r.thirdParty {
		return
	}
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

// measure runs every payload against t once.
func measure(ctx context.Context, e *env, t target, round int, payloads []payload) (res *result, err error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	res = &result{Target: t.name, Round: round, Requests: -1, thirdParty: t.thirdParty}

	var srv *echoHTTP
	if t.http {
		if srv, err = startEchoHTTP(ctx, e.echo); err != nil {
			return nil, err
		}
		defer srv.stop()
	}
	url := ""
	if srv != nil {
		url = srv.url
	}
	statsFile := filepath.Join(e.dir, fmt.Sprintf("%s-%d.stats", t.name, round))

	// Cold start: spawn (or connect) to the first tools/list that names echo.
	start := time.Now()
	var transport mcp.Transport
	var p *proc
	if t.command == nil {
		ht := &http.Transport{MaxIdleConnsPerHost: 4 * inFlight}
		defer ht.CloseIdleConnections()
		transport = &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: &http.Client{Transport: ht}}
	} else {
		if p, err = startProc(t.name, t.command(e, url, statsFile), true, nil); err != nil {
			return nil, err
		}
		defer func() {
			if err != nil { // no patience on the way out of a failure
				p.stop(syscall.SIGTERM, time.Second)
				err = fmt.Errorf("%w\n%s stderr (tail):\n%s", err, t.name, p.stderr)
			}
			p.stop(0, 5*time.Second)
		}()
		transport = &mcp.IOTransport{Reader: p.stdout, Writer: p.stdin, MaxLineLength: maxLine}
	}
	cctx, ccancel := context.WithTimeout(ctx, connectTimeout)
	defer ccancel()
	sess, err := e.client.Connect(cctx, transport, &mcp.ClientSessionOptions{ProtocolVersion: protocolVersion})
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	closeSession := sync.OnceValue(sess.Close)
	defer closeSession()
	if v := sess.InitializeResult().ProtocolVersion; v != protocolVersion {
		res.problem("negotiated protocol %s, not %s", v, protocolVersion)
	}
	tool, err := findEcho(cctx, sess)
	if err != nil {
		return nil, err
	}
	res.ColdStart = time.Since(start)

	var before counts
	if srv != nil {
		if before, err = srv.counts(ctx); err != nil {
			return nil, err
		}
		res.Sessions, res.Requests = before.Sessions, before.Requests
		if before.Sessions != 1 {
			res.problem("%d sessions at startup, want 1", before.Sessions)
		}
	}

	// The case of the bug that started this: 100 sequential small calls.
	small := newArgs("hello, world!")
	start = time.Now()
	for range 100 {
		if err := call(ctx, sess, tool, small); err != nil {
			return nil, err
		}
	}
	res.Seq100 = time.Since(start)
	calls := 100

	for _, pl := range payloads {
		r, err := measurePayload(ctx, sess, tool, p, t.proxy, srv, pl)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", pl.Name, err)
		}
		calls += warmup + 2*pl.Calls
		if srv != nil && r.NewSessions != 0 {
			res.problem("%s: %d new sessions during calls, want 0", pl.Name, r.NewSessions)
		}
		if srv != nil && r.Requests != int64(2*pl.Calls) {
			res.problem("%s: %d HTTP requests for %d calls, want 1 each", pl.Name, r.Requests, 2*pl.Calls)
		}
		res.Payloads = append(res.Payloads, r)
	}

	// Shut down in order; a stdio echo server writes its counts on exit.
	if err := closeSession(); err != nil && t.command == nil {
		return nil, fmt.Errorf("close: %w", err)
	}
	if p != nil {
		_ = p.stop(0, 5*time.Second) // exit status of a closed proxy is not ours to judge
	}
	if t.command != nil && !t.http {
		c, err := waitCountsFile(ctx, statsFile)
		if err != nil {
			return nil, fmt.Errorf("echo server counts: %w", err)
		}
		res.Sessions = c.Sessions
		if c.Sessions != 1 {
			res.problem("%d backend sessions in the run, want 1", c.Sessions)
		}
		if c.Messages < int64(calls) {
			res.problem("backend saw %d messages for %d calls", c.Messages, calls)
		}
	}
	return res, nil
}

const warmup = 10

func measurePayload(ctx context.Context, sess *mcp.ClientSession, tool string, p *proc, proxy bool, srv *echoHTTP, pl payload) (payloadResult, error) {
	r := payloadResult{Payload: pl.Name, Calls: pl.Calls, CPUPer1000: -1, RSSKiB: -1, PeakKiB: -1}
	args := newArgs(payloadText(pl.Bytes))
	for range warmup {
		if err := call(ctx, sess, tool, args); err != nil {
			return r, err
		}
	}
	var err error
	var before counts
	if srv != nil {
		if before, err = srv.counts(ctx); err != nil {
			return r, err
		}
	}
	var cpu0 float64
	if proxy {
		if cpu0, err = cpuSeconds(p.pid()); err != nil {
			return r, err
		}
	}

	lat := make([]time.Duration, pl.Calls)
	for i := range lat {
		t0 := time.Now()
		if err := call(ctx, sess, tool, args); err != nil {
			return r, err
		}
		lat[i] = time.Since(t0)
	}
	slices.Sort(lat)
	r.P50, r.P99 = percentile(lat, 50), percentile(lat, 99)
	if proxy {
		if r.RSSKiB, _, err = memKiB(p.pid()); err != nil {
			return r, err
		}
	}

	elapsed, err := concurrent(ctx, sess, tool, args, pl.Calls)
	if err != nil {
		return r, err
	}
	r.PerSec = float64(pl.Calls) / elapsed.Seconds()
	if proxy {
		cpu1, err := cpuSeconds(p.pid())
		if err != nil {
			return r, err
		}
		r.CPUPer1000 = (cpu1 - cpu0) / float64(2*pl.Calls) * 1000
		if _, r.PeakKiB, err = memKiB(p.pid()); err != nil {
			return r, err
		}
	}
	if srv != nil {
		after, err := srv.counts(ctx)
		if err != nil {
			return r, err
		}
		d := after.minus(before)
		r.Requests, r.NewSessions = d.Requests, d.Sessions
	}
	return r, nil
}

// concurrent makes n calls with inFlight of them outstanding at a time.
func concurrent(ctx context.Context, sess *mcp.ClientSession, tool string, args *echoArgs, n int) (time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, inFlight)
	start := time.Now()
	for w := range inFlight {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if err := call(ctx, sess, tool, args); err != nil {
					errs[w] = err
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start), errors.Join(errs...)
}

// echoArgs is a call's arguments, encoded once so the client's own JSON work
// stays small and equal across targets.
type echoArgs struct {
	text string
	raw  json.RawMessage
}

func newArgs(text string) *echoArgs {
	raw, _ := json.Marshal(map[string]string{"text": text})
	return &echoArgs{text: text, raw: raw}
}

func call(ctx context.Context, sess *mcp.ClientSession, tool string, a *echoArgs) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	res, err := sess.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: a.raw})
	if err != nil {
		return fmt.Errorf("tools/call %s: %w", tool, err)
	}
	if res.IsError || len(res.Content) != 1 {
		return fmt.Errorf("tools/call %s: unexpected result (isError=%v, %d contents)", tool, res.IsError, len(res.Content))
	}
	tc, ok := res.Content[0].(*mcp.TextContent)
	if !ok || tc.Text != a.text {
		return fmt.Errorf("tools/call %s: the echo differs from the %d bytes sent", tool, len(a.text))
	}
	return nil
}

// findEcho lists tools until one named echo (or ending in "echo", should a
// bridge prefix it) appears: a bridge may answer before its backend is up.
func findEcho(ctx context.Context, sess *mcp.ClientSession) (string, error) {
	for {
		res, err := sess.ListTools(ctx, nil)
		if err != nil {
			return "", fmt.Errorf("tools/list: %w", err)
		}
		var names []string
		for _, t := range res.Tools {
			names = append(names, t.Name)
			if t.Name == "echo" || strings.HasSuffix(t.Name, "echo") {
				return t.Name, nil
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("no echo tool in %q: %w", names, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// waitCountsFile waits briefly for a stdio echo server's counts.
func waitCountsFile(ctx context.Context, path string) (counts, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		c, err := readCountsFile(path)
		if err == nil {
			return c, nil
		}
		select {
		case <-ctx.Done():
			return c, err
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// payloadText is n bytes of printable ASCII; 13 bytes is "hello, world!".
func payloadText(n int) string {
	const hello = "hello, world!"
	if n == len(hello) {
		return hello
	}
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 "
	var b strings.Builder
	b.Grow(n)
	for i := range n {
		b.WriteByte(alphabet[i%len(alphabet)])
	}
	return b.String()
}

// percentile of sorted d, nearest rank.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(math.Ceil(float64(len(d))*p/100)) - 1
	return d[max(0, min(i, len(d)-1))]
}
