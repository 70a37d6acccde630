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

// seqBlock is how many sequential calls one target makes before the next
// target takes its turn.
const seqBlock = 10

// measureRound runs every payload against every target of one round, in
// the order given. The targets are started (and their cold starts timed)
// one after another, then live side by side: the sequential calls of each
// payload go to the targets in turns of seqBlock calls, so that a slow
// minute of a shared machine falls on every target alike instead of on
// whichever ran then. Calls with 16 in flight, and everything measured from
// /proc, are per target as before. res[i] and errs[i] are targets[i]'s:
// one target's failure is its own; the others go on.
func measureRound(ctx context.Context, e *env, targets []target, round int, payloads []payload) (res []*result, errs []error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(len(targets))*15*time.Minute)
	defer cancel()
	res, errs = make([]*result, len(targets)), make([]error, len(targets))
	var ls []*live
	defer func() {
		for _, l := range ls {
			l.kill() // what an interrupted round left running; a no-op for the rest
		}
	}()
	for i, t := range targets {
		l, err := start(ctx, e, t, round)
		if err != nil {
			errs[i] = err
			continue
		}
		l.index = i
		ls = append(ls, l)
	}
	for _, pl := range payloads {
		for _, l := range ls {
			l.beginPayload(ctx, pl)
		}
		for i := 0; i < pl.Calls; i += seqBlock {
			for j := range ls {
				l := ls[(j+i/seqBlock)%len(ls)]
				for range min(seqBlock, pl.Calls-i) {
					l.timedCall(ctx)
				}
			}
		}
		for _, l := range ls {
			l.endPayload(ctx)
		}
	}
	for _, l := range ls {
		res[l.index], errs[l.index] = l.finish(ctx)
	}
	return res, errs
}

// A live target is started and connected: a session to call through, and
// what measures it. Once err is set the target makes no more calls.
type live struct {
	t         target
	index     int
	res       *result
	srv       *echoHTTP // nil without an HTTP echo server
	p         *proc     // nil for direct-http
	sess      *mcp.ClientSession
	close     func() error
	idle      func() // closes the direct client's idle connections
	tool      string
	statsFile string
	calls     int // made so far, to check a stdio echo server's count
	err       error

	// the payload being measured
	pl     payload
	args   *echoArgs
	lat    []time.Duration
	before counts
	cpu0   float64
	cur    payloadResult
}

// start starts t, times its cold start (spawn or connect to the first
// tools/list that names echo) and its first 100 sequential small calls.
func start(ctx context.Context, e *env, t target, round int) (_ *live, err error) {
	l := &live{t: t, res: &result{Target: t.name, Round: round, Requests: -1, thirdParty: t.thirdParty}}
	defer func() {
		if err != nil {
			err = l.fail(err)
			l.kill()
		}
	}()
	url := ""
	if t.http {
		if l.srv, err = startEchoHTTP(ctx, e.echo); err != nil {
			return nil, err
		}
		url = l.srv.url
	}
	l.statsFile = filepath.Join(e.dir, fmt.Sprintf("%s-%d.stats", t.name, round))

	start := time.Now()
	var transport mcp.Transport
	if t.command == nil {
		ht := &http.Transport{MaxIdleConnsPerHost: 4 * inFlight}
		l.idle = ht.CloseIdleConnections
		transport = &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: &http.Client{Transport: ht}}
	} else {
		if l.p, err = startProc(t.name, t.command(e, url, l.statsFile), true, nil); err != nil {
			return nil, err
		}
		transport = &mcp.IOTransport{Reader: l.p.stdout, Writer: l.p.stdin, MaxLineLength: maxLine}
	}
	cctx, ccancel := context.WithTimeout(ctx, connectTimeout)
	defer ccancel()
	if l.sess, err = e.client.Connect(cctx, transport, &mcp.ClientSessionOptions{ProtocolVersion: protocolVersion}); err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	l.close = sync.OnceValue(l.sess.Close)
	if v := l.sess.InitializeResult().ProtocolVersion; v != protocolVersion {
		l.res.problem("negotiated protocol %s, not %s", v, protocolVersion)
	}
	if l.tool, err = findEcho(cctx, l.sess); err != nil {
		return nil, err
	}
	l.res.ColdStart = time.Since(start)

	if l.srv != nil {
		before, err := l.srv.counts(ctx)
		if err != nil {
			return nil, err
		}
		l.res.Sessions, l.res.Requests = before.Sessions, before.Requests
		if before.Sessions != 1 {
			l.res.problem("%d sessions at startup, want 1", before.Sessions)
		}
	}

	// The case of the bug that started this: 100 sequential small calls.
	small := newArgs("hello, world!")
	start = time.Now()
	for range 100 {
		if err := call(ctx, l.sess, l.tool, small); err != nil {
			return nil, err
		}
	}
	l.res.Seq100 = time.Since(start)
	l.calls = 100
	return l, nil
}

// fail records err as the target's failure, with the tail of its stderr.
func (l *live) fail(err error) error {
	if l.err != nil {
		return l.err
	}
	if l.p != nil {
		if l.t.proxy && !l.t.thirdParty && errors.Is(err, context.DeadlineExceeded) {
			// A call that got no answer: have mcpbridge print its
			// goroutines (Go's SIGQUIT dump) into the stderr tail, so the
			// failure says where it stuck.
			_ = l.p.stop(syscall.SIGQUIT, 3*time.Second)
			time.Sleep(200 * time.Millisecond) // the tail's reader catches up
		}
		err = fmt.Errorf("%w\n%s stderr (tail):\n%s", err, l.t.name, l.p.stderr)
	}
	l.err = err
	// Now, not at the end of the round: a stuck target must not compete
	// with the others for the rest of it.
	l.kill()
	return err
}

// kill stops whatever l started, without patience. finish has done it
// already for a target that ended well, fail for one that failed; it is
// safe to call again.
func (l *live) kill() {
	if l.close != nil {
		_ = l.close()
	}
	if l.idle != nil {
		l.idle()
	}
	if l.p != nil {
		_ = l.p.stop(syscall.SIGTERM, time.Second)
	}
	if l.srv != nil {
		l.srv.stop()
	}
}

// beginPayload warms the target up with pl and takes the counts its
// sequential and concurrent calls are measured against.
func (l *live) beginPayload(ctx context.Context, pl payload) {
	l.pl, l.args, l.lat = pl, newArgs(payloadText(pl.Bytes)), l.lat[:0]
	l.cur = payloadResult{Payload: pl.Name, Calls: pl.Calls, CPUPer1000: -1, RSSKiB: -1, PeakKiB: -1}
	if l.err != nil {
		return
	}
	for range warmup {
		if err := call(ctx, l.sess, l.tool, l.args); err != nil {
			l.fail(fmt.Errorf("%s: %w", pl.Name, err))
			return
		}
	}
	var err error
	if l.srv != nil {
		if l.before, err = l.srv.counts(ctx); err != nil {
			l.fail(fmt.Errorf("%s: %w", pl.Name, err))
			return
		}
	}
	if l.t.proxy {
		if l.cpu0, err = cpuSeconds(l.p.pid()); err != nil {
			l.fail(fmt.Errorf("%s: %w", pl.Name, err))
		}
	}
}

// timedCall makes one sequential call and keeps its latency.
func (l *live) timedCall(ctx context.Context) {
	if l.err != nil {
		return
	}
	t0 := time.Now()
	if err := call(ctx, l.sess, l.tool, l.args); err != nil {
		l.fail(fmt.Errorf("%s: %w", l.pl.Name, err))
		return
	}
	l.lat = append(l.lat, time.Since(t0))
}

// endPayload computes the sequential figures, then makes the calls with 16
// in flight and takes the counts after both.
func (l *live) endPayload(ctx context.Context) {
	if l.err != nil {
		return
	}
	if err := l.endPayloadErr(ctx); err != nil {
		l.fail(fmt.Errorf("%s: %w", l.pl.Name, err))
		return
	}
	r := l.cur
	l.calls += warmup + 2*l.pl.Calls
	if l.srv != nil && r.NewSessions != 0 {
		l.res.problem("%s: %d new sessions during calls, want 0", r.Payload, r.NewSessions)
	}
	if l.srv != nil && r.Requests != int64(2*l.pl.Calls) {
		l.res.problem("%s: %d HTTP requests for %d calls, want 1 each", r.Payload, r.Requests, 2*l.pl.Calls)
	}
	l.res.Payloads = append(l.res.Payloads, r)
}

func (l *live) endPayloadErr(ctx context.Context) error {
	r := &l.cur
	slices.Sort(l.lat)
	r.P50, r.P99 = percentile(l.lat, 50), percentile(l.lat, 99)
	var err error
	if l.t.proxy {
		if r.RSSKiB, _, err = memKiB(l.p.pid()); err != nil {
			return err
		}
	}
	elapsed, err := concurrent(ctx, l.sess, l.tool, l.args, l.pl.Calls)
	if err != nil {
		return err
	}
	r.PerSec = float64(l.pl.Calls) / elapsed.Seconds()
	if l.t.proxy {
		cpu1, err := cpuSeconds(l.p.pid())
		if err != nil {
			return err
		}
		r.CPUPer1000 = (cpu1 - l.cpu0) / float64(2*l.pl.Calls) * 1000
		if _, r.PeakKiB, err = memKiB(l.p.pid()); err != nil {
			return err
		}
	}
	if l.srv != nil {
		after, err := l.srv.counts(ctx)
		if err != nil {
			return err
		}
		d := after.minus(l.before)
		r.Requests, r.NewSessions = d.Requests, d.Sessions
	}
	return nil
}

// finish shuts the target down in order (a stdio echo server writes its
// counts on exit) and checks those counts.
func (l *live) finish(ctx context.Context) (*result, error) {
	if l.err != nil {
		return nil, l.err
	}
	if err := l.close(); err != nil && l.t.command == nil {
		return nil, l.fail(fmt.Errorf("close: %w", err))
	}
	if l.idle != nil {
		l.idle()
	}
	if l.p != nil {
		_ = l.p.stop(0, 5*time.Second) // exit status of a closed proxy is not ours to judge
	}
	if l.srv != nil {
		l.srv.stop()
	}
	if l.t.command != nil && !l.t.http {
		c, err := waitCountsFile(ctx, l.statsFile)
		if err != nil {
			return nil, l.fail(fmt.Errorf("echo server counts: %w", err))
		}
		l.res.Sessions = c.Sessions
		if c.Sessions != 1 {
			l.res.problem("%d backend sessions in the run, want 1", c.Sessions)
		}
		if c.Messages < int64(l.calls) {
			l.res.problem("backend saw %d messages for %d calls", c.Messages, l.calls)
		}
	}
	return l.res, nil
}

const warmup = 10

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
