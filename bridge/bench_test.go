package bridge

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/mcpbridge/mcpbridge/backends"
	"github.com/mcpbridge/mcpbridge/config"
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
