// Package wiretest is a line-level MCP host for tests: it sees the wire
// as raw JSON, because go-sdk's typed client drops unknown fields and
// coerces numbers, and would hide exactly the losses mcpbridge must not make.
package wiretest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/frame"
)

// Timeout bounds every wait; generous, since CI machines are shared.
const Timeout = 15 * time.Second

// A Wire is a raw line-level MCP host: it writes lines and collects every
// line it reads, failing the test on any line that is not JSON (stdout is
// the protocol channel).
type Wire struct {
	t     testing.TB
	W     io.WriteCloser // the peer's input; close it to send EOF
	mu    sync.Mutex
	lines [][]byte
	cond  chan struct{} // closed and replaced whenever a line arrives
	// EOF is closed when the peer's output ended.
	EOF chan struct{}
}

// New starts collecting lines from r; lines are sent to w.
func New(t testing.TB, w io.WriteCloser, r io.Reader) *Wire {
	h := &Wire{t: t, W: w, cond: make(chan struct{}), EOF: make(chan struct{})}
	go func() {
		defer close(h.EOF)
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

// Send writes one line.
func (h *Wire) Send(line string) {
	h.t.Helper()
	if _, err := io.WriteString(h.W, line+"\n"); err != nil {
		h.t.Fatalf("writing to bridge: %v", err)
	}
}

// WaitFor returns the first line, in arrival order, that satisfies pred.
func (h *Wire) WaitFor(what string, pred func(*frame.Frame) bool) *frame.Frame {
	h.t.Helper()
	deadline := time.After(Timeout)
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
			h.t.Fatalf("timed out waiting for %s; got:\n%s", what, h.Dump())
			return nil
		}
	}
}

// Response waits for the response whose raw id is id.
func (h *Wire) Response(id string) *frame.Frame {
	h.t.Helper()
	return h.WaitFor("response "+id, func(f *frame.Frame) bool {
		return f.Kind == frame.Response && string(f.ID()) == id
	})
}

// Line returns the first line so far that satisfies pred, or nil: for
// lines that are not single messages (batch answers).
func (h *Wire) Line(pred func([]byte) bool) []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, l := range h.lines {
		if pred(l) {
			return l
		}
	}
	return nil
}

// Count counts the lines so far that satisfy pred.
func (h *Wire) Count(pred func(*frame.Frame) bool) int {
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

// Dump lists the lines so far, truncated, for failure messages.
func (h *Wire) Dump() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	for _, l := range h.lines {
		fmt.Fprintf(&b, "  %s\n", Truncate(l))
	}
	return b.String()
}

// Truncate shortens b for a log line.
func Truncate(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// Frames reads r, a bridge's stdout, line by line until it ends, and calls
// fn with each message, in order, from one goroutine; a line that is not
// JSON-RPC fails the test (stdout is the protocol channel). The returned
// channel is closed when r ended and fn returned for the last time.
func Frames(t testing.TB, r io.Reader, fn func(f *frame.Frame)) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		lr := frame.NewLineReader(r, 0)
		for {
			line, err := lr.Next()
			if err != nil {
				return
			}
			f, err := frame.Parse(bytes.Clone(line))
			if err != nil {
				t.Errorf("the bridge wrote a line that is not JSON-RPC: %q", line)
				continue
			}
			fn(f)
		}
	}()
	return done
}
