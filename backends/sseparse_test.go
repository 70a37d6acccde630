package backends

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mcpbridge/mcpbridge/frame"
)

// readAll reads every event; an oversized one shows as "TOO LONG".
func readAll(t *testing.T, r io.Reader, max int) (got []string, rd *sseReader) {
	t.Helper()
	rd = newSSEReader(r, max)
	for {
		ev, err := rd.Next()
		if errors.Is(err, errEventTooLong) {
			got = append(got, fmt.Sprintf("%s|%s|TOO LONG", ev.Type, ev.ID))
			continue
		}
		if err == io.EOF {
			return got, rd
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		got = append(got, fmt.Sprintf("%s|%s|%s", ev.Type, ev.ID, ev.Data))
	}
}

func TestParseSSE(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		max   int
		want  []string
		retry time.Duration
	}{
		{"one event", "data: {\"a\":1}\n\n", 0, []string{`message||{"a":1}`}, 0},
		{"event id retry", "event: endpoint\nid: 7\nretry: 1500\ndata: /msg?s=1\n\n", 0, []string{"endpoint|7|/msg?s=1"}, 1500 * time.Millisecond},
		{"crlf", "data: a\r\ndata: b\r\n\r\n", 0, []string{"message||a\nb"}, 0},
		{"cr only", "data: a\rdata:b\r\r", 0, []string{"message||a\nb"}, 0},
		{"mixed endings", "data: a\r\n\rdata: b\n\r\n", 0, []string{"message||a", "message||b"}, 0},
		{"comments and unknown fields", ": ok\n\nfoo: bar\ndata:x\n: c\n\n", 0, []string{"message||x"}, 0},
		{"empty data ignored, id kept", "id: p1\nevent: prime\ndata:\n\ndata: y\n\n", 0, []string{"message|p1|y"}, 0},
		{"no data at all", "event: close\nretry: 10\n\n", 0, nil, 10 * time.Millisecond},
		{"data without colon", "data\ndata: z\n\n", 0, []string{"message||\nz"}, 0},
		{"only one space stripped", "data:  two\n\n", 0, []string{"message|| two"}, 0},
		{"bom", "\ufeffdata: b\n\n", 0, []string{"message||b"}, 0},
		{"bad retry ignored", "retry: 1x\nretry: -5\ndata: r\n\n", 0, []string{"message||r"}, 0},
		{"retry 0", "retry: 0\ndata: r\n\n", 0, []string{"message||r"}, 0},
		{"id with NUL ignored", "id: a\x00b\ndata: n\n\n", 0, []string{"message||n"}, 0},
		{"unterminated event dropped", "data: a\n\ndata: b\n", 0, []string{"message||a"}, 0},
		{"oversized line skipped", "data: 0123456789\n\ndata: ok\n\n", 8, []string{"message||TOO LONG", "message||ok"}, 0},
		{"oversized by joining", "data: 0123\ndata: 4567\n\nid: 3\ndata: 01234567\n\n", 8, []string{"message||TOO LONG", "message|3|01234567"}, 0},
		{"oversized by empty line", "data: 01234567\ndata\n\n", 8, []string{"message||TOO LONG"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, slow := range []bool{false, true} {
				var r io.Reader = strings.NewReader(tt.in)
				if slow {
					r = iotest.OneByteReader(r)
				}
				got, rd := readAll(t, r, tt.max)
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("slow=%v events (-want +got):\n%s", slow, diff)
				}
				if rd.Retry != tt.retry {
					t.Errorf("slow=%v retry = %v, want %v", slow, rd.Retry, tt.retry)
				}
				// A retry field given, 0 included ("reconnect at once"),
				// is told from none.
				if want := strings.Contains(tt.in, "retry: ") && tt.name != "bad retry ignored"; rd.RetrySet != want {
					t.Errorf("slow=%v RetrySet = %v, want %v", slow, rd.RetrySet, want)
				}
			}
		})
	}
}

// A complete event is returned without waiting for more bytes: the
// standalone stream may stay silent for hours after it.
func TestParseSSENoReadAhead(t *testing.T) {
	for _, in := range []string{"data: x\n\n", "data: x\r\r", "data: x\r\n\r\n", "data:\ndata: x\n\n", "\ufeffdata: x\n\n"} {
		pr, pw := io.Pipe()
		go func() { _, _ = pw.Write([]byte(in)) }() // then silence
		done := make(chan string, 1)
		go func() {
			ev, err := newSSEReader(pr, 0).Next()
			done <- fmt.Sprintf("%s %v", ev.Data, err)
		}()
		select {
		case got := <-done:
			if !strings.HasSuffix(got, "x <nil>") {
				t.Errorf("%q: %s", in, got)
			}
		case <-time.After(testWait):
			t.Errorf("%q: event not returned until more bytes came", in)
		}
		pw.Close()
	}
}

func TestParseSSEResetKeepsState(t *testing.T) {
	rd := newSSEReader(strings.NewReader("id: 5\nretry: 20\ndata: a\n\nid: 6\ndata: cut off"), 0)
	if ev, err := rd.Next(); err != nil || string(ev.Data) != "a" {
		t.Fatalf("%q %v", ev.Data, err)
	}
	if _, err := rd.Next(); err != io.EOF {
		t.Fatalf("want EOF, got %v", err)
	}
	rd.Reset(strings.NewReader("data: b\n\n"))
	ev, err := rd.Next()
	if err != nil || string(ev.Data) != "b" || ev.ID != "5" || rd.LastEventID != "5" || rd.Retry != 20*time.Millisecond {
		t.Fatalf("%+v %v, retry %v", ev, err, rd.Retry)
	}
}

// refEvents interprets an event stream the slow, obvious way, following
// the HTML standard, as the fuzz test's reference.
func refEvents(in string, max int) (events []string, lastID string, retry time.Duration) {
	in = strings.TrimPrefix(in, "\ufeff")
	var lines []string
	for {
		i := strings.IndexAny(in, "\r\n")
		if i < 0 {
			break // an unterminated last line is dropped with its event
		}
		lines = append(lines, in[:i])
		if in[i] == '\r' && i+1 < len(in) && in[i+1] == '\n' {
			i++
		}
		in = in[i+1:]
	}
	var data strings.Builder
	hasData, typ, idBuf := false, "", ""
	for _, line := range lines {
		if line == "" {
			lastID = idBuf
			d := data.String()
			switch {
			case len(d) > max:
				events = append(events, fmt.Sprintf("%s|%s|TOO LONG", eventType(typ), lastID))
			case d != "":
				events = append(events, fmt.Sprintf("%s|%s|%s", eventType(typ), lastID, d))
			}
			data.Reset()
			hasData, typ = false, ""
			continue
		}
		if line[0] == ':' {
			continue
		}
		name, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch name {
		case "data":
			if hasData {
				data.WriteByte('\n')
			}
			hasData = true
			data.WriteString(value)
		case "event":
			typ = value
		case "id":
			if !strings.Contains(value, "\x00") {
				idBuf = value
			}
		case "retry":
			if ms, err := strconv.ParseInt(value, 10, 32); err == nil && isDigits([]byte(value)) {
				retry = time.Duration(ms) * time.Millisecond
			}
		}
	}
	return events, lastID, retry
}

func FuzzParseSSE(f *testing.F) {
	for _, s := range []string{
		"data: {\"a\":1}\n\n",
		"event: endpoint\r\ndata: /m\r\n\r\n",
		"id: 1\rretry: 5\rdata: a\rdata: b\r\r",
		": c\n\ndata\n\ndata: 0123456789abcdef0123\n\n",
		"\ufeffdata:x\n\nid: a\x00\ndata: y\n\n",
	} {
		f.Add(s)
	}
	const max = 16
	f.Fuzz(func(t *testing.T, in string) {
		wantEvents, wantID, wantRetry := refEvents(in, max)
		for _, slow := range []bool{false, true} {
			var r io.Reader = strings.NewReader(in)
			if slow {
				r = iotest.OneByteReader(r)
			}
			got, rd := readAll(t, r, max)
			if diff := cmp.Diff(wantEvents, got); diff != "" {
				t.Fatalf("slow=%v %q (-want +got):\n%s", slow, in, diff)
			}
			if rd.LastEventID != wantID || rd.Retry != wantRetry {
				t.Fatalf("slow=%v %q: id %q retry %v, want %q %v", slow, in, rd.LastEventID, rd.Retry, wantID, wantRetry)
			}
		}
	})
}

// TestOversizedEventHeadAndTail: an event over the cap keeps the first
// and last bytes of its data, so that the id it answers can be found
// (written last, as the TypeScript SDK writes it), read in any pieces.
func TestOversizedEventHeadAndTail(t *testing.T) {
	big := strings.Repeat("x", 3000)
	msg := `{"result":{"t":"` + big + `"},"jsonrpc":"2.0","id":"q-9"}`
	for _, in := range []string{
		"data: " + msg + "\n\ndata: {}\n\n",
		"data: " + msg[:1500] + "\r\ndata: " + msg[1500:] + "\r\n\r\ndata: {}\r\n\r\n",
	} {
		for _, slow := range []bool{false, true} {
			var r io.Reader = strings.NewReader(in)
			if slow {
				r = iotest.OneByteReader(r)
			}
			rd := newSSEReader(r, 1000)
			_, err := rd.Next()
			if !errors.Is(err, errEventTooLong) {
				t.Fatalf("slow=%v: %v", slow, err)
			}
			h := frame.PeekOversized(rd.Head, rd.Tail)
			if string(h.ID) != `"q-9"` || !h.Response || !strings.HasPrefix(string(rd.Head), `{"result"`) {
				t.Errorf("slow=%v: id %s response %v head %.20s tail %q", slow, h.ID, h.Response, rd.Head, rd.Tail)
			}
			if ev, err := rd.Next(); err != nil || string(ev.Data) != "{}" {
				t.Errorf("slow=%v: next event %q %v", slow, ev.Data, err)
			}
		}
	}
}
