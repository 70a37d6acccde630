//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/bridge"
	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
	"github.com/mcpbridge/mcpbridge/internal/testserver"
	"github.com/mcpbridge/mcpbridge/internal/wiretest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/rs/zerolog"
)

// TestSoak runs many calls from concurrent callers through bridge.Run, in
// process, in front of four backends of mixed kinds (two stdio processes,
// streamable HTTP, SSE) while faults are injected at random: stdio backends
// crash, HTTP sessions expire (404), SSE streams drop (issue #5). It checks
// that every request gets exactly one answer with its own id, that every
// success carries the right backend's data, that goroutines and heap return
// to their baseline, and that no backend process remains.
//
// SOAK_CALLS overrides the number of calls (default 10,000: about 5 s, or
// 25 s under the race detector).
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak test skipped in -short mode")
	}
	calls := 10000
	if n, err := strconv.Atoi(os.Getenv("SOAK_CALLS")); err == nil {
		calls = n
	}
	marker := fmt.Sprintf("MCPBRIDGE_SOAK=%d", os.Getpid())
	self, _ := os.Executable()

	base := takeSoakBaseline()

	rig := newSoakRig(false)
	ets := rig.ets
	outR, done := rig.start(self, marker)

	// The host: one writer (serialised), one reader matching answers.
	send := rig.send
	var (
		amu     sync.Mutex
		answers = map[string][]*frame.Frame{}
		waiters = map[string]chan *frame.Frame{}
	)
	readDone := wiretest.Frames(t, outR, func(f *frame.Frame) {
		if f.Kind != frame.Response {
			return
		}
		id := string(f.ID())
		amu.Lock()
		answers[id] = append(answers[id], f)
		if w := waiters[id]; w != nil {
			delete(waiters, id)
			w <- f
		}
		amu.Unlock()
	})
	call := func(id, line string) *frame.Frame {
		ch := make(chan *frame.Frame, 1)
		amu.Lock()
		waiters[id] = ch
		amu.Unlock()
		send(line)
		select {
		case f := <-ch:
			return f
		case <-time.After(60 * time.Second):
			t.Errorf("no answer to %s", id)
			return nil
		}
	}

	if f := call("0", initLine); f == nil || f.IsError() {
		t.Fatalf("initialize: %v", f)
	}
	send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)

	names := []string{"s1", "s2", "h", "e"}
	var ok, failed atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	const callers = 16
	deadline := time.Now().Add(4 * time.Minute)
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 7))
			for time.Now().Before(deadline) {
				n := next.Add(1)
				if n > int64(calls) {
					return
				}
				id := strconv.FormatInt(n, 10)
				if n%2 == 0 {
					id = `"c-` + id + `"` // string ids too
				}
				name := names[rng.IntN(len(names))]
				tool := "whoami"
				switch {
				case rng.IntN(1500) == 0 && strings.HasPrefix(name, "s"):
					tool = "crash"
				case rng.IntN(1500) == 0 && name == "e":
					ets.CloseClientConnections() // the SSE stream drops
				}
				f := call(id, `{"jsonrpc":"2.0","id":`+id+`,"method":"tools/call","params":{"name":"`+name+`_`+tool+`","arguments":{}}}`)
				if f == nil {
					continue
				}
				if f.Result() != nil && tool == "whoami" && !strings.Contains(string(f.Result()), `"text":"`+name+`"`) {
					t.Errorf("%s_whoami answered with another backend's data: %s", name, f.Raw())
				}
				switch {
				case f.IsError():
					// A failure must be the bridge's -32603 that names
					// the backend the call was aimed at.
					var e frame.ErrorObject
					_ = json.Unmarshal(f.Error(), &e)
					if e.Code != frame.CodeInternalError || !strings.Contains(e.Message, `"`+name+`"`) {
						t.Errorf("%s: failure that does not name the backend: %s", name, f.Raw())
					}
					failed.Add(1)
				case tool == "whoami":
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	sent := int(next.Load())
	if sent > calls {
		sent = calls
	}
	t.Logf("%d calls: %d succeeded, %d failed (faults injected); HTTP requests %d", sent, ok.Load(), failed.Load(), rig.httpReqs.Load())
	if ok.Load() < int64(sent)/2 {
		t.Errorf("only %d of %d calls succeeded", ok.Load(), sent)
	}

	rig.stop(t, done, readDone, nil)

	amu.Lock()
	for id, fs := range answers {
		if len(fs) != 1 {
			t.Errorf("id %s got %d answers", id, len(fs))
		}
	}
	if len(answers) != sent+1 { // + initialize
		t.Errorf("%d requests got %d distinct answers", sent+1, len(answers))
	}
	amu.Unlock()

	// Baselines: goroutines and heap back, no process of the trees left.
	base.check(t, marker)
}

// processesWith lists the pids whose environment holds kv.
func processesWith(kv string) []int {
	var pids []int
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		env, err := os.ReadFile(filepath.Join(d, "environ"))
		if err != nil || !bytes.Contains(env, []byte(kv)) {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(d))
		if pid != os.Getpid() && alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// A soakRig is the bridge of a soak test, run in process in front of four
// backends of mixed kinds: two stdio processes of this test binary (s1,
// s2), streamable HTTP (h) and legacy SSE (e).
type soakRig struct {
	httpSrv, sseSrv *mcp.Server
	hts, ets        *httptest.Server
	// httpReqs counts h's POSTs that carry a session id: every 300th
	// finds its session gone (404), as after a server restart.
	httpReqs atomic.Int64
	inW      *io.PipeWriter
	wmu      sync.Mutex
}

// newSoakRig starts the HTTP servers. With closeLost, an expired session
// is really closed on the server too (its streams end); without, only the
// one request is answered 404 and the session lives on (a load balancer
// sending one request to the wrong instance).
func newSoakRig(closeLost bool) *soakRig {
	rig := &soakRig{httpSrv: testserver.New("h"), sseSrv: testserver.New("e")}
	inner := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return rig.httpSrv }, nil)
	rig.hts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if sid := r.Header.Get("Mcp-Session-Id"); r.Method == http.MethodPost && sid != "" && rig.httpReqs.Add(1)%300 == 0 {
			if closeLost {
				for ss := range rig.httpSrv.Sessions() {
					if ss.ID() == sid {
						ss.Close()
					}
				}
			}
			http.Error(w, "session not found", http.StatusNotFound)
			return
		}
		inner.ServeHTTP(w, r)
	}))
	rig.ets = httptest.NewServer(mcp.NewSSEHandler(func(*http.Request) *mcp.Server { return rig.sseSrv }, nil))
	return rig
}

// start runs bridge.Run in front of the four backends (the stdio ones
// are self, marked with marker) and returns what it writes to the host
// and where Run's error comes; the host writes with send.
func (rig *soakRig) start(self, marker string) (*io.PipeReader, <-chan error) {
	cfg := bridge.Config{
		Backends: []config.Backend{
			{Name: "s1", Kind: config.KindStdio, Command: self, Env: map[string]string{serverEnv: "s1", "MCPBRIDGE_SOAK": marker}},
			{Name: "s2", Kind: config.KindStdio, Command: self, Env: map[string]string{serverEnv: "s2", "MCPBRIDGE_SOAK": marker}},
			{Name: "h", Kind: config.KindHTTP, URL: rig.hts.URL + "/mcp"},
			{Name: "e", Kind: config.KindSSE, URL: rig.ets.URL + "/sse"},
		},
		Logger:      zerolog.Nop(),
		InitTimeout: 20 * time.Second,
		Timeout:     20 * time.Second,
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := bridge.Run(context.Background(), cfg, inR, outW)
		outW.Close()
		done <- err
	}()
	rig.inW = inW
	return outR, done
}

// send writes one line to the bridge; lines are never interleaved.
func (rig *soakRig) send(line string) {
	rig.wmu.Lock()
	defer rig.wmu.Unlock()
	io.WriteString(rig.inW, line+"\n")
}

// stop ends the host's input, waits for Run and the host's reader (then
// for before, if not nil), and closes the test's servers and the sessions
// they kept (the fault injection made them lose some): only the bridge's
// goroutines are counted after.
func (rig *soakRig) stop(t *testing.T, done <-chan error, readDone <-chan struct{}, before func()) {
	t.Helper()
	rig.inW.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not end after stdin EOF")
	}
	<-readDone
	if before != nil {
		before()
	}
	rig.hts.Close()
	rig.ets.Close()
	for _, srv := range []*mcp.Server{rig.httpSrv, rig.sseSrv} {
		for ss := range srv.Sessions() {
			ss.Close()
		}
	}
}

// A soakBaseline is what a soak test must come back to: goroutines,
// heap, and no process of the backends' trees.
type soakBaseline struct {
	goroutines int
	mem        runtime.MemStats
}

func takeSoakBaseline() soakBaseline {
	runtime.GC()
	b := soakBaseline{goroutines: runtime.NumGoroutine()}
	runtime.ReadMemStats(&b.mem)
	return b
}

// check waits (bounded) for the goroutines to come back and reports what
// did not.
func (b soakBaseline) check(t *testing.T, marker string) {
	t.Helper()
	var after runtime.MemStats
	var g int
	for range 50 {
		runtime.GC()
		g = runtime.NumGoroutine()
		if g <= b.goroutines+3 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	runtime.ReadMemStats(&after)
	if g > b.goroutines+3 {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines: %d before, %d after\n%s", b.goroutines, g, buf[:runtime.Stack(buf, true)])
	}
	if after.HeapInuse > b.mem.HeapInuse+16<<20 {
		t.Errorf("heap in use: %d MiB before, %d MiB after", b.mem.HeapInuse>>20, after.HeapInuse>>20)
	}
	t.Logf("goroutines %d → %d; heap in use %d → %d KiB", b.goroutines, g, b.mem.HeapInuse>>10, after.HeapInuse>>10)
	if left := processesWith(marker); len(left) > 0 {
		t.Errorf("backend processes left: %v", left)
	}
}
