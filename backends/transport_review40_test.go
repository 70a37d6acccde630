package backends

// The 40th review: the HTTP client transports against the MCP transport
// specification (2025-11-25, 2025-06-18, and the 2024-11-05 HTTP+SSE
// transport). Each test failed when written.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
)

// headerLog records the credentials each request reaching a server carried.
type headerLog struct {
	mu   sync.Mutex
	seen []string
}

func (h *headerLog) wrap(next http.Handler, names ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, n := range names {
			if v := r.Header.Get(n); v != "" {
				h.mu.Lock()
				h.seen = append(h.seen, fmt.Sprintf("%s %s: %s", r.Method, n, v))
				h.mu.Unlock()
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (h *headerLog) all() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.seen...)
}

// The configured headers are credentials (README: "--header
// 'NAME:Authorization: Bearer …'", redacted from logs); the legacy SSE
// client refuses an endpoint off the stream's origin for that reason
// (resolve: "the configured headers (credentials) go with every POST").
// A streamable server that redirects the POST (307/308, which keep the
// body) to another origin got them all the same: net/http copies every
// header but Authorization, Cookie and WWW-Authenticate to another host,
// and those too to the same host on another port or scheme (it compares
// host names only). An origin is scheme, host and port (RFC 6454); the
// MCP authorization spec's tokens are bound to one resource (RFC 8707).
func TestCrossOriginRedirectKeepsNoCredentials(t *testing.T) {
	headers := map[string]string{"Authorization": "Bearer sekrit-token-1234", "X-Api-Key": "sekrit-key-5678"}
	for _, tc := range []struct{ name, host string }{
		{"same host, other port", "127.0.0.1"},
		{"other host", "localhost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := &fakeStreamable{}
			fs.call = func(w http.ResponseWriter, r *http.Request, f *frame.Frame) {
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":%s}`, f.ID(), fakeResult)
			}
			var other headerLog
			b := httptest.NewServer(other.wrap(fs, "Authorization", "X-Api-Key"))
			defer b.Close()
			target := strings.Replace(b.URL, "127.0.0.1", tc.host, 1)
			a := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, target+"/mcp", http.StatusTemporaryRedirect)
			}))
			defer a.Close()
			d := newDriver(t, openTest(t, config.KindHTTP, a.URL+"/mcp", headers))
			d.send(initRequest)
			d.await("1") // followed or refused: either way, no credential may reach b
			if seen := other.all(); len(seen) > 0 {
				t.Fatalf("a 307 from %s to %s (another origin) carried the configured credentials there: %q", a.URL, target, seen)
			}
		})
	}
	// The legacy transport's stream: the same client follows a redirect
	// of its GET to another origin with the credentials.
	t.Run("legacy SSE stream", func(t *testing.T) {
		var other headerLog
		b := httptest.NewServer(other.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sseHeaders(w)
			fmt.Fprint(w, "event: endpoint\ndata: /messages?sessionId=1\n\n")
			flush(w)
			<-r.Context().Done()
		}), "Authorization", "X-Api-Key"))
		defer b.Close()
		a := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, b.URL+"/sse", http.StatusTemporaryRedirect)
		}))
		defer a.Close()
		ctx, cancel := context.WithTimeout(context.Background(), testWait)
		defer cancel()
		if s, err := Open(ctx, config.Backend{Name: "b1", Kind: config.KindSSE, URL: a.URL + "/sse", Headers: headers}, Options{Logger: testLogger(t)}); err == nil {
			s.Close()
		}
		if seen := other.all(); len(seen) > 0 {
			t.Fatalf("a 307 of the event stream from %s to %s (another origin) carried the configured credentials there: %q", a.URL, b.URL, seen)
		}
	})
}

// MCP 2025-11-25, "Sending Messages to the Server" 4: a notification or
// response is answered with "202 Accepted with no body". A server that
// answers notifications/initialized with 200 and an event stream it keeps
// open (a server violating that MUST) held the bridge's POST in drain,
// which reads until 64 KiB or the end: notifications/initialized is the
// gate of everything the router sends next (order), so every later request
// of the backend waited for that stream to end, here 30 s; a request
// answered at once was never seen by the server. The TypeScript SDK client
// cancels the body of any answer to a message that is not a request.
func TestNotificationAnsweredWithAnOpenStreamHoldsNothing(t *testing.T) {
	fs := &fakeStreamable{}
	fs.call = func(w http.ResponseWriter, r *http.Request, f *frame.Frame) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":%s}`, f.ID(), fakeResult)
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			body, _ := io.ReadAll(r.Body)
			if strings.Contains(string(body), `"notifications/`) {
				sseHeaders(w) // should be 202 and no body
				flush(w)
				select {
				case <-r.Context().Done():
				case <-time.After(30 * time.Second):
				}
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		fs.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	d := newDriver(t, openTest(t, config.KindHTTP, ts.URL, nil))
	d.initialize()
	d.timeout = 5 * time.Second
	d.send(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
	ctx, cancel := context.WithTimeout(context.Background(), d.timeout)
	defer cancel()
	f, err := d.s.Recv(ctx)
	if err != nil {
		t.Fatalf("tools/list unanswered after %v (the server saw %q): notifications/initialized was answered with an event stream left open, and the bridge waits for its end", d.timeout, fs.entries())
	}
	if string(f.ID()) != "2" || f.IsError() {
		t.Fatalf("got %s", f.Raw())
	}
}

// MCP 2025-11-25, "Listening for Messages from the Server" 4: a server
// closing the GET stream "SHOULD follow the same polling behavior as
// described for POST requests: sending a retry field", and for those "the
// client MUST respect the retry field, waiting the given number of
// milliseconds before attempting to reconnect". The retry field sets the
// event source's reconnection time, which stays set for later connections
// (HTML standard §9.2.6, as the answer stream's resumption does with
// sseReader.Reset). The standalone stream forgot it with each connection:
// after a server that had asked for 1.5 s closed a second connection with
// no retry field of its own, the bridge came back within the backoff's
// 50-100 ms.
func TestStandaloneStreamKeepsRetry(t *testing.T) {
	const retry = 1500 * time.Millisecond
	var mu sync.Mutex
	var gets []time.Time
	fs := &fakeStreamable{}
	fs.call = func(w http.ResponseWriter, r *http.Request, f *frame.Frame) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":%s}`, f.ID(), fakeResult)
	}
	fs.get = func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		gets = append(gets, time.Now())
		n := len(gets)
		mu.Unlock()
		sseHeaders(w)
		switch n {
		case 1: // prime with an id and the reconnection time, then close
			fmt.Fprintf(w, "id: g-1\nretry: %d\ndata:\n\n", retry.Milliseconds())
			flush(w)
		case 2: // close again at once, nothing new to say
			flush(w)
		default:
			<-r.Context().Done()
		}
	}
	ts := serveFake(t, fs)
	d := newDriver(t, openTest(t, config.KindHTTP, ts.URL, nil))
	d.initialize()
	deadline := time.Now().Add(3 * retry)
	for {
		mu.Lock()
		n := len(gets)
		var gap time.Duration
		if n >= 3 {
			gap = gets[2].Sub(gets[1])
		}
		mu.Unlock()
		if n >= 3 {
			if gap < retry-100*time.Millisecond {
				t.Fatalf("the server asked for retry: %d on the standalone stream; after its next connection closed the bridge reconnected after %v", retry.Milliseconds(), gap.Round(time.Millisecond))
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d GETs in %v", n, 3*retry)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// MCP 2025-11-25, "Security Warning" 1 and "Error Handling": a 403 is the
// server's refusal (an invalid Origin, an address not allowed, a scope
// the token lacks), and its body "MAY comprise a JSON-RPC error response
// that has no id" saying why. With OAuth on (the default without a
// configured Authorization header) and no token ever obtained, a plain 403
// was reported as "the server refused the request with the OAuth
// authorization it gave … remove the backend's file in the OAuth
// directory": no authorization was given (the request carried none, and
// there is no file), and the server's own explanation was dropped.
func TestPlain403ExplainedByTheServer(t *testing.T) {
	t.Setenv(OAuthDirEnv, t.TempDir())
	var sentAuth []string
	var mu sync.Mutex
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		sentAuth = append(sentAuth, r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `{"jsonrpc":"2.0","error":{"code":-32000,"message":"Forbidden: client address 10.1.2.3 is not in the allowlist"}}`)
	}))
	t.Cleanup(ts.Close)
	d := newDriver(t, openTest(t, config.KindHTTP, ts.URL, nil))
	d.send(initRequest)
	ans := d.await("1")
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(string(ans.Raw()), "not in the allowlist") {
		t.Fatalf("a 403 to a request that carried Authorization %q was answered %s", sentAuth, ans.Raw())
	}
}

// MCP 2025-11-25 (and 2025-06-18), "Session Management" 3-4: a server
// that ended the session "MUST respond to requests containing that session
// ID with HTTP 404", and "when a client receives HTTP 404 in response to a
// request containing an MCP-Session-Id, it MUST start a new session". The
// GET that resumes a call's answer stream carries the session id; a 404 to
// it was counted as one failed reconnection like a network error: the
// bridge sent the dead session's id twice more, a retry delay apart (the
// call failed only after 3 x the server's retry, here 3 s, "resuming it
// failed 3 times"), and started no new session: with no standalone stream
// (405) the server's notifications stayed unheard until the host's next
// request found the 404 again. The standalone stream's own 404 does start
// one (listen).
func TestResumptionRefused404StartsANewSession(t *testing.T) {
	var lost atomic.Bool
	var resumes404 atomic.Int32
	fs := &fakeStreamable{}
	fs.call = func(w http.ResponseWriter, r *http.Request, f *frame.Frame) {
		sseHeaders(w)
		fmt.Fprint(w, "id: ev-0\nretry: 1000\ndata:\n\n") // prime, then close
		flush(w)
		lost.Store(true) // and the server restarts: session s1 is gone
	}
	fs.get = func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(headerLastEventID) == "" {
			w.WriteHeader(http.StatusMethodNotAllowed) // no standalone stream
			return
		}
		if lost.Load() && r.Header.Get(headerSessionID) == "s1" {
			resumes404.Add(1)
			http.Error(w, "session not found", http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusBadRequest)
	}
	ts := serveFake(t, fs)
	d := newDriver(t, openTest(t, config.KindHTTP, ts.URL, nil))
	d.initialize()
	d.send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"slow","arguments":{}}}`)
	ans := d.await("2")
	deadline := time.Now().Add(2 * time.Second)
	for fs.inits.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := resumes404.Load(); n > 1 || fs.inits.Load() < 2 {
		t.Fatalf("the resumption GET got 404 for its session %d times and %d initialize was sent in all (the call was answered %.160s); the server saw %q", n, fs.inits.Load(), ans.Raw(), fs.entries())
	}
}
