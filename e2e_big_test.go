//go:build linux

package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/internal/testserver"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// bigHTTPBackend is httpBackend with go-sdk's 4 MiB request body cap lifted.
func bigHTTPBackend(t *testing.T, name string) string {
	srv := testserver.New(name)
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{MaxRequestBodyBytes: -1})
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts.URL + "/mcp"
}

// bigSSEBackend is sseBackend with the POST body cap lifted. go-sdk's SSE
// server has no cap on the events it writes (DefaultMaxEventSize, 16 MiB,
// bounds only its own SSE client), so 16 MiB is tested on SSE as well.
func bigSSEBackend(t *testing.T, name string) string {
	srv := testserver.New(name)
	h := mcp.NewSSEHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.SSEOptions{MaxRequestBodyBytes: -1})
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts.URL + "/sse"
}

// TestSixteenMiBEveryKind sends a 16 MiB echo through the real binary to a
// stdio, a streamable-HTTP and a legacy SSE backend, one call at a time,
// and checks the text comes back whole.
func TestSixteenMiBEveryKind(t *testing.T) {
	if testing.Short() {
		t.Skip("16 MiB round trips in -short mode")
	}
	const size = 16 << 20
	// Plain ASCII that JSON does not escape, and not periodic in a power
	// of two, so a dropped or repeated block changes the checksum.
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-_."
	var sb strings.Builder
	sb.Grow(size)
	for sb.Len() < size {
		sb.WriteString(alphabet[:min(len(alphabet), size-sb.Len())])
	}
	text := sb.String()
	sum := sha256.Sum256([]byte(text))
	want := hex.EncodeToString(sum[:])

	httpURL := bigHTTPBackend(t, "h")
	sseURL := bigSSEBackend(t, "s")
	p := startBridge(t, serverEnvFor("l"), "--stdio", stdioBackend("l"), "--http", "h="+httpURL, "--sse", "s="+sseURL)
	handshake(t, p)

	start := time.Now()
	for i, kind := range []struct{ backend, what string }{{"l", "stdio"}, {"h", "streamable HTTP"}, {"s", "SSE"}} {
		id := string(rune('1' + i))
		p.Send(`{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"` + kind.backend + `_echo","arguments":{"text":"` + text + `"}}}`)
		waitBig(t, p, id, 2*time.Minute)
		r := p.Response(id)
		if r.IsError() {
			t.Errorf("%s: 16 MiB echo failed: %.400s", kind.what, r.Raw())
			continue
		}
		var res struct {
			Content []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"content"`
			IsError bool `json:"isError"`
		}
		if err := json.Unmarshal(r.Result(), &res); err != nil {
			t.Errorf("%s: reading the result: %v", kind.what, err)
			continue
		}
		if res.IsError || len(res.Content) != 1 || res.Content[0].Type != "text" {
			t.Errorf("%s: unexpected result shape: %.400s", kind.what, r.Raw())
			continue
		}
		got := res.Content[0].Text
		gotSum := sha256.Sum256([]byte(got))
		if len(got) != size || hex.EncodeToString(gotSum[:]) != want {
			t.Errorf("%s: echoed %d bytes with sha256 %x; want %d bytes with sha256 %s", kind.what, len(got), gotSum, size, want)
		}
		t.Logf("%s: 16 MiB round trip done %v after the first call began", kind.what, time.Since(start).Round(time.Millisecond))
	}
	// A small call still works after the big ones.
	p.Send(`{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"s_echo","arguments":{"text":"small after big"}}}`)
	if r := p.Response("9"); !strings.Contains(string(r.Result()), "small after big") {
		t.Errorf("small call after the big ones: %.400s", r.Raw())
	}
}

// waitBig waits up to within for the answer with raw id id, before
// p.Response (whose 15 s bound is tight for 16 MiB through go-sdk's JSON
// under -race). It looks only at the head of each line, so polling does
// not re-parse the big answers already read; p.Response then checks the
// answer for real.
func waitBig(t *testing.T, p *bridgeProc, id string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if p.Line(func(l []byte) bool { return headID(l) == id }) != nil {
			return
		}
		select {
		case <-p.Wire.EOF:
			t.Fatalf("mcpbridge's stdout ended while waiting for answer %s", id)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("no answer %s within %v; got:\n%s", id, within, p.Dump())
}

// headID is the id of a message whose id comes before its result, error
// or params (as go-sdk and mcpbridge write them), else "".
func headID(line []byte) string {
	dec := json.NewDecoder(bytes.NewReader(line[:min(len(line), 512)]))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return ""
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return ""
		}
		k, _ := key.(string)
		if k == "result" || k == "error" || k == "params" {
			return ""
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return ""
		}
		if k == "id" {
			return string(v)
		}
	}
	return ""
}
