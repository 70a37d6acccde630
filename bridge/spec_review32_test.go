package bridge

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/backends"
	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
)

// Thirty-second review: the bridge against the normative text of the MCP
// specification (2025-06-18, 2025-11-25), basic utilities and server
// features as the host sees them. Each test failed before its fix; the
// comments describe the bug as it was found.

// r32Sess is a scripted backend session: handle sees every frame the
// bridge sends it (as it goes on the wire, edits applied) and may emit
// frames back.
type r32Sess struct {
	*scriptedSess
	name   string
	handle func(s *r32Sess, f *frame.Frame)
}

func (s *r32Sess) Name() string { return s.name }

func (s *r32Sess) Send(f *frame.Frame) error {
	select {
	case <-s.done:
		return backends.ErrClosed
	default:
	}
	g, err := frame.Parse(append([]byte(nil), f.Encoded()...))
	if err != nil {
		panic(err)
	}
	s.handle(s, g)
	return nil
}

// r32Init answers initialize with caps (a JSON object).
func r32Init(s *r32Sess, f *frame.Frame, caps string) bool {
	if f.Method != "initialize" {
		return false
	}
	s.emit(`{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-11-25","capabilities":%s,"serverInfo":{"name":%q,"version":"1"}}}`, f.ID(), caps, s.name)
	return true
}

// r32Run runs the router in front of the scripted sessions (in order).
func r32Run(t *testing.T, sessions ...*r32Sess) *r21Host {
	byName := map[string]*r32Sess{}
	var bs []config.Backend
	for _, s := range sessions {
		byName[s.name] = s
		bs = append(bs, config.Backend{Name: s.name, Kind: config.KindStdio, Command: "in-process"})
	}
	return r21Run(t, Config{
		Backends: bs,
		Open: func(ctx context.Context, b config.Backend, _ backends.Options) (backends.Session, error) {
			return byName[b.Name], nil
		},
	})
}

func newR32Sess(name string, handle func(s *r32Sess, f *frame.Frame)) *r32Sess {
	return &r32Sess{scriptedSess: newScriptedSess(1024), name: name, handle: handle}
}

// progress.mdx (2025-06-18 and 2025-11-25), "Progress Flow": "Progress
// tokens can be chosen by the sender using any means, but MUST be unique
// across all active requests."
//
// With several backends, a resources/read of a URI nobody listed is
// tried on the backends one by one (aggregator.byURI), and the host's
// progress token is replaced by one constant string, "mcpbridge-unrouted",
// for every such request. Two reads in flight at once reach the same
// backend with the same progress token: the bridge, as that backend's
// client, sends two active requests with one token.
func TestUnroutedReadsGetTokensOfTheirOwn(t *testing.T) {
	var mu sync.Mutex
	var reads []*frame.Frame
	both := make(chan struct{})
	a := newR32Sess("a", func(s *r32Sess, f *frame.Frame) {
		if f.Kind != frame.Request || r32Init(s, f, `{"resources":{}}`) {
			return
		}
		switch f.Method {
		case "resources/templates/list":
			s.emit(`{"jsonrpc":"2.0","id":%s,"result":{"resourceTemplates":[{"uriTemplate":"tmpl://a/{x}","name":"t"}]}}`, f.ID())
		case "resources/list":
			s.emit(`{"jsonrpc":"2.0","id":%s,"result":{"resources":[]}}`, f.ID())
		case "resources/read":
			// Held until both reads are in flight, then both answered.
			mu.Lock()
			reads = append(reads, f)
			n := len(reads)
			mu.Unlock()
			if n == 2 {
				close(both)
				for _, r := range reads {
					uri, _ := r.String(r.Param("uri"))
					s.emit(`{"jsonrpc":"2.0","id":%s,"result":{"contents":[{"uri":%q,"text":"x"}]}}`, r.ID(), uri)
				}
			}
		default:
			s.emit(`{"jsonrpc":"2.0","id":%s,"result":{}}`, f.ID())
		}
	})
	b := newR32Sess("b", func(s *r32Sess, f *frame.Frame) {
		if f.Kind != frame.Request || r32Init(s, f, `{"tools":{}}`) {
			return
		}
		s.emit(`{"jsonrpc":"2.0","id":%s,"result":{"tools":[]}}`, f.ID())
	})
	h := r32Run(t, a, b)
	h.handshake()
	h.send(`{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"tmpl://a/1","_meta":{"progressToken":"p1"}}}`)
	h.send(`{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"tmpl://a/2","_meta":{"progressToken":"p2"}}}`)
	select {
	case <-both:
	case <-time.After(10 * time.Second):
		t.Fatal("the two reads never were in flight at the backend together")
	}
	mu.Lock()
	t1 := string(reads[0].Bytes(reads[0].Param("_meta", "progressToken")))
	t2 := string(reads[1].Bytes(reads[1].Param("_meta", "progressToken")))
	mu.Unlock()
	got := map[string]bool{}
	h.await("both read answers", func(f *frame.Frame) bool {
		if f.Kind == frame.Response {
			got[string(f.ID())] = true
		}
		return got["1"] && got["2"]
	})
	if t1 == t2 {
		t.Errorf("two resources/read in flight at backend a at once carry the same progressToken %s (the host gave \"p1\" and \"p2\"): tokens MUST be unique across all active requests", t1)
	}
}

// The same rule, logging/setLevel with several backends: the bridge fans
// it out (aggregator.fanOut) with the host's params as they are, its
// _meta.progressToken included, while every request it forwards carries
// a progress token the bridge issued from its own counter. The host's
// token can be one of those: the backend then has two active requests
// with one token, and its progress for the setLevel reaches the host as
// progress of the other request, the host's tools/call.
func TestSetLevelFanOutGetsABridgeToken(t *testing.T) {
	callTok := make(chan string, 1)
	levelTok := make(chan string, 1)
	a := newR32Sess("a", func(s *r32Sess, f *frame.Frame) {
		if f.Kind != frame.Request || r32Init(s, f, `{"tools":{},"logging":{}}`) {
			return
		}
		switch f.Method {
		case "tools/list":
			s.emit(`{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"slow","inputSchema":{"type":"object"}}]}}`, f.ID())
		case "tools/call":
			// Never answered: it stays active.
			callTok <- string(f.Bytes(f.Param("_meta", "progressToken")))
		case "logging/setLevel":
			tok := string(f.Bytes(f.Param("_meta", "progressToken")))
			levelTok <- tok
			if tok != "" {
				// Progress on the setLevel's own token, then its answer.
				s.emit(`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":%s,"progress":1,"message":"setLevel progress"}}`, tok)
			}
			s.emit(`{"jsonrpc":"2.0","id":%s,"result":{}}`, f.ID())
		default:
			s.emit(`{"jsonrpc":"2.0","id":%s,"result":{}}`, f.ID())
		}
	})
	b := newR32Sess("b", func(s *r32Sess, f *frame.Frame) {
		if f.Kind != frame.Request || r32Init(s, f, `{"tools":{}}`) {
			return
		}
		s.emit(`{"jsonrpc":"2.0","id":%s,"result":{"tools":[]}}`, f.ID())
	})
	h := r32Run(t, a, b)
	h.handshake()
	h.send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a_slow","arguments":{},"_meta":{"progressToken":"call-token"}}}`)
	var n string
	select {
	case n = <-callTok:
	case <-time.After(10 * time.Second):
		t.Fatal("the tools/call never reached backend a")
	}
	// The host's own tokens are unique on its side: "call-token" and n.
	h.send(`{"jsonrpc":"2.0","id":2,"method":"logging/setLevel","params":{"level":"info","_meta":{"progressToken":%s}}}`, n)
	var m string
	select {
	case m = <-levelTok:
	case <-time.After(10 * time.Second):
		t.Fatal("the setLevel never reached backend a")
	}
	var misrouted *frame.Frame
	h.await("setLevel answer", func(f *frame.Frame) bool {
		if f.Method == "notifications/progress" {
			misrouted = f
		}
		return f.Kind == frame.Response && string(f.ID()) == "2"
	})
	h.send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}`)
	if m == n {
		msg := fmt.Sprintf("backend a has tools/call and logging/setLevel active with the same progressToken %s (the host gave \"call-token\" and %s): tokens MUST be unique across all active requests", n, n)
		if misrouted != nil {
			msg += fmt.Sprintf("; the backend's progress for the setLevel reached the host as %s", misrouted.Raw())
		}
		t.Error(msg)
	}
}

// ping.mdx (2025-06-18 and 2025-11-25), "Behavior Requirements": "The
// receiver MUST respond promptly with an empty response".
//
// With one backend (raw mode) the bridge forwards the host's ping once
// the host is initialized. While that backend is down (lost, and being
// restarted), the forward fails at once and the host's ping is answered
// with a -32603 error instead of the empty result, though the bridge, the
// server the host talks to, is alive and answers it itself in every other
// state (before initialized, and always with several backends).
func TestPingAnsweredWhileTheBackendIsDown(t *testing.T) {
	first := newR32Sess("a", func(s *r32Sess, f *frame.Frame) {
		if f.Kind != frame.Request || r32Init(s, f, `{"tools":{}}`) {
			return
		}
		if f.Method == "tools/call" {
			s.Close() // the backend dies
			return
		}
		s.emit(`{"jsonrpc":"2.0","id":%s,"result":{}}`, f.ID())
	})
	var opens int
	var mu sync.Mutex
	h := r21Run(t, Config{
		Backends: []config.Backend{{Name: "a", Kind: config.KindStdio, Command: "in-process"}},
		Open: func(ctx context.Context, b config.Backend, _ backends.Options) (backends.Session, error) {
			mu.Lock()
			opens++
			n := opens
			mu.Unlock()
			if n == 1 {
				return first, nil
			}
			<-ctx.Done() // the restart takes its time
			return nil, ctx.Err()
		},
	})
	h.handshake()
	h.send(`{"jsonrpc":"2.0","id":1,"method":"ping"}`)
	if f := h.await("first ping answer", func(f *frame.Frame) bool { return f.Kind == frame.Response && string(f.ID()) == "1" }); f.IsError() {
		t.Fatalf("ping with the backend up: %s", f.Raw())
	}
	h.send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x","arguments":{}}}`)
	h.await("the call the backend died on", func(f *frame.Frame) bool { return f.Kind == frame.Response && string(f.ID()) == "2" })
	h.send(`{"jsonrpc":"2.0","id":3,"method":"ping"}`)
	f := h.await("ping answer", func(f *frame.Frame) bool { return f.Kind == frame.Response && string(f.ID()) == "3" })
	if f.IsError() || string(f.Result()) != "{}" {
		t.Errorf("the host's ping while the backend restarts was answered %s; want the empty result {}", f.Raw())
	}
}

// r32Caps returns the capabilities of the host's initialize answer.
func r32Caps(t *testing.T, h *r21Host) map[string]json.RawMessage {
	t.Helper()
	h.send("%s", initLine)
	f := h.await("initialize answer", func(f *frame.Frame) bool { return f.Kind == frame.Response && string(f.ID()) == "0" })
	h.send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	var res struct {
		Capabilities map[string]json.RawMessage `json:"capabilities"`
	}
	if err := json.Unmarshal(f.Result(), &res); err != nil {
		t.Fatalf("initialize answer %s: %v", f.Raw(), err)
	}
	return res.Capabilities
}

// logging.mdx (2025-06-18 and 2025-11-25), "Capabilities": "Servers that
// emit log message notifications MUST declare the logging capability".
//
// With several backends the bridge is the server and builds its own
// capabilities: logging only if a backend declared it. A backend that
// logs without declaring it (FastMCP's ctx.info() does) has its
// notifications/message relayed all the same (notificationUp tags the
// logger and sends it), so the merged server emits log messages it never
// declared.
func TestMergedServerDeclaresTheLoggingItRelays(t *testing.T) {
	a := newR32Sess("a", func(s *r32Sess, f *frame.Frame) {
		if f.Kind != frame.Request || r32Init(s, f, `{"tools":{}}`) {
			return
		}
		switch f.Method {
		case "tools/list":
			s.emit(`{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"work","inputSchema":{"type":"object"}}]}}`, f.ID())
		case "tools/call":
			s.emit(`{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","logger":"core","data":"working"}}`)
			s.emit(`{"jsonrpc":"2.0","id":%s,"result":{"content":[]}}`, f.ID())
		default:
			s.emit(`{"jsonrpc":"2.0","id":%s,"result":{}}`, f.ID())
		}
	})
	b := newR32Sess("b", func(s *r32Sess, f *frame.Frame) {
		if f.Kind != frame.Request || r32Init(s, f, `{"tools":{}}`) {
			return
		}
		s.emit(`{"jsonrpc":"2.0","id":%s,"result":{"tools":[]}}`, f.ID())
	})
	h := r32Run(t, a, b)
	caps := r32Caps(t, h)
	h.send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a_work","arguments":{}}}`)
	var logged *frame.Frame
	h.await("call answer", func(f *frame.Frame) bool {
		if f.Method == "notifications/message" {
			logged = f
		}
		return f.Kind == frame.Response && string(f.ID()) == "1"
	})
	if logged == nil {
		t.Fatal("the backend's notifications/message was not relayed")
	}
	if _, declared := caps["logging"]; !declared {
		t.Errorf("the merged server declared no logging capability (capabilities %v) but sent the host %s", keys(caps), logged.Raw())
	}
}

func keys(m map[string]json.RawMessage) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// The same honesty, resources.subscribe: merged as a union (mergeJSON),
// so one backend with subscriptions makes the merged server declare
// "subscribe": true for every resource. A subscribe to a resource of a
// backend without them is still forwarded to it (byURI: listedOwner, not
// servesResources), and the host gets -32601 "Method not found" for
// resources/subscribe from a server that declared it.
func TestSubscribeToABackendWithoutSubscriptionsIsRefusedByTheBridge(t *testing.T) {
	a := newR32Sess("a", func(s *r32Sess, f *frame.Frame) {
		if f.Kind != frame.Request || r32Init(s, f, `{"resources":{}}`) {
			return
		}
		switch f.Method {
		case "resources/list":
			s.emit(`{"jsonrpc":"2.0","id":%s,"result":{"resources":[{"uri":"res://a","name":"a"}]}}`, f.ID())
		case "resources/templates/list":
			s.emit(`{"jsonrpc":"2.0","id":%s,"result":{"resourceTemplates":[]}}`, f.ID())
		default: // no subscriptions: as the SDKs answer an unregistered method
			s.emit(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"Method not found"}}`, f.ID())
		}
	})
	b := newR32Sess("b", func(s *r32Sess, f *frame.Frame) {
		if f.Kind != frame.Request || r32Init(s, f, `{"resources":{"subscribe":true}}`) {
			return
		}
		switch f.Method {
		case "resources/list":
			s.emit(`{"jsonrpc":"2.0","id":%s,"result":{"resources":[{"uri":"res://b","name":"b"}]}}`, f.ID())
		case "resources/templates/list":
			s.emit(`{"jsonrpc":"2.0","id":%s,"result":{"resourceTemplates":[]}}`, f.ID())
		default:
			s.emit(`{"jsonrpc":"2.0","id":%s,"result":{}}`, f.ID())
		}
	})
	h := r32Run(t, a, b)
	caps := r32Caps(t, h)
	if string(rawField(caps["resources"], "subscribe")) != "true" {
		t.Skipf("the merged server does not declare resources.subscribe: %s", caps["resources"])
	}
	h.send(`{"jsonrpc":"2.0","id":1,"method":"resources/list"}`)
	h.await("list", func(f *frame.Frame) bool { return f.Kind == frame.Response && string(f.ID()) == "1" })
	h.send(`{"jsonrpc":"2.0","id":2,"method":"resources/subscribe","params":{"uri":"res://a"}}`)
	f := h.await("subscribe answer", func(f *frame.Frame) bool { return f.Kind == frame.Response && string(f.ID()) == "2" })
	if f.IsError() && errCode(t, f) == frame.CodeMethodNotFound {
		t.Errorf("the merged server declared resources {\"subscribe\":true} and answered resources/subscribe of a resource it listed with Method not found: %s", f.Raw())
	}
}

// The same union, completions (completion.mdx 2025-11-25: "Servers that
// support completions MUST declare the completions capability"; errors:
// "Method not found: -32601 (Capability not supported)"): one backend's
// completions make the merged server declare them, and a completion for
// a prompt of a backend without them is forwarded to it (aggregator.
// completion → byName) and answered -32601 by a server that declared it.
func TestCompletionForABackendWithoutCompletionsIsEmpty(t *testing.T) {
	mk := func(name, caps string) *r32Sess {
		return newR32Sess(name, func(s *r32Sess, f *frame.Frame) {
			if f.Kind != frame.Request || r32Init(s, f, caps) {
				return
			}
			switch f.Method {
			case "prompts/list":
				s.emit(`{"jsonrpc":"2.0","id":%s,"result":{"prompts":[{"name":"greet","arguments":[{"name":"who"}]}]}}`, f.ID())
			case "tools/list":
				s.emit(`{"jsonrpc":"2.0","id":%s,"result":{"tools":[]}}`, f.ID())
			case "completion/complete":
				if !strings.Contains(caps, "completions") {
					s.emit(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"Method not found"}}`, f.ID())
					return
				}
				s.emit(`{"jsonrpc":"2.0","id":%s,"result":{"completion":{"values":["x"]}}}`, f.ID())
			default:
				s.emit(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"Method not found"}}`, f.ID())
			}
		})
	}
	a := mk("a", `{"prompts":{}}`)
	b := mk("b", `{"prompts":{},"completions":{}}`)
	h := r32Run(t, a, b)
	caps := r32Caps(t, h)
	if _, ok := caps["completions"]; !ok {
		t.Skipf("the merged server does not declare completions: %v", keys(caps))
	}
	h.send(`{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"a_greet"},"argument":{"name":"who","value":"w"}}}`)
	f := h.await("completion answer", func(f *frame.Frame) bool { return f.Kind == frame.Response && string(f.ID()) == "1" })
	if f.IsError() && errCode(t, f) == frame.CodeMethodNotFound {
		t.Errorf("the merged server declared completions and answered completion/complete of a prompt it listed with Method not found: %s", f.Raw())
	}
}

// basic/index.mdx (2025-06-18 and 2025-11-25), "Notifications": "The
// receiver MUST NOT send a response." A host notification longer than
// the line limit is answered, as any oversized line whose id was not
// seen, with a -32600 error with id null (readFront), although its head
// shows a method and no id before the params, and its tail no id either.
func TestOversizedNotificationIsNotAnswered(t *testing.T) {
	a := newR32Sess("a", func(s *r32Sess, f *frame.Frame) {
		if f.Kind != frame.Request || r32Init(s, f, `{"tools":{}}`) {
			return
		}
		s.emit(`{"jsonrpc":"2.0","id":%s,"result":{}}`, f.ID())
	})
	h := r21Run(t, Config{
		Backends: []config.Backend{{Name: "a", Kind: config.KindStdio, Command: "in-process"}},
		MaxLine:  4096,
		Open: func(ctx context.Context, b config.Backend, _ backends.Options) (backends.Session, error) {
			return a, nil
		},
	})
	h.handshake()
	big := strings.Repeat("x", 8192)
	h.send(`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t","progress":1,"message":"%s"}}`, big)
	h.send(`{"jsonrpc":"2.0","id":7,"method":"ping"}`)
	var answered *frame.Frame
	h.await("ping answer", func(f *frame.Frame) bool {
		if f.Kind == frame.Response && string(f.ID()) == "null" {
			answered = f
		}
		return f.Kind == frame.Response && string(f.ID()) == "7"
	})
	if answered != nil {
		t.Errorf("an oversized notification (method first, no id) was answered: %s", answered.Raw())
	}
}
