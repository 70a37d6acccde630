package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/backends"
	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
	"github.com/mcpbridge/mcpbridge/internal/wiretest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/rs/zerolog"
)

// Edge cases of the front protocol and of the several-backend mode, run
// against real go-sdk servers through the in-process harness.

// initWithVersion is initLine asking for protocol version v; absent
// leaves the member out altogether.
func initWithVersion(v string, absent bool) string {
	if absent {
		return strings.Replace(initLine, `"protocolVersion":"2025-11-25",`, ``, 1)
	}
	return strings.Replace(initLine, `"protocolVersion":"2025-11-25"`, `"protocolVersion":`+quote(v), 1)
}

func errCode(t *testing.T, f *frame.Frame) int {
	t.Helper()
	if !f.IsError() {
		t.Errorf("want an error, got %s", f.Raw())
		return 0
	}
	var e frame.ErrorObject
	if err := json.Unmarshal(f.Error(), &e); err != nil {
		t.Errorf("error object: %v: %s", err, f.Raw())
	}
	return e.Code
}

// servers returns n fresh test servers named a, b, ...
func servers(n int) []namedServer {
	var out []namedServer
	for i := range n {
		name := string(rune('a' + i))
		out = append(out, namedServer{name, testServer(name)})
	}
	return out
}

func TestVersionNegotiation(t *testing.T) {
	cases := []struct {
		asked  string
		absent bool
		want   string
	}{
		{asked: "", want: latestVersion},
		{asked: "", absent: true, want: latestVersion},
		{asked: "2024-11-05", want: "2024-11-05"},
		{asked: "2025-03-26", want: "2025-03-26"},
		{asked: "2025-06-18", want: "2025-06-18"},
		{asked: "2025-11-25", want: "2025-11-25"},
		{asked: "2026-07-28", want: latestVersion},
		{asked: "bogus", want: latestVersion},
	}
	for _, n := range []int{1, 2} {
		for _, c := range cases {
			name := fmt.Sprintf("%d backends/%q", n, c.asked)
			if c.absent {
				name = fmt.Sprintf("%d backends/absent", n)
			}
			t.Run(name, func(t *testing.T) {
				b := bridgedWire(t, Config{}, servers(n)...)
				b.Send(initWithVersion(c.asked, c.absent))
				r := b.Response("0")
				var res struct {
					ProtocolVersion string `json:"protocolVersion"`
				}
				if err := json.Unmarshal(r.Result(), &res); err != nil || r.IsError() {
					t.Fatalf("initialize: %v: %s", err, r.Raw())
				}
				if res.ProtocolVersion != c.want {
					t.Errorf("asked %q: protocolVersion %q, want %q", c.asked, res.ProtocolVersion, c.want)
				}
				// The session works at the negotiated version.
				b.Send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
				tool := "echo"
				if n > 1 {
					tool = "a_echo"
				}
				b.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + tool + `","arguments":{"text":"v"}}}`)
				if r := b.Response("1"); !strings.Contains(string(r.Result()), `"text":"v"`) {
					t.Errorf("call after initialize at %q: %s", c.want, r.Raw())
				}
			})
		}
	}
}

func TestPingBeforeInitializeAndDiscover(t *testing.T) {
	for _, n := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d backends", n), func(t *testing.T) {
			b := bridgedWire(t, Config{}, servers(n)...)
			b.Send(`{"jsonrpc":"2.0","id":1,"method":"ping"}`)
			if r := b.Response("1"); r.IsError() || string(r.Result()) != "{}" {
				t.Errorf("ping before initialize: %s, want result {}", r.Raw())
			}
			b.Send(`{"jsonrpc":"2.0","id":2,"method":"server/discover","params":{}}`)
			if r := b.Response("2"); errCode(t, r) != frame.CodeMethodNotFound {
				t.Errorf("server/discover: %s, want -32601", r.Raw())
			}
			b.Send(`{"jsonrpc":"2.0","id":3,"method":"tools/list"}`)
			if r := b.Response("3"); errCode(t, r) != frame.CodeInvalidRequest {
				t.Errorf("tools/list before initialize: %s, want -32600", r.Raw())
			}
			if init := handshake(b.wire); init.IsError() {
				t.Fatalf("initialize after discover: %s", init.Raw())
			}
			b.Send(`{"jsonrpc":"2.0","id":4,"method":"tools/list"}`)
			if r := b.Response("4"); r.IsError() || !strings.Contains(string(r.Result()), "echo") {
				t.Errorf("tools/list after initialize: %s", r.Raw())
			}
			b.Send(`{"jsonrpc":"2.0","id":5,"method":"ping"}`)
			if r := b.Response("5"); r.IsError() {
				t.Errorf("ping after initialize: %s", r.Raw())
			}
		})
	}
}

func TestOversizedLine(t *testing.T) {
	big := strings.Repeat("x", 10<<10)
	cases := []struct {
		name, line, wantID string
	}{
		{"id first", `{"jsonrpc":"2.0","id":77,"method":"tools/call","params":{"name":"echo","arguments":{"text":"` + big + `"}}}`, "77"},
		{"string id", `{"jsonrpc":"2.0","id":"big-one","method":"tools/call","params":{"name":"echo","arguments":{"text":"` + big + `"}}}`, `"big-one"`},
		// The id written last (the TypeScript SDK's order) is read from the
		// line's end.
		{"id last", `{"jsonrpc":"2.0","method":"tools/call","params":{"name":"echo","arguments":{"text":"` + big + `"}},"id":79}`, "79"},
		{"string id last", `{"method":"tools/call","params":{"name":"echo","arguments":{"text":"` + big + `"}},"jsonrpc":"2.0","id":"a\"b"}`, `"a\"b"`},
		// Neither near the start nor last: it cannot be known.
		{"id in the middle", `{"method":"tools/call","params":{"name":"echo","arguments":{"text":"` + big + `"}},"id":80,"jsonrpc":"2.0"}`, "null"},
		// The last member's own "id" is not the message's.
		{"nested id last", `{"jsonrpc":"2.0","method":"tools/call","params":{"name":"echo","arguments":{"text":"` + big + `","id":81}}}`, "null"},
	}
	b := bridgedWire(t, Config{MaxLine: 4096}, namedServer{"one", testServer("one")})
	handshake(b.wire)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b.Send(c.line)
			if r := b.Response(c.wantID); errCode(t, r) != frame.CodeInvalidRequest {
				t.Errorf("oversized line: %s, want -32600 with id %s", wiretest.Truncate(r.Raw()), c.wantID)
			}
			id := itoa(1000 + i)
			b.Send(`{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"echo","arguments":{"text":"after"}}}`)
			if r := b.Response(id); !strings.Contains(string(r.Result()), `"after"`) {
				t.Errorf("request after an oversized line: %s", r.Raw())
			}
		})
	}
	if n := b.Count(func(f *frame.Frame) bool { return f.Kind == frame.Response && string(f.ID()) == "77" }); n != 1 {
		t.Errorf("id 77 answered %d times, want once", n)
	}
}

// twoLinkAggregator is the aggregator of a router that was built but never
// run: exposedName is pure.
func twoLinkAggregator(names ...string) (*aggregator, []*link) {
	cfg := Config{}
	for _, n := range names {
		cfg.Backends = append(cfg.Backends, config.Backend{Name: n, Kind: config.KindStdio, Command: "unused"})
	}
	cfg.setDefaults()
	cfg.Logger = zerolog.Nop()
	r := newRouter(cfg, io.Discard)
	return r.agg, r.links
}

var hostName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

func TestExposedNames(t *testing.T) {
	agg, links := twoLinkAggregator("alpha", "alpha_b")
	agg2, links2 := twoLinkAggregator("alpha", "alpha_b")
	alpha, alphaB := links[0], links[1]
	expose := func(table map[string]target, l *link, orig string) string {
		name := agg.exposedName(table, l, orig)
		if table != nil {
			table[name] = target{l, orig, false}
		}
		return name
	}

	t.Run("valid names unchanged", func(t *testing.T) {
		for _, c := range []struct{ orig, want string }{
			{"echo", "alpha_echo"},
			{"get-weather_2", "alpha_get-weather_2"},
			{"", "alpha_"},
			{strings.Repeat("t", 64-len("alpha_")), "alpha_" + strings.Repeat("t", 64-len("alpha_"))},
		} {
			if got := expose(map[string]target{}, alpha, c.orig); got != c.want {
				t.Errorf("%q: exposed as %q, want %q", c.orig, got, c.want)
			}
		}
		if got := expose(map[string]target{}, alphaB, "x"); got != "alpha_b_x" {
			t.Errorf("alpha_b/x: %q", got)
		}
	})

	t.Run("long names", func(t *testing.T) {
		long := strings.Repeat("very_long_tool_name_", 4) // 80 bytes
		longer := long + "2"                              // same first 55 bytes
		for _, orig := range []string{long, longer, strings.Repeat("Z", 500)} {
			first := expose(map[string]target{}, alpha, orig)
			again := expose(map[string]target{}, alpha, orig)
			other := agg2.exposedName(map[string]target{}, links2[0], orig)
			if !hostName.MatchString(first) {
				t.Errorf("%.20q…: %q (%d bytes) is not a valid host name", orig, first, len(first))
			}
			if first != again || first != other {
				t.Errorf("%.20q…: not deterministic: %q, %q, other router %q", orig, first, again, other)
			}
		}
		if a, b := expose(map[string]target{}, alpha, long), expose(map[string]target{}, alpha, longer); a == b {
			t.Errorf("two long names sharing a prefix both exposed as %q", a)
		}
	})

	t.Run("invalid characters cleaned", func(t *testing.T) {
		seen := map[string]string{}
		for _, orig := range []string{"read.file", "read file", "lire_fichier_é", "工具", "a/b:c", "tab\there", `quote"d`, "emoji🙂"} {
			got := expose(map[string]target{}, alpha, orig)
			if !hostName.MatchString(got) {
				t.Errorf("%q: exposed as %q, not a valid host name", orig, got)
			}
			if !strings.HasPrefix(got, "alpha_") {
				t.Errorf("%q: exposed as %q, lost its backend prefix", orig, got)
			}
			if again := agg2.exposedName(map[string]target{}, links2[0], orig); again != got {
				t.Errorf("%q: %q here, %q in another router", orig, got, again)
			}
			if prev, dup := seen[got]; dup {
				t.Errorf("%q and %q both exposed as %q", prev, orig, got)
			}
			seen[got] = orig
		}
	})

	t.Run("names that clean alike stay distinct", func(t *testing.T) {
		for _, group := range [][]string{
			{"x.y", "x y", "x:y", "x_y"},
			{"工具", "道具", "☃"},
			{strings.Repeat("q", 70) + ".a", strings.Repeat("q", 70) + ".b"},
		} {
			table := map[string]target{}
			got := map[string]string{}
			for _, orig := range group {
				name := expose(table, alpha, orig)
				if !hostName.MatchString(name) {
					t.Errorf("%q: exposed as %q, not a valid host name", orig, name)
				}
				if prev, dup := got[name]; dup {
					t.Errorf("%q and %q both exposed as %q", prev, orig, name)
				}
				got[name] = orig
			}
			for name, orig := range got {
				if tg := table[name]; tg.original != orig || tg.link != alpha {
					t.Errorf("table[%q] = %s/%q, want alpha/%q", name, tg.link.name, tg.original, orig)
				}
			}
		}
	})

	t.Run("separator collision across backends", func(t *testing.T) {
		// alpha + "b_x" and alpha_b + "x" both build "alpha_b_x".
		table := map[string]target{}
		n1 := expose(table, alpha, "b_x")
		n2 := expose(table, alphaB, "x")
		if n1 != "alpha_b_x" {
			t.Errorf("first of two colliding names changed: %q", n1)
		}
		if n1 == n2 || !hostName.MatchString(n2) {
			t.Errorf("colliding names: %q and %q; want distinct valid names", n1, n2)
		}
		if table[n2].link != alphaB || table[n2].original != "x" {
			t.Errorf("table[%q] routes to %s/%q", n2, table[n2].link.name, table[n2].original)
		}
		// Listing again keeps the same names (the table holds them already).
		if again := agg.exposedName(table, alpha, "b_x"); again != n1 {
			t.Errorf("relisting alpha/b_x: %q, was %q", again, n1)
		}
		if again := agg.exposedName(table, alphaB, "x"); again != n2 {
			t.Errorf("relisting alpha_b/x: %q, was %q", again, n2)
		}
	})
}

// completingServer is a go-sdk server with the prompt greet and a
// completion handler whose one value names the server and the reference
// it was asked about.
func completingServer(name string) *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: name, Version: "1"}, &mcp.ServerOptions{
		CompletionHandler: func(ctx context.Context, req *mcp.CompleteRequest) (*mcp.CompleteResult, error) {
			return &mcp.CompleteResult{Completion: mcp.CompletionResultDetails{Values: []string{name + ":" + req.Params.Ref.Name + ":" + req.Params.Argument.Value}}}, nil
		},
	})
	srv.AddPrompt(&mcp.Prompt{Name: "greet", Arguments: []*mcp.PromptArgument{{Name: "who"}}}, func(ctx context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		return &mcp.GetPromptResult{Messages: []*mcp.PromptMessage{{Role: "user", Content: &mcp.TextContent{Text: "hello from " + name}}}}, nil
	})
	return srv
}

func TestCompletionRoutesByReference(t *testing.T) {
	b := bridgedWire(t, Config{}, namedServer{"a", completingServer("a")}, namedServer{"b", completingServer("b")})
	init := handshake(b.wire)
	if !strings.Contains(string(init.Result()), `"completions"`) {
		t.Errorf("merged capabilities lack completions: %s", init.Raw())
	}
	complete := func(id, ref string) string {
		return `{"jsonrpc":"2.0","id":` + id + `,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":` + quote(ref) + `},"argument":{"name":"who","value":"wo"}}}`
	}
	values := func(f *frame.Frame) []string {
		var res struct {
			Completion struct {
				Values []string `json:"values"`
			} `json:"completion"`
		}
		if err := json.Unmarshal(f.Result(), &res); err != nil || f.IsError() {
			t.Errorf("completion: %v: %s", err, f.Raw())
		}
		return res.Completion.Values
	}
	// Before any prompts/list: the bridge must find the prompt itself.
	b.Send(complete("1", "b_greet"))
	if v := values(b.Response("1")); len(v) != 1 || v[0] != "b:greet:wo" {
		t.Errorf("b_greet completed as %v, want [b:greet:wo]", v)
	}
	b.Send(complete("2", "a_greet"))
	if v := values(b.Response("2")); len(v) != 1 || v[0] != "a:greet:wo" {
		t.Errorf("a_greet completed as %v, want [a:greet:wo]", v)
	}
	b.Send(complete("3", "greet"))
	if r := b.Response("3"); errCode(t, r) != frame.CodeInvalidParams {
		t.Errorf("unprefixed prompt with two backends: %s, want -32602", r.Raw())
	}
	b.Send(complete("4", "c_greet"))
	if r := b.Response("4"); errCode(t, r) != frame.CodeInvalidParams {
		t.Errorf("unknown prompt: %s, want -32602", r.Raw())
	}
}

// TestBackendCancelsItsOwnRequest: a backend that gives up on its sampling
// request tells the host with the id the host saw.
func TestBackendCancelsItsOwnRequest(t *testing.T) {
	for _, n := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d backends", n), func(t *testing.T) {
			srvs := servers(n)
			mcp.AddTool(srvs[0].srv, &mcp.Tool{Name: "impatient"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
				sctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
				defer cancel()
				_, err := req.Session.CreateMessage(sctx, &mcp.CreateMessageParams{MaxTokens: 5, Messages: []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: "never mind"}}}})
				if err == nil {
					return nil, nil, fmt.Errorf("sampling was answered, but the host never answered it")
				}
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "gave up: " + err.Error()}}}, nil, nil
			})
			b := bridgedWire(t, Config{}, srvs...)
			handshake(b.wire)
			tool := "impatient"
			if n > 1 {
				tool = "a_impatient"
			}
			b.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + tool + `","arguments":{}}}`)
			req := b.WaitFor("sampling request", func(f *frame.Frame) bool { return f.Method == "sampling/createMessage" })
			cancel := b.WaitFor("the backend's cancellation", func(f *frame.Frame) bool { return f.Method == mCancelled })
			if got := string(cancel.Bytes(cancel.Param("requestId"))); got != string(req.ID()) {
				t.Errorf("cancellation names request %s; the host saw the sampling request as %s\n%s", got, req.ID(), b.Dump())
			}
			if r := b.Response("1"); !strings.Contains(string(r.Result()), "gave up") {
				t.Errorf("tool result: %s", r.Raw())
			}
			// A late answer from the host is dropped, and nothing is disturbed.
			b.Send(`{"jsonrpc":"2.0","id":` + string(req.ID()) + `,"result":{"role":"assistant","model":"m","content":{"type":"text","text":"late"}}}`)
			b.Send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"` + strings.TrimSuffix(tool, "impatient") + `echo","arguments":{"text":"still fine"}}}`)
			if r := b.Response("2"); !strings.Contains(string(r.Result()), "still fine") {
				t.Errorf("call after the cancelled sampling: %s", r.Raw())
			}
		})
	}
}

// TestHostProgressForBackendRequest: a backend's sampling request with a
// progress token gets a bridge token toward the host, and the host's
// progress on it reaches the backend with the backend's own token.
func TestHostProgressForBackendRequest(t *testing.T) {
	type got struct {
		token    any
		progress float64
	}
	for _, n := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d backends", n), func(t *testing.T) {
			progress := make(chan got, 10)
			srv := mcp.NewServer(&mcp.Implementation{Name: "a", Version: "1"}, &mcp.ServerOptions{
				ProgressNotificationHandler: func(ctx context.Context, req *mcp.ProgressNotificationServerRequest) {
					progress <- got{req.Params.ProgressToken, req.Params.Progress}
				},
			})
			mcp.AddTool(srv, &mcp.Tool{Name: "sample"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
				res, err := req.Session.CreateMessage(ctx, &mcp.CreateMessageParams{
					Meta:      mcp.Meta{"progressToken": "bt"},
					MaxTokens: 5,
					Messages:  []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: "q"}}},
				})
				if err != nil {
					return nil, nil, err
				}
				return &mcp.CallToolResult{Content: []mcp.Content{res.Content}}, nil, nil
			})
			srvs := []namedServer{{"a", srv}}
			tool := "sample"
			if n > 1 {
				srvs = append(srvs, namedServer{"b", testServer("b")})
				tool = "a_sample"
			}
			b := bridgedWire(t, Config{}, srvs...)
			handshake(b.wire)
			b.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + tool + `","arguments":{}}}`)
			req := b.WaitFor("sampling request", func(f *frame.Frame) bool { return f.Method == "sampling/createMessage" })
			tok := req.Param("_meta", "progressToken")
			if !tok.Ok() {
				t.Fatalf("the sampling request lost its progress token: %s", req.Raw())
			}
			hostTok := string(req.Bytes(tok))
			b.Send(`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":` + hostTok + `,"progress":1,"total":2}}`)
			select {
			case g := <-progress:
				if g.token != "bt" || g.progress != 1 {
					t.Errorf("backend got progress %v with token %#v; want 1 with its own token \"bt\" (host saw token %s)", g.progress, g.token, hostTok)
				}
			case <-time.After(testTimeout):
				t.Fatalf("the host's progress (token %s) never reached the backend", hostTok)
			}
			b.Send(`{"jsonrpc":"2.0","id":` + string(req.ID()) + `,"result":{"role":"assistant","model":"m","content":{"type":"text","text":"sampled"}}}`)
			if r := b.Response("1"); !strings.Contains(string(r.Result()), "sampled") {
				t.Errorf("tool result: %s", r.Raw())
			}
			// Once answered, the token is gone: late progress is dropped.
			b.Send(`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":` + hostTok + `,"progress":2,"total":2}}`)
			b.Send(`{"jsonrpc":"2.0","id":2,"method":"ping"}`)
			b.Response("2")
			select {
			case g := <-progress:
				t.Errorf("progress after the request was answered reached the backend: %+v", g)
			case <-time.After(100 * time.Millisecond):
			}
		})
	}
}

// countMethod counts the requests of one method srv receives.
func countMethod(srv *mcp.Server, method string) *atomic.Int64 {
	var n atomic.Int64
	srv.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, m string, req mcp.Request) (mcp.Result, error) {
			if m == method {
				n.Add(1)
			}
			return next(ctx, m, req)
		}
	})
	return &n
}

func TestCachedToolsListAsksNoBackend(t *testing.T) {
	srvA, srvB := testServer("a"), testServer("b")
	countA, countB := countMethod(srvA, "tools/list"), countMethod(srvB, "tools/list")
	b := bridgedWire(t, Config{}, namedServer{"a", srvA}, namedServer{"b", srvB})
	init := handshake(b.wire)
	if !strings.Contains(string(init.Result()), `"listChanged":true`) {
		t.Fatalf("the backends do not declare listChanged: %s", init.Raw())
	}
	var first []string
	for i := 1; i <= 3; i++ {
		b.Send(`{"jsonrpc":"2.0","id":` + itoa(i) + `,"method":"tools/list"}`)
		names := toolNames(t, b.Response(itoa(i)))
		if i == 1 {
			first = names
		} else if strings.Join(names, ",") != strings.Join(first, ",") {
			t.Errorf("list %d differs from the first: %v vs %v", i, names, first)
		}
	}
	if a, bb := countA.Load(), countB.Load(); a != 1 || bb != 1 {
		t.Errorf("3 host tools/list asked a %d and b %d times; want 1 and 1", a, bb)
	}

	mcp.AddTool(srvA, &mcp.Tool{Name: "fresh"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "fresh from a"}}}, nil, nil
	})
	b.WaitFor("tools/list_changed", func(f *frame.Frame) bool { return f.Method == mToolsChanged })
	b.Send(`{"jsonrpc":"2.0","id":10,"method":"tools/list"}`)
	names := toolNames(t, b.Response("10"))
	if !contains(names, "a_fresh") || contains(names, "fresh") || contains(names, "b_fresh") {
		t.Errorf("after a's change: %v; want a_fresh", names)
	}
	if a, bb := countA.Load(), countB.Load(); a != 2 || bb != 1 {
		t.Errorf("after a's list_changed, tools/list asked a %d and b %d times in all; want 2 and 1", a, bb)
	}
	b.Send(`{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":"a_fresh","arguments":{}}}`)
	if r := b.Response("11"); !strings.Contains(string(r.Result()), "fresh from a") {
		t.Errorf("a_fresh: %s", r.Raw())
	}
	b.Send(`{"jsonrpc":"2.0","id":12,"method":"tools/list"}`)
	b.Response("12")
	if a, bb := countA.Load(), countB.Load(); a != 2 || bb != 1 {
		t.Errorf("a cached list was asked again: a %d, b %d; want 2 and 1", a, bb)
	}
	if n := b.Count(func(f *frame.Frame) bool { return f.Method == mToolsChanged }); n != 1 {
		t.Errorf("host got %d tools/list_changed, want 1", n)
	}
}

// recordingSession notes the method of every frame the bridge sends to a
// backend. go-sdk servers reject unknown notifications before any
// middleware runs, so delivery is observed at the session.
type recordingSession struct {
	backends.Session
	mu   sync.Mutex
	sent []string
}

func (s *recordingSession) Send(f *frame.Frame) error {
	s.mu.Lock()
	s.sent = append(s.sent, f.Method)
	s.mu.Unlock()
	return s.Session.Send(f)
}

func (s *recordingSession) count(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, m := range s.sent {
		if m == method {
			n++
		}
	}
	return n
}

func TestUnknownMethodAndNotificationsWithSeveralBackends(t *testing.T) {
	srvs := map[string]*mcp.Server{"a": testServer("a"), "b": testServer("b")}
	var mu sync.Mutex
	rec := map[string]*recordingSession{}
	cfg := Config{
		Backends: []config.Backend{
			{Name: "a", Kind: config.KindStdio, Command: "in-process"},
			{Name: "b", Kind: config.KindStdio, Command: "in-process"},
		},
		Open: func(ctx context.Context, bc config.Backend, _ backends.Options) (backends.Session, error) {
			s := &recordingSession{Session: serve(t, bc.Name, srvs[bc.Name])}
			mu.Lock()
			rec[bc.Name] = s
			mu.Unlock()
			return s, nil
		},
	}
	b := bridgedWire(t, cfg)
	handshake(b.wire)
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"x-vendor/thing","params":{}}`)
	if r := b.Response("1"); errCode(t, r) != frame.CodeMethodNotFound {
		t.Errorf("unknown method with two backends: %s, want -32601", r.Raw())
	}
	b.Send(`{"jsonrpc":"2.0","method":"notifications/x-vendor","params":{"k":1}}`)
	deadline := time.Now().Add(testTimeout)
	for {
		mu.Lock()
		na, nb := rec["a"].count("notifications/x-vendor"), rec["b"].count("notifications/x-vendor")
		mu.Unlock()
		if na == 1 && nb == 1 {
			break
		}
		if time.Now().After(deadline) || na > 1 || nb > 1 {
			t.Fatalf("notifications/x-vendor reached a %d and b %d times; want once each", na, nb)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, name := range []string{"a", "b"} {
		if n := rec[name].count("x-vendor/thing"); n != 0 {
			t.Errorf("the unknown request reached %s %d times", name, n)
		}
	}
	// Both backends still answer.
	b.Send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"a_whoami","arguments":{}}}`)
	b.Send(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"b_whoami","arguments":{}}}`)
	if r := b.Response("2"); !strings.Contains(string(r.Result()), `"text":"a"`) {
		t.Errorf("a after the notification: %s", r.Raw())
	}
	if r := b.Response("3"); !strings.Contains(string(r.Result()), `"text":"b"`) {
		t.Errorf("b after the notification: %s", r.Raw())
	}
}

// TestCancelReachesTheBackendsOfAClaimedRequest: a resources/read the
// bridge tries on backends itself (no list named its URI) is cancelled on
// the backend too when the host cancels it (third review: the backend
// kept reading until --timeout).
func TestCancelReachesTheBackendsOfAClaimedRequest(t *testing.T) {
	srv := testServer("a")
	started := make(chan struct{}, 1)
	cancelled := make(chan struct{}, 1)
	srv.AddResourceTemplate(&mcp.ResourceTemplate{URITemplate: "slow://{x}", Name: "slow"}, func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		started <- struct{}{}
		select {
		case <-ctx.Done():
			cancelled <- struct{}{}
			return nil, ctx.Err()
		case <-time.After(testTimeout):
			return nil, errors.New("never cancelled")
		}
	})
	b := bridgedWire(t, Config{}, namedServer{"a", srv}, namedServer{"b", testServer("b")})
	handshake(b.wire)
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"slow://1"}}`)
	select {
	case <-started:
	case <-time.After(testTimeout):
		t.Fatal("the read never reached the backend")
	}
	b.Send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}`)
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the backend's read was not cancelled")
	}
	b.Send(`{"jsonrpc":"2.0","id":2,"method":"ping"}`)
	b.Response("2")
	if n := b.Count(func(f *frame.Frame) bool { return string(f.ID()) == "1" }); n != 0 {
		t.Errorf("the cancelled read was answered")
	}
}
