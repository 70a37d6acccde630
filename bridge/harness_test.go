package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/backends"
	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/rs/zerolog"
)

// The in-process harness: real go-sdk servers on pipes, the bridge's own
// Run, and a line-level host that sees the wire as raw JSON (go-sdk's typed
// client drops unknown fields and would hide exactly the losses we test for).

const testTimeout = 15 * time.Second

// wire is a raw line-level MCP host: it writes lines and collects every
// line it reads.
type wire struct {
	t     *testing.T
	w     io.WriteCloser
	mu    sync.Mutex
	lines [][]byte
	cond  chan struct{} // closed and replaced whenever a line arrives
	eof   chan struct{}
}

func newWire(t *testing.T, w io.WriteCloser, r io.Reader) *wire {
	h := &wire{t: t, w: w, cond: make(chan struct{}), eof: make(chan struct{})}
	go func() {
		defer close(h.eof)
		lr := frame.NewLineReader(r, 0)
		for {
			line, err := lr.Next()
			if err != nil {
				return
			}
			if !json.Valid(line) {
				t.Errorf("host read a line that is not JSON: %q", line)
			}
			h.mu.Lock()
			h.lines = append(h.lines, line)
			close(h.cond)
			h.cond = make(chan struct{})
			h.mu.Unlock()
		}
	}()
	return h
}

func (h *wire) send(line string) {
	h.t.Helper()
	if _, err := io.WriteString(h.w, line+"\n"); err != nil {
		h.t.Fatalf("writing to bridge: %v", err)
	}
}

// waitFor returns the first line (in arrival order, from index from on)
// that satisfies pred, and its index.
func (h *wire) waitFor(what string, pred func(*frame.Frame) bool) *frame.Frame {
	h.t.Helper()
	deadline := time.After(testTimeout)
	seen := 0
	for {
		h.mu.Lock()
		lines, cond := h.lines, h.cond
		h.mu.Unlock()
		for ; seen < len(lines); seen++ {
			f, err := frame.Parse(bytes.Clone(lines[seen]))
			if err == nil && pred(f) {
				return f
			}
		}
		select {
		case <-cond:
		case <-deadline:
			h.t.Fatalf("timed out waiting for %s; got:\n%s", what, h.dump())
			return nil
		}
	}
}

// response waits for the response whose raw id is id.
func (h *wire) response(id string) *frame.Frame {
	h.t.Helper()
	return h.waitFor("response "+id, func(f *frame.Frame) bool {
		return f.Kind == frame.Response && string(f.ID()) == id
	})
}

func (h *wire) count(pred func(*frame.Frame) bool) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, l := range h.lines {
		if f, err := frame.Parse(bytes.Clone(l)); err == nil && pred(f) {
			n++
		}
	}
	return n
}

func (h *wire) dump() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	for _, l := range h.lines {
		fmt.Fprintf(&b, "  %s\n", truncateForLog(l))
	}
	return b.String()
}

func truncateForLog(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// testLogger writes the bridge's log into the test log.
func testLogger(t *testing.T) zerolog.Logger {
	if os.Getenv("BRIDGE_TEST_LOG") == "" {
		return zerolog.Nop()
	}
	return zerolog.New(zerolog.TestWriter{T: t}).Level(zerolog.DebugLevel)
}

// serve connects srv to a fresh pair of pipes and returns the client end
// as a backend session (what a stdio backend looks like to the router).
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
	h.send(initLine)
	f := h.response("0")
	h.send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	return f
}

// testServer is a go-sdk server with the tools the scenarios use.
func testServer(name string) *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: name, Version: "1"}, &mcp.ServerOptions{
		Instructions: "instructions of " + name,
		HasPrompts:   true,
		HasResources: true,
	})
	type textIn struct {
		Text string `json:"text"`
	}
	mcp.AddTool(srv, &mcp.Tool{Name: "echo", Description: "echo"}, func(ctx context.Context, req *mcp.CallToolRequest, in textIn) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.Text}}}, nil, nil
	})
	mcp.AddTool(srv, &mcp.Tool{Name: "whoami", Description: "names the server"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: name}}}, nil, nil
	})
	type progIn struct {
		Steps int `json:"steps"`
	}
	mcp.AddTool(srv, &mcp.Tool{Name: "progress", Description: "reports progress"}, func(ctx context.Context, req *mcp.CallToolRequest, in progIn) (*mcp.CallToolResult, any, error) {
		tok := req.Params.GetProgressToken()
		for i := 1; i <= in.Steps; i++ {
			if tok != nil {
				if err := req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: tok, Progress: float64(i), Total: float64(in.Steps), Message: name}); err != nil {
					return nil, nil, err
				}
			}
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "done " + name}}}, nil, nil
	})
	mcp.AddTool(srv, &mcp.Tool{Name: "sample", Description: "asks the host to sample"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
		res, err := req.Session.CreateMessage(ctx, &mcp.CreateMessageParams{MaxTokens: 10, Messages: []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: "from " + name}}}})
		if err != nil {
			return nil, nil, err
		}
		return &mcp.CallToolResult{Content: []mcp.Content{res.Content}}, nil, nil
	})
	mcp.AddTool(srv, &mcp.Tool{Name: "roots", Description: "lists the host's roots"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
		res, err := req.Session.ListRoots(ctx, nil)
		if err != nil {
			return nil, nil, err
		}
		b, _ := json.Marshal(res.Roots)
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(b)}}}, nil, nil
	})
	mcp.AddTool(srv, &mcp.Tool{Name: "log", Description: "logs at info"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
		_ = req.Session.Log(ctx, &mcp.LoggingMessageParams{Level: "info", Logger: "core", Data: "hello from " + name})
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "logged"}}}, nil, nil
	})
	srv.AddPrompt(&mcp.Prompt{Name: "greet"}, func(ctx context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		return &mcp.GetPromptResult{Messages: []*mcp.PromptMessage{{Role: "user", Content: &mcp.TextContent{Text: "hello from " + name}}}}, nil
	})
	srv.AddResource(&mcp.Resource{URI: "test://" + name + "/r", Name: "r"}, func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, Text: "content of " + name}}}, nil
	})
	srv.AddResource(&mcp.Resource{URI: "test://shared", Name: "shared"}, func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, Text: "shared from " + name}}}, nil
	})
	return srv
}
