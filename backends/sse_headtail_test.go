package backends

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"strings"
	"testing"
	"testing/iotest"
)

// chunky returns at most n bytes per Read.
type chunky struct {
	r io.Reader
	n []int
	i int
}

func (c *chunky) Read(b []byte) (int, error) {
	k := c.n[c.i%len(c.n)]
	c.i++
	if len(b) > k {
		b = b[:k]
	}
	return c.r.Read(b)
}

// TestHeadTailProperty: for random events (line splits, CR/LF/CRLF,
// chunked reads, caps), an oversized event's Head is the first
// min(4096, cap) bytes of its data and Tail is the last 512 bytes of its
// data (the data as the standard joins it, with "\n" between lines).
func TestHeadTailProperty(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	bad := 0
	for iter := 0; iter < 3000 && bad < 5; iter++ {
		max := []int{10, 100, 511, 512, 513, 1000, 4096, 5000}[rng.Intn(8)]
		eol := []string{"\n", "\r", "\r\n"}[rng.Intn(3)]
		type ev struct {
			data string
		}
		var evs []string
		var in strings.Builder
		for e := 0; e < 3; e++ {
			nl := 1 + rng.Intn(4)
			var lines []string
			for l := 0; l < nl; l++ {
				n := rng.Intn(2 * max)
				if l == 0 && n == 0 {
					n = 1
				}
				if rng.Intn(4) == 0 {
					n = max // exactly at the cap
				}
				var b strings.Builder
				for i := 0; i < n; i++ {
					b.WriteByte(byte('a' + rng.Intn(26)))
				}
				lines = append(lines, b.String())
			}
			data := strings.Join(lines, "\n")
			evs = append(evs, data)
			for _, l := range lines {
				in.WriteString("data: " + l + eol)
			}
			in.WriteString(eol)
		}
		var r io.Reader = strings.NewReader(in.String())
		switch rng.Intn(3) {
		case 1:
			r = iotest.OneByteReader(r)
		case 2:
			r = &chunky{r: r, n: []int{1 + rng.Intn(700), 1 + rng.Intn(50), 1 + rng.Intn(3000)}}
		}
		rd := newSSEReader(r, max)
		for i, data := range evs {
			got, err := rd.Next()
			if len(data) == 0 {
				continue // not dispatched: the next Next reads the next event
			}
			_ = got
			if len(data) <= max {
				if err != nil || string(got.Data) != data {
					t.Errorf("iter %d ev %d: small event %v", iter, i, err)
					bad++
				}
				continue
			}
			if !errors.Is(err, errEventTooLong) {
				t.Errorf("iter %d ev %d: %v", iter, i, err)
				bad++
				break
			}
			wantHead := data[:min(4096, max)]
			wantTail := data[max0(len(data)-512):]
			if os.Getenv("SSE_SKIP_ATCAP") != "" && atCap(data, max) {
				continue
			}
			if string(rd.Head) != wantHead || string(rd.Tail) != wantTail {
				t.Errorf("iter %d ev %d cap %d eol %q lines %v:\nhead ok %v tail ok %v\ntail %q\nwant %q", iter, i, max, eol, lineLens(data), string(rd.Head) == wantHead, string(rd.Tail) == wantTail, tailEnd(rd.Tail), tailEnd([]byte(wantTail)))
				bad++
			}
		}
	}
}

func max0(n int) int {
	if n < 0 {
		return 0
	}
	return n
}

func lineLens(s string) []int {
	var n []int
	for _, l := range strings.Split(s, "\n") {
		n = append(n, len(l))
	}
	return n
}

func tailEnd(b []byte) string {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return fmt.Sprintf("...%q|\\n at %d of %d", b[max0(i-5):min(len(b), i+5)], i, len(b))
	}
	return fmt.Sprintf("no \\n, len %d", len(b))
}

// atCap: the data reaches exactly max bytes at the end of a line that
// another data line follows.
func atCap(data string, max int) bool {
	n := 0
	ls := strings.Split(data, "\n")
	for i, l := range ls[:len(ls)-1] {
		n += len(l)
		if n == max {
			return true
		}
		if n > max {
			return false
		}
		_ = i
		n++
	}
	return false
}
