package backends

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
)

// samplingOrderServer is a streamable-HTTP server whose every tools/call
// opens an answer stream carrying a sampling request (id "s" + the call's
// id) and stays open; what it receives about each call (its cancellation,
// the answer to its sampling request) is kept in order by call id, and
// mu guards order.
func samplingOrderServer(t *testing.T) (ts *httptest.Server, mu *sync.Mutex, order map[string][]string) {
	mu = &sync.Mutex{}
	order = map[string][]string{}
	ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		f, ok := postedFrame(w, r)
		if !ok {
			return
		}
		w.Header().Set("Mcp-Session-Id", "s1")
		switch {
		case f.Method == "initialize":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":%s}`, f.ID(), review21InitResult)
			return
		case f.Method == "tools/call":
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprintf(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"s%s\",\"method\":\"sampling/createMessage\",\"params\":{\"messages\":[],\"maxTokens\":1}}\n\n", f.ID())
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return
		case f.Method == "notifications/cancelled":
			id := string(f.Bytes(f.Param("requestId")))
			mu.Lock()
			order[id] = append(order[id], "cancelled")
			mu.Unlock()
		case f.Kind == frame.Response:
			id := string(f.ID())
			mu.Lock()
			order[id[2:len(id)-1]] = append(order[id[2:len(id)-1]], "sampling error")
			mu.Unlock()
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(ts.Close)
	return ts, mu, order
}

// The router (hostCancel, expire, cancelAsk) sends a call's
// notifications/cancelled and then the error answer to the sampling request
// the server made on the call's answer stream, so that the tool hears of the
// cancellation first. Over streamable HTTP the two go in two POST goroutines
// on two connections: the answer waits for the cancellation's POST (order).
// Before, the server received the sampling error first in 26 to 29 of 30
// calls (the twenty-eighth review): its tool went on, returned, and the
// cancellation then named a finished request.
func TestCancellationPostedBeforeTheSamplingError(t *testing.T) {
	ts, mu, order := samplingOrderServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	opts := review21Opts()
	sess, err := Open(ctx, config.Backend{Name: "b1", Kind: config.KindHTTP, URL: ts.URL}, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	review21Send(t, sess, `%s`, initRequest)
	review21Recv(t, sess, "1")
	review21Send(t, sess, `%s`, initialized)
	time.Sleep(1200 * time.Millisecond)

	const calls = 30
	for i := 10; i < 10+calls; i++ {
		review21Send(t, sess, `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"sample","arguments":{}}}`, i)
		rctx, rcancel := context.WithTimeout(context.Background(), testWait)
		var up *frame.Frame
		for err == nil && (up == nil || up.Kind == frame.Response) { // earlier calls' aborted answers
			up, err = sess.Recv(rctx)
		}
		rcancel()
		if err != nil || up.Method != "sampling/createMessage" {
			t.Fatalf("want the sampling request, got %v %v", up, err)
		}
		// What the router does when the host cancels call i (hostCancel):
		// the cancellation, then endUpsFor's error answer.
		review21Send(t, sess, `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":%d,"reason":"host"}}`, i)
		ef := frame.NewError(up.OutID(), frame.ErrorObject{Code: frame.CodeInternalError, Message: "cancelled by mcpbridge"})
		if err := sess.Send(ef); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	review21Settle(3*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, o := range order {
			n += len(o)
		}
		return n >= 2*calls
	})
	mu.Lock()
	defer mu.Unlock()
	bad := 0
	for id, o := range order {
		if len(o) < 1 || o[0] != "cancelled" {
			bad++
			t.Logf("call %s: server received %q", id, o)
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d calls: the server received the error answer to the call's sampling request before the call's cancellation", bad, calls)
	}
}
