package frame

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
)

// DefaultMaxLine is the default cap on one line of newline-delimited JSON:
// large enough for any real MCP message (issue #5 asks for 64 MiB), small
// enough that a runaway writer cannot exhaust memory.
const DefaultMaxLine = 64 << 20

// headLen is how much of an oversized line is kept, so the caller can still
// find the request's id near its start.
const headLen = 4096

// ErrTooLong is returned by LineReader.Next for a line over the cap. The
// line has been consumed; reading can continue.
var ErrTooLong = errors.New("message too long")

// ErrQueueFull is returned by Writer.TryPut when the peer is not keeping up.
var ErrQueueFull = errors.New("queue full")

// A LineReader reads newline-delimited messages (stdio framing). Unlike
// bufio.Scanner it has no 64 KiB trap, and unlike go-sdk's ioConn a bad or
// oversized line is an error for that line only.
type LineReader struct {
	r   *bufio.Reader
	max int
}

// NewLineReader reads lines of at most max bytes from r. If max <= 0,
// DefaultMaxLine.
func NewLineReader(r io.Reader, max int) *LineReader {
	if max <= 0 {
		max = DefaultMaxLine
	}
	return &LineReader{r: bufio.NewReaderSize(r, 64<<10), max: max}
}

// Next returns the next line that is not blank, without its line ending.
// The slice is freshly allocated and owned by the caller. For a line over
// the cap it returns the line's first bytes and an error wrapping
// ErrTooLong. At the end of input it returns io.EOF (a last line without
// a newline is returned first).
func (lr *LineReader) Next() ([]byte, error) {
	for {
		line, err := lr.line()
		if err != nil && !(err == io.EOF && len(line) > 0) {
			if errors.Is(err, ErrTooLong) {
				return line, err
			}
			return nil, err
		}
		if t := bytes.TrimSpace(line); len(t) > 0 {
			return t, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

func (lr *LineReader) line() ([]byte, error) {
	chunk, err := lr.r.ReadSlice('\n')
	if err == nil || err == io.EOF {
		// Common case: the whole line fits in the buffer; one copy.
		return bytes.Clone(chunk), err
	}
	if err != bufio.ErrBufferFull {
		return nil, err
	}
	buf := append([]byte(nil), chunk...)
	for {
		chunk, err = lr.r.ReadSlice('\n')
		if len(buf)+len(chunk) > lr.max {
			head := buf
			if len(head) > headLen {
				head = head[:headLen]
			}
			n := len(buf) + len(chunk)
			for err == bufio.ErrBufferFull {
				chunk, err = lr.r.ReadSlice('\n')
				n += len(chunk)
			}
			if err != nil && err != io.EOF {
				return nil, err
			}
			return head, fmt.Errorf("%w: line of %d bytes or more, over the cap of %d", ErrTooLong, n, lr.max)
		}
		buf = append(buf, chunk...)
		if err != bufio.ErrBufferFull {
			return buf, err
		}
	}
}

// A Writer serialises frames onto one stream, one per line. It is owned by
// the goroutine running Run; Put and TryPut are safe for concurrent use.
// The buffer is flushed whenever the queue runs empty, so a burst costs one
// write system call and a lone message is never held back.
type Writer struct {
	w  *bufio.Writer
	ch chan *Frame // never closed: senders are many; Run stops on ctx
}

// NewWriter returns a writer to w with a queue of size frames.
func NewWriter(w io.Writer, size int) *Writer {
	return &Writer{w: bufio.NewWriterSize(w, 64<<10), ch: make(chan *Frame, size)}
}

// Put queues f, waiting for room until ctx is done.
func (w *Writer) Put(ctx context.Context, f *Frame) error {
	select {
	case w.ch <- f:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TryPut queues f or returns ErrQueueFull at once.
func (w *Writer) TryPut(f *Frame) error {
	select {
	case w.ch <- f:
		return nil
	default:
		return ErrQueueFull
	}
}

// Run writes queued frames until ctx is done or a write fails. When ctx is
// done it first writes what is already queued, so answers produced before
// shutdown are not lost.
func (w *Writer) Run(ctx context.Context) error {
	for {
		select {
		case f := <-w.ch:
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

func (w *Writer) write(f *Frame) error {
	if _, err := f.WriteTo(w.w); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if err := w.w.WriteByte('\n'); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}
