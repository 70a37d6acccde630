package backends

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mcpbridge/mcpbridge/frame"
)

// errEventTooLong is returned by sseReader.Next for an event whose data
// is over the cap. The event has been consumed; reading can continue.
var errEventTooLong = errors.New("event too long")

// maxFieldLine caps the lines that are not data (event, id, retry and
// unknown fields). Longer ones are consumed and ignored: no real server
// names an event or an id with 64 KiB.
const maxFieldLine = 64 << 10

// An sseEvent is one dispatched server-sent event.
type sseEvent struct {
	Type string // "message" unless the event named another
	ID   string // the last event ID as of this event (it carries over)
	Data []byte // data lines joined with "\n"; owned by the caller
}

// An sseReader reads server-sent events as the HTML standard defines them
// (§9.2.6, "Interpreting an event stream"): lines end with "\r\n", "\n"
// or "\r"; "data:" lines are joined with "\n"; a line starting with ':'
// is a comment; an event is dispatched at a blank line and an event with
// no data is not dispatched at all. Unlike go-sdk's scanner, an event over
// the cap or a line without a colon is never fatal.
//
// Data lines are gathered in a scratch buffer reused across events, and
// each event's data is handed out as one exact-size copy, which
// frame.Parse then takes over: no growing, no zeroing per event (issue #6).
type sseReader struct {
	r   *bufio.Reader
	max int

	// LastEventID is the id as of the last event consumed (dispatched or
	// not): what to send back as Last-Event-ID when resuming. An id line
	// of an event cut off by the end of the stream does not count: that
	// event must be replayed.
	LastEventID string
	idBuf       string // the standard's "last event ID buffer"
	// Retry is the reconnection delay the server asked for, if RetrySet
	// (a retry of 0 asks for reconnecting at once).
	Retry    time.Duration
	RetrySet bool

	// Head and Tail are the first 4 KiB and the last 512 bytes of the
	// data of the last event over the cap (errEventTooLong), to find the
	// id it answers (frame.PeekOversized).
	Head, Tail []byte
	tailing    bool // Tail is being kept for the event being read

	started bool // the optional BOM has been handled
	skipLF  bool // the last line ended with '\r': a '\n' right after belongs to it
	line    []byte
	scratch []byte // data of the event being read; reused
}

// keepScratch is the largest scratch buffer kept between events.
const keepScratch = 4 << 20

// newSSEReader reads events of at most max data bytes from r. If max <= 0,
// frame.DefaultMaxLine.
func newSSEReader(r io.Reader, max int) *sseReader {
	if max <= 0 {
		max = frame.DefaultMaxLine
	}
	return &sseReader{r: bufio.NewReaderSize(r, 64<<10), max: max}
}

// sseReaders recycles readers (and their 64 KiB buffers) across answer
// streams: a streamable-HTTP backend opens one per call, and allocating
// the buffer each time was a tenth of the bridge's CPU per small call
// (GC included; issue #6).
var sseReaders = sync.Pool{New: func() any {
	return &sseReader{r: bufio.NewReaderSize(nil, 64<<10)}
}}

// getSSEReader is newSSEReader from the pool; give it back with putSSEReader.
func getSSEReader(r io.Reader, max int) *sseReader {
	if max <= 0 {
		max = frame.DefaultMaxLine
	}
	p := sseReaders.Get().(*sseReader)
	scratch := p.scratch
	if scratch == nil {
		scratch = scratches.get()
	}
	*p = sseReader{r: p.r, max: max, line: p.line[:0], scratch: scratch[:0]}
	p.r.Reset(r)
	return p
}

func putSSEReader(p *sseReader) {
	p.r.Reset(nil)
	// The scratch goes to the free list, which a garbage collection does
	// not empty, unlike the pool.
	scratches.put(p.scratch)
	p.scratch = nil
	sseReaders.Put(p)
}

// scratches keeps the scratch buffers of answer streams that ended, up to
// scratchBudget bytes in all. A scratch that grew for a large message
// stays warm for the next one: on this kind of VM a fresh page costs about
// 15 µs to fault in, so growing a new 1 MiB buffer per call was a quarter
// of the bridge's CPU per 1 MiB call (issue #6). sync.Pool is no good for
// this: every garbage collection empties it, and large messages make the
// collector run every few calls.
var scratches scratchList

// scratchBudget bounds what the free list holds: enough for 16 calls of
// 1 MiB in flight.
const scratchBudget = 24 << 20

type scratchList struct {
	mu    sync.Mutex
	bufs  [][]byte
	bytes int
}

func (l *scratchList) get() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.bufs)
	if n == 0 {
		return nil
	}
	b := l.bufs[n-1]
	l.bufs[n-1] = nil
	l.bufs = l.bufs[:n-1]
	l.bytes -= cap(b)
	return b
}

func (l *scratchList) put(b []byte) {
	if cap(b) < 4<<10 || cap(b) > keepScratch {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.bytes+cap(b) > scratchBudget {
		return
	}
	l.bufs = append(l.bufs, b[:0])
	l.bytes += cap(b)
}

// Reset makes the reader read a new stream (a resumed one) while keeping
// the last event ID and the retry delay, as an EventSource does.
func (p *sseReader) Reset(r io.Reader) {
	p.r.Reset(r)
	p.started, p.skipLF = false, false
	p.idBuf = p.LastEventID
}

// Next returns the next event with data. At the end of the stream it
// returns io.EOF (or the read error), dropping an event that was not
// finished by a blank line, as the standard says. For an event over the
// cap it returns an error wrapping errEventTooLong, with the event's type
// and id filled in, and can be called again.
func (p *sseReader) Next() (sseEvent, error) {
	if !p.started {
		p.started = true
		// Peek(3) only after a first 0xEF: a lone short line must not wait.
		if b, _ := p.r.Peek(1); len(b) == 1 && b[0] == 0xEF {
			if b, _ := p.r.Peek(3); string(b) == "\ufeff" {
				_, _ = p.r.Discard(3)
			}
		}
	}
	var (
		data    = p.scratch[:0]
		hasData bool // a data field was seen: the next one is joined with '\n'
		tooLong bool
		typ     string
	)
	// join starts a new data line, noting an event that grew over the cap.
	p.Head, p.Tail, p.tailing = p.Head[:0], p.Tail[:0], false
	join := func() {
		if hasData && tooLong {
			p.keepTail([]byte{'\n'})
		}
		if hasData && !tooLong {
			if len(data) >= p.max {
				p.overflow(data)
				p.keepTail([]byte{'\n'}) // the join's, before the next line
				tooLong, data = true, nil
			} else {
				data = append(data, '\n')
			}
		}
		hasData = true
	}
	for {
		isData, err := p.dataPrefix()
		if err != nil {
			return sseEvent{}, err
		}
		if isData {
			// Data lines go straight into the event's buffer.
			join()
			limit := p.max - len(data)
			if tooLong {
				limit = 0
			}
			var n int
			data, n, err = p.appendLine(data, limit, true)
			if n > limit && !tooLong {
				p.overflow(data)
				tooLong, data = true, nil
			}
			if err != nil {
				return sseEvent{}, err
			}
			continue
		}
		var n int
		p.line, n, err = p.appendLine(p.line[:0], maxFieldLine, false)
		if err != nil {
			return sseEvent{}, err
		}
		line := p.line
		switch {
		case n == 0: // blank line: dispatch
			p.LastEventID = p.idBuf
			if tooLong {
				return sseEvent{Type: eventType(typ), ID: p.LastEventID},
					fmt.Errorf("%w: over the cap of %d bytes", errEventTooLong, p.max)
			}
			if len(data) == 0 {
				hasData, typ = false, ""
				continue
			}
			out := bytes.Clone(data)
			if cap(data) <= keepScratch {
				p.scratch = data[:0]
			}
			return sseEvent{Type: eventType(typ), ID: p.LastEventID, Data: out}, nil
		case n > maxFieldLine || line[0] == ':':
			continue // a comment, or a field no real server sends
		}
		name, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(name) {
		case "data": // only "data" without a colon gets here: an empty data line
			join()
		case "event":
			typ = string(value)
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				p.idBuf = string(value)
			}
		case "retry":
			if isDigits(value) {
				if ms, err := strconv.ParseInt(string(value), 10, 32); err == nil {
					p.Retry, p.RetrySet = time.Duration(ms)*time.Millisecond, true
				}
			}
		}
	}
}

func eventType(t string) string {
	if t == "" {
		return "message"
	}
	return t
}

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// lineEnd returns the index of the first '\r' or '\n' in b, or -1.
func lineEnd(b []byte) int {
	i := bytes.IndexByte(b, '\n')
	if cr := bytes.IndexByte(b, '\r'); cr >= 0 && (i < 0 || cr < i) {
		return cr
	}
	return i
}

// dataPrefix consumes "data:" or "data: " if the next line starts with it.
// It reads no further than the line's end, so it never waits for bytes a
// server has not sent yet.
func (p *sseReader) dataPrefix() (bool, error) {
	if err := p.eatLF(); err != nil {
		return false, err
	}
	for want := 1; ; want = p.r.Buffered() + 1 {
		if _, err := p.r.Peek(want); err != nil {
			if p.r.Buffered() == 0 {
				return false, err
			}
			return false, nil // the stream ends inside this line: appendLine reports it
		}
		b, _ := p.r.Peek(min(p.r.Buffered(), 6))
		i := lineEnd(b)
		ended := i >= 0
		if ended {
			b = b[:i]
		}
		if len(b) >= 5 && string(b[:5]) == "data:" && (len(b) == 6 || ended) {
			n := 5
			if len(b) == 6 && b[5] == ' ' {
				n = 6
			}
			_, _ = p.r.Discard(n)
			return true, nil
		}
		if ended || len(b) >= 6 || !strings.HasPrefix("data:", string(b)) {
			return false, nil
		}
	}
}

// eatLF drops the '\n' of a "\r\n" whose '\r' ended the previous line.
func (p *sseReader) eatLF() error {
	if !p.skipLF {
		return nil
	}
	b, err := p.r.Peek(1)
	if len(b) == 0 {
		return err
	}
	p.skipLF = false
	if b[0] == '\n' {
		_, _ = p.r.Discard(1)
	}
	return nil
}

// appendLine appends the rest of the current line to dst, at most limit
// bytes of it, and consumes the line with its terminator; n is the line's
// full length. At the end of the stream an unterminated line is an error:
// the event it belongs to is incomplete.
// overflow notes the head of an event's data as it goes over the cap
// (data holds its first bytes; appendLine keeps the tail from then on).
func (p *sseReader) overflow(data []byte) {
	p.Head = append(p.Head[:0], data[:min(len(data), 4096)]...)
	if !p.tailing {
		p.Tail = append(p.Tail[:0], data[max(0, len(data)-512):]...)
		p.tailing = true
	}
}

// keepTail adds b, bytes of an oversized event's data, to its tail.
func (p *sseReader) keepTail(b []byte) {
	const tailLen = 512
	if len(b) >= tailLen {
		p.Tail = append(p.Tail[:0], b[len(b)-tailLen:]...)
		return
	}
	p.Tail = append(p.Tail, b...)
	if extra := len(p.Tail) - tailLen; extra > 0 {
		p.Tail = append(p.Tail[:0], p.Tail[extra:]...)
	}
}

func (p *sseReader) appendLine(dst []byte, limit int, tail bool) (_ []byte, n int, err error) {
	if err := p.eatLF(); err != nil {
		return dst, 0, err
	}
	for {
		if p.r.Buffered() == 0 {
			if _, err := p.r.Peek(1); err != nil {
				return dst, n, err
			}
		}
		chunk, _ := p.r.Peek(p.r.Buffered())
		end := lineEnd(chunk)
		part := chunk
		if end >= 0 {
			part = chunk[:end]
		}
		room := limit - n
		if room > 0 {
			dst = append(dst, part[:min(len(part), room)]...)
		}
		if tail && len(part) > room {
			// Over the cap: the event's tail is kept from here on,
			// starting from what dst holds.
			if !p.tailing {
				p.Tail = append(p.Tail[:0], dst[max(0, len(dst)-512):]...)
				p.tailing = true
			}
			p.keepTail(part[max(0, room):])
		}
		n += len(part)
		if end >= 0 {
			p.skipLF = chunk[end] == '\r'
			_, _ = p.r.Discard(end + 1)
			return dst, n, nil
		}
		_, _ = p.r.Discard(len(part))
	}
}
