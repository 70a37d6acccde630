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
