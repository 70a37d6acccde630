package bridge

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/mcpbridge/mcpbridge/backends"
	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/rs/zerolog"
)

// BenchmarkCallDirect and BenchmarkCallBridged are the same go-sdk client
// calling the same go-sdk echo tool, straight over pipes and through the
// bridge's Run in process (issue #6). The difference is the bridge's cost
// per call, without process or network noise:
//
//	go test ./bridge -run XXX -bench Call -benchmem

var benchSizes = []struct {
	name string
	n    int
}{{"13B", 13}, {"100KiB", 100 << 10}, {"1MiB", 1 << 20}}

func BenchmarkCallDirect(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			cr, cw := io.Pipe()
			sr, sw := io.Pipe()
			srv := testServer("bench")
			ss, err := srv.Connect(context.Background(), &mcp.IOTransport{Reader: cr, Writer: sw, MaxLineLength: -1}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer ss.Close()
			benchCalls(b, sr, cw, sz.n)
		})
	}
}

func BenchmarkCallBridged(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			srv := testServer("bench")
			inR, inW := io.Pipe()
			outR, outW := io.Pipe()
			cfg := Config{
				Backends: []config.Backend{{Name: "bench", Kind: config.KindStdio, Command: "in-process"}},
				Logger:   zerolog.Nop(),
				Open: func(ctx context.Context, bc config.Backend, _ backends.Options) (backends.Session, error) {
					cr, cw := io.Pipe()
					sr, sw := io.Pipe()
					if _, err := srv.Connect(context.Background(), &mcp.IOTransport{Reader: cr, Writer: sw, MaxLineLength: -1}, nil); err != nil {
						return nil, err
					}
					return backends.NewStream(bc.Name, sr, cw, backends.Options{Logger: zerolog.Nop()}), nil
				},
			}
			done := make(chan error, 1)
			go func() { done <- Run(context.Background(), cfg, inR, outW) }()
			benchCalls(b, outR, inW, sz.n)
			inW.Close()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		})
	}
}

// benchCalls connects a go-sdk client (protocol pinned to 2025-11-25) on
// r/w and times b.N echo calls of n bytes.
func benchCalls(b *testing.B, r io.ReadCloser, w io.WriteCloser, n int) {
	ctx := context.Background()
	client := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.IOTransport{Reader: r, Writer: w, MaxLineLength: -1}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		b.Fatal(err)
	}
	defer cs.Close()
	text := strings.Repeat("x", n)
	params := &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": text}}
	b.SetBytes(int64(2 * n))
	b.ReportAllocs()
	for b.Loop() {
		res, err := cs.CallTool(ctx, params)
		if err != nil || res.IsError {
			b.Fatalf("call: %v %v", err, res)
		}
	}
}

// fourBackends runs the bridge in front of four in-process go-sdk servers
// with perBackend tools each, and returns a raw line host on it.
func fourBackends(b *testing.B, perBackend int) (send func(string), next func() []byte, stop func()) {
	names := []string{"alpha", "beta", "gamma", "delta"}
	servers := map[string]*mcp.Server{}
	var bcs []config.Backend
	for _, n := range names {
		srv := testServer(n)
		for i := range perBackend {
			mcp.AddTool(srv, &mcp.Tool{Name: fmt.Sprintf("tool_%03d", i), Description: "a tool among many"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, nil, nil
			})
		}
		servers[n] = srv
		bcs = append(bcs, config.Backend{Name: n, Kind: config.KindStdio, Command: "in-process"})
	}
	cfg := Config{
		Backends: bcs,
		Logger:   zerolog.Nop(),
		Open: func(ctx context.Context, bc config.Backend, _ backends.Options) (backends.Session, error) {
			cr, cw := io.Pipe()
			sr, sw := io.Pipe()
			if _, err := servers[bc.Name].Connect(context.Background(), &mcp.IOTransport{Reader: cr, Writer: sw, MaxLineLength: -1}, nil); err != nil {
				return nil, err
			}
			return backends.NewStream(bc.Name, sr, cw, backends.Options{Logger: zerolog.Nop()}), nil
		},
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- Run(context.Background(), cfg, inR, outW) }()
	lr := frame.NewLineReader(outR, 0)
	send = func(s string) { io.WriteString(inW, s+"\n") }
	next = func() []byte {
		l, err := lr.Next()
		if err != nil {
			b.Fatal(err)
		}
		return l
	}
	send(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"b","version":"1"}}}`)
	next()
	send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	return send, next, func() { inW.Close(); <-done }
}

// BenchmarkMergedToolsList is tools/list with 4 backends and 2,000 tools in
// all, after the first (which fills the caches): issue #6 asks for ≤ 2 ms
// and no backend request.
func BenchmarkMergedToolsList(b *testing.B) {
	send, next, stop := fourBackends(b, 500)
	defer stop()
	send(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	first := next()
	if !strings.Contains(string(first), "delta_tool_499") {
		b.Fatalf("merged list lacks delta_tool_499")
	}
	b.SetBytes(int64(len(first)))
	for b.Loop() {
		send(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
		next()
	}
}

// BenchmarkCallAmong2000Tools is one small call routed by name among 4
// backends and 2,000 tools; compare with BenchmarkCallBridged/13B (routing
// is a map lookup, so the two should match within noise).
func BenchmarkCallAmong2000Tools(b *testing.B) {
	send, next, stop := fourBackends(b, 500)
	defer stop()
	send(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	next()
	for b.Loop() {
		send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"gamma_echo","arguments":{"text":"13 bytes here"}}}`)
		next()
	}
}
