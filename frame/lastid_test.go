package frame

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
)

// lastMember decodes msg (a valid JSON object) and returns its last
// top-level member's key and raw value.
func lastMember(msg []byte) (key string, val []byte, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(msg))
	t, err := dec.Token()
	if err != nil || t != json.Delim('{') {
		return "", nil, false
	}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return "", nil, false
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return "", nil, false
		}
		key, val = kt.(string), v
	}
	return key, val, key != "" || val != nil
}

// topIDs: every value of a top-level "id" member (duplicates allowed).
func topIDs(msg []byte) [][]byte {
	dec := json.NewDecoder(bytes.NewReader(msg))
	dec.Token()
	var ids [][]byte
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return ids
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return ids
		}
		if kt.(string) == "id" {
			ids = append(ids, v)
		}
	}
	return ids
}

func checkLastID(t *testing.T, msg []byte) {
	if !json.Valid(msg) {
		return
	}
	b := bytes.TrimLeft(msg, " \t\r\n")
	if len(b) == 0 || b[0] != '{' {
		return
	}
	tail := msg[len(msg)-min(tailLen, len(msg)):]
	got := lastID(tail)
	k, v, ok := lastMember(msg)
	if !ok {
		if got != nil {
			t.Fatalf("empty object %q: lastID %q", msg, got)
		}
		return
	}
	// the raw key as written, to tell "id" from "\u0069d"
	if k == "id" && (v[0] == '"' || v[0] == '-' || isDigit(v[0])) && bytes.Contains(msg, []byte(`"id"`)) && len(v)+8 < tailLen {
		if got == nil || !bytes.Equal(got, v) {
			// tolerate an escaped key spelling only
			if got == nil && !bytes.Contains(tail, []byte(`"id"`)) {
				return
			}
			if got == nil {
				if bytes.HasSuffix(bytes.TrimRight(msg, " \t\r\n"), []byte("}")) && rawIDLast(msg, v) && bytes.LastIndex(msg, []byte(`"id"`)) > len(msg)-len(tail) {
					t.Fatalf("last member \"id\" %s written plainly, lastID nil for %q", v, msg)
				}
				return
			}
			t.Fatalf("last member id %s, lastID %s for %q", v, got, msg)
		}
		return
	}
	if got != nil {
		for _, id := range topIDs(msg) {
			if bytes.Equal(id, got) {
				return
			}
		}
		t.Fatalf("lastID %s is no top-level id of %q (last member %q=%s)", got, msg, k, v)
	}
}

func FuzzLastIDAgreesWithStdlib(f *testing.F) {
	for _, s := range []string{
		`{"id":5}`, `{"a":"x\"id\":5}","id":"q"}`, `{"a":{"id":5}}`, `{"a":[{"id":5}]}`,
		`{"a":"\"id\":5","b":"x"}`, `{"a":"x\\","id":7}`, `{"a":"x\\\",\"id\":7"}`,
		`{ "id" : -1.5e3 } `, `{"\u0069d":5}`, `{"x\"id":5}`, `{"a":1,"id":null}`,
		`{"a":"` + strings.Repeat("y", 600) + `\",\"id\":9}"}`,
		`{"a":"` + strings.Repeat("\\\\", 300) + `\",\"id\":9"}`,
		`{"a":"` + strings.Repeat("\\\"", 300) + `","id":9}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) { checkLastID(t, msg) })
}

func TestLastIDTable(t *testing.T) {
	long := strings.Repeat("z", 700)
	for _, tt := range []struct{ msg, want string }{
		{`{"result":{},"jsonrpc":"2.0","id":5}`, "5"},
		{`{"result":{"id":5}}`, ""},
		{`{"result":[1,{"id":5}]}`, ""},
		{`{"text":"` + long + `,\"id\":5}"}`, ""},
		{`{"text":"` + long + `\",\"id\":5}"}`, ""},
		{`{"text":"` + long + `\\\",\"id\":\"5\"}"}`, ""},
		{`{"text":"a\\","id":"b"}`, `"b"`},
		{`{"text":"a\\\"","id":"b\\"}`, `"b\\"`},
		{"{\"a\":1,\n \"id\" :\t\"x y\" \r\n}", `"x y"`},
		{`[{"id":5}]`, ""},
		{`{"id":5,"x":{"id":6}}`, ""},
		{`{"x":"` + long + `", "id": 12 }`, "12"},
		{`{"x":"\"id\":4"}`, ""},
		{`{"x\",\"id":4}`, ""},
		{`{"x":true,"id":true}`, ""},
		{`{"x":1,"id":01}`, ""},
	} {
		m := []byte(tt.msg)
		got := lastID(m[len(m)-min(tailLen, len(m)):])
		if string(got) != tt.want {
			t.Errorf("%.80q…: lastID %q, want %q", tt.msg, got, tt.want)
		}
	}
}

// The tail kept for an oversized line is that line's last bytes, whatever
// the chunking, CRLF, buffer boundaries, EOF without newline.
func TestTailMatchesLine(t *testing.T) {
	const max = 1000
	for _, size := range []int{1001, 1002, 1500, 4095, 4096, 4097, 64 << 10, 64<<10 - 1, 64<<10 + 1, 64<<10 + 511, 64<<10 + 513, 200 << 10} {
		var sb strings.Builder
		for i := 0; sb.Len() < size; i++ {
			sb.WriteByte(byte('a' + i%26))
			if i%97 == 0 {
				sb.WriteByte('0' + byte(i%10))
			}
		}
		line := sb.String()[:size]
		for _, ending := range []string{"\n", "\r\n", ""} {
			for _, prefix := range []string{"", "{}\n", strings.Repeat("q", 700) + "\n"} {
				for _, chunk := range []int{1, 7, 511, 512, 513, 4096, 65536, 1 << 20} {
					if chunk == 1 && size > 5000 {
						continue
					}
					in := prefix + line + ending
					if ending != "" {
						in += "{\"n\":1}\n"
					}
					lr := NewLineReader(&chunked{[]byte(in), chunk}, max)
					var err error
					for {
						_, err = lr.Next()
						if err != nil {
							break
						}
					}
					if !errors.Is(err, ErrTooLong) {
						t.Fatalf("size %d ending %q chunk %d: %v", size, ending, chunk, err)
					}
					want := line[len(line)-min(tailLen, len(line)):]
					got := strings.TrimRight(string(lr.Tail()), "\r")
					wantT := strings.TrimRight(want, "\r")
					if ending == "\r\n" {
						// the kept tail may include the CR: compare the last 511
						wantT = line[len(line)-min(tailLen-1, len(line)):]
						if len(got) > len(wantT) {
							got = got[len(got)-len(wantT):]
						}
					}
					if got != wantT {
						t.Fatalf("size %d ending %q prefix %d chunk %d: tail %d bytes …%q, want …%q", size, ending, len(prefix), chunk, len(got), last(got, 40), last(wantT, 40))
					}
					if ending != "" {
						nx, err := lr.Next()
						if err != nil || string(nx) != `{"n":1}` {
							t.Fatalf("next %q %v", nx, err)
						}
					}
					if _, err := lr.Next(); err != io.EOF {
						t.Fatalf("want EOF, %v", err)
					}
				}
			}
		}
	}
}

func last(s string, n int) string { return s[len(s)-min(n, len(s)):] }

func rawIDLast(msg, v []byte) bool {
	b := bytes.TrimRight(msg, " \t\r\n")
	b = bytes.TrimRight(b[:len(b)-1], " \t\r\n")
	if !bytes.HasSuffix(b, v) {
		return false
	}
	b = bytes.TrimRight(b[:len(b)-len(v)], " \t\r\n")
	if !bytes.HasSuffix(b, []byte(":")) {
		return false
	}
	b = bytes.TrimRight(b[:len(b)-1], " \t\r\n")
	return bytes.HasSuffix(b, []byte(`"id"`)) && !bytes.HasSuffix(b, []byte(`\"id"`))
}
