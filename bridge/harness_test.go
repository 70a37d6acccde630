package bridge

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/backends"
	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
	"github.com/mcpbridge/mcpbridge/internal/testserver"
	"github.com/mcpbridge/mcpbridge/internal/wiretest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/rs/zerolog"
)

// The in-process harness: real go-sdk servers on pipes, the bridge's own
// Run, and a line-level host that sees the wire as raw JSON (go-sdk's typed
// client drops unknown fields and would hide exactly the losses we test for).

const testTimeout = wiretest.Timeout

type wire = wiretest.Wire

func newWire(t *testing.T, w io.WriteCloser, r io.Reader) *wire { return wiretest.New(t, w, r) }

// testLogger writes the bridge's log into the test log.
func testLogger(t *testing.T) zerolog.Logger {
	if os.Getenv("BRIDGE_TEST_LOG") == "" {
		return zerolog.Nop()
	}
	return zerolog.New(zerolog.TestWriter{T: t}).Level(zerolog.DebugLevel)
}

// serve connects srv to a fresh pair of pipes and returns the client end
// as a backend session (what a stdio backend looks like to the router).
func testServer(name string) *mcp.Server { return testserver.New(name) }

func serve(t *testing.T, name string, srv *mcp.Server) backends.Session {
	s, _ := serveCounted(t, name, srv)
	return s
}

func serveCounted(t *testing.T, name string, srv *mcp.Server) (backends.Session, *mcp.ServerSession) {
	toSrvR, toSrvW := io.Pipe()
	fromSrvR, fromSrvW := io.Pipe()
	ss, err := srv.Connect(context.Background(), &mcp.IOTransport{Reader: toSrvR, Writer: fromSrvW, MaxLineLength: -1}, nil)
	if err != nil {
		t.Fatalf("serve %s: %v", name, err)
	}
	t.Cleanup(func() { ss.Close() })
	return backends.NewStream(name, fromSrvR, toSrvW, backends.Options{Logger: testLogger(t)}), ss
}

// directWire connects a line-level host straight to srv: the reference
// run every bridged scenario is compared against.
func directWire(t *testing.T, srv *mcp.Server) *wire {
	toSrvR, toSrvW := io.Pipe()
	fromSrvR, fromSrvW := io.Pipe()
	ss, err := srv.Connect(context.Background(), &mcp.IOTransport{Reader: toSrvR, Writer: fromSrvW, MaxLineLength: -1}, nil)
	if err != nil {
		t.Fatalf("serve: %v", err)
	}
	t.Cleanup(func() { toSrvW.Close(); ss.Close() })
	return newWire(t, toSrvW, fromSrvR)
}

// bridged runs the bridge in process in front of the given servers (in
// declared order) and returns the host's wire and a wait for Run's end.
type bridgedRun struct {
	*wire
	done chan error
}

func bridgedWire(t *testing.T, cfg Config, servers ...namedServer) *bridgedRun {
	byName := map[string]*mcp.Server{}
	for _, s := range servers {
		cfg.Backends = append(cfg.Backends, config.Backend{Name: s.name, Kind: config.KindStdio, Command: "in-process"})
		byName[s.name] = s.srv
	}
	if cfg.Open == nil {
		cfg.Open = func(ctx context.Context, b config.Backend, _ backends.Options) (backends.Session, error) {
			srv := byName[b.Name]
			if srv == nil {
				return nil, fmt.Errorf("backend %q: no such test server", b.Name)
			}
			return serve(t, b.Name, srv), nil
		}
	}
	cfg.Logger = testLogger(t)
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	run := &bridgedRun{done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		err := Run(ctx, cfg, inR, outW)
		outW.Close()
		run.done <- err
	}()
	run.wire = newWire(t, inW, outR)
	t.Cleanup(func() {
		inW.Close()
		select {
		case <-run.done:
		case <-time.After(testTimeout):
			t.Errorf("bridge did not stop after stdin EOF")
		}
		cancel()
	})
	return run
}

type namedServer struct {
	name string
	srv  *mcp.Server
}

const initLine = `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"sampling":{},"roots":{"listChanged":true},"elicitation":{"form":{}},"x-vendor":{"k":1}},"clientInfo":{"name":"wire-host","version":"1"}}}`

// handshake initializes h and returns the initialize result frame.
func handshake(h *wire) *frame.Frame {
	h.Send(initLine)
	f := h.Response("0")
	h.Send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	return f
}

// oneRestarting is the Config of two in-process backends, a and b: the
// steady one always serves its server; the other ("restarting") serves
// first on its first start and hands that session over on the returned
// channel (close it to end the backend); each later start, n = 2, 3, ...,
// is left to later.
func oneRestarting(t *testing.T, steady, restarting string, steadySrv, first *mcp.Server, later func(ctx context.Context, n int64) (backends.Session, error)) (Config, <-chan *mcp.ServerSession) {
	var opens atomic.Int64
	sess := make(chan *mcp.ServerSession, 1)
	cfg := Config{
		Backends: []config.Backend{
			{Name: "a", Kind: config.KindStdio, Command: "in-process"},
			{Name: "b", Kind: config.KindStdio, Command: "in-process"},
		},
		Open: func(ctx context.Context, be config.Backend, _ backends.Options) (backends.Session, error) {
			if be.Name == steady {
				return serve(t, steady, steadySrv), nil
			}
			n := opens.Add(1)
			if n == 1 {
				s, ss := serveCounted(t, restarting, first)
				sess <- ss
				return s, nil
			}
			return later(ctx, n)
		},
	}
	return cfg, sess
}

// heldLists runs the bridge in front of two test servers, a and b, where
// b holds every tools/list until release is closed: a request that needs
// the merged list waits to be routed meanwhile.
func heldLists(t *testing.T) (*bridgedRun, chan struct{}) {
	release := make(chan struct{})
	slow := testServer("b")
	slow.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if method == "tools/list" {
				select {
				case <-release:
				case <-ctx.Done():
				}
			}
			return next(ctx, method, req)
		}
	})
	return bridgedWire(t, Config{}, namedServer{"a", testServer("a")}, namedServer{"b", slow}), release
}
