//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/frame"
	"github.com/mcpbridge/mcpbridge/internal/testserver"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// A chaos soak of the built binary (from the 31st review). For a bounded time each
// configuration (one stdio, one streamable-HTTP, one legacy SSE backend,
// and the three merged) is driven by concurrent host requests of many kinds
// while faults are injected (SIGKILL of the stdio child, HTTP session
// expiry, 500/502 phases, answer streams and the standalone GET cut, SSE
// streams dropped, the host reading slowly or not at all, malformed lines),
// and the host's wire is checked against the bridge's promise (see
// chaosRun.check).
//
// CHAOS_SECONDS sets the chaos time per configuration (default 6, for CI);
// CHAOS_SEED fixes the random choices; CHAOS_ONLY=stdio|http|sse|merged
// runs one configuration.

type chaosKey struct{}

// chaosHTTPServer is a go-sdk server behind a fault-injecting handler.
type chaosHTTPServer struct {
	name   string
	srv    *mcp.Server
	ts     *httptest.Server
	legacy bool

	status     atomic.Int32 // non-zero: answer every request with a session (and GETs) with it
	down       atomic.Int32 // non-zero: answer every request with it (an outage), initialize included
	expireNext atomic.Bool  // the next POST with a session: close the session, 404
	stale404   atomic.Bool  // the next POST with a session: 404, session kept
	cutPosts   atomic.Bool  // the handler for POSTs cuts its connection after 30 ms

	teardown    context.Context
	endHandlers context.CancelFunc

	mu    sync.Mutex
	gets  map[net.Conn]bool
	posts map[net.Conn]bool
	reqs  atomic.Int64
}

func newChaosHTTP(t *testing.T, name string, legacy bool) *chaosHTTPServer {
	c := &chaosHTTPServer{name: name, srv: testserver.New(name), legacy: legacy, gets: map[net.Conn]bool{}, posts: map[net.Conn]bool{}}
	// Handlers of sessions the bridge left may wait for ever on an upcall
	// whose answer the bridge rightly drops: they end with the test.
	c.teardown, c.endHandlers = context.WithCancel(context.Background())
	c.srv.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			ctx, stop := context.WithCancel(ctx)
			defer stop()
			go func() {
				select {
				case <-c.teardown.Done():
					stop()
				case <-ctx.Done():
				}
			}()
			return next(ctx, method, req)
		}
	})
	var inner http.Handler
	if legacy {
		inner = mcp.NewSSEHandler(func(*http.Request) *mcp.Server { return c.srv }, nil)
	} else {
		inner = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return c.srv }, &mcp.StreamableHTTPOptions{EventStore: mcp.NewMemoryEventStore(nil)})
	}
	c.ts = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.reqs.Add(1)
		conn, _ := r.Context().Value(chaosKey{}).(net.Conn)
		sid := r.Header.Get("Mcp-Session-Id")
		if legacy {
			sid = r.URL.Query().Get("sessionid")
		}
		withSession := sid != "" || (r.Method == http.MethodGet && !legacy)
		if st := c.down.Load(); st != 0 {
			http.Error(w, "chaos down", int(st))
			return
		}
		if st := c.status.Load(); st != 0 && withSession {
			http.Error(w, "chaos "+strconv.Itoa(int(st)), int(st))
			return
		}
		if r.Method == http.MethodPost && sid != "" {
			if c.expireNext.CompareAndSwap(true, false) {
				if !legacy {
					for ss := range c.srv.Sessions() {
						if ss.ID() == sid {
							ss.Close()
						}
					}
				}
				http.Error(w, "session not found", http.StatusNotFound)
				return
			}
			if c.stale404.CompareAndSwap(true, false) {
				http.Error(w, "session not found", http.StatusNotFound)
				return
			}
		}
		if conn != nil {
			c.mu.Lock()
			set := c.posts
			if r.Method == http.MethodGet {
				set = c.gets
			}
			set[conn] = true
			c.mu.Unlock()
			defer func() {
				c.mu.Lock()
				delete(set, conn)
				c.mu.Unlock()
			}()
			if r.Method == http.MethodPost && !legacy && c.cutPosts.Load() {
				go func() {
					time.Sleep(30 * time.Millisecond)
					conn.Close()
				}()
			}
		}
		inner.ServeHTTP(w, r)
	}))
	c.ts.Config.ConnContext = func(ctx context.Context, conn net.Conn) context.Context {
		return context.WithValue(ctx, chaosKey{}, conn)
	}
	c.ts.Start()
	return c
}

func (c *chaosHTTPServer) url() string {
	if c.legacy {
		return c.ts.URL + "/sse"
	}
	return c.ts.URL + "/mcp"
}

// cut closes up to n connections of the set (GET streams or POST answer
// streams in progress).
func (c *chaosHTTPServer) cut(get bool, n int) int {
	c.mu.Lock()
	set := c.posts
	if get {
		set = c.gets
	}
	var cs []net.Conn
	for conn := range set {
		cs = append(cs, conn)
		if len(cs) == n {
			break
		}
	}
	c.mu.Unlock()
	for _, conn := range cs {
		conn.Close()
	}
	return len(cs)
}

func (c *chaosHTTPServer) close() {
	c.endHandlers()
	c.ts.CloseClientConnections()
	for ss := range c.srv.Sessions() {
		ss.Close()
	}
	c.ts.Close()
}

// chaosReq is one host request.
type chaosReq struct {
	id        string
	kind      string
	backend   string
	want      string
	token     string
	sent      time.Time
	cancelled bool
	answers   int
	answerAt  time.Time
	answer    []byte
	done      chan struct{}
}

type chaosUp struct {
	id        string
	backend   string
	pending   bool
	cancelled bool
}

// chaosRun is one configuration's bridge and host.
type chaosRun struct {
	t       *testing.T
	merged  bool
	names   []string // backends
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	stderr  *syncBuffer
	wmu     sync.Mutex
	slow    atomic.Int32 // ms to sleep before each line read
	stall   atomic.Int64 // unix nanos until which the host does not read
	readEnd chan struct{}

	mu          sync.Mutex
	reqs        map[string]*chaosReq
	all         []*chaosReq
	byToken     map[string]*chaosReq
	ups         map[string]*chaosUp
	violations  []string
	nullErrors  int
	garbageSent int
	progress    int
	lateProg    int
	logs        int
	upcalls     int
	upCancelled int
	lines       int
	batchLines  int
	seq         atomic.Int64
	fds         []string
	upWG        sync.WaitGroup
}

var chaosUpRe = regexp.MustCompile(`"text":"from ([a-z0-9]+)"`)
var chaosSampledRe = regexp.MustCompile(`S:([a-z0-9]+):([0-9a-z"\\-]+?)#`)

func (r *chaosRun) violate(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.violateLocked(format, args...)
}

func (r *chaosRun) violateLocked(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if len(r.violations) < 200 {
		r.violations = append(r.violations, time.Now().Format("15:04:05.000")+" "+msg)
	}
}

func (r *chaosRun) send(line string) {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	io.WriteString(r.stdin, line+"\n")
}

// read is the host's stdout reader: every line checked and dispatched.
func (r *chaosRun) read(out io.Reader) {
	defer close(r.readEnd)
	br := bufio.NewReaderSize(out, 4096)
	for {
		if ms := r.slow.Load(); ms > 0 {
			time.Sleep(time.Duration(ms) * time.Millisecond)
		}
		for until := r.stall.Load(); time.Now().UnixNano() < until; until = r.stall.Load() {
			time.Sleep(20 * time.Millisecond)
		}
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			r.line(bytes.TrimRight(line, "\r\n"))
		}
		if err != nil {
			return
		}
	}
}

func (r *chaosRun) line(line []byte) {
	r.mu.Lock()
	r.lines++
	r.mu.Unlock()
	if len(line) > 0 && line[0] == '[' {
		var elems []json.RawMessage
		if err := json.Unmarshal(line, &elems); err != nil || len(elems) == 0 {
			r.violate("stdout line is not a JSON-RPC batch: %.300q", line)
			return
		}
		r.mu.Lock()
		r.batchLines++
		r.mu.Unlock()
		for _, e := range elems {
			if e[0] != '{' {
				r.violate("batch member is not an object: %.300s", line)
				continue
			}
			r.message(e)
		}
		return
	}
	r.message(line)
}

func (r *chaosRun) message(line []byte) {
	var env map[string]json.RawMessage
	if err := json.Unmarshal(line, &env); err != nil {
		r.violate("stdout line is not a JSON object: %.300q", line)
		return
	}
	if string(env["jsonrpc"]) != `"2.0"` {
		r.violate("stdout line without jsonrpc 2.0: %.300s", line)
	}
	_, hasMethod := env["method"]
	_, hasID := env["id"]
	_, hasRes := env["result"]
	_, hasErr := env["error"]
	if hasMethod && (hasRes || hasErr) || !hasMethod && (!hasID || hasRes == hasErr) {
		r.violate("stdout line is not a well-formed JSON-RPC message: %.300s", line)
		return
	}
	f, err := frame.Parse(bytes.Clone(line))
	if err != nil {
		r.violate("frame.Parse refuses a stdout line: %v: %.300s", err, line)
		return
	}
	switch f.Kind {
	case frame.Response:
		r.response(f)
	case frame.Request:
		r.upcall(f)
	case frame.Notification:
		r.notification(f)
	}
}

func (r *chaosRun) response(f *frame.Frame) {
	id := string(f.ID())
	r.mu.Lock()
	defer r.mu.Unlock()
	if id == "null" {
		r.nullErrors++
		if !f.IsError() {
			r.violateLocked("a result with id null: %.300s", f.Raw())
		}
		return
	}
	q := r.reqs[id]
	if q == nil {
		r.violateLocked("response for an id the host never sent: %.300s", f.Raw())
		return
	}
	q.answers++
	if q.answers > 1 {
		r.violateLocked("request %s (%s on %s, cancelled %v) answered %d times; this one %.300s; first %.300s", id, q.kind, q.backend, q.cancelled, q.answers, f.Raw(), q.answer)
		return
	}
	q.answerAt = time.Now()
	q.answer = bytes.Clone(f.Raw())
	close(q.done)
}

func (r *chaosRun) upcall(f *frame.Frame) {
	id := string(f.ID())
	u := &chaosUp{id: id, pending: true}
	if m := chaosUpRe.FindSubmatch(f.Params()); m != nil {
		u.backend = string(m[1])
	}
	r.mu.Lock()
	r.upcalls++
	if old := r.ups[id]; old != nil {
		if old.pending {
			r.violateLocked("upcall id %s reused while the first one (from %s) is still pending: %.300s", id, old.backend, f.Raw())
		} else {
			r.violateLocked("upcall id %s reused (first from %s, answered/cancelled): %.300s", id, old.backend, f.Raw())
		}
	}
	if f.Method == "sampling/createMessage" && u.backend == "" {
		r.violateLocked("sampling request without its backend's text: %.300s", f.Raw())
	}
	r.ups[id] = u
	r.mu.Unlock()
	method := f.Method
	r.upWG.Add(1)
	go func() {
		defer r.upWG.Done()
		d := time.Duration(rand.IntN(150)) * time.Millisecond
		if rand.IntN(30) == 0 {
			d = time.Duration(3000+rand.IntN(3000)) * time.Millisecond // past the call's idle timeout
		}
		time.Sleep(d)
		r.mu.Lock()
		cancelled := u.cancelled
		r.mu.Unlock()
		if cancelled && rand.IntN(2) == 0 {
			return
		}
		var res string
		switch method {
		case "sampling/createMessage":
			res = `{"role":"assistant","model":"m","content":{"type":"text","text":"S:` + u.backend + `:` + strings.ReplaceAll(id, `"`, ``) + `#"}}`
		case "roots/list":
			res = `{"roots":[]}`
		default:
			res = `{}`
		}
		r.mu.Lock()
		u.pending = false
		r.mu.Unlock()
		if rand.IntN(15) == 0 {
			r.send(`{"jsonrpc":"2.0","id":` + id + `,"error":{"code":-1,"message":"user rejected"}}`)
			return
		}
		r.send(`{"jsonrpc":"2.0","id":` + id + `,"result":` + res + `}`)
	}()
}

func (r *chaosRun) notification(f *frame.Frame) {
	switch f.Method {
	case "notifications/progress":
		var p struct {
			Token   json.RawMessage `json:"progressToken"`
			Message string          `json:"message"`
		}
		_ = json.Unmarshal(f.Params(), &p)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.progress++
		q := r.byToken[string(p.Token)]
		switch {
		case q == nil:
			r.violateLocked("progress with a token the host never issued: %.300s", f.Raw())
		case q.backend != p.Message:
			r.violateLocked("progress for %s (on %s) carries another backend's message: %.300s", q.id, q.backend, f.Raw())
		case q.answers > 0 && !q.cancelled:
			r.violateLocked("progress for %s (%s on %s) after its response (%v after; answer %.200s): %.300s", q.id, q.kind, q.backend, time.Since(q.answerAt), q.answer, f.Raw())
		case q.answers > 0 || q.cancelled:
			r.lateProg++
		}
	case "notifications/cancelled":
		var p struct {
			RequestID json.RawMessage `json:"requestId"`
		}
		_ = json.Unmarshal(f.Params(), &p)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.upCancelled++
		if u := r.ups[string(p.RequestID)]; u == nil {
			r.violateLocked("the bridge cancelled upcall %s, which it never sent: %.300s", p.RequestID, f.Raw())
		} else {
			u.cancelled = true
			u.pending = false
		}
	case "notifications/message":
		r.mu.Lock()
		r.logs++
		r.mu.Unlock()
	}
}

// tool names the tool of backend b as the host sees it.
func (r *chaosRun) tool(b, name string) string {
	if r.merged {
		return b + "_" + name
	}
	return name
}

// request sends one host request of kind to backend b and returns it.
func (r *chaosRun) request(kind, b string, rng *rand.Rand) *chaosReq {
	return r.requestTo(kind, b, rng, nil)
}

// requestTo is request; with batch not nil the line is appended to it
// instead of being sent.
func (r *chaosRun) requestTo(kind, b string, rng *rand.Rand, batch *[]string) *chaosReq {
	n := r.seq.Add(1)
	q := &chaosReq{kind: kind, backend: b, done: make(chan struct{})}
	if n%2 == 0 {
		q.id = `"q-` + strconv.FormatInt(n, 10) + `"`
	} else {
		q.id = strconv.FormatInt(n, 10)
	}
	call := func(name, args, meta string) string {
		return `{"jsonrpc":"2.0","id":` + q.id + `,"method":"tools/call","params":{` + meta + `"name":"` + r.tool(b, name) + `","arguments":` + args + `}}`
	}
	var line string
	switch kind {
	case "echo":
		text := fmt.Sprintf("e%d-%s", n, b)
		q.want = `"text":"` + text + `"`
		line = call("echo", `{"text":"`+text+`"}`, "")
	case "whoami":
		q.want = `"text":"` + b + `"`
		line = call("whoami", `{}`, "")
	case "slow":
		q.want = `"text":"slept"`
		line = call("sleep", fmt.Sprintf(`{"ms":%d}`, 200+rng.IntN(1300)), "")
	case "slowtimeout":
		q.want = `"text":"slept"`
		line = call("sleep", fmt.Sprintf(`{"ms":%d}`, 3850+rng.IntN(300)), "")
	case "progress":
		if n%3 == 0 {
			q.token = strconv.FormatInt(5_000_000+n, 10)
		} else {
			q.token = `"tok-` + strconv.FormatInt(n, 10) + `"`
		}
		q.want = `"text":"done ` + b + `"`
		line = call("progress", fmt.Sprintf(`{"steps":%d}`, 1+rng.IntN(6)), `"_meta":{"progressToken":`+q.token+`},`)
	case "sample":
		q.want = `S:` + b + `:`
		line = call("sample", `{}`, "")
	case "log":
		q.want = `"text":"logged"`
		line = call("log", `{}`, "")
	case "tools/list":
		q.want = `"tools":[`
		line = `{"jsonrpc":"2.0","id":` + q.id + `,"method":"tools/list"}`
	case "resources/read":
		q.want = `"text":"content of ` + b + `"`
		line = `{"jsonrpc":"2.0","id":` + q.id + `,"method":"resources/read","params":{"uri":"test://` + b + `/r"}}`
	case "ping":
		q.want = `{}`
		line = `{"jsonrpc":"2.0","id":` + q.id + `,"method":"ping"}`
	case "badparams":
		q.want = "-"
		line = `{"jsonrpc":"2.0","id":` + q.id + `,"method":"tools/call","params":{"name":"` + r.tool(b, "echo") + `","arguments":{"text":17}}}`
	}
	r.mu.Lock()
	if r.reqs[q.id] != nil {
		r.violateLocked("test bug: id %s reused", q.id)
	}
	r.reqs[q.id] = q
	r.all = append(r.all, q)
	if q.token != "" {
		r.byToken[q.token] = q
	}
	q.sent = time.Now()
	r.mu.Unlock()
	if batch != nil {
		*batch = append(*batch, line)
		return q
	}
	r.send(line)
	return q
}

// garbage is what a broken host writes between its requests. The first
// group must each be answered once with id null; the rest never answered.
var chaosGarbageAnswered = []string{
	`this is not json`,
	`{"jsonrpc":"2.0","id":`,
	`{"jsonrpc":"2.0","method":42}`,
	`{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}`,
	"\xff\xfe{\"jsonrpc\":\"2.0\"}",
	`[]`,
	`42`,
}
var chaosGarbageSilent = []string{
	`{"jsonrpc":"2.0","method":"notifications/nonsense","params":{"x":1}}`,
	`{"jsonrpc":"2.0","id":"never-asked-77","result":{}}`,
	`{"jsonrpc":"2.0","id":987654321,"error":{"code":-1,"message":"x"}}`,
	`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"no-such-request"}}`,
	`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"nobody","progress":1}}`,
}

func (r *chaosRun) bridgePID() int { return r.cmd.Process.Pid }

func (r *chaosRun) fdCount() int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", r.bridgePID()))
	if err != nil {
		return -1
	}
	return len(ents)
}

func (r *chaosRun) noteFDs(phase string) {
	n := r.fdCount()
	r.mu.Lock()
	r.fds = append(r.fds, fmt.Sprintf("%s=%d", phase, n))
	r.mu.Unlock()
}

// stopStdio SIGSTOPs the stdio backend child named name; returns its pid.
func stopStdio(marker, name string) int { return signalStdio(marker, name, syscall.SIGSTOP) }

// killStdio SIGKILLs the stdio backend child named name; returns its pid.
func killStdio(marker, name string) int { return signalStdio(marker, name, syscall.SIGKILL) }

// signalStdio sends sig to the stdio backend child named name (found by
// marker and its environment); returns its pid, 0 if none.
func signalStdio(marker, name string, sig syscall.Signal) int {
	for _, pid := range processesWith(marker) {
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil || !bytes.Contains(env, []byte("\x00"+serverEnv+"="+name+"\x00")) && !bytes.HasPrefix(env, []byte(serverEnv+"="+name+"\x00")) {
			continue
		}
		if syscall.Kill(pid, sig) == nil {
			return pid
		}
	}
	return 0
}

func TestChaosSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos soak skipped in -short mode")
	}
	secs := 6 // CI; a real soak: CHAOS_SECONDS=60
	if n, err := strconv.Atoi(os.Getenv("CHAOS_SECONDS")); err == nil {
		secs = n
	}
	seed := uint64(time.Now().UnixNano())
	if n, err := strconv.ParseUint(os.Getenv("CHAOS_SEED"), 10, 64); err == nil {
		seed = n
	}
	t.Logf("CHAOS_SEED=%d", seed)
	for _, cfg := range []string{"stdio", "http", "sse", "merged"} {
		if o := os.Getenv("CHAOS_ONLY"); o != "" && o != cfg {
			continue
		}
		t.Run(cfg, func(t *testing.T) {
			chaosConfig(t, cfg, time.Duration(secs)*time.Second, seed)
		})
	}
}

func chaosConfig(t *testing.T, cfg string, chaosFor time.Duration, seed uint64) {
	self, _ := os.Executable()
	marker := fmt.Sprintf("MCPBRIDGE_CHAOS=%d-%s-%d", os.Getpid(), cfg, time.Now().UnixNano())
	const timeout, maxTimeout = 4 * time.Second, 12 * time.Second
	args := []string{"--timeout", timeout.String(), "--max-timeout", maxTimeout.String(), "--log-level", "warn"}
	var httpS, sseS *chaosHTTPServer
	r := &chaosRun{t: t, reqs: map[string]*chaosReq{}, byToken: map[string]*chaosReq{}, ups: map[string]*chaosUp{}, readEnd: make(chan struct{}), stderr: &syncBuffer{}}
	stdioKills := map[string]int{}
	if cfg == "stdio" || cfg == "merged" {
		args = append(args, "--stdio", "s="+self, "--env", "s:"+serverEnv+"=s")
		r.names = append(r.names, "s")
	}
	if cfg == "http" || cfg == "merged" {
		httpS = newChaosHTTP(t, "h", false)
		defer httpS.close()
		args = append(args, "--http", "h="+httpS.url())
		r.names = append(r.names, "h")
	}
	if cfg == "sse" || cfg == "merged" {
		sseS = newChaosHTTP(t, "e", true)
		defer sseS.close()
		args = append(args, "--sse", "e="+sseS.url())
		r.names = append(r.names, "e")
	}
	r.merged = len(r.names) > 1

	bin := bridgeBin
	if os.Getenv("CHAOS_RACE") != "" {
		bin = filepath.Join(t.TempDir(), "mcpbridge-race")
		if out, err := exec.Command("go", "build", "-race", "-o", bin, ".").CombinedOutput(); err != nil {
			t.Fatalf("race build: %v\n%s", err, out)
		}
	}
	r.cmd = exec.Command(bin, args...)
	r.cmd.Env = append(os.Environ(), marker)
	r.cmd.Stderr = r.stderr
	var err error
	if r.stdin, err = r.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := r.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go r.read(out)
	var waitErr error
	go func() {
		<-r.readEnd
		waitErr = r.cmd.Wait()
		close(exited)
	}()
	defer func() {
		select {
		case <-exited:
		default:
			r.cmd.Process.Kill()
			<-exited
		}
		for _, pid := range processesWith(marker) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		if t.Failed() {
			t.Logf("bridge stderr (tail):\n%s", tail(r.stderr.String(), 6000))
		}
	}()

	// Handshake.
	init := &chaosReq{id: "0", kind: "initialize", done: make(chan struct{}), sent: time.Now()}
	r.mu.Lock()
	r.reqs["0"] = init
	r.all = append(r.all, init)
	r.mu.Unlock()
	r.send(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"sampling":{},"roots":{}},"clientInfo":{"name":"chaos31","version":"1"}}}`)
	select {
	case <-init.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("no initialize answer; stderr:\n%s", tail(r.stderr.String(), 3000))
	}
	r.send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	r.send(`{"jsonrpc":"2.0","id":"setlevel","method":"logging/setLevel","params":{"level":"debug"}}`)
	r.mu.Lock()
	sl := &chaosReq{id: `"setlevel"`, kind: "setLevel", done: make(chan struct{}), sent: time.Now()}
	r.reqs[sl.id] = sl
	r.all = append(r.all, sl)
	r.mu.Unlock()
	// Wait for each backend to answer once before the chaos.
	for _, b := range r.names {
		q := r.request("whoami", b, rand.New(rand.NewPCG(seed, 1)))
		select {
		case <-q.done:
		case <-time.After(30 * time.Second):
			t.Fatalf("backend %s never answered before the chaos", b)
		}
	}
	r.noteFDs("start")

	// The workload.
	kinds := []struct {
		k string
		w int
	}{{"echo", 22}, {"whoami", 6}, {"slow", 12}, {"progress", 16}, {"sample", 14}, {"log", 8}, {"tools/list", 6}, {"resources/read", 8}, {"ping", 6}, {"badparams", 2}, {"slowtimeout", 3}, {"batch", 3}}
	totalW := 0
	for _, k := range kinds {
		totalW += k.w
	}
	stop := time.Now().Add(chaosFor)
	var wg sync.WaitGroup
	var sentN, cancelledN atomic.Int64
	const workers = 10
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(w)+100))
			for i := 0; i < 100000 && time.Now().Before(stop); i++ {
				x := rng.IntN(totalW)
				kind := ""
				for _, k := range kinds {
					if x < k.w {
						kind = k.k
						break
					}
					x -= k.w
				}
				b := r.names[rng.IntN(len(r.names))]
				if rng.IntN(40) == 0 {
					r.mu.Lock()
					r.garbageSent++
					r.mu.Unlock()
					r.send(chaosGarbageAnswered[rng.IntN(len(chaosGarbageAnswered))])
				}
				if rng.IntN(40) == 0 {
					r.send(chaosGarbageSilent[rng.IntN(len(chaosGarbageSilent))])
				}
				if kind == "batch" {
					var lines []string
					var qs []*chaosReq
					for range 2 + rng.IntN(3) {
						k := []string{"echo", "whoami", "ping", "progress", "resources/read"}[rng.IntN(5)]
						qs = append(qs, r.requestTo(k, r.names[rng.IntN(len(r.names))], rng, &lines))
					}
					r.send("[" + strings.Join(lines, ",") + "]")
					sentN.Add(int64(len(qs)))
					if rng.IntN(3) == 0 {
						q := qs[rng.IntN(len(qs))]
						time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond)
						r.mu.Lock()
						doCancel := q.answers == 0
						if doCancel {
							q.cancelled = true
						}
						r.mu.Unlock()
						if doCancel {
							cancelledN.Add(1)
							r.send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":` + q.id + `,"reason":"chaos"}}`)
						}
					}
					for _, q := range qs {
						if q.cancelled {
							continue
						}
						select {
						case <-q.done:
						case <-time.After(maxTimeout + 10*time.Second):
						}
					}
					continue
				}
				q := r.request(kind, b, rng)
				sentN.Add(1)
				if kind != "ping" && rng.IntN(100) < 12 {
					select {
					case <-q.done:
					case <-time.After(time.Duration(rng.IntN(400)) * time.Millisecond):
					}
					r.mu.Lock()
					doCancel := q.answers == 0
					if doCancel {
						q.cancelled = true
					}
					r.mu.Unlock()
					if doCancel {
						cancelledN.Add(1)
						r.send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":` + q.id + `,"reason":"chaos"}}`)
						continue
					}
				}
				select {
				case <-q.done:
					r.mu.Lock()
					isErr := bytes.Contains(q.answer, []byte(`"error":`))
					r.mu.Unlock()
					if isErr {
						time.Sleep(time.Duration(20+rng.IntN(80)) * time.Millisecond)
					}
				case <-time.After(maxTimeout + 10*time.Second):
				}
			}
		}()
	}

	// The faults.
	var faultLog []string
	faultDone := make(chan struct{})
	go func() {
		defer close(faultDone)
		rng := rand.New(rand.NewPCG(seed, 999))
		lastFD := time.Now()
		for i := 0; i < 1000 && time.Now().Before(stop.Add(-2*time.Second)); i++ {
			time.Sleep(time.Duration(300+rng.IntN(700)) * time.Millisecond)
			if time.Since(lastFD) > 5*time.Second {
				r.noteFDs(fmt.Sprintf("t%d", int(time.Since(stop.Add(-chaosFor)).Seconds())))
				lastFD = time.Now()
			}
			var opts []string
			for _, b := range r.names {
				switch b {
				case "s":
					if stdioKills["s"] < 5 {
						opts = append(opts, "kill-s")
					}
					opts = append(opts, "stop-s")
				case "h":
					opts = append(opts, "h-expire", "h-stale404", "h-500", "h-502", "h-cut-posts", "h-cut-get", "h-cut-mode", "h-down")
				case "e":
					opts = append(opts, "e-500", "e-404", "e-drop", "e-down")
				}
			}
			opts = append(opts, "host-slow", "host-stall", "none")
			f := opts[rng.IntN(len(opts))]
			what := f
			switch f {
			case "kill-s":
				stdioKills["s"]++
				what += fmt.Sprintf(" pid %d", killStdio(marker, "s"))
			case "h-expire":
				httpS.expireNext.Store(true)
			case "h-stale404":
				httpS.stale404.Store(true)
			case "h-500", "h-502", "e-500", "e-404":
				s := httpS
				if f[0] == 'e' {
					s = sseS
				}
				code, _ := strconv.Atoi(f[2:])
				s.status.Store(int32(code))
				d := time.Duration(200+rng.IntN(1500)) * time.Millisecond
				time.Sleep(d)
				s.status.Store(0)
				what += " for " + d.String()
			case "h-down", "e-down":
				s := httpS
				if f[0] == 'e' {
					s = sseS
				}
				s.down.Store(503)
				s.cut(true, 5)
				d := time.Duration(300+rng.IntN(2500)) * time.Millisecond
				time.Sleep(d)
				s.down.Store(0)
				what += " for " + d.String()
			case "stop-s":
				pid := stopStdio(marker, "s")
				d := time.Duration(500+rng.IntN(4500)) * time.Millisecond
				time.Sleep(d)
				if pid != 0 {
					syscall.Kill(pid, syscall.SIGCONT)
				}
				what += fmt.Sprintf(" pid %d for %v", pid, d)
			case "h-cut-posts":
				what += fmt.Sprintf(" %d", httpS.cut(false, 1+rng.IntN(3)))
			case "h-cut-get":
				what += fmt.Sprintf(" %d", httpS.cut(true, 5))
			case "h-cut-mode":
				httpS.cutPosts.Store(true)
				time.Sleep(time.Duration(100+rng.IntN(400)) * time.Millisecond)
				httpS.cutPosts.Store(false)
			case "e-drop":
				what += fmt.Sprintf(" %d", sseS.cut(true, 5))
			case "host-slow":
				r.slow.Store(int32(2 + rng.IntN(10)))
				time.Sleep(time.Duration(500+rng.IntN(1500)) * time.Millisecond)
				r.slow.Store(0)
			case "host-stall":
				r.stall.Store(time.Now().Add(time.Duration(300+rng.IntN(1500)) * time.Millisecond).UnixNano())
			}
			faultLog = append(faultLog, time.Now().Format("15:04:05.000")+" "+what)
		}
	}()
	wg.Wait()
	<-faultDone
	r.slow.Store(0)
	r.stall.Store(0)
	r.noteFDs("chaos-end")
	t.Logf("%s: %d requests sent (%d cancelled) in %v; %d faults: %s", cfg, sentN.Load(), cancelledN.Load(), chaosFor, len(faultLog), summarizeFaults(faultLog))

	// Every request's answer within the bound.
	bound := maxTimeout + 8*time.Second
	waitUntil := time.Now().Add(bound)
	for time.Now().Before(waitUntil) {
		r.mu.Lock()
		missing := 0
		for _, q := range r.all {
			if !q.cancelled && q.answers == 0 {
				missing++
			}
		}
		r.mu.Unlock()
		if missing == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Recovery: every backend answers a fresh call.
	for _, b := range r.names {
		ok := false
		var last []byte
		deadline := time.Now().Add(30 * time.Second)
		for !ok && time.Now().Before(deadline) {
			q := r.request("echo", b, rand.New(rand.NewPCG(seed, 2)))
			select {
			case <-q.done:
				r.mu.Lock()
				ok = strings.Contains(string(q.answer), q.want)
				last = q.answer
				r.mu.Unlock()
			case <-time.After(maxTimeout + 5*time.Second):
				last = []byte("(no answer)")
			}
			if !ok {
				time.Sleep(500 * time.Millisecond)
			}
		}
		if !ok {
			r.violate("recovery: backend %s does not answer a fresh echo 30 s after the chaos; last: %.300s", b, last)
		}
	}
	r.noteFDs("recovered")
	time.Sleep(300 * time.Millisecond)
	r.upWG.Wait()

	// stdin EOF: exit within 5 s, nothing left behind.
	eof := time.Now()
	r.stdin.Close()
	select {
	case <-exited:
		if d := time.Since(eof); d > 5*time.Second {
			r.violate("the bridge took %v to exit after stdin EOF", d)
		}
		if waitErr != nil {
			r.violate("exit status after stdin EOF: %v", waitErr)
		}
	case <-time.After(5 * time.Second):
		r.violate("the bridge is still running 5 s after stdin EOF")
	}
	time.Sleep(300 * time.Millisecond)
	if left := processesWith(marker); len(left) > 0 {
		r.violate("processes left after the bridge exited: %v", left)
	}

	if strings.Contains(r.stderr.String(), "DATA RACE") {
		r.violate("the race detector reported a data race in the bridge (see stderr)")
	}
	r.check(bound)
	r.mu.Lock()
	defer r.mu.Unlock()
	t.Logf("%s: %d stdout lines (%d batches); %d upcalls (%d cancelled by the bridge); %d progress (%d after a cancellation); %d log notifications; %d null-id errors for %d answerable garbage lines; FDs %v",
		cfg, r.lines, r.batchLines, r.upcalls, r.upCancelled, r.progress, r.lateProg, r.logs, r.nullErrors, r.garbageSent, r.fds)
	for _, v := range r.violations {
		t.Errorf("VIOLATION: %s", v)
	}
	if len(r.violations) > 0 {
		t.Logf("faults:\n%s", strings.Join(faultLog, "\n"))
	}
}

// check runs the end-of-run checks over every request.
func (r *chaosRun) check(bound time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	usedUp := map[string]string{}
	kindsOK := map[string]int{}
	kindsErr := map[string]int{}
	errReasons := map[string]int{}
	for _, q := range r.all {
		switch {
		case !q.cancelled && q.answers == 0:
			r.violateLocked("request %s (%s on %s) sent %s never answered", q.id, q.kind, q.backend, q.sent.Format("15:04:05.000"))
			continue
		case q.answers == 0:
			continue
		}
		if d := q.answerAt.Sub(q.sent); !q.cancelled && d > bound {
			r.violateLocked("request %s (%s on %s) answered after %v (bound %v)", q.id, q.kind, q.backend, d, bound)
		}
		f, err := frame.Parse(bytes.Clone(q.answer))
		if err != nil {
			continue
		}
		if f.IsError() {
			kindsErr[q.kind]++
			var e frame.ErrorObject
			_ = json.Unmarshal(f.Error(), &e)
			reason := regexp.MustCompile(`[0-9]+`).ReplaceAllString(e.Message, "N")
			if len(reason) > 90 {
				reason = reason[:90]
			}
			errReasons[fmt.Sprintf("%d %s", e.Code, reason)]++
			switch {
			case q.kind == "badparams":
			case e.Code == frame.CodeInternalError && q.backend != "" && strings.Contains(string(f.Error()), `"`+q.backend+`"`):
			case e.Code == -32001:
			case q.kind == "tools/list" && e.Code == frame.CodeInternalError:
			case q.kind == "resources/read" && r.merged && (e.Code == frame.CodeNotFound || e.Code == frame.CodeInvalidParams) && strings.Contains(string(f.Error()), "test://"+q.backend+"/r"):
				// Its backend was down when the URIs were listed: the
				// others' "not found" is passed on (as TestSoakMixed accepts).
				errReasons["(merged read while its backend was down: not found)"]++
			default:
				r.violateLocked("request %s (%s on %s, sent %s): unexpected error %.300s", q.id, q.kind, q.backend, q.sent.Format("15:04:05.000"), f.Raw())
			}
			continue
		}
		res := string(f.Result())
		if q.kind == "badparams" {
			kindsOK[q.kind]++
			continue
		}
		if strings.Contains(res, `"isError":true`) {
			kindsErr[q.kind+"(isError)"]++
			if q.kind != "sample" {
				r.violateLocked("request %s (%s on %s): tool error %.300s", q.id, q.kind, q.backend, f.Raw())
			}
			continue
		}
		if q.want != "" && !strings.Contains(res, q.want) && q.kind != "initialize" && q.kind != "setLevel" {
			r.violateLocked("request %s (%s on %s) answered with another's data (want %s): %.300s", q.id, q.kind, q.backend, q.want, f.Raw())
			continue
		}
		kindsOK[q.kind]++
		if q.kind == "sample" {
			m := chaosSampledRe.FindStringSubmatch(res)
			if m == nil {
				continue
			}
			upID := strings.ReplaceAll(m[2], `\`, ``)
			u := r.ups[upID]
			if u == nil {
				u = r.ups[`"`+upID+`"`]
			}
			switch {
			case u == nil:
				r.violateLocked("%s carries the answer to upcall %s, never sent", q.id, upID)
			case u.backend != q.backend:
				r.violateLocked("%s (sample on %s) carries the answer to %s's upcall %s", q.id, q.backend, u.backend, upID)
			case usedUp[upID] != "":
				r.violateLocked("upcall %s's answer reached two calls: %s and %s", upID, usedUp[upID], q.id)
			default:
				usedUp[upID] = q.id
			}
		}
	}
	var ks []string
	for k := range kindsOK {
		ks = append(ks, k)
	}
	for k := range kindsErr {
		if kindsOK[k] == 0 {
			ks = append(ks, k)
		}
	}
	sort.Strings(ks)
	var b strings.Builder
	for _, k := range ks {
		fmt.Fprintf(&b, "%s ok %d err %d; ", k, kindsOK[k], kindsErr[k])
	}
	r.t.Logf("outcomes: %s", b.String())
	r.t.Logf("error reasons: %v", errReasons)
	if r.nullErrors > r.garbageSent {
		r.violateLocked("%d null-id errors for %d answerable garbage lines", r.nullErrors, r.garbageSent)
	}
}

func summarizeFaults(log []string) string {
	n := map[string]int{}
	for _, l := range log {
		f := strings.Fields(l)
		if len(f) > 1 {
			n[f[1]]++
		}
	}
	var ks []string
	for k := range n {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var b strings.Builder
	for _, k := range ks {
		fmt.Fprintf(&b, "%s×%d ", k, n[k])
	}
	return b.String()
}

// TestLogLevelRestoredBeforeCallsAfterAReconnect (from the 31st review): a host that set the log level
// gets the logs of its calls. After a legacy SSE backend's stream drops,
// the bridge re-initializes it and marks it ready (link.go:363,
// sendInitialized) before restoreState sends the host's logging/setLevel
// (link.go:523): calls routed in between run in a session with no log
// level, and the server drops their logs. Here the restored setLevel's
// POST is slow (300 ms, a slow network); the calls sent meanwhile succeed
// and their log notifications never come.
func TestLogLevelRestoredBeforeCallsAfterAReconnect(t *testing.T) {
	srv := testserver.New("e")
	var setLevels, inits atomic.Int64
	inner := mcp.NewSSEHandler(func(*http.Request) *mcp.Server { return srv }, nil)
	var mu sync.Mutex
	var streams []net.Conn
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			body, _ := io.ReadAll(r.Body)
			if bytes.Contains(body, []byte(`"method":"initialize"`)) {
				inits.Add(1)
			}
			if bytes.Contains(body, []byte(`"logging/setLevel"`)) && setLevels.Add(1) > 1 {
				time.Sleep(300 * time.Millisecond) // the restored level travels slowly
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		} else if c, ok := r.Context().Value(chaosKey{}).(net.Conn); ok {
			mu.Lock()
			streams = append(streams, c)
			mu.Unlock()
		}
		inner.ServeHTTP(w, r)
	}))
	ts.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context { return context.WithValue(ctx, chaosKey{}, c) }
	ts.Start()
	t.Cleanup(func() { ts.CloseClientConnections(); ts.Close() }) // after the bridge's own cleanup
	p := startBridge(t, nil, "--sse", "e="+ts.URL+"/sse")
	handshake(t, p)
	p.Send(`{"jsonrpc":"2.0","id":"lvl","method":"logging/setLevel","params":{"level":"debug"}}`)
	if f := p.Response(`"lvl"`); f.IsError() {
		t.Fatalf("setLevel: %s", f.Raw())
	}
	isLog := func(f *frame.Frame) bool { return f.Kind == frame.Notification && f.Method == "notifications/message" }
	logCall := func(id string) (ok bool, gotLog bool) {
		before := p.Count(isLog)
		p.Send(`{"jsonrpc":"2.0","id":"` + id + `","method":"tools/call","params":{"name":"log","arguments":{}}}`)
		f := p.Response(`"` + id + `"`)
		if f.IsError() || !strings.Contains(string(f.Result()), `"logged"`) {
			return false, false
		}
		return true, p.Count(isLog) > before
	}
	if ok, got := logCall("before"); !ok || !got {
		t.Fatalf("before the drop: call ok %v, log notification %v", ok, got)
	}

	// The SSE stream drops. A call the session took before the bridge
	// re-initialized it waits inside it and goes out as soon as the new
	// session is initialized, beside the replayed setLevel (README, "Known
	// limitations"); so the calls start once the replayed setLevel has
	// reached the server (it answers 300 ms later): each must be held
	// until the level is back (link.restoreState, forward).
	mu.Lock()
	for _, c := range streams {
		c.Close()
	}
	mu.Unlock()
	for wait := time.Now().Add(8 * time.Second); setLevels.Load() < 2 && time.Now().Before(wait); {
		time.Sleep(5 * time.Millisecond)
	}
	if inits.Load() < 2 || setLevels.Load() < 2 {
		t.Fatalf("8 s after the drop the server has seen %d initialize and %d setLevel POSTs, want 2 each", inits.Load(), setLevels.Load())
	}
	okCalls, missing := 0, 0
	var missed []string
	deadline := time.Now().Add(8 * time.Second)
	for i := 0; okCalls < 15 && time.Now().Before(deadline); i++ {
		id := fmt.Sprintf("after-%d", i)
		ok, got := logCall(id)
		if !ok {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		okCalls++
		if !got {
			missing++
			missed = append(missed, id)
		}
	}
	if okCalls == 0 {
		t.Fatal("the backend did not come back")
	}
	// Once the restored level arrived, logs flow again: the host's level
	// was missing, not the relay.
	time.Sleep(time.Second)
	if ok, got := logCall("later"); !ok || !got {
		t.Errorf("a second after the restart: call ok %v, log notification %v", ok, got)
	}
	if missing > 0 {
		t.Errorf("after the SSE backend came back, %d of the first %d successful log calls got no log notification although the host set the level to debug (calls %v ran before the restored logging/setLevel)", missing, okCalls, missed)
	}
}
