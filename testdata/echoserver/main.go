// Command echoserver is a small go-sdk MCP server for mcpbridge's tests, the
// README demo and the benchmark (bench/compare). Its tools: echo {text}
// returns text; add {a, b} returns a+b.
//
//	echoserver [-stdio] [-stats FILE]  serve on stdin/stdout; on exit write the counts to FILE
//	echoserver -http 127.0.0.1:0       streamable HTTP at /mcp, counts at GET /stats
//	echoserver -sse 127.0.0.1:0        SSE at /sse, counts at GET /stats
//
// In the HTTP modes the first line of stderr is "listening URL". Counts are
// JSON: {"sessions":N,"messages":N,"requests":N,"posts":N,"gets":N,"deletes":N}
// where sessions counts initialize (and server/discover) requests, messages
// counts JSON-RPC messages received, and the rest count HTTP requests to the
// MCP endpoint. Logs go to stderr; in stdio mode stdout carries only JSON-RPC.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// maxMessage lifts go-sdk's limits on one stdio line and one HTTP body.
const maxMessage = 64 << 20

type counts struct {
	sessions, messages, requests, posts, gets, deletes atomic.Int64
}

func (c *counts) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]int64{
		"sessions": c.sessions.Load(), "messages": c.messages.Load(),
		"requests": c.requests.Load(), "posts": c.posts.Load(),
		"gets": c.gets.Load(), "deletes": c.deletes.Load(),
	})
}

type echoIn struct {
	Text string `json:"text" jsonschema:"the text to return"`
}

type addIn struct {
	A float64 `json:"a" jsonschema:"first addend"`
	B float64 `json:"b" jsonschema:"second addend"`
}

func text(s string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
}

func newServer(c *counts) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "echoserver", Version: "1.0.0"}, nil)
	s.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			c.messages.Add(1)
			if method == "initialize" || method == "server/discover" {
				c.sessions.Add(1)
			}
			return next(ctx, method, req)
		}
	})
	mcp.AddTool(s, &mcp.Tool{Name: "echo", Description: "Returns its text argument."},
		func(_ context.Context, _ *mcp.CallToolRequest, in echoIn) (*mcp.CallToolResult, any, error) {
			return text(in.Text), nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "add", Description: "Returns a+b."},
		func(_ context.Context, _ *mcp.CallToolRequest, in addIn) (*mcp.CallToolResult, any, error) {
			return text(strconv.FormatFloat(in.A+in.B, 'g', -1, 64)), nil, nil
		})
	return s
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("echoserver: ")
	log.SetOutput(os.Stderr)
	_ = flag.Bool("stdio", false, "serve on stdin/stdout (the default)")
	httpAddr := flag.String("http", "", "serve streamable HTTP at `ADDR`/mcp")
	sseAddr := flag.String("sse", "", "serve SSE at `ADDR`/sse")
	statsFile := flag.String("stats", "", "stdio mode: write the counts to `FILE` on exit")
	flag.Parse()
	if *httpAddr != "" && *sseAddr != "" {
		log.Fatal("-http and -sse are exclusive")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c := &counts{}
	s := newServer(c)

	var err error
	switch {
	case *httpAddr != "":
		h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s },
			&mcp.StreamableHTTPOptions{MaxRequestBodyBytes: maxMessage})
		err = serveHTTP(ctx, *httpAddr, "/mcp", h, c)
	case *sseAddr != "":
		h := mcp.NewSSEHandler(func(*http.Request) *mcp.Server { return s },
			&mcp.SSEOptions{MaxRequestBodyBytes: maxMessage})
		err = serveHTTP(ctx, *sseAddr, "/sse", h, c)
	default:
		err = s.Run(ctx, &mcp.StdioTransport{MaxLineLength: maxMessage})
		if *statsFile != "" {
			b, _ := json.Marshal(c)
			if werr := os.WriteFile(*statsFile, append(b, '\n'), 0o644); werr != nil {
				log.Print(werr)
			}
		}
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Fatal(err)
	}
}

// serveHTTP serves h at path and the counts at /stats until ctx is done.
func serveHTTP(ctx context.Context, addr, path string, h http.Handler, c *counts) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "listening http://%s%s\n", ln.Addr(), path)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(c)
	})
	mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		c.requests.Add(1)
		switch r.Method {
		case http.MethodPost:
			c.posts.Add(1)
		case http.MethodGet:
			c.gets.Add(1)
		case http.MethodDelete:
			c.deletes.Add(1)
		}
		h.ServeHTTP(w, r)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	// Open SSE streams never go idle; give them a moment, then cut them.
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	<-done
	return nil
}
