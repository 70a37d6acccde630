package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/backends"
	"github.com/mcpbridge/mcpbridge/frame"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Routing in the several-backend mode (README "Several backends: names and
// routing"), against real go-sdk servers through the in-process harness:
// paginated lists, URIs nobody listed, a backend that went down, and
// subscriptions.

// listed decodes one merged list answer: the names (or URIs, or URI
// templates) of its items, and whether it carried a nextCursor.
func listed(t *testing.T, f *frame.Frame, kind, key string) (items []string, cursor bool) {
	t.Helper()
	if f.IsError() {
		t.Fatalf("%s: %s", kind, f.Raw())
	}
	var res map[string]json.RawMessage
	if err := json.Unmarshal(f.Result(), &res); err != nil {
		t.Fatalf("%s: %v: %s", kind, err, f.Raw())
	}
	var its []map[string]any
	if err := json.Unmarshal(res[kind], &its); err != nil {
		t.Fatalf("%s: %v: %s", kind, err, f.Raw())
	}
	for _, it := range its {
		s, _ := it[key].(string)
		items = append(items, s)
	}
	_, cursor = res["nextCursor"]
	return items, cursor
}

func textResult(text string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}
}

func readResult(uri, text string) *mcp.ReadResourceResult {
	return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: uri, Text: text}}}
}

// pagedServer is a go-sdk server that answers every list in pages of
// pageSize: n tools t0…, n prompts p0…, n resources page://NAME/0… and n
// templates tmpl://NAME/{x}/0…; tools and resources answer with their
// backend's name.
func pagedServer(name string, pageSize, n int) *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: name, Version: "1"}, &mcp.ServerOptions{PageSize: pageSize})
	for i := range n {
		mcp.AddTool(srv, &mcp.Tool{Name: fmt.Sprintf("t%d", i)}, func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
			return textResult(fmt.Sprintf("t%d of %s", i, name)), nil, nil
		})
		srv.AddPrompt(&mcp.Prompt{Name: fmt.Sprintf("p%d", i)}, func(ctx context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			return &mcp.GetPromptResult{Messages: []*mcp.PromptMessage{{Role: "user", Content: &mcp.TextContent{Text: fmt.Sprintf("p%d of %s", i, name)}}}}, nil
		})
		srv.AddResource(&mcp.Resource{URI: fmt.Sprintf("page://%s/%d", name, i), Name: fmt.Sprintf("r%d", i)}, func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			return readResult(req.Params.URI, "page resource of "+name), nil
		})
		srv.AddResourceTemplate(&mcp.ResourceTemplate{URITemplate: fmt.Sprintf("tmpl://%s/{x}/%d", name, i), Name: fmt.Sprintf("tm%d", i)}, func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			return readResult(req.Params.URI, "template of "+name), nil
		})
	}
	return srv
}

func TestPaginatedBackendListsMerged(t *testing.T) {
	const nA, nB = 7, 5
	srvA, srvB := pagedServer("a", 2, nA), pagedServer("b", 3, nB)
	pagesA := map[string]*atomic.Int64{}
	for m := range listKinds {
		pagesA[m] = countMethod(srvA, m)
	}
	b := bridgedWire(t, Config{}, namedServer{"a", srvA}, namedServer{"b", srvB})
	handshake(b.wire)

	cases := []struct {
		method, kind, key string
		want              func(backend string, i int) string
	}{
		{"tools/list", "tools", "name", func(be string, i int) string { return fmt.Sprintf("%s_t%d", be, i) }},
		{"prompts/list", "prompts", "name", func(be string, i int) string { return fmt.Sprintf("%s_p%d", be, i) }},
		{"resources/list", "resources", "uri", func(be string, i int) string { return fmt.Sprintf("page://%s/%d", be, i) }},
		{"resources/templates/list", "resourceTemplates", "uriTemplate", func(be string, i int) string { return fmt.Sprintf("tmpl://%s/{x}/%d", be, i) }},
	}
	for i, c := range cases {
		id := itoa(100 + i)
		b.Send(`{"jsonrpc":"2.0","id":` + id + `,"method":"` + c.method + `"}`)
		got, cursor := listed(t, b.Response(id), c.kind, c.key)
		if cursor {
			t.Errorf("%s: the merged answer carries a nextCursor; want one complete list", c.method)
		}
		var want []string
		for be, n := range map[string]int{"a": nA, "b": nB} {
			for j := range n {
				want = append(want, c.want(be, j))
			}
		}
		slices.Sort(want)
		sorted := slices.Sorted(slices.Values(got))
		if !slices.Equal(sorted, want) {
			t.Errorf("%s: got %d items %v\nwant %d items %v", c.method, len(got), got, len(want), want)
		}
		// a answers 2 per page: 7 items take 4 pages, so the bridge must
		// have followed nextCursor to the end.
		if n := pagesA[c.method].Load(); n != (nA+1)/2 {
			t.Errorf("%s: a was asked %d times, want %d pages", c.method, n, (nA+1)/2)
		}
	}

	// Items of the last pages route: the tables were built from every page.
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a_t6","arguments":{}}}`)
	if r := b.Response("1"); !strings.Contains(string(r.Result()), "t6 of a") {
		t.Errorf("a_t6 (a's last page): %s", r.Raw())
	}
	b.Send(`{"jsonrpc":"2.0","id":2,"method":"prompts/get","params":{"name":"b_p4"}}`)
	if r := b.Response("2"); !strings.Contains(string(r.Result()), "p4 of b") {
		t.Errorf("b_p4 (b's last page): %s", r.Raw())
	}
	b.Send(`{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"page://a/6"}}`)
	if r := b.Response("3"); !strings.Contains(string(r.Result()), "page resource of a") {
		t.Errorf("page://a/6 (a's last page): %s", r.Raw())
	}
}

// readLog records, in order, which backend was asked to read which URI.
type readLog struct {
	mu  sync.Mutex
	log []string // "backend uri"
}

func (l *readLog) add(s string) { l.mu.Lock(); l.log = append(l.log, s); l.mu.Unlock() }

// of returns the backends asked for uri, in the order they were asked.
func (l *readLog) of(uri string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, e := range l.log {
		if be, u, _ := strings.Cut(e, " "); u == uri {
			out = append(out, be)
		}
	}
	return out
}

// readMiddleware records each resources/read in log; with legacy it turns
// go-sdk's "Resource not found" (-32602 since v1.7, SEP-2164) into the
// pre-SEP-2164 -32002 that the bridge moves on at; secret, if set, is a
// URI the server serves without listing it or any template that matches
// (a handler the other backend knows nothing of).
func readMiddleware(srv *mcp.Server, name string, log *readLog, legacy bool, secret string) {
	srv.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, m string, req mcp.Request) (mcp.Result, error) {
			if m != "resources/read" {
				return next(ctx, m, req)
			}
			uri := req.GetParams().(*mcp.ReadResourceParams).URI
			log.add(name + " " + uri)
			if secret != "" && uri == secret {
				return readResult(uri, "secret of "+name), nil
			}
			res, err := next(ctx, m, req)
			var e *jsonrpc.Error
			if legacy && errors.As(err, &e) && e.Code == jsonrpc.CodeInvalidParams {
				return nil, &jsonrpc.Error{Code: frame.CodeNotFound, Message: e.Message, Data: e.Data}
			}
			return res, err
		}
	})
}

// unlistedServers: a serves test://a/r only; b serves test://b/r, the
// template tmpl://b/{x}, and secret://only-b through a handler nobody
// lists.
func unlistedServers(log *readLog, legacy bool) (a, b *mcp.Server) {
	a = mcp.NewServer(&mcp.Implementation{Name: "a", Version: "1"}, nil)
	a.AddResource(&mcp.Resource{URI: "test://a/r", Name: "r"}, func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return readResult(req.Params.URI, "content of a"), nil
	})
	readMiddleware(a, "a", log, legacy, "")
	b = mcp.NewServer(&mcp.Implementation{Name: "b", Version: "1"}, nil)
	b.AddResource(&mcp.Resource{URI: "test://b/r", Name: "r"}, func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return readResult(req.Params.URI, "content of b"), nil
	})
	b.AddResourceTemplate(&mcp.ResourceTemplate{URITemplate: "tmpl://b/{x}", Name: "tmpl"}, func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return readResult(req.Params.URI, "template of b: "+req.Params.URI), nil
	})
	readMiddleware(b, "b", log, legacy, "secret://only-b")
	return a, b
}

// TestUnlistedURIFallsThrough: a URI nobody listed goes first to the
// backends whose templates match it, then to the others in declared
// order, moving on at "not found".
//
// go-sdk v1.8.0 answers an unknown URI with -32602 "Resource not found"
// and data {"uri":…} (SEP-2164; -32002 only with
// MCPGODEBUG=customresnotfounderrcode=1), and so does the TypeScript SDK's
// McpServer (-32602 "Resource X not found"). The "legacy -32002" subtest
// makes the servers answer -32002, which is what the bridge implements;
// the "SEP-2164 -32602" subtest uses go-sdk's own answer.
func TestUnlistedURIFallsThrough(t *testing.T) {
	t.Run("legacy -32002", func(t *testing.T) {
		var log readLog
		srvA, srvB := unlistedServers(&log, true)
		b := bridgedWire(t, Config{}, namedServer{"a", srvA}, namedServer{"b", srvB})
		handshake(b.wire)

		b.Send(`{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"tmpl://b/hello"}}`)
		if r := b.Response("1"); !strings.Contains(string(r.Result()), "template of b: tmpl://b/hello") {
			t.Errorf("tmpl://b/hello (matches b's template, listed by nobody): %s", r.Raw())
		}
		if got := log.of("tmpl://b/hello"); !slices.Equal(got, []string{"b"}) {
			t.Errorf("tmpl://b/hello was asked of %v; want b only (template match first)", got)
		}

		b.Send(`{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"nowhere://x"}}`)
		r := b.Response("2")
		if code := errCode(t, r); code != frame.CodeNotFound {
			t.Errorf("nowhere://x (unknown to both): code %d, want -32002: %s", code, r.Raw())
		}
		if got := log.of("nowhere://x"); !slices.Equal(got, []string{"a", "b"}) {
			t.Errorf("nowhere://x was asked of %v; want a then b", got)
		}

		b.Send(`{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"secret://only-b"}}`)
		if r := b.Response("3"); !strings.Contains(string(r.Result()), "secret of b") {
			t.Errorf("secret://only-b (served by b only, unlisted): %s", r.Raw())
		}
		if got := log.of("secret://only-b"); !slices.Equal(got, []string{"a", "b"}) {
			t.Errorf("secret://only-b was asked of %v; want a (-32002) then b", got)
		}

		// A listed URI goes straight to its owner.
		b.Send(`{"jsonrpc":"2.0","id":4,"method":"resources/read","params":{"uri":"test://b/r"}}`)
		if r := b.Response("4"); !strings.Contains(string(r.Result()), "content of b") {
			t.Errorf("test://b/r: %s", r.Raw())
		}
		if got := log.of("test://b/r"); !slices.Equal(got, []string{"b"}) {
			t.Errorf("test://b/r (listed by b) was asked of %v; want b only", got)
		}
	})

	// Unmodified go-sdk v1.8.0 servers, as deployed: "not found" is -32602
	// with data.uri. README: a URI nobody listed goes "to the others in
	// order, moving on at not found".
	t.Run("SEP-2164 -32602", func(t *testing.T) {
		var log readLog
		srvA, srvB := unlistedServers(&log, false)
		b := bridgedWire(t, Config{}, namedServer{"a", srvA}, namedServer{"b", srvB})
		handshake(b.wire)

		b.Send(`{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"tmpl://b/hello"}}`)
		if r := b.Response("1"); !strings.Contains(string(r.Result()), "template of b") {
			t.Errorf("tmpl://b/hello: %s", r.Raw())
		}

		b.Send(`{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"nowhere://x"}}`)
		r := b.Response("2")
		if code := errCode(t, r); code != frame.CodeNotFound && code != frame.CodeInvalidParams {
			t.Errorf("nowhere://x: code %d, want a not-found error (-32002 or -32602): %s", code, r.Raw())
		}

		b.Send(`{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"secret://only-b"}}`)
		if r := b.Response("3"); !strings.Contains(string(r.Result()), "secret of b") {
			t.Errorf("BUG: secret://only-b is served by b, but a's SEP-2164 not-found (-32602, data.uri) "+
				"stopped the fall-through (the bridge moves on only at -32002); asked %v, host got: %s",
				log.of("secret://only-b"), r.Raw())
		}
	})
}

// TestDownBackendNamedNotUnknown: a call to a tool of a backend that went
// down names that backend (-32603, data.backend) instead of "unknown
// tool". Deterministic: every Open of b after the first fails, so the
// restart loop keeps it down, and the test waits for that second Open
// (the link is marked down before it restarts).
func TestDownBackendNamedNotUnknown(t *testing.T) {
	srvA, srvB := testServer("a"), testServer("b")
	reopened := make(chan struct{})
	var reopenOnce sync.Once
	var opensB atomic.Int64
	cfg, sessB := oneRestarting(t, "a", "b", srvA, srvB, func(_ context.Context, n int64) (backends.Session, error) {
		opensB.Store(n)
		reopenOnce.Do(func() { close(reopened) })
		return nil, errors.New(`backend "b": stays down in this test`)
	})
	b := bridgedWire(t, cfg)
	handshake(b.wire)
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	if names := toolNames(t, b.Response("1")); !contains(names, "b_whoami") || !contains(names, "a_whoami") {
		t.Fatalf("tools/list before b went down: %v", names)
	}
	b.Send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"b_whoami","arguments":{}}}`)
	if r := b.Response("2"); !strings.Contains(string(r.Result()), `"text":"b"`) {
		t.Fatalf("b_whoami while b is up: %s", r.Raw())
	}

	(<-sessB).Close() // b's process "exits"
	select {
	case <-reopened:
	case <-time.After(testTimeout):
		t.Fatalf("the bridge never tried to restart b (Open called %d times)", opensB.Load())
	}

	checkNamed := func(id string) {
		t.Helper()
		b.Send(`{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"b_whoami","arguments":{}}}`)
		r := b.Response(id)
		var e struct {
			Code    int               `json:"code"`
			Message string            `json:"message"`
			Data    map[string]string `json:"data"`
		}
		if !r.IsError() || json.Unmarshal(r.Error(), &e) != nil {
			t.Errorf("b_whoami with b down: want an error, got %s", r.Raw())
			return
		}
		t.Logf("b_whoami with b down: %s", r.Raw())
		if e.Code != frame.CodeInternalError || e.Data["backend"] != "b" || strings.Contains(e.Message, "unknown") {
			t.Errorf("b_whoami with b down: got %s; want -32603 with data.backend \"b\", not unknown tool", r.Raw())
		}
	}
	checkNamed("3")
	b.Send(`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"a_whoami","arguments":{}}}`)
	if r := b.Response("4"); !strings.Contains(string(r.Result()), `"text":"a"`) {
		t.Errorf("a_whoami with b down: %s", r.Raw())
	}
	// A fresh list while b is down keeps b's last known names routable.
	b.Send(`{"jsonrpc":"2.0","id":5,"method":"tools/list"}`)
	if r := b.Response("5"); r.IsError() || !contains(toolNames(t, r), "a_whoami") {
		t.Errorf("tools/list with b down: %s", r.Raw())
	}
	checkNamed("6")
	b.Send(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"b_nosuchtool","arguments":{}}}`)
	if r := b.Response("7"); errCode(t, r) != frame.CodeInvalidParams {
		t.Errorf("a name b never listed is still unknown: %s", r.Raw())
	}
	if n := opensB.Load(); n < 2 {
		t.Errorf("b opened %d times", n)
	}
}

// subsServer is a go-sdk server with test://NAME/r and test://shared that
// counts subscribe and unsubscribe per URI.
func subsServer(name string) (srv *mcp.Server, subs, unsubs *sync.Map) {
	subs, unsubs = &sync.Map{}, &sync.Map{}
	bump := func(m *sync.Map, uri string) {
		n, _ := m.LoadOrStore(uri, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
	}
	srv = mcp.NewServer(&mcp.Implementation{Name: name, Version: "1"}, &mcp.ServerOptions{
		SubscribeHandler:   func(ctx context.Context, req *mcp.SubscribeRequest) error { bump(subs, req.Params.URI); return nil },
		UnsubscribeHandler: func(ctx context.Context, req *mcp.UnsubscribeRequest) error { bump(unsubs, req.Params.URI); return nil },
	})
	for _, uri := range []string{"test://" + name + "/r", "test://shared"} {
		srv.AddResource(&mcp.Resource{URI: uri, Name: uri}, func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			return readResult(req.Params.URI, "content of "+name), nil
		})
	}
	return srv, subs, unsubs
}

func countOf(m *sync.Map, uri string) int64 {
	if n, ok := m.Load(uri); ok {
		return n.(*atomic.Int64).Load()
	}
	return 0
}

func TestSubscriptionRoutesToOwnerAndUpdatesReachHost(t *testing.T) {
	srvA, subsA, unsubsA := subsServer("a")
	srvB, subsB, unsubsB := subsServer("b")
	b := bridgedWire(t, Config{}, namedServer{"a", srvA}, namedServer{"b", srvB})
	init := handshake(b.wire)
	if !strings.Contains(string(init.Result()), `"subscribe":true`) {
		t.Errorf("initialize: the union of capabilities lacks resources.subscribe: %s", init.Raw())
	}

	// No resources/list first: the bridge must find the owner itself.
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":"test://b/r"}}`)
	if r := b.Response("1"); r.IsError() {
		t.Fatalf("subscribe test://b/r: %s", r.Raw())
	}
	if na, nb := countOf(subsA, "test://b/r"), countOf(subsB, "test://b/r"); na != 0 || nb != 1 {
		t.Errorf("subscribe test://b/r reached a %d and b %d times; want 0 and 1", na, nb)
	}
	b.Send(`{"jsonrpc":"2.0","id":2,"method":"resources/subscribe","params":{"uri":"test://shared"}}`)
	if r := b.Response("2"); r.IsError() {
		t.Fatalf("subscribe test://shared: %s", r.Raw())
	}
	if na, nb := countOf(subsA, "test://shared"), countOf(subsB, "test://shared"); na != 1 || nb != 0 {
		t.Errorf("subscribe test://shared (listed by both) reached a %d and b %d times; want 1 and 0 (first declared)", na, nb)
	}

	if err := srvB.ResourceUpdated(context.Background(), &mcp.ResourceUpdatedNotificationParams{URI: "test://b/r"}); err != nil {
		t.Fatal(err)
	}
	upd := b.WaitFor("notifications/resources/updated for test://b/r", func(f *frame.Frame) bool {
		return f.Method == "notifications/resources/updated"
	})
	var got bytes.Buffer
	if err := json.Compact(&got, upd.Params()); err != nil || got.String() != `{"uri":"test://b/r"}` {
		t.Errorf("resources/updated reached the host changed: %s; want params {\"uri\":\"test://b/r\"}", upd.Raw())
	}

	b.Send(`{"jsonrpc":"2.0","id":3,"method":"resources/unsubscribe","params":{"uri":"test://b/r"}}`)
	if r := b.Response("3"); r.IsError() {
		t.Fatalf("unsubscribe test://b/r: %s", r.Raw())
	}
	if na, nb := countOf(unsubsA, "test://b/r"), countOf(unsubsB, "test://b/r"); na != 0 || nb != 1 {
		t.Errorf("unsubscribe test://b/r reached a %d and b %d times; want 0 and 1", na, nb)
	}
	// An update from a (owner of test://shared, still subscribed) reaches
	// the host too.
	if err := srvA.ResourceUpdated(context.Background(), &mcp.ResourceUpdatedNotificationParams{URI: "test://shared"}); err != nil {
		t.Fatal(err)
	}
	b.WaitFor("notifications/resources/updated for test://shared", func(f *frame.Frame) bool {
		return f.Method == "notifications/resources/updated" && strings.Contains(string(f.Params()), `"test://shared"`)
	})
}

// TestSharedURIOwnerAfterListChanged: a URI both backends serve goes to
// the first declared, also when a (declared first) starts serving it
// after b's listing made b its owner. The host got resources/list_changed
// and reads without listing again (as it does with a resource_link
// returned by a tool).
func TestSharedURIOwnerAfterListChanged(t *testing.T) {
	srvA, srvB := testServer("a"), testServer("b")
	dyn := func(name string) mcp.ResourceHandler {
		return func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			return readResult(req.Params.URI, "dyn of "+name), nil
		}
	}
	srvB.AddResource(&mcp.Resource{URI: "dyn://x", Name: "x"}, dyn("b"))
	b := bridgedWire(t, Config{}, namedServer{"a", srvA}, namedServer{"b", srvB})
	handshake(b.wire)
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"dyn://x"}}`)
	if r := b.Response("1"); !strings.Contains(string(r.Result()), "dyn of b") {
		t.Fatalf("dyn://x served by b only: %s", r.Raw())
	}
	srvA.AddResource(&mcp.Resource{URI: "dyn://x", Name: "x"}, dyn("a"))
	b.WaitFor("resources/list_changed", func(f *frame.Frame) bool { return f.Method == mResourcesChanged })
	b.Send(`{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"dyn://x"}}`)
	if r := b.Response("2"); !strings.Contains(string(r.Result()), "dyn of a") {
		t.Errorf("BUG: after a's resources/list_changed, dyn://x (now served by a and b) still went to b: "+
			"the URI table is rebuilt only by the next resources/list, not dropped at list_changed; host got %s", r.Raw())
	}
	b.Send(`{"jsonrpc":"2.0","id":3,"method":"resources/list"}`)
	b.Response("3")
	b.Send(`{"jsonrpc":"2.0","id":4,"method":"resources/read","params":{"uri":"dyn://x"}}`)
	if r := b.Response("4"); !strings.Contains(string(r.Result()), "dyn of a") {
		t.Errorf("dyn://x after a fresh resources/list: %s; want a's", r.Raw())
	}
}

// TestUnlistedURIPastAStuckBackend: a URI nobody listed is tried on each
// backend in turn; one that does not answer in time (or is down) does not
// end the search: the next backend that has the URI answers (the mixed
// soak saw a failing backend's error given for another's URI).
func TestUnlistedURIPastAStuckBackend(t *testing.T) {
	var log readLog
	_, srvB := unlistedServers(&log, false)
	stuck := testServer("a")
	stuck.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if method == "resources/read" {
				<-ctx.Done() // until the bridge gives up on it
				return nil, ctx.Err()
			}
			return next(ctx, method, req)
		}
	})
	b := bridgedWire(t, Config{Timeout: 300 * time.Millisecond}, namedServer{"a", stuck}, namedServer{"b", srvB})
	handshake(b.wire)
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"secret://only-b"}}`)
	if r := b.Response("1"); !strings.Contains(string(r.Result()), "secret of b") {
		t.Errorf("secret://only-b past a stuck backend: %s", r.Raw())
	}
	// Nobody has it: the stuck backend's failure is the answer (the URI
	// may have been its).
	b.Send(`{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"secret://nobody"}}`)
	if r := b.Response("2"); !strings.Contains(string(r.Error()), `"backend":"a"`) {
		t.Errorf("secret://nobody: want a's failure: %s", r.Raw())
	}
}
