package frame

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		kind    Kind
		method  string
		id      string
		wantErr error
	}{
		{"request int id", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}`, Request, "tools/call", "1", nil},
		{"request id 0", `{"jsonrpc":"2.0","id":0,"method":"ping"}`, Request, "ping", "0", nil},
		{"request id beyond 2^53", `{"jsonrpc":"2.0","id":9007199254740993,"method":"ping"}`, Request, "ping", "9007199254740993", nil},
		{"request fraction id", `{"jsonrpc":"2.0","id":1.5,"method":"ping"}`, Request, "ping", "1.5", nil},
		{"request string id", `{"id":"a\"b","jsonrpc":"2.0","method":"ping"}`, Request, "ping", `"a\"b"`, nil},
		{"escaped key and method", `{"jsonrpc":"2.0","\u0069d":7,"method":"tools\/list"}`, Request, "tools/list", "7", nil},
		{"notification", ` {"jsonrpc":"2.0","method":"notifications/initialized"} `, Notification, "notifications/initialized", "", nil},
		{"response", `{"jsonrpc":"2.0","id":"x","result":{"a":[1,2,{"b":null}]}}`, Response, "", `"x"`, nil},
		{"error response null id", `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"m"}}`, Response, "", "null", nil},
		{"not json", `hello`, Invalid, "", "", ErrParse},
		{"truncated", `{"jsonrpc":"2.0","id":1`, Invalid, "", "", ErrParse},
		{"trailing data", `{"jsonrpc":"2.0","id":1,"method":"a"} x`, Invalid, "", "", ErrParse},
		{"array is not a message", `[1]`, Invalid, "", "", ErrInvalid},
		{"wrong version", `{"jsonrpc":"1.0","id":1,"method":"a"}`, Invalid, "", "1", ErrInvalid},
		{"null request id", `{"jsonrpc":"2.0","id":null,"method":"a"}`, Invalid, "a", "", ErrInvalid},
		{"bool id", `{"jsonrpc":"2.0","id":true,"method":"a"}`, Invalid, "", "", ErrInvalid},
		{"result and error", `{"jsonrpc":"2.0","id":1,"result":1,"error":{}}`, Invalid, "", "1", ErrInvalid},
		{"scalar params", `{"jsonrpc":"2.0","id":1,"method":"a","params":3}`, Invalid, "", "1", ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse([]byte(tt.in))
			if !errors.Is(err, tt.wantErr) || (err != nil) != (tt.wantErr != nil) {
				t.Fatalf("Parse error = %v, want %v", err, tt.wantErr)
			}
			if f == nil {
				return
			}
			if f.Kind != tt.kind || f.Method != tt.method || string(f.ID()) != tt.id {
				t.Errorf("got kind %v method %q id %q; want %v %q %q", f.Kind, f.Method, f.ID(), tt.kind, tt.method, tt.id)
			}
		})
	}
}

// TestReplaceTwice: a span edited twice is written once, with the last
// value (a held log message tagged twice crashed the bridge's writer).
func TestReplaceTwice(t *testing.T) {
	f, err := Parse([]byte(`{"jsonrpc":"2.0","method":"notifications/message","params":{"logger":"core","data":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	s := f.Param("logger")
	f.Replace(s, []byte(`"a/core"`))
	f.Replace(s, []byte(`"b/core"`))
	want := `{"jsonrpc":"2.0","method":"notifications/message","params":{"logger":"b/core","data":1}}`
	if got := string(f.Encoded()); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if f.Len() != len(want) {
		t.Fatalf("Len %d, want %d", f.Len(), len(want))
	}
}

func TestEditsKeepEverythingElse(t *testing.T) {
	in := `{"jsonrpc":"2.0","id":"front-7","method":"tools/call","params":{"name":"echo","arguments":{"big":12345678901234567890,"x":"\u00e9"},"_meta":{"progressToken":0,"vendor/k":[1.0e3]}},"x-unknown":{}}`
	f, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	tok := f.Param("_meta", "progressToken")
	if got := string(f.Bytes(tok)); got != "0" {
		t.Fatalf("progress token = %q", got)
	}
	f.Replace(tok, []byte("42"))
	f.SetID([]byte("17"))
	f.SetID([]byte("18")) // the last SetID wins, no double edit
	want := strings.Replace(strings.Replace(in, `"front-7"`, "18", 1), `"progressToken":0`, `"progressToken":42`, 1)
	if got := string(f.Encoded()); got != want {
		t.Fatalf("encoded\n got %s\nwant %s", got, want)
	}
	var buf bytes.Buffer
	if _, err := f.WriteTo(&buf); err != nil || buf.String() != want {
		t.Fatalf("WriteTo = %q, %v", buf.String(), err)
	}
	if f.Len() != len(want) {
		t.Fatalf("Len = %d, want %d", f.Len(), len(want))
	}
	if got := string(bytes.Join(f.Segments(), nil)); got != want {
		t.Fatalf("Segments joined\n got %s\nwant %s", got, want)
	}
	// A frame without edits, then an insertion at the very start.
	g, _ := Parse([]byte(`{"jsonrpc":"2.0","id":1,"method":"m"}`))
	if segs := g.Segments(); len(segs) != 1 || string(segs[0]) != string(g.Raw()) {
		t.Fatalf("unedited Segments = %q", segs)
	}
	g.Replace(Span{0, 0}, []byte(" "))
	g.SetID([]byte(`"x"`))
	if got, want := string(bytes.Join(g.Segments(), nil)), ` {"jsonrpc":"2.0","id":"x","method":"m"}`; got != want {
		t.Fatalf("Segments joined = %s, want %s", got, want)
	}
}

func TestInsertMember(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{`{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":1}}`, `{"jsonrpc":"2.0","method":"notifications/message","params":{"logger":"b1","level":"info","data":1}}`},
		{`{"jsonrpc":"2.0","method":"notifications/message","params":{ }}`, `{"jsonrpc":"2.0","method":"notifications/message","params":{"logger":"b1" }}`},
	} {
		f, err := Parse([]byte(tt.in))
		if err != nil {
			t.Fatal(err)
		}
		f.InsertMember(f.Param(), "logger", []byte(`"b1"`))
		if got := string(f.Encoded()); got != tt.want {
			t.Errorf("got %s, want %s", got, tt.want)
		}
	}
}

func TestNewlinesBlanked(t *testing.T) {
	f, err := Parse([]byte("{\n\"jsonrpc\": \"2.0\",\r\n\"id\": 1,\n\"result\": {\"text\": \"a\\nb\"}\n}"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.ContainsAny(f.Encoded(), "\r\n") {
		t.Fatalf("newline survived: %q", f.Encoded())
	}
	var v map[string]any
	if err := json.Unmarshal(f.Encoded(), &v); err != nil || v["result"].(map[string]any)["text"] != "a\nb" {
		t.Fatalf("content changed: %v %v", v, err)
	}
}

func TestLineReader(t *testing.T) {
	big := strings.Repeat("x", 200<<10)
	in := "\n  {\"a\":1}  \r\n" + big + "\n{\"b\":2}\n" + `{"c":3}`
	lr := NewLineReader(strings.NewReader(in), 100<<10)
	var got []string
	for {
		line, err := lr.Next()
		if err == io.EOF {
			break
		}
		if errors.Is(err, ErrTooLong) {
			if len(line) != headLen {
				t.Errorf("head of long line has %d bytes", len(line))
			}
			got = append(got, "TOO LONG")
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, truncateForTest(line))
	}
	want := []string{`{"a":1}`, "TOO LONG", `{"b":2}`, `{"c":3}`}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestLineReaderLongLineUnderCap(t *testing.T) {
	line := `{"p":"` + strings.Repeat("y", 3<<20) + `"}`
	lr := NewLineReader(strings.NewReader(line+"\n"), 0)
	got, err := lr.Next()
	if err != nil || string(got) != line {
		t.Fatalf("len %d, err %v", len(got), err)
	}
}

// FuzzScanAgreesWithStdlib checks the validating scanner against
// encoding/json, and that an unedited frame is written back byte for byte.
func FuzzScanAgreesWithStdlib(f *testing.F) {
	for _, s := range []string{`{}`, `{"jsonrpc":"2.0","id":1,"method":"x","params":{"a":[1,-0.5e+3,"\u00e9\n",true,false,null]}}`, `[1,2`, `"\ud800"`, `01`, `-`, `1.e5`, `{"a":1,}`, "\"\x01\"", `{"a" : { "b" : [ ] } }`,
		// Strings longer than the scanner's 8-byte words.
		`{"text":"0123456789abcdef\"quoted\" caf\u00e9 \\ tab\t0123456789abcdef"}`, "\"0123456789abcdef\x1f0123456789\"", "\"01234567\\x01234567\""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := Valid(b), json.Valid(b); got != want {
			t.Fatalf("Valid(%q) = %v, encoding/json says %v", b, got, want)
		}
		in := bytes.Clone(b)
		fr, err := Parse(in)
		if err != nil {
			return
		}
		want := bytes.TrimSpace(b)
		got := fr.Encoded()
		if len(got) != len(want) || bytes.ContainsAny(got, "\r\n") {
			t.Fatalf("round trip changed %q into %q", want, got)
		}
		if fr.Kind == Request || (fr.Kind == Response && string(fr.ID()) != "null") {
			fr.SetID([]byte(`"new"`))
			g, err := Parse(fr.Encoded())
			if err != nil || string(g.ID()) != `"new"` || g.Kind != fr.Kind || g.Method != fr.Method {
				t.Fatalf("after SetID: %v %q", err, fr.Encoded())
			}
		}
	})
}

func truncateForTest(b []byte) string {
	if len(b) > 100 {
		return string(b[:100]) + "…"
	}
	return string(b)
}

// chunked reads at most n bytes at a time, like a pipe under load.
type chunked struct {
	b []byte
	n int
}

func (c *chunked) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	k := min(len(p), c.n, len(c.b))
	copy(p, c.b[:k])
	c.b = c.b[k:]
	return k, nil
}

// FuzzLineReader checks the line reader against strings.Split for any
// input and any read size, with a cap that some lines exceed.
func FuzzLineReader(f *testing.F) {
	f.Add([]byte("a\nbb\n\n  c  \n"), uint16(1), uint16(3))
	f.Add([]byte(strings.Repeat("x", 70000)+"\ny\n"), uint16(4096), uint16(65535))
	f.Fuzz(func(t *testing.T, in []byte, chunk, max uint16) {
		if chunk == 0 || max == 0 {
			return
		}
		var want []string
		for _, l := range strings.Split(string(in), "\n") {
			// An oversized line is reported even if blank: the reader
			// cannot keep it to look. The CR of a CRLF ending is not
			// counted.
			if len(strings.TrimSuffix(l, "\r")) > int(max) {
				want = append(want, "TOO LONG")
			} else if t := bytes.TrimSpace([]byte(l)); len(t) > 0 {
				want = append(want, string(t))
			}
		}
		lr := NewLineReader(&chunked{bytes.Clone(in), int(chunk)}, int(max))
		var got []string
		for {
			line, err := lr.Next()
			if err == io.EOF {
				break
			}
			if errors.Is(err, ErrTooLong) {
				got = append(got, "TOO LONG")
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, string(line))
		}
		if strings.Join(got, "\x00") != strings.Join(want, "\x00") {
			t.Fatalf("chunk %d max %d: got %d lines, want %d", chunk, max, len(got), len(want))
		}
	})
}

func TestMemberAndSetMember(t *testing.T) {
	obj := []byte(`{"description":"d","name":"echo","inputSchema":{"name":"inner"}}`)
	if got := string(Member(obj, "name")); got != `"echo"` {
		t.Errorf("Member = %s", got)
	}
	if got := string(SetMember(obj, "name", []byte(`"a_echo"`))); got != `{"description":"d","name":"a_echo","inputSchema":{"name":"inner"}}` {
		t.Errorf("SetMember = %s", got)
	}
	if got := string(SetMember([]byte(`{}`), "name", []byte(`"x"`))); got != `{"name":"x"}` {
		t.Errorf("SetMember on {} = %s", got)
	}
	if got := string(SetMember([]byte(`{"a":1}`), "name", []byte(`"x"`))); got != `{"name":"x","a":1}` {
		t.Errorf("SetMember insert = %s", got)
	}
}

// validStringBytewise is validString as it was before the word-at-a-time
// scan: the reference for TestStringScanWords.
func validStringBytewise(b []byte, i int) (int, error) {
	i++
	for {
		for i < len(b) && plain[b[i]] {
			i++
		}
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

// TestStringScanWords puts every byte value at every offset 0..17 of
// strings whose lengths straddle the 8-byte words plainRun reads, among
// fillers that neighbour the special bytes, and holds the string scanner
// to the byte-by-byte loop and to encoding/json.
func TestStringScanWords(t *testing.T) {
	// Neighbours of '"' (0x22), '\\' (0x5C) and 0x20, and bytes >= 0x80,
	// which the SWAR tests must not mistake for special ones.
	fillers := []byte{'a', ' ', '!', '#', '[', ']', 0x7F, 0x80, 0xA2, 0xDC, 0xFF}
	for n := 0; n <= 25; n++ {
		for _, fill := range fillers {
			for off := 0; off < min(n, 18); off++ {
				for c := 0; c < 256; c++ {
					s := bytes.Repeat([]byte{fill}, n)
					s[off] = byte(c)
					if got, want := plainRun(s), firstSpecial(s); got != want {
						t.Fatalf("plainRun(%q) = %d, want %d", s, got, want)
					}
					doc := append(append([]byte{'"'}, s...), `","x"]`...)
					end, err := validString(doc, 0)
					wantEnd, wantErr := validStringBytewise(doc, 0)
					if end != wantEnd || (err == nil) != (wantErr == nil) {
						t.Fatalf("validString(%q) = %d, %v; byte loop says %d, %v", doc, end, err, wantEnd, wantErr)
					}
					str := doc[:len(doc)-len(`,"x"]`)]
					if got, want := Valid(str), json.Valid(str); got != want {
						t.Fatalf("Valid(%q) = %v, encoding/json says %v", str, got, want)
					}
					if arr := append([]byte{'['}, doc...); Valid(arr) != json.Valid(arr) {
						t.Fatalf("Valid(%q) = %v, encoding/json disagrees", arr, Valid(arr))
					}
				}
			}
		}
	}
}

// firstSpecial is the index of the first byte a JSON string may not hold
// as is, or len(s).
func firstSpecial(s []byte) int {
	for i, c := range s {
		if c < 0x20 || c == '"' || c == '\\' {
			return i
		}
	}
	return len(s)
}
