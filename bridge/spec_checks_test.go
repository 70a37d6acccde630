package bridge

// MCP 2025-11-25 features the twentieth review checked through the bridge
// and found to work; what it found broken is in spec_review_test.go.

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/frame"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// featureServer is a go-sdk server using 2025-06-18/2025-11-25 features:
// a tool with title, icons, annotations, _meta and outputSchema returning
// structuredContent and a resource_link; a tool failing with -32042; a
// prompt; a template; completions; subscriptions.
func featureServer(name string, gotInit *mcp.InitializeParams, mu *sync.Mutex) *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: name, Version: "1"}, &mcp.ServerOptions{
		Instructions: "use " + name,
		CompletionHandler: func(ctx context.Context, req *mcp.CompleteRequest) (*mcp.CompleteResult, error) {
			b, _ := json.Marshal(req.Params)
			return &mcp.CompleteResult{Completion: mcp.CompletionResultDetails{Values: []string{name + "|" + string(b)}}}, nil
		},
		SubscribeHandler:   func(context.Context, *mcp.SubscribeRequest) error { return nil },
		UnsubscribeHandler: func(context.Context, *mcp.UnsubscribeRequest) error { return nil },
		InitializedHandler: func(ctx context.Context, req *mcp.InitializedRequest) {
			if gotInit != nil {
				mu.Lock()
				*gotInit = *req.Session.InitializeParams()
				mu.Unlock()
			}
		},
	})
	type out struct {
		N int `json:"n"`
	}
	mcp.AddTool(srv, &mcp.Tool{
		Name: "rich", Title: "Rich " + name, Description: "rich",
		Icons:       []mcp.Icon{{Source: "https://example.com/" + name + ".png", MIMEType: "image/png", Sizes: []string{"48x48"}}},
		Annotations: &mcp.ToolAnnotations{Title: "annot", ReadOnlyHint: true},
		Meta:        mcp.Meta{"vendor/x": map[string]any{"k": 9007199254740993.0}},
	}, func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, out, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.ResourceLink{URI: "tmpl://" + name + "/7", Name: "seven", Title: "Seven"}}}, out{N: 7}, nil
	})
	mcp.AddTool(srv, &mcp.Tool{Name: "needsurl"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
		return nil, nil, mcp.URLElicitationRequiredError([]*mcp.ElicitParams{{Mode: "url", Message: "auth", URL: "https://x.example.com/a", ElicitationID: "e-" + name}})
	})
	srv.AddPrompt(&mcp.Prompt{Name: "greet", Title: "Greet", Arguments: []*mcp.PromptArgument{{Name: "who"}}}, func(ctx context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		return &mcp.GetPromptResult{Messages: []*mcp.PromptMessage{{Role: "user", Content: &mcp.TextContent{Text: "hi from " + name}}}}, nil
	})
	srv.AddResourceTemplate(&mcp.ResourceTemplate{URITemplate: "tmpl://" + name + "/{x}", Name: "t", Title: "T " + name}, func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, Text: "templated of " + name}}}, nil
	})
	return srv
}

func TestSpecFeaturesThroughMergedBridge(t *testing.T) {
	var mu sync.Mutex
	var initA mcp.InitializeParams
	b := bridgedWire(t, Config{}, namedServer{"a", featureServer("a", &initA, &mu)}, namedServer{"b", featureServer("b", nil, nil)})
	b.Send(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{"sampling":{"tools":{},"context":{}},"elicitation":{"form":{},"url":{}}},"clientInfo":{"name":"h","version":"1"}}}`)
	init := b.Response("0")
	b.Send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	var res struct {
		ProtocolVersion string                     `json:"protocolVersion"`
		Capabilities    map[string]json.RawMessage `json:"capabilities"`
		Instructions    string                     `json:"instructions"`
	}
	_ = json.Unmarshal(init.Result(), &res)
	if res.ProtocolVersion != "2025-06-18" || res.Capabilities["completions"] == nil ||
		!strings.Contains(string(res.Capabilities["resources"]), `"subscribe":true`) || !strings.Contains(res.Instructions, "## b\nuse b") {
		t.Errorf("initialize: %s", init.Result())
	}
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	tl := b.Response("1")
	for _, want := range []string{`"name":"a_rich"`, `"title":"Rich a"`, `"icons":[{"src":"https://example.com/a.png","mimeType":"image/png","sizes":["48x48"]}]`, `"readOnlyHint":true`, `"outputSchema"`, `"vendor/x"`} {
		if !strings.Contains(string(tl.Result()), want) {
			t.Errorf("tools/list lacks %s: %.600s", want, tl.Result())
		}
	}
	b.Send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"b_rich","arguments":{}}}`)
	if r := b.Response("2"); !strings.Contains(string(r.Result()), `"structuredContent":{"n":7}`) || !strings.Contains(string(r.Result()), `"type":"resource_link"`) || !strings.Contains(string(r.Result()), `tmpl://b/7`) {
		t.Errorf("tools/call: %s", r.Raw())
	}
	b.Send(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"b_needsurl","arguments":{}}}`)
	if r := b.Response("3"); !strings.Contains(string(r.Error()), `-32042`) || !strings.Contains(string(r.Error()), `"elicitationId":"b/e-b"`) {
		t.Errorf("-32042: %s", r.Raw())
	}
	b.Send(`{"jsonrpc":"2.0","id":4,"method":"resources/templates/list"}`)
	if r := b.Response("4"); !strings.Contains(string(r.Result()), `tmpl://a/{x}`) || !strings.Contains(string(r.Result()), `tmpl://b/{x}`) {
		t.Errorf("templates: %s", r.Raw())
	}
	b.Send(`{"jsonrpc":"2.0","id":5,"method":"resources/read","params":{"uri":"tmpl://b/7"}}`)
	if r := b.Response("5"); !strings.Contains(string(r.Result()), "templated of b") {
		t.Errorf("templated read: %s", r.Raw())
	}
	b.Send(`{"jsonrpc":"2.0","id":6,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"b_greet"},"argument":{"name":"who","value":"x"},"context":{"arguments":{"y":"z"}}}}`)
	if r := b.Response("6"); !strings.Contains(string(r.Result()), `b|`) || !strings.Contains(string(r.Result()), `\"name\":\"greet\"`) || !strings.Contains(string(r.Result()), `\"y\":\"z\"`) {
		t.Errorf("completion ref/prompt: %s", r.Raw())
	}
	b.Send(`{"jsonrpc":"2.0","id":7,"method":"completion/complete","params":{"ref":{"type":"ref/resource","uri":"tmpl://b/{x}"},"argument":{"name":"x","value":""}}}`)
	if r := b.Response("7"); !strings.Contains(string(r.Result()), `b|`) {
		t.Errorf("completion ref/resource: %s", r.Raw())
	}
	b.Send(`{"jsonrpc":"2.0","id":8,"method":"ping"}`)
	b.Response("8")
	mu.Lock()
	if initA.ProtocolVersion != "2025-06-18" || initA.Capabilities == nil || initA.Capabilities.Elicitation == nil || initA.Capabilities.Elicitation.URL == nil {
		t.Errorf("backend a's initialize params: %+v", initA)
	}
	mu.Unlock()
}

func TestMergedVersionNegotiation(t *testing.T) {
	for asked, want := range map[string]string{"2025-06-18": "2025-06-18", "2025-11-25": "2025-11-25", "2099-01-01": "2025-11-25", "": "2025-11-25", "2024-11-05": "2024-11-05"} {
		b := bridgedWire(t, Config{}, namedServer{"a", testServer("a")}, namedServer{"b", testServer("b")})
		b.Send(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"` + asked + `","capabilities":{},"clientInfo":{"name":"h","version":"1"}}}`)
		if r := b.Response("0"); !strings.Contains(string(r.Result()), `"protocolVersion":"`+want+`"`) {
			t.Errorf("asked %q: %s", asked, r.Raw())
		}
	}
}

// scripted pass-through: sampling with tools, URL elicitation complete,
// progress with total/message, resources/updated, list_changed, logging,
// cancellation with reason, ping from a backend.
func TestSpecFeaturesPassThroughScripted(t *testing.T) {
	var mu sync.Mutex
	var cancels []string
	toolsV := 1
	srv := func(name string) *scriptedServer {
		return &scriptedServer{name: name, caps: `{"tools":{"listChanged":true},"resources":{"subscribe":true},"logging":{}}`, handle: func(f *frame.Frame, write func(string, ...any)) {
			id := string(f.ID())
			switch f.Method {
			case "tools/list":
				mu.Lock()
				v := toolsV
				mu.Unlock()
				write(`{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"t%d","inputSchema":{"type":"object"}}]}}`, id, v)
			case "tools/call":
				tok := f.Bytes(f.Param("_meta", "progressToken"))
				if tok == nil {
					tok = []byte(`0`)
				}
				write(`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":%s,"progress":1,"total":3,"message":"m-%s"}}`, tok, name)
				write(`{"jsonrpc":"2.0","id":"s1","method":"sampling/createMessage","params":{"maxTokens":5,"messages":[{"role":"user","content":[{"type":"tool_result","toolUseId":"u1","content":[]}]}],"tools":[{"name":"w","inputSchema":{"type":"object"}}],"toolChoice":{"mode":"required"},"includeContext":"thisServer"}}`)
				write(`{"jsonrpc":"2.0","id":"p1","method":"ping"}`)
				write(`{"jsonrpc":"2.0","method":"notifications/elicitation/complete","params":{"elicitationId":"el-%s"}}`, name)
				write(`{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","logger":"core","data":{"x":1}}}`)
				write(`{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"x://%s/1"}}`, name)
				mu.Lock()
				toolsV = 2
				mu.Unlock()
				write(`{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}`)
				// answered later (after a cancel) or never
			case "notifications/cancelled":
				mu.Lock()
				cancels = append(cancels, string(f.Params()))
				mu.Unlock()
			case "logging/setLevel", "resources/subscribe":
				write(`{"jsonrpc":"2.0","id":%s,"result":{}}`, id)
			default:
				if f.Kind == frame.Request {
					write(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"nf"}}`, id)
				}
			}
		}}
	}
	b := bridgedScripted(t, Config{}, srv("a"), srv("b"))
	handshake(b.wire)
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	if r := b.Response("1"); !strings.Contains(string(r.Result()), `"a_t1"`) {
		t.Fatalf("list: %s", r.Raw())
	}
	b.Send(`{"jsonrpc":"2.0","id":2,"method":"logging/setLevel","params":{"level":"debug"}}`)
	b.Response("2")
	b.Send(`{"jsonrpc":"2.0","id":3,"method":"resources/subscribe","params":{"uri":"x://a/1"}}`)
	b.Response("3")
	b.Send(`{"jsonrpc":"2.0","id":"c","method":"tools/call","params":{"name":"a_t1","arguments":{},"_meta":{"progressToken":"pt"}}}`)
	b.WaitFor("progress", func(f *frame.Frame) bool {
		return f.Method == "notifications/progress" && string(f.Params()) == `{"progressToken":"pt","progress":1,"total":3,"message":"m-a"}`
	})
	s := b.WaitFor("sampling", func(f *frame.Frame) bool { return f.Method == "sampling/createMessage" })
	if !strings.Contains(string(s.Params()), `"toolChoice":{"mode":"required"}`) || !strings.Contains(string(s.Params()), `"tool_result"`) {
		t.Errorf("sampling: %s", s.Raw())
	}
	p := b.WaitFor("ping", func(f *frame.Frame) bool { return f.Method == "ping" })
	b.Send(`{"jsonrpc":"2.0","id":` + string(p.ID()) + `,"result":{}}`)
	b.WaitFor("elicitation complete", func(f *frame.Frame) bool {
		return f.Method == "notifications/elicitation/complete" && string(f.Params()) == `{"elicitationId":"a/el-a"}`
	})
	b.WaitFor("log", func(f *frame.Frame) bool {
		return f.Method == "notifications/message" && strings.Contains(string(f.Params()), `"logger":"a/core"`)
	})
	b.WaitFor("updated", func(f *frame.Frame) bool {
		return f.Method == "notifications/resources/updated" && string(f.Params()) == `{"uri":"x://a/1"}`
	})
	b.WaitFor("list_changed", func(f *frame.Frame) bool { return f.Method == "notifications/tools/list_changed" })
	b.Send(`{"jsonrpc":"2.0","id":4,"method":"tools/list"}`)
	if r := b.Response("4"); !strings.Contains(string(r.Result()), `"a_t2"`) {
		t.Errorf("re-list after list_changed: %s", r.Raw())
	}
	b.Send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"c","reason":"user said stop"}}`)
	deadline := time.Now().Add(testTimeout)
	for {
		mu.Lock()
		got := fmt.Sprint(cancels)
		mu.Unlock()
		if strings.Contains(got, `"reason":"user said stop"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cancellation with reason did not reach the backend: %s", got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
