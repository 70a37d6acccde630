//go:build linux

package interop

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TypeScript-SDK scenarios: the TS SDK client (node/scenario-client.mjs)
// is the host, the built bridge sits in between, and a TS-SDK server
// (node/scenario-server.mjs, which records what it saw: cancellations,
// its sampling requests' outcomes, subscriptions, the HTTP requests still
// open at it) or server-everything is the backend. A trimmed set of the
// twenty-fourth review's scenarios, for CI: one or two transports each,
// tests and subtests in parallel (tsParallel at once), every scenario
// killed after tsRunTimeout (its driver's watchdog fires 5 s earlier),
// every process of
// a run checked gone after it (runScriptWithin), every server stopped in
// t.Cleanup. Run them alone with: go test -race -count=1 -run TS ./interop

const tsRunTimeout = 25 * time.Second

// The bridge is built once for all of them (TestInterop builds its own).
var tsBridge struct {
	once      sync.Once
	dir, path string
	err       error
}

// tsParallel is how many of these run at once unless -parallel is given:
// they mostly wait (on tools that run for seconds, on sleeps before
// checking what the server saw), so more than the default GOMAXPROCS fit
// on a two-core machine; the processes of four runs use about one core.
const tsParallel = 4

func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set && runtime.GOMAXPROCS(0) < tsParallel {
		_ = flag.Set("test.parallel", strconv.Itoa(tsParallel))
	}
	code := m.Run()
	if tsBridge.dir != "" {
		os.RemoveAll(tsBridge.dir)
	}
	os.Exit(code)
}

func sharedBridge(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("INTEROP_BRIDGE"); b != "" {
		return b
	}
	tsBridge.once.Do(func() {
		root, err := filepath.Abs("..")
		if err != nil {
			tsBridge.err = err
			return
		}
		if tsBridge.dir, err = os.MkdirTemp("", "mcpbridge-ts-"); err != nil {
			tsBridge.err = err
			return
		}
		bin := filepath.Join(tsBridge.dir, "mcpbridge")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/mcpbridge/mcpbridge")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			tsBridge.err = fmt.Errorf("building the bridge: %v\n%s", err, out)
			return
		}
		tsBridge.path = bin
	})
	if tsBridge.err != nil {
		t.Fatal(tsBridge.err)
	}
	return tsBridge.path
}

type tsEnv struct {
	t                                                *testing.T
	nodeDir, nodeBin, bridge, serverJS, everythingJS string
}

// newTSEnv marks t parallel and readies node_modules and the bridge.
func newTSEnv(t *testing.T) tsEnv {
	t.Helper()
	t.Parallel()
	nodeDir, err := filepath.Abs("node")
	if err != nil {
		t.Fatal(err)
	}
	requireNode(t)
	npmCI(t, nodeDir)
	nodeBin, _ := exec.LookPath("node")
	return tsEnv{
		t: t, nodeDir: nodeDir, nodeBin: nodeBin, bridge: sharedBridge(t),
		serverJS:     filepath.Join(nodeDir, "scenario-server.mjs"),
		everythingJS: filepath.Join(nodeDir, "node_modules", "@modelcontextprotocol", "server-everything", "dist", "index.js"),
	}
}

// tsBackend is how the scenario server is reached.
type tsBackend struct{ name, transport, mode string }

var (
	tsStdio    = tsBackend{"stdio", "stdio", ""}
	tsHTTP     = tsBackend{"http", "streamableHttp", "http"}             // SSE answers
	tsHTTPJSON = tsBackend{"http-json", "streamableHttp", "http-json"}   // JSON answers
	tsHTTPPoll = tsBackend{"http-store", "streamableHttp", "http-store"} // the SDK's event store: streams closed and resumed
	tsSSE      = tsBackend{"sse", "sse", "sse"}                          // legacy SSE
)

// url starts the scenario server for b (stdio: none) and returns its URL.
func (e tsEnv) url(b tsBackend, env ...string) string {
	switch b.mode {
	case "":
		return ""
	case "sse":
		return startServer(e.t, e.nodeBin, e.serverJS, b.mode, env...) + "/sse"
	default:
		return startServer(e.t, e.nodeBin, e.serverJS, b.mode, env...) + "/mcp"
	}
}

// run runs one scenario through the bridge.
func (e tsEnv) run(t *testing.T, scenario string, b tsBackend, url string, extra map[string]any) {
	t.Helper()
	cfg := map[string]any{
		"mode": "bridge", "bridge": e.bridge, "node": e.nodeBin, "serverJs": e.serverJS,
		"everythingJs": e.everythingJS, "bridgeFlags": []string{"--log-level", "debug"},
		"transport": b.transport, "url": url,
	}
	for k, v := range extra {
		cfg[k] = v
	}
	runScriptWithin(t, tsRunTimeout, e.nodeDir, "scenario-client.mjs", scenario, cfg)
}

// runEach runs scenario over each backend (its own server each), in
// parallel.
func (e tsEnv) runEach(t *testing.T, scenario string, extra map[string]any, bs ...tsBackend) {
	for _, b := range bs {
		url := e.url(b)
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			e.run(t, scenario, b, url, extra)
		})
	}
}

// The host aborts a tool call the server runs on (it ignores the
// cancellation): the host has its error within 1 s, the server hears the
// cancellation, no answer for the cancelled id reaches the host, the
// session serves on, and once the tool is done no POST of it stays open
// at the server.
func TestTSCancelledCallEndsItsPost(t *testing.T) {
	e := newTSEnv(t)
	e.runEach(t, "cancel", map[string]any{"honour": false}, tsStdio, tsHTTP, tsHTTPJSON, tsSSE)
}

// --timeout 1s ends a silent 2.5 s call with -32001 before 2 s; the
// server hears the cancellation; nothing of it stays open.
func TestTSTimeoutCancelsTheCallAtTheServer(t *testing.T) {
	e := newTSEnv(t)
	e.runEach(t, "timeout", map[string]any{"honour": false}, tsHTTP, tsSSE)
}

// The server gives up on its own sampling request (its request timeout):
// the host hears notifications/cancelled for it; a second sampling works.
func TestTSServerCancelledSamplingReachesTheHost(t *testing.T) {
	e := newTSEnv(t)
	e.runEach(t, "server_cancels_sampling", nil, tsHTTP)
}

// --timeout 1s: a sampling request the host takes 2.5 s to answer holds
// the call it came for, not another silent call of the same backend
// (which still gets -32001 before 2 s).
func TestTSSamplingHoldsOnlyItsOwnCall(t *testing.T) {
	e := newTSEnv(t)
	e.runEach(t, "sampling_held", nil, tsHTTP)
}

// A call that ends while its sampling request waits on the host (the host
// cancels it; --max-timeout ends it) has the host told that the sampling
// request is cancelled (the server's own cancellation came on the call's
// answer stream, which the bridge closes), and the server's tool hears its
// call's cancellation before its sampling request fails.
func TestTSEndedCallCancelsItsSamplingAtTheHost(t *testing.T) {
	e := newTSEnv(t)
	url := e.url(tsHTTP)
	t.Run("cancel", func(t *testing.T) { e.run(t, "cancel_sampling", tsHTTP, url, nil) })
	t.Run("maxtimeout", func(t *testing.T) { e.run(t, "maxtimeout_sampling", tsHTTP, url, nil) })
}

// When the server forgets the session, the bridge replays the
// subscription it accepted, once, not the one it refused, and none after
// the host unsubscribed.
func TestTSOnlyAcceptedSubscriptionsAreReplayed(t *testing.T) {
	e := newTSEnv(t)
	e.runEach(t, "subscriptions", nil, tsHTTP)
}

// A subscribe and an unsubscribe of one URI sent together (both answered
// with success) leave nothing to replay when the session is replaced.
func TestTSSubscribeThenUnsubscribeIsNotReplayed(t *testing.T) {
	e := newTSEnv(t)
	e.runEach(t, "sub_unsub_race", nil, tsHTTP)
}

// Two TS backends that use the same raw URL-elicitation id: the host sees
// a/same and b/same in elicitation/create, in
// notifications/elicitation/complete and in -32042 error data.
func TestTSElicitationIDsArePrefixedByBackend(t *testing.T) {
	e := newTSEnv(t)
	url := e.url(tsHTTP)
	e.run(t, "multi_elicitation", tsStdio, "", map[string]any{"multiUrl": url})
}

// server-everything's trigger-sampling-request-async over streamable
// HTTP: the host runs a task for the backend's sampling request, the
// backend polls it with tasks/get and fetches tasks/result through the
// bridge.
func TestTSAsyncSamplingTaskCompletesThroughTheHost(t *testing.T) {
	e := newTSEnv(t)
	base := startServer(t, e.nodeBin, e.everythingJS, "streamableHttp")
	e.run(t, "async_sampling", tsHTTP, base+"/mcp", nil)
}

// A dozen running calls cancelled at once and a dozen cancelled as soon
// as sent: every one that was running hears its cancellation, none of
// those cancelled as soon as sent runs unaware (a cancellation waits for
// its request's POST to be answered), nothing stays open, the session
// serves on.
func TestTSCancellingManyCallsReachesEveryRunningOne(t *testing.T) {
	e := newTSEnv(t)
	e.runEach(t, "cancel_many", nil, tsHTTP, tsSSE)
}

// The server (SDK event store) closes a call's answer stream; the host
// cancels the call while the bridge waits to resume it: no resumption
// after the cancellation, the server hears it, nothing stays open.
func TestTSCancelledPolledCallIsNotResumed(t *testing.T) {
	e := newTSEnv(t)
	e.runEach(t, "cancel_polled", map[string]any{"honour": false, "cancelAfter": 900}, tsHTTPPoll)
}
