package frame

import (
	"errors"
	"strings"
	"testing"
)

// A message of exactly the cap is accepted with LF and CRLF framing alike:
// the CR of the line ending was counted as part of the message (Windows
// hosts and some Python hosts write CRLF; from the eleventh review).
func TestCRLFLineAtTheCap(t *testing.T) {
	msg := strings.Repeat("x", 10)
	for _, ending := range []string{"\n", "\r\n", "\r\n{}\n"} {
		lr := NewLineReader(strings.NewReader(msg+ending), 10)
		line, err := lr.Next()
		if errors.Is(err, ErrTooLong) || string(line) != msg {
			t.Errorf("ending %q: a %d-byte message under a cap of 10: %q, %v", ending, len(msg), line, err)
		}
	}
}

// TestOversizedIDLast: the id of an oversized message written last (the
// TypeScript SDK's order) is read from the line's end, whether the reader
// skipped the line in pieces or had it whole (from the
// README review, the fifteenth: such answers left their requests waiting
// for --timeout).
func TestOversizedIDLast(t *testing.T) {
	big := strings.Repeat("x", 100<<10)
	for _, tt := range []struct {
		line, id string
		response bool
	}{
		{`{"result":{"content":[{"type":"text","text":"` + big + `"}]},"jsonrpc":"2.0","id":42}`, "42", true},
		{`{"method":"sampling/createMessage","params":{"m":"` + big + `"},"jsonrpc":"2.0","id":"s-\"7\\\\"}` + "\r", `"s-\"7\\\\"`, false},
		{`{"result":{"x":"` + big + `","id":3}}`, "", true},
		{`{"result":"` + big + `","id":-1.5e3}`, "-1.5e3", true},
	} {
		for _, chunk := range []int{7, 4096, 1 << 20} {
			lr := NewLineReader(&chunked{[]byte(tt.line + "\n{}\n"), chunk}, 1000)
			head, err := lr.Next()
			if !errors.Is(err, ErrTooLong) {
				t.Fatalf("chunk %d: %v", chunk, err)
			}
			h := PeekOversized(head, lr.Tail())
			if string(h.ID) != tt.id || h.Response != tt.response {
				t.Errorf("chunk %d: id %s response %v, want %s %v", chunk, h.ID, h.Response, tt.id, tt.response)
			}
			if next, err := lr.Next(); err != nil || string(next) != "{}" {
				t.Errorf("chunk %d: next line %q %v", chunk, next, err)
			}
		}
	}
}

// FuzzPeekOversized: whatever the first and last bytes of an oversized
// line, reading them never panics, and an id found is one JSON string or
// number (the bridge writes it back as an id).
func FuzzPeekOversized(f *testing.F) {
	f.Add([]byte(`{"jsonrpc":"2.0","id":7,"result":{"x":"`), []byte(`xx"}}`))
	f.Add([]byte(`{"result":{"x":"`), []byte(`xx"},"jsonrpc":"2.0","id":"a\"b"}`))
	f.Add([]byte(`[{"jsonrpc":"2.0","id":1`), []byte(`,"id":2}]`))
	f.Add([]byte(`{"method":"m","params":{"a":"`), []byte(`"},"id":-1.5e3 }`+"\r"))
	f.Fuzz(func(t *testing.T, head, tail []byte) {
		h := PeekOversized(head, tail)
		if h.ID == nil {
			return
		}
		if !Valid(h.ID) || (h.ID[0] != '"' && h.ID[0] != '-' && !isDigit(h.ID[0])) {
			t.Fatalf("id %q from head %q tail %q", h.ID, head, tail)
		}
	})
}
