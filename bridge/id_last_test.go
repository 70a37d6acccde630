package bridge

// From the fifteenth review (a newcomer's fact check of the README):
// oversized messages whose id comes after the big member, as the official
// TypeScript SDK writes every response ({result, jsonrpc, id}; protocol.js
// _onrequest). Each test failed before the line's end was read for the id.

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/backends"
	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
)

// README, Faults survived: "a stdio backend's answer is over --max-message |
// the host's request gets -32603 at once". A TypeScript-SDK server writes
// {"result":…,"jsonrpc":"2.0","id":N}: the id is at the end of the line,
// the skipped line's head does not show it, and the host's call waits for
// --timeout instead.
func TestOversizedBackendAnswerIDLast(t *testing.T) {
	big := &scriptedServer{name: "a", caps: `{"tools":{}}`, handle: func(f *frame.Frame, write func(string, ...any)) {
		switch f.Method {
		case "tools/call":
			write(`{"result":{"content":[{"type":"text","text":"%s"}]},"jsonrpc":"2.0","id":%s}`, strings.Repeat("x", 8000), f.ID())
		default:
			if f.Kind == frame.Request {
				write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"method not found"}}`, f.ID())
			}
		}
	}}
	cfg := Config{MaxLine: 4096, Timeout: 30 * time.Second, Open: func(ctx context.Context, be config.Backend, opts backends.Options) (backends.Session, error) {
		return serveScriptedWith(t, big, opts), nil
	}}
	b := bridgedWire(t, cfg, namedServer{name: "a"})
	handshake(b.wire)
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"big","arguments":{}}}`)
	if !waitCount(b.wire, 8*time.Second, func(f *frame.Frame) bool { return f.Kind == frame.Response && string(f.ID()) == "1" }) {
		t.Errorf("no answer to the host's call 8s after the backend's oversized answer (id written last, as the TypeScript SDK does); it comes only at --timeout (30s here, 5m by default)")
	}
}

// README, errors table: "The host's *answer* to a backend's request ...
// one that is too long ... is dropped and the backend gets -32603 for its
// request instead". A TypeScript-SDK host (its client answers a server's
// request as {"result":…,"jsonrpc":"2.0","id":N}) gets no such luck: the
// backend's request is never ended, so the tool call waiting on it hangs
// until --timeout.
func TestOversizedHostAnswerIDLast(t *testing.T) {
	b := bridgedWire(t, Config{MaxLine: 4096, Timeout: 30 * time.Second}, namedServer{"a", testServer("a")})
	handshake(b.wire)
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sample","arguments":{}}}`)
	req := b.WaitFor("sampling request", func(f *frame.Frame) bool { return f.Method == "sampling/createMessage" })
	big := strings.Repeat("x", 5000)
	b.Send(`{"result":{"role":"assistant","model":"m","content":{"type":"text","text":"` + big + `"}},"jsonrpc":"2.0","id":` + string(req.ID()) + `}`)
	if !waitCount(b.wire, 8*time.Second, func(f *frame.Frame) bool { return f.Kind == frame.Response && string(f.ID()) == "1" }) {
		t.Errorf("the sampling tool call is still waiting 8s after the host's oversized answer (id written last, as the TypeScript SDK does) was dropped; the backend was never told")
	}
	// Let the go-sdk server's handler end, or the harness's cleanup
	// (ServerSession.Close) waits for it forever.
	b.Send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}`)
	time.Sleep(500 * time.Millisecond)
}

// README, errors table: "-32603 | a backend failed: `data.backend` names it
// and `data.reason` says why". The -32603 that replaces a stdio backend's
// oversized answer has no data at all (backends/stdio.go tooLong), unlike
// every other backend failure (backends.failure, backendErrorData).
func TestOversizedBackendAnswerErrorNamesTheBackend(t *testing.T) {
	big := &scriptedServer{name: "a", caps: `{"tools":{}}`, handle: func(f *frame.Frame, write func(string, ...any)) {
		switch f.Method {
		case "tools/call":
			write(`{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"%s"}]}}`, f.ID(), strings.Repeat("x", 8000))
		default:
			if f.Kind == frame.Request {
				write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"method not found"}}`, f.ID())
			}
		}
	}}
	cfg := Config{MaxLine: 4096, Timeout: 12 * time.Second, Open: func(ctx context.Context, be config.Backend, opts backends.Options) (backends.Session, error) {
		return serveScriptedWith(t, big, opts), nil
	}}
	b := bridgedWire(t, cfg, namedServer{name: "a"})
	handshake(b.wire)
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"big","arguments":{}}}`)
	r := b.Response("1")
	var e struct {
		Code int `json:"code"`
		Data struct {
			Backend string `json:"backend"`
			Reason  string `json:"reason"`
		} `json:"data"`
	}
	if err := json.Unmarshal(r.Error(), &e); err != nil || e.Code != -32603 || e.Data.Backend != "a" || e.Data.Reason == "" {
		t.Errorf("want -32603 with data.backend \"a\" and a data.reason; got %s", r.Raw())
	}
}
