// Package frame holds JSON-RPC messages as raw bytes on mcpbridge's hot path.
//
// A Frame is one message as it arrived, plus the few envelope fields the
// router needs (kind, id, method), located by one validating scan. The
// router changes a frame only through edits (replace or insert bytes at a
// span); params and result are never decoded or re-encoded, so unknown
// fields, number spellings and key order reach the other side untouched.
// Edits are applied while writing (AppendTo, WriteTo, Reader), so even a
// 16 MiB frame is copied at most once on its way through the bridge.
//
// Why not go-sdk's jsonrpc.Message: decoding and re-encoding every message
// cost +40 ms per 1 MiB call and rounds large integer IDs through float64
// (see ../shared/notes/go-sdk-for-a-relay.md and issue #6).
package frame

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"unicode/utf8"
)

// Kind classifies a JSON-RPC message.
type Kind uint8

const (
	// Invalid is valid JSON that is not a JSON-RPC 2.0 message.
	Invalid Kind = iota
	// Request has a method and an id.
	Request
	// Notification has a method and no id.
	Notification
	// Response has an id and a result or an error.
	Response
)

func (k Kind) String() string {
	switch k {
	case Request:
		return "request"
	case Notification:
		return "notification"
	case Response:
		return "response"
	}
	return "invalid"
}

// Errors of Parse; check them with errors.Is. ErrParse maps to JSON-RPC
// -32700 and ErrInvalid to -32600.
var (
	ErrParse   = errors.New("parse error")
	ErrInvalid = errors.New("invalid request")
)

// A Frame is one JSON-RPC message. It is not safe for concurrent use;
// a frame has one owner at a time (whoever holds it in a channel or call).
type Frame struct {
	raw    []byte
	Kind   Kind
	Method string // requests and notifications

	// Via is set by a backend session that can tell which request a
	// message came for: the raw id of the request on whose answer stream
	// a streamable-HTTP server sent it (the spec: such messages "SHOULD
	// relate to the originating client request"). Nil when unknown (stdio,
	// legacy SSE, the standalone stream). It is not part of the message.
	Via []byte

	id, params, result, errv Span
	edits                    []edit // sorted by start, non-overlapping
}

type edit struct {
	Span
	repl []byte
}

// Parse scans b, which must hold exactly one JSON object (surrounding
// whitespace allowed), and locates its envelope. The frame takes b over:
// the caller must not use b afterwards. Raw newlines (whitespace between
// tokens: JSON allows none inside strings) are blanked in place, so the
// frame is always one line on stdio.
//
// On ErrInvalid the returned frame is non-nil and its ID (if any could be
// located) lets the caller answer with that id.
func Parse(b []byte) (*Frame, error) {
	i := skipSpace(b, 0)
	if i >= len(b) {
		return nil, fmt.Errorf("%w: empty message", ErrParse)
	}
	end, err := validValue(b, i, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrParse, err)
	}
	if j := skipSpace(b, end); j != len(b) {
		return nil, fmt.Errorf("%w: %v", ErrParse, syntaxErr(j, "trailing data"))
	}
	f := &Frame{raw: b[:end]}
	f.raw = f.raw[i:]
	if bytes.IndexByte(f.raw, '\n') >= 0 || bytes.IndexByte(f.raw, '\r') >= 0 {
		blankNewlines(f.raw)
	}
	if b[i] != '{' {
		return f, fmt.Errorf("%w: message is not a JSON object", ErrInvalid)
	}
	return f, f.locate()
}

func (f *Frame) locate() error {
	b := f.raw
	top := Span{0, len(b)}
	var version, method Span
	i := skipSpace(b, 1)
	for i < len(b) && b[i] == '"' {
		kEnd := skipString(b, i)
		key := b[i:kEnd]
		i = skipSpace(b, kEnd)
		i = skipSpace(b, i+1)
		vEnd := skipValue(b, i)
		v := Span{i, vEnd}
		switch {
		case keyEquals(key, "jsonrpc"):
			version = v
		case keyEquals(key, "id"):
			f.id = v
		case keyEquals(key, "method"):
			method = v
		case keyEquals(key, "params"):
			f.params = v
		case keyEquals(key, "result"):
			f.result = v
		case keyEquals(key, "error"):
			f.errv = v
		}
		i = skipSpace(b, vEnd)
		if i < top.End && b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	if f.id.Ok() {
		switch c := b[f.id.Start]; {
		case c == '"' && !utf8.Valid(b[f.id.Start:f.id.End]):
			// Echoed back as is, it would put bytes that are not UTF-8
			// (not JSON, RFC 8259 8.1) on the peer's stream.
			f.id = Span{}
			return fmt.Errorf("%w: id is not valid UTF-8", ErrInvalid)
		case c == '"' || c == '-' || isDigit(c):
		case c == 'n': // null: only an error response may carry it
		default:
			f.id = Span{}
			return fmt.Errorf("%w: id must be a string or a number", ErrInvalid)
		}
	}
	if !version.Ok() || string(b[version.Start:version.End]) != `"2.0"` {
		return fmt.Errorf("%w: jsonrpc must be \"2.0\"", ErrInvalid)
	}
	if f.params.Ok() && b[f.params.Start] != '{' && b[f.params.Start] != '[' {
		return fmt.Errorf("%w: params must be an object or an array", ErrInvalid)
	}
	idNull := f.id.Ok() && b[f.id.Start] == 'n'
	switch {
	case method.Ok():
		if b[method.Start] != '"' {
			return fmt.Errorf("%w: method must be a string", ErrInvalid)
		}
		f.Method = unquote(b[method.Start:method.End])
		if f.result.Ok() || f.errv.Ok() {
			return fmt.Errorf("%w: a request carries no result or error", ErrInvalid)
		}
		if idNull {
			f.id = Span{}
			return fmt.Errorf("%w: request id must not be null", ErrInvalid)
		}
		if f.id.Ok() {
			f.Kind = Request
		} else {
			f.Kind = Notification
		}
	case f.id.Ok() && f.result.Ok() != f.errv.Ok():
		if idNull && !f.errv.Ok() {
			return fmt.Errorf("%w: a result needs an id", ErrInvalid)
		}
		f.Kind = Response
	default:
		return fmt.Errorf("%w: neither a request, a notification nor a response", ErrInvalid)
	}
	return nil
}

func unquote(tok []byte) string {
	inner := tok[1 : len(tok)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner)
	}
	var s string
	if json.Unmarshal(tok, &s) != nil {
		return string(inner)
	}
	return s
}

// ID returns the raw id token as it arrived (edits not applied), or nil.
// A null id (error responses to unparseable requests) is returned as "null".
func (f *Frame) ID() []byte { return f.bytesAt(f.id) }

// OutID returns the id as the frame will be written: the one set by
// SetID if any, else the id as it arrived.
func (f *Frame) OutID() []byte {
	for _, e := range f.edits {
		if e.Span == f.id && f.id.Ok() {
			return e.repl
		}
	}
	return f.ID()
}

// IDSpan locates the id for SetID-style edits.
func (f *Frame) IDSpan() Span { return f.id }

// Params returns the raw params value, or nil.
func (f *Frame) Params() []byte { return f.bytesAt(f.params) }

// Result returns the raw result value of a response, or nil.
func (f *Frame) Result() []byte { return f.bytesAt(f.result) }

// Error returns the raw error object of a response, or nil.
func (f *Frame) Error() []byte { return f.bytesAt(f.errv) }

// IsError reports whether a response carries an error.
func (f *Frame) IsError() bool { return f.errv.Ok() }

// ErrorSpan locates the error object (for Replace); absent in a result.
func (f *Frame) ErrorSpan() Span { return f.errv }

// ResultSpan locates the result value.
func (f *Frame) ResultSpan() Span { return f.result }

// Raw returns the message bytes as they arrived, without edits.
func (f *Frame) Raw() []byte { return f.raw }

// Len is the length of the frame as it will be written (edits applied),
// without the trailing newline.
func (f *Frame) Len() int {
	n := len(f.raw)
	for _, e := range f.edits {
		n += len(e.repl) - (e.End - e.Start)
	}
	return n
}

func (f *Frame) bytesAt(s Span) []byte {
	if !s.Ok() {
		return nil
	}
	return f.raw[s.Start:s.End]
}

// Param locates a member of params by path: Param("name") is params.name,
// Param("_meta", "progressToken") is params._meta.progressToken. The zero
// Span means absent.
func (f *Frame) Param(path ...string) Span {
	s := f.params
	for _, k := range path {
		s = field(f.raw, s, k)
	}
	return s
}

// Field locates a member by path below the result: Field(f.ResultSpan(), "nextCursor").
func (f *Frame) Field(in Span, path ...string) Span {
	for _, k := range path {
		in = field(f.raw, in, k)
	}
	return in
}

// Bytes returns the raw bytes at s (edits not applied).
func (f *Frame) Bytes(s Span) []byte { return f.bytesAt(s) }

// String decodes the JSON string at s; ok is false if s is absent or not a string.
func (f *Frame) String(s Span) (string, bool) {
	if !s.Ok() || f.raw[s.Start] != '"' {
		return "", false
	}
	return unquote(f.raw[s.Start:s.End]), true
}

// Replace schedules the bytes at s to be replaced by repl when the frame is
// written. repl must be one valid JSON value; s must not overlap an earlier
// edit other than one of the same span, which repl then replaces (an edit
// made twice must not write the value twice: WriteTo would cut the frame
// wrong). Replace of a zero-width span inserts.
func (f *Frame) Replace(s Span, repl []byte) {
	if s.End > s.Start {
		for i := range f.edits {
			if f.edits[i].Span == s {
				f.edits[i].repl = repl
				return
			}
		}
	}
	e := edit{s, repl}
	n := sort.Search(len(f.edits), func(i int) bool { return f.edits[i].Start > s.Start })
	f.edits = append(f.edits, edit{})
	copy(f.edits[n+1:], f.edits[n:])
	f.edits[n] = e
}

// SetID replaces the id. The frame must have an id.
func (f *Frame) SetID(id []byte) {
	for i, e := range f.edits {
		if e.Span == f.id {
			f.edits[i].repl = id
			return
		}
	}
	f.Replace(f.id, id)
}

// InsertMember adds `"key":value` as the first member of the object at obj.
func (f *Frame) InsertMember(obj Span, key string, value []byte) {
	k, _ := json.Marshal(key)
	repl := make([]byte, 0, len(k)+len(value)+2)
	repl = append(repl, k...)
	repl = append(repl, ':')
	repl = append(repl, value...)
	if !isEmptyObject(f.raw[obj.Start:obj.End]) {
		repl = append(repl, ',')
	}
	f.Replace(Span{obj.Start + 1, obj.Start + 1}, repl)
}

func isEmptyObject(b []byte) bool {
	return len(bytes.TrimSpace(b[1:len(b)-1])) == 0
}

// AppendTo appends the frame, edits applied, to dst.
func (f *Frame) AppendTo(dst []byte) []byte {
	last := 0
	for _, e := range f.edits {
		dst = append(dst, f.raw[last:e.Start]...)
		dst = append(dst, e.repl...)
		last = e.End
	}
	return append(dst, f.raw[last:]...)
}

// Encoded returns the frame as it will be written (edits applied), without
// a trailing newline. When there is nothing to change it returns Raw.
func (f *Frame) Encoded() []byte {
	if len(f.edits) == 0 {
		return f.raw
	}
	return f.AppendTo(make([]byte, 0, f.Len()))
}

// Segments returns the frame as it will be written (edits applied,
// without a trailing newline) as a list of slices of the frame's own bytes
// and its edits, copying nothing: as net.Buffers it is an HTTP request
// body that a 16 MiB message reaches the socket from without being
// assembled first (issue #6). The slices must not be modified.
func (f *Frame) Segments() [][]byte {
	segs := make([][]byte, 0, 2*len(f.edits)+1)
	last := 0
	for _, e := range f.edits {
		if e.Start > last {
			segs = append(segs, f.raw[last:e.Start])
		}
		if len(e.repl) > 0 {
			segs = append(segs, e.repl)
		}
		last = e.End
	}
	return append(segs, f.raw[last:])
}

// WriteTo writes the frame with edits applied, without copying the
// unedited stretches, and without a trailing newline.
func (f *Frame) WriteTo(w io.Writer) (int64, error) {
	var total int64
	last := 0
	put := func(b []byte) error {
		if len(b) == 0 {
			return nil
		}
		n, err := w.Write(b)
		total += int64(n)
		return err
	}
	for _, e := range f.edits {
		if err := put(f.raw[last:e.Start]); err != nil {
			return total, err
		}
		if err := put(e.repl); err != nil {
			return total, err
		}
		last = e.End
	}
	return total, put(f.raw[last:])
}

func blankNewlines(b []byte) {
	for i, c := range b {
		if c == '\n' || c == '\r' {
			b[i] = ' '
		}
	}
}

// Int parses an integer id or token the bridge itself issued. ok is false
// for anything else (strings, fractions, out of range).
func Int(raw []byte) (int64, bool) {
	n, err := strconv.ParseInt(string(raw), 10, 64)
	return n, err == nil
}

// AppendInt is the raw JSON form of a bridge-issued integer id.
func AppendInt(dst []byte, n int64) []byte { return strconv.AppendInt(dst, n, 10) }

// Valid reports whether b is one valid JSON value, exactly as
// encoding/json.Valid does (the fuzz tests hold the scanner to that).
func Valid(b []byte) bool {
	i := skipSpace(b, 0)
	end, err := validValue(b, i, 0)
	return err == nil && skipSpace(b, end) == len(b)
}

// Error codes the bridge uses (JSON-RPC 2.0 and MCP).
const (
	CodeParseError     = -32700
	CodeInvalidRequest = -32600
	CodeMethodNotFound = -32601
	CodeInvalidParams  = -32602
	CodeInternalError  = -32603
	CodeTimeout        = -32001 // MCP: request timed out
	CodeNotFound       = -32002 // MCP: resource not found
)

// ErrorObject is the error member of a JSON-RPC response.
type ErrorObject struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    any    `json:"data,omitempty"`
}

// NewError builds an error response with the raw id (nil means null).
func NewError(id []byte, e ErrorObject) *Frame {
	body, err := json.Marshal(e)
	if err != nil { // Data that cannot be marshalled: keep the code and message.
		e.Data = nil
		body, _ = json.Marshal(e)
	}
	if id == nil {
		id = []byte("null")
	}
	return mustBuild(`{"jsonrpc":"2.0","id":`, id, `,"error":`, body, `}`)
}

// NewResult builds a response with the raw id and raw result.
func NewResult(id, result []byte) *Frame {
	return mustBuild(`{"jsonrpc":"2.0","id":`, id, `,"result":`, result, `}`)
}

// NewRequest builds a request with the raw id, method and raw params (nil: none).
func NewRequest(id []byte, method string, params []byte) *Frame {
	m, _ := json.Marshal(method)
	if params == nil {
		return mustBuild(`{"jsonrpc":"2.0","id":`, id, `,"method":`, m, `}`)
	}
	return mustBuild(`{"jsonrpc":"2.0","id":`, id, `,"method":`, m, `,"params":`, params, `}`)
}

// NewNotification builds a notification with raw params (nil: none).
func NewNotification(method string, params []byte) *Frame {
	m, _ := json.Marshal(method)
	if params == nil {
		return mustBuild(`{"jsonrpc":"2.0","method":`, m, `}`)
	}
	return mustBuild(`{"jsonrpc":"2.0","method":`, m, `,"params":`, params, `}`)
}

// Batch returns a frame holding the JSON array of fs: the answer to a
// 2025-03-26 JSON-RPC batch. It is only for writing.
func Batch(fs []*Frame) *Frame {
	n := 2
	for _, f := range fs {
		n += f.Len() + 1
	}
	b := make([]byte, 0, n)
	b = append(b, '[')
	for i, f := range fs {
		if i > 0 {
			b = append(b, ',')
		}
		b = f.AppendTo(b)
	}
	return &Frame{raw: append(b, ']')}
}

func mustBuild(parts ...any) *Frame {
	var b []byte
	for _, p := range parts {
		switch p := p.(type) {
		case string:
			b = append(b, p...)
		case []byte:
			b = append(b, p...)
		}
	}
	f, err := Parse(b)
	if err != nil {
		// Only reachable if the bridge itself passed bad raw JSON: a broken
		// invariant, reported loudly rather than sent on the wire.
		panic(fmt.Sprintf("frame: building %q: %v", b, err))
	}
	return f
}

// Member returns the raw value of key in the JSON object obj (which must
// be valid JSON, as everything that came through Parse is), or nil.
func Member(obj []byte, key string) []byte {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return nil
	}
	s := field(obj, Span{i, len(obj)}, key)
	if !s.Ok() {
		return nil
	}
	return obj[s.Start:s.End]
}

// SetMember returns a copy of the JSON object obj with key's value
// replaced by val (inserted first if absent). Everything else is kept
// byte for byte.
func SetMember(obj []byte, key string, val []byte) []byte {
	i := skipSpace(obj, 0)
	s := field(obj, Span{i, len(obj)}, key)
	if s.Ok() {
		out := make([]byte, 0, len(obj)-(s.End-s.Start)+len(val))
		out = append(out, obj[:s.Start]...)
		out = append(out, val...)
		return append(out, obj[s.End:]...)
	}
	k, _ := json.Marshal(key)
	out := make([]byte, 0, len(obj)+len(k)+len(val)+2)
	out = append(out, obj[:i+1]...)
	out = append(out, k...)
	out = append(out, ':')
	out = append(out, val...)
	if !isEmptyObject(obj[i:]) {
		out = append(out, ',')
	}
	return append(out, obj[i+1:]...)
}
