package frame

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"unicode/utf8"
)

// DefaultMaxLine is the default cap on one line of newline-delimited JSON:
// large enough for any real MCP message (issue #5 asks for 64 MiB), small
// enough that a runaway writer cannot exhaust memory.
const DefaultMaxLine = 64 << 20

// headLen is how much of an oversized line is kept, so the caller can still
// find the request's id near its start.
const headLen = 4096

// tailLen is how much of an oversized line's end is kept (Tail): writers
// such as the TypeScript SDK put the id last.
const tailLen = 512

// ErrTooLong is returned by LineReader.Next for a line over the cap. The
// line has been consumed; reading can continue.
var ErrTooLong = errors.New("message too long")

// ErrQueueFull is returned by Writer.TryPut when the peer is not keeping up.
var ErrQueueFull = errors.New("queue full")

// A LineReader reads newline-delimited messages (stdio framing). Unlike
// bufio.Scanner it has no 64 KiB trap, and unlike go-sdk's ioConn a bad or
// oversized line is an error for that line only.
//
// It reads into one buffer that grows to the longest line seen (and
// shrinks back after an outsized one), and hands out each line as an
// exact-size copy: one allocation and one copy per message, no zeroing,
// whatever the size (issue #6).
type LineReader struct {
	r          io.Reader
	buf        []byte // unread bytes are buf[start:end]
	start, end int
	tail       []byte // the end of the last oversized line (Tail)
	max        int
	err        error // sticky error of r
}

const (
	readBuf = 64 << 10
	// keepBuf is the largest buffer kept between lines; a larger one,
	// grown for an outsized message, is dropped once it is empty.
	keepBuf = 4 << 20
)

// NewLineReader reads lines of at most max bytes from r. If max <= 0,
// DefaultMaxLine.
func NewLineReader(r io.Reader, max int) *LineReader {
	if max <= 0 {
		max = DefaultMaxLine
	}
	return &LineReader{r: r, buf: make([]byte, readBuf), max: max}
}

// Next returns the next line that is not blank, without its line ending
// and surrounding white space. The slice is freshly allocated and owned by
// the caller. For a line over the cap it returns the line's first bytes
// and an error wrapping ErrTooLong, and reading can go on. At the end of
// input it returns io.EOF (a last line without a newline is returned first).
func (lr *LineReader) Next() ([]byte, error) {
	for {
		line, err := lr.line()
		if err != nil {
			return line, err
		}
		if t := bytes.TrimSpace(line); len(t) > 0 {
			if len(t) < len(line) {
				return bytes.Clone(t), nil
			}
			return line, nil
		}
	}
}

func (lr *LineReader) line() ([]byte, error) {
	scanned := lr.start
	for {
		if i := bytes.IndexByte(lr.buf[scanned:lr.end], '\n'); i >= 0 {
			nl := scanned + i
			return lr.take(lr.start, nl, nl+1)
		}
		scanned = lr.end
		if lr.err != nil {
			if lr.start < lr.end {
				return lr.take(lr.start, lr.end, lr.end)
			}
			return nil, lr.err
		}
		if lr.end-lr.start > lr.max+1 { // +1: the CR of a CRLF ending
			return lr.skip()
		}
		if lr.end == len(lr.buf) {
			if lr.start > 0 {
				// Move the partial line to the front to make room.
				n := copy(lr.buf, lr.buf[lr.start:lr.end])
				scanned -= lr.start
				lr.start, lr.end = 0, n
			} else {
				nb := make([]byte, min(2*len(lr.buf), lr.max+readBuf))
				copy(nb, lr.buf[:lr.end])
				lr.buf = nb
			}
		}
		n, err := lr.r.Read(lr.buf[lr.end:])
		lr.end += n
		lr.err = err
	}
}

// take returns a copy of buf[from:to] and moves past next.
func (lr *LineReader) take(from, to, next int) ([]byte, error) {
	line := lr.buf[from:to]
	lr.start = next
	if lr.start == lr.end {
		lr.start, lr.end = 0, 0
		if len(lr.buf) > keepBuf {
			lr.buf = make([]byte, readBuf)
		}
	}
	n := len(line)
	if n > 0 && line[n-1] == '\r' {
		n-- // a CRLF line ending is not part of the message
	}
	if n > lr.max {
		lr.tail = append(lr.tail[:0], line[len(line)-min(tailLen, len(line)):]...)
		return bytes.Clone(line[:min(headLen, len(line))]), fmt.Errorf("%w: line of %d bytes, over the cap of %d", ErrTooLong, n, lr.max)
	}
	return bytes.Clone(line), nil
}

// skip discards the rest of an oversized line, keeping its head.
func (lr *LineReader) skip() ([]byte, error) {
	head := bytes.Clone(lr.buf[lr.start:min(lr.start+headLen, lr.end)])
	total := lr.end - lr.start
	lr.tail = lr.tail[:0]
	lr.keepTail(lr.buf[lr.start:lr.end])
	lr.start, lr.end = 0, 0
	if len(lr.buf) > keepBuf {
		lr.buf = make([]byte, readBuf)
	}
	for lr.err == nil {
		n, err := lr.r.Read(lr.buf)
		lr.err = err
		if i := bytes.IndexByte(lr.buf[:n], '\n'); i >= 0 {
			total += i
			lr.keepTail(lr.buf[:i])
			lr.start, lr.end = i+1, n
			break
		}
		total += n
		lr.keepTail(lr.buf[:n])
	}
	return head, fmt.Errorf("%w: line of %d bytes or more, over the cap of %d", ErrTooLong, total, lr.max)
}

// A Writer serialises frames onto one stream, one per line. It is owned by
// the goroutine running Run; Put and TryPut are safe for concurrent use.
// The buffer is flushed whenever the queue runs empty, so a burst costs one
// write system call and a lone message is never held back.
type Writer struct {
	w  *bufio.Writer
	ch chan *Frame // never closed: senders are many; Run stops on ctx
	// maxBytes, if positive, bounds the bytes of the frames queued in ch
	// (queued) as TryPut sees them. A frame is not edited once queued, so
	// its Len is the same when Run takes it out.
	maxBytes int64
	queued   atomic.Int64
}

// NewWriter returns a writer to w with a queue of size frames. If maxBytes
// is positive, TryPut also refuses a frame that would take the bytes
// queued over it, unless the queue is empty (any one frame fits).
func NewWriter(w io.Writer, size int, maxBytes int64) *Writer {
	return &Writer{w: bufio.NewWriterSize(w, 64<<10), ch: make(chan *Frame, size), maxBytes: maxBytes}
}

// Put queues f, waiting for room until ctx is done. Room there is now is
// taken even if ctx is done (a select would pick at random between the
// two): answers made while the bridge stops still reach Run's final
// flush.
func (w *Writer) Put(ctx context.Context, f *Frame) error {
	n := w.count(f)
	select {
	case w.ch <- f:
		return nil
	default:
	}
	select {
	case w.ch <- f:
		return nil
	case <-ctx.Done():
		w.queued.Add(-n)
		return ctx.Err()
	}
}

// TryPut queues f or returns ErrQueueFull at once.
func (w *Writer) TryPut(f *Frame) error {
	n := w.count(f)
	if w.maxBytes > 0 {
		if q := w.queued.Load(); q > w.maxBytes && q != n {
			w.queued.Add(-n)
			return ErrQueueFull
		}
	}
	select {
	case w.ch <- f:
		return nil
	default:
		w.queued.Add(-n)
		return ErrQueueFull
	}
}

// count adds f's bytes to the queued total and returns them (0 without a
// byte bound).
func (w *Writer) count(f *Frame) int64 {
	if w.maxBytes <= 0 {
		return 0
	}
	n := int64(f.Len())
	w.queued.Add(n)
	return n
}

// Run writes queued frames until ctx is done or a write fails. When ctx is
// done it first writes what is already queued, so answers produced before
// shutdown are not lost.
func (w *Writer) Run(ctx context.Context) error {
	for {
		select {
		case f := <-w.ch:
			w.uncount(f)
			if err := w.write(f); err != nil {
				return err
			}
			if len(w.ch) == 0 {
				if err := w.w.Flush(); err != nil {
					return fmt.Errorf("flush: %w", err)
				}
			}
		case <-ctx.Done():
			for {
				select {
				case f := <-w.ch:
					w.uncount(f)
					if err := w.write(f); err != nil {
						return err
					}
				default:
					return w.w.Flush()
				}
			}
		}
	}
}

// uncount takes a frame Run took out of the queue off the queued total.
func (w *Writer) uncount(f *Frame) {
	if w.maxBytes > 0 {
		w.queued.Add(-int64(f.Len()))
	}
}

func (w *Writer) write(f *Frame) error {
	if _, err := f.WriteTo(w.w); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if err := w.w.WriteByte('\n'); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// keepTail adds b, the next bytes of an oversized line, to its tail.
func (lr *LineReader) keepTail(b []byte) {
	if len(b) >= tailLen {
		lr.tail = append(lr.tail[:0], b[len(b)-tailLen:]...)
		return
	}
	lr.tail = append(lr.tail, b...)
	if extra := len(lr.tail) - tailLen; extra > 0 {
		lr.tail = append(lr.tail[:0], lr.tail[extra:]...)
	}
}

// Tail returns the last bytes (up to 512) of the line the last ErrTooLong
// was about; valid until the next call of Next.
func (lr *LineReader) Tail() []byte { return lr.tail }

// PeekOversized reads what head and tail, the first and last bytes of an
// oversized message, show about it (PeekHead), with an id written last
// (the TypeScript SDK's order: {"result":…,"jsonrpc":"2.0","id":5}) read
// from the tail.
func PeekOversized(head, tail []byte) Head {
	h := PeekHead(head)
	if h.ID == nil && !h.Batch {
		h.ID = lastID(tail)
	}
	return h
}

// lastID returns the value of a top-level "id" member that ends the JSON
// object whose last bytes are tail, or nil. The member before the object's
// final '}' is a top-level one: a nested value would end in '}' or ']'.
func lastID(tail []byte) []byte {
	b := bytes.TrimRight(tail, " \t\r\n")
	if len(b) == 0 || b[len(b)-1] != '}' {
		return nil
	}
	b = bytes.TrimRight(b[:len(b)-1], " \t\r\n")
	end := len(b)
	var start int
	switch {
	case end > 0 && b[end-1] == '"':
		start = -1
		for i := end - 2; i >= 0; i-- {
			if b[i] != '"' {
				continue
			}
			n := 0 // backslashes before it: odd means escaped
			for j := i - 1; j >= 0 && b[j] == '\\'; j-- {
				n++
			}
			if n%2 == 0 {
				start = i
				break
			}
		}
		if start < 0 {
			return nil
		}
	case end > 0 && (isDigit(b[end-1])):
		start = end
		for start > 0 && (isDigit(b[start-1]) || b[start-1] == '-' || b[start-1] == '+' || b[start-1] == '.' || b[start-1] == 'e' || b[start-1] == 'E') {
			start--
		}
	default:
		return nil
	}
	v := b[start:end]
	rest := bytes.TrimRight(b[:start], " \t\r\n")
	if len(rest) == 0 || rest[len(rest)-1] != ':' {
		return nil
	}
	rest = bytes.TrimRight(rest[:len(rest)-1], " \t\r\n")
	if !bytes.HasSuffix(rest, []byte(`"id"`)) {
		return nil
	}
	rest = bytes.TrimRight(rest[:len(rest)-len(`"id"`)], " \t\r\n")
	if len(rest) == 0 || (rest[len(rest)-1] != ',' && rest[len(rest)-1] != '{') {
		return nil
	}
	if !Valid(v) || (v[0] == '"' && !utf8.Valid(v)) {
		return nil
	}
	return bytes.Clone(v)
}

// A Head is what the first bytes of an oversized message show about it:
// enough to answer it, or to end what waits for it, without the rest.
type Head struct {
	// ID is the message's id when a top-level "id" member is seen whole
	// (a value cut by the end of the head is not taken: "12" of 123456).
	ID []byte
	// Batch: the message is a JSON array.
	Batch bool
	// Response: a top-level "result" or "error" member was seen, and no
	// "method" before it.
	Response bool
	// Method is the top-level "method" member's value, if seen whole.
	Method string
}

// PeekHead reads the top-level members of an oversized message's head.
func PeekHead(head []byte) Head {
	var h Head
	b := bytes.TrimLeft(head, " \t\r\n")
	if len(b) > 0 && b[0] == '[' {
		h.Batch = true
		return h
	}
	if len(b) == 0 || b[0] != '{' {
		return h
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil {
		return h
	}
	method := false
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return h
		}
		k, _ := t.(string)
		switch k {
		case "result", "error":
			h.Response = !method
		case "method":
			method, h.Response = true, false
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return h
		}
		if k == "method" && !h.Response {
			_ = json.Unmarshal(v, &h.Method)
		}
		if k == "id" && dec.InputOffset() < int64(len(b)) && len(v) > 0 &&
			(v[0] == '"' || v[0] == '-' || (v[0] >= '0' && v[0] <= '9')) {
			h.ID = v
		}
	}
	return h
}
