package frame

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
)

// Hot-path steps at the payload sizes issue #6 names. Run with
//
//	go test ./frame -run XXX -bench . -benchmem

var payloads = []struct {
	name string
	size int
}{{"13B", 13}, {"100KiB", 100 << 10}, {"1MiB", 1 << 20}}

func callLine(n int) []byte {
	return []byte(`{"jsonrpc":"2.0","id":"front-1","method":"tools/call","params":{"name":"echo","arguments":{"text":"` + strings.Repeat("x", n) + `"},"_meta":{"progressToken":7}}}`)
}

func resultLine(n int) []byte {
	return []byte(`{"jsonrpc":"2.0","id":42,"result":{"content":[{"type":"text","text":"` + strings.Repeat("x", n) + `"}]}}`)
}

func BenchmarkReadLine(b *testing.B) {
	for _, p := range payloads {
		b.Run(p.name, func(b *testing.B) {
			line := append(callLine(p.size), '\n')
			b.SetBytes(int64(len(line)))
			lr := NewLineReader(&repeater{line: line}, 0)
			for b.Loop() {
				if _, err := lr.Next(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParse(b *testing.B) {
	for _, p := range payloads {
		b.Run(p.name, func(b *testing.B) {
			line := callLine(p.size)
			b.SetBytes(int64(len(line)))
			for b.Loop() {
				if _, err := Parse(line); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// textLine is callLine with realistic text instead of one repeated byte:
// UTF-8 beyond ASCII and escapes (quotes, tabs, newlines) every few dozen
// bytes, so the string scanner's slow path is exercised too.
func textLine(n int) []byte {
	const unit = `The quick brown fox jumps over the lazy dog: caf\u00e9, naïve, 日本語, \"quoted\"\tand a tab.\n`
	text := strings.Repeat(unit, max(1, n/len(unit))) // whole units: no escape cut
	return []byte(`{"jsonrpc":"2.0","id":"front-1","method":"tools/call","params":{"name":"echo","arguments":{"text":"` + text + `"},"_meta":{"progressToken":7}}}`)
}

// BenchmarkParseText is BenchmarkParse on text (see textLine), up to the
// 16 MiB a message may reach.
func BenchmarkParseText(b *testing.B) {
	for _, p := range []struct {
		name string
		size int
	}{{"100KiB", 100 << 10}, {"1MiB", 1 << 20}, {"16MiB", 16 << 20}} {
		b.Run(p.name, func(b *testing.B) {
			line := textLine(p.size)
			b.SetBytes(int64(len(line)))
			for b.Loop() {
				if _, err := Parse(line); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRemap is the router's edit of a request: locate the progress
// token, splice a new id and token, and write the frame out.
func BenchmarkRemap(b *testing.B) {
	for _, p := range payloads {
		b.Run(p.name, func(b *testing.B) {
			line := callLine(p.size)
			b.SetBytes(int64(len(line)))
			for b.Loop() {
				f, _ := Parse(line)
				tok := f.Param("_meta", "progressToken")
				f.SetID([]byte("12345"))
				f.Replace(tok, []byte("12346"))
				if _, err := f.WriteTo(io.Discard); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWriter is the serialised writer, frames queued and flushed.
func BenchmarkWriter(b *testing.B) {
	for _, p := range payloads {
		b.Run(p.name, func(b *testing.B) {
			line := resultLine(p.size)
			f, _ := Parse(line)
			f.SetID([]byte(`"front-1"`))
			b.SetBytes(int64(len(line)))
			w := NewWriter(io.Discard, 1024, 0)
			done := make(chan error)
			ctx, cancel := contextWithCancel()
			go func() { done <- w.Run(ctx) }()
			for b.Loop() {
				if err := w.Put(ctx, f); err != nil {
					b.Fatal(err)
				}
			}
			cancel()
			if err := <-done; err != nil {
				b.Fatal(fmt.Errorf("writer: %w", err))
			}
		})
	}
}

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}

// repeater yields the same line forever, in reads of at most 64 KiB (a
// pipe's default capacity).
type repeater struct {
	line []byte
	off  int
}

func (r *repeater) Read(p []byte) (int, error) {
	p = p[:min(len(p), 64<<10)]
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.line[r.off:])
		n += c
		r.off = (r.off + c) % len(r.line)
	}
	return n, nil
}
