package frame

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
)

// maxDepth bounds nesting, as encoding/json does, so a hostile line of
// brackets cannot exhaust the stack.
const maxDepth = 10000

// errSyntax is wrapped by every error of the validating scanner.
var errSyntax = errors.New("invalid JSON")

func syntaxErr(i int, what string) error {
	return fmt.Errorf("%w at byte %d: %s", errSyntax, i, what)
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// validValue checks the JSON value that starts at b[i] (no leading space)
// and returns the index just past it. It accepts exactly what
// encoding/json.Valid accepts (checked by FuzzScanAgreesWithStdlib).
func validValue(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return i, syntaxErr(i, "unexpected end")
	}
	switch c := b[i]; {
	case c == '"':
		return validString(b, i)
	case c == '{':
		return validObject(b, i, depth+1)
	case c == '[':
		return validArray(b, i, depth+1)
	case c == '-' || (c >= '0' && c <= '9'):
		return validNumber(b, i)
	case c == 't':
		return literal(b, i, "true")
	case c == 'f':
		return literal(b, i, "false")
	case c == 'n':
		return literal(b, i, "null")
	default:
		return i, syntaxErr(i, fmt.Sprintf("unexpected %q", c))
	}
}

func literal(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, syntaxErr(i, "bad literal")
	}
	return i + len(lit), nil
}

// plain marks the bytes a JSON string may hold without further checks:
// everything but the quote, the backslash and control characters. The
// table keeps the common case a tight loop (issue #6: one scan per message).
var plain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// plainRun returns the length of the run of plain bytes at the start of b.
// Long strings (a 1 MiB text argument) spend their time here, so it checks
// eight bytes at a time (SWAR; Parse of a 1 MiB string went from ~1.2 to
// ~4.5 GB/s) and lets the table loop find the exact byte in the word that
// holds one: the words never skip a special byte, at worst stop early.
func plainRun(b []byte) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i <= len(b)-8; i += 8 {
		w := binary.LittleEndian.Uint64(b[i : i+8])
		// (x - n*ones) &^ x & highs is non-zero iff some byte of x is
		// below n (for n <= 0x80). XOR with 0x02 turns '"' (0x22) into
		// 0x20 and keeps control bytes below 0x20 (and all others at or
		// above 0x21), so one "below 0x21" test finds both; XOR with
		// '\\' turns a backslash into zero ("below 1").
		cq := w ^ 0x02*ones
		bs := w ^ '\\'*ones
		if ((cq-0x21*ones)&^cq|(bs-ones)&^bs)&highs != 0 {
			break
		}
	}
	for i < len(b) && plain[b[i]] {
		i++
	}
	return i
}

func validString(b []byte, i int) (int, error) {
	i++ // opening quote
	for {
		i += plainRun(b[i:])
		if i >= len(b) {
			return i, syntaxErr(i, "unterminated string")
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, nil
		case c == '\\':
			if i+1 >= len(b) {
				return i, syntaxErr(i, "unexpected end in string")
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if len(b)-i < 6 || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					return i, syntaxErr(i, "bad \\u escape")
				}
				i += 6
			default:
				return i, syntaxErr(i, "bad escape")
			}
		default:
			return i, syntaxErr(i, "control character in string")
		}
	}
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func validNumber(b []byte, i int) (int, error) {
	start := i
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	default:
		return start, syntaxErr(i, "bad number")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return start, syntaxErr(i, "bad fraction")
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return start, syntaxErr(i, "bad exponent")
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	return i, nil
}

func validObject(b []byte, i, depth int) (int, error) {
	if depth > maxDepth {
		return i, syntaxErr(i, "nested too deeply")
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return i, syntaxErr(i, "expected object key")
		}
		var err error
		if i, err = validString(b, i); err != nil {
			return i, err
		}
		i = skipSpace(b, i)
		if i >= len(b) || b[i] != ':' {
			return i, syntaxErr(i, "expected ':'")
		}
		i = skipSpace(b, i+1)
		if i, err = validValue(b, i, depth); err != nil {
			return i, err
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return i, syntaxErr(i, "unterminated object")
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return i + 1, nil
		default:
			return i, syntaxErr(i, "expected ',' or '}'")
		}
	}
}

func validArray(b []byte, i, depth int) (int, error) {
	if depth > maxDepth {
		return i, syntaxErr(i, "nested too deeply")
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for {
		var err error
		if i, err = validValue(b, i, depth); err != nil {
			return i, err
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return i, syntaxErr(i, "unterminated array")
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case ']':
			return i + 1, nil
		default:
			return i, syntaxErr(i, "expected ',' or ']'")
		}
	}
}

// skipValue returns the index just past the value at b[i], for bytes that
// have already been validated: it only balances brackets and strings.
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default: // number or literal
		for i < len(b) {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
			i++
		}
		return i
	}
}

// skipString returns the index just past the validated string at b[i]:
// it jumps from quote to quote (memchr speed) and checks only whether a
// quote is escaped.
func skipString(b []byte, i int) int {
	i++
	for {
		j := bytes.IndexByte(b[i:], '"')
		if j < 0 {
			return len(b)
		}
		i += j
		bs := 0
		for k := i - 1; k >= 0 && b[k] == '\\'; k-- {
			bs++
		}
		i++
		if bs%2 == 0 {
			return i
		}
	}
}

// keyEquals reports whether the raw JSON string token tok (quotes
// included) decodes to key. Escaped keys are rare, so they take the slow path.
func keyEquals(tok []byte, key string) bool {
	inner := tok[1 : len(tok)-1]
	if len(inner) == len(key) && string(inner) == key {
		return true
	}
	for _, c := range inner {
		if c == '\\' {
			var s string
			return json.Unmarshal(tok, &s) == nil && s == key
		}
	}
	return false
}

// Span locates a value inside a frame's bytes: b[Start:End]. The zero Span
// means "absent" (no JSON value ends at offset 0).
type Span struct{ Start, End int }

// Ok reports whether the span locates a value.
func (s Span) Ok() bool { return s.End > 0 }

// field finds key among the members of the validated object at b[obj],
// returning the span of its value; with duplicate keys the last one wins,
// as in encoding/json.
func field(b []byte, obj Span, key string) Span {
	if !obj.Ok() || b[obj.Start] != '{' {
		return Span{}
	}
	var found Span
	i := skipSpace(b, obj.Start+1)
	for i < obj.End && b[i] == '"' {
		kEnd := skipString(b, i)
		match := keyEquals(b[i:kEnd], key)
		i = skipSpace(b, kEnd)
		i = skipSpace(b, i+1) // ':'
		vEnd := skipValue(b, i)
		if match {
			found = Span{i, vEnd}
		}
		i = skipSpace(b, vEnd)
		if i < obj.End && b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	return found
}
