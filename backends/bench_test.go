package backends

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
	"github.com/rs/zerolog"
)

// Step benchmarks of the HTTP half of the hot path (issue #6):
//
//	go test ./backends -run XXX -bench . -benchmem
//
// BenchmarkSSEAnswer is the way back from a streamable-HTTP backend: one
// answer stream (the SSE event go-sdk servers send) read and handed over
// as a frame. BenchmarkStreamableCall is one request through a session
// (POST written from the frame, answer read back) against a loopback
// server that only swaps the id into a canned answer, so the figure is
// the session's and net/http's cost, not an MCP server's.

var benchPayloads = []struct {
	name string
	n    int
}{{"13B", 13}, {"100KiB", 100 << 10}, {"1MiB", 1 << 20}}

// echoResult is a tools/call result carrying an n-byte text.
func echoResult(n int) string {
	return `{"content":[{"type":"text","text":"` + strings.Repeat("x", n) + `"}]}`
}

func BenchmarkSSEAnswer(b *testing.B) {
	for _, p := range benchPayloads {
		b.Run(p.name, func(b *testing.B) {
			stream := []byte("event: message\nid: 1_0\ndata: " + `{"jsonrpc":"2.0","id":7,"result":` + echoResult(p.n) + "}\n\n")
			b.SetBytes(int64(len(stream)))
			b.ReportAllocs()
			var r bytes.Reader
			for b.Loop() {
				r.Reset(stream)
				rd := getSSEReader(&r, 0)
				ev, err := rd.Next()
				if err != nil {
					b.Fatal(err)
				}
				if _, err := frame.Parse(ev.Data); err != nil {
					b.Fatal(err)
				}
				putSSEReader(rd)
			}
		})
	}
}

func BenchmarkStreamableCall(b *testing.B) {
	for _, p := range benchPayloads {
		b.Run(p.name, func(b *testing.B) {
			result := echoResult(p.n)
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				f, err := frame.Parse(body)
				if err != nil || f.Kind != frame.Request {
					w.WriteHeader(http.StatusAccepted)
					return
				}
				w.Header().Set("Content-Type", mediaSSE)
				fmt.Fprintf(w, "data: {\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":%s}\n\n", f.ID(), result)
			}))
			defer ts.Close()
			s, err := Open(context.Background(), config.Backend{Name: "bench", Kind: config.KindHTTP, URL: ts.URL}, Options{Logger: zerolog.Nop()})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			args := `{"name":"echo","arguments":{"text":"` + strings.Repeat("y", p.n) + `"}}`
			b.SetBytes(int64(2 * p.n))
			b.ReportAllocs()
			id := 0
			for b.Loop() {
				id++
				f, err := frame.Parse(fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":%s}`, id, args))
				if err != nil {
					b.Fatal(err)
				}
				if err := s.Send(f); err != nil {
					b.Fatal(err)
				}
				ans, err := s.Recv(context.Background())
				if err != nil {
					b.Fatal(err)
				}
				if ans.IsError() {
					b.Fatalf("answer: %.200s", ans.Raw())
				}
			}
		})
	}
}
