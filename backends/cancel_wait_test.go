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

// cancelWaitServer: initialize answered in JSON; tools/call "ping" opens an
// SSE stream carrying a server ping "p<id>" and stays open; tools/call
// "silent" sends no headers until aborted (go-sdk's silent call);
// notifications/cancelled naming "hang" (the string id) is never answered;
// answers are timestamped.
func cancelWaitServer(t *testing.T) (*httptest.Server, func(id string) (time.Time, bool)) {
	var mu sync.Mutex
	got := map[string]time.Time{}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
		case f.Method == "tools/call" && string(f.Bytes(f.Param("name"))) == `"silent"`:
			<-r.Context().Done()
			return
		case f.Method == "tools/call":
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprintf(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"p%s\",\"method\":\"ping\"}\n\n", f.ID())
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return
		case f.Method == "notifications/cancelled" && string(f.Bytes(f.Param("requestId"))) == `"hang"`:
			<-r.Context().Done()
			return
		case f.Kind == frame.Response:
			mu.Lock()
			got[string(f.ID())] = time.Now()
			mu.Unlock()
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(ts.Close)
	return ts, func(id string) (time.Time, bool) { mu.Lock(); defer mu.Unlock(); at, ok := got[id]; return at, ok }
}

func review29Open(t *testing.T, ts *httptest.Server) Session {
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	sess, err := Open(ctx, config.Backend{Name: "b1", Kind: config.KindHTTP, URL: ts.URL}, review21Opts())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	review21Send(t, sess, `%s`, initRequest)
	review21Recv(t, sess, "1")
	review21Send(t, sess, `%s`, initialized)
	time.Sleep(1200 * time.Millisecond)
	return sess
}

// A call whose stream carries a server ping; the ping is answered and the
// time until the server has the answer returned.
func review29PingRoundTrip(t *testing.T, sess Session, got func(string) (time.Time, bool), id int) time.Duration {
	t.Helper()
	review21Send(t, sess, `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"ping","arguments":{}}}`, id)
	rctx, rcancel := context.WithTimeout(context.Background(), testWait)
	defer rcancel()
	var up *frame.Frame
	var err error
	for err == nil && (up == nil || up.Kind == frame.Response) {
		up, err = sess.Recv(rctx)
	}
	if err != nil || up.Method != "ping" {
		t.Fatalf("want the server's ping, got %v %v", up, err)
	}
	start := time.Now()
	if err := sess.Send(frame.NewResult(up.OutID(), []byte(`{}`))); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`"p%d"`, id)
	review21Settle(4*time.Second, func() bool { _, ok := got(want); return ok })
	at, ok := got(want)
	if !ok {
		t.Fatalf("the ping answer %s never reached the server", want)
	}
	return at.Sub(start)
}

// One cancellation whose POST the server never answers (a hung server, a
// proxy holding the request; there is no client timeout) delays no answer
// to a server request that came on another request's stream (the twenty-
// ninth review: a session-wide count of cancellations on their way held
// every later answer, a ping's included, 2.5 s for the session's life).
func TestStuckCancellationDelaysNoOtherAnswer(t *testing.T) {
	ts, got := cancelWaitServer(t)
	sess := review29Open(t, ts)
	if d := review29PingRoundTrip(t, sess, got, 10); d > time.Second {
		t.Fatalf("baseline ping answer took %v", d)
	}
	review21Send(t, sess, `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"hang","reason":"host"}}`)
	time.Sleep(3 * time.Second) // long past any bound
	for i, id := range []int{11, 12} {
		if d := review29PingRoundTrip(t, sess, got, id); d > time.Second {
			t.Errorf("ping answer %d (%v after a cancellation sent 3 s+ earlier): reached the server after %v", i+1, 3*time.Second, d.Round(10*time.Millisecond))
		}
	}
}

// An answer waits for no cancellation but that of the request whose stream
// its server request came on: a host cancelling other calls every 400 ms
// (each cancellation waiting cancelGrace, as with go-sdk servers) held
// every answer the full 2.5 s behind a session-wide count.
func TestAnswerWaitsForNoOtherCancellation(t *testing.T) {
	ts, got := cancelWaitServer(t)
	sess := review29Open(t, ts)
	// The ping call, its ping received, then a silent call and its cancel,
	// then the ping's answer.
	review21Send(t, sess, `{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"ping","arguments":{}}}`)
	rctx, rcancel := context.WithTimeout(context.Background(), testWait)
	defer rcancel()
	up, err := sess.Recv(rctx)
	if err != nil || up.Method != "ping" {
		t.Fatalf("want the server's ping, got %v %v", up, err)
	}
	review21Send(t, sess, `{"jsonrpc":"2.0","id":20,"method":"tools/call","params":{"name":"silent","arguments":{}}}`)
	time.Sleep(20 * time.Millisecond)
	review21Send(t, sess, `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":20,"reason":"host"}}`)
	start := time.Now()
	if err := sess.Send(frame.NewResult(up.OutID(), []byte(`{}`))); err != nil {
		t.Fatal(err)
	}
	// Later cancellations, each of a silent call.
	for i := 21; i < 27; i++ {
		time.Sleep(380 * time.Millisecond)
		review21Send(t, sess, `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"silent","arguments":{}}}`, i)
		time.Sleep(20 * time.Millisecond)
		review21Send(t, sess, `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":%d,"reason":"host"}}`, i)
	}
	review21Settle(4*time.Second, func() bool { _, ok := got(`"p10"`); return ok })
	at, ok := got(`"p10"`)
	if !ok {
		t.Fatal("the ping answer never reached the server")
	}
	if d := at.Sub(start); d > 1200*time.Millisecond {
		t.Errorf("the ping answer, sent after one cancellation (POSTed ~0.5 s later), reached the server after %v: it waited for the cancellations sent after it", d.Round(10*time.Millisecond))
	}
}

// Close while a cancellation waits in waitPosted and another's POST hangs:
// Close returns at once and the POST goroutines end.
func TestCloseWhileAnswersAndCancellationsWait(t *testing.T) {
	ts, _ := cancelWaitServer(t)
	sess := review29Open(t, ts)
	review21Send(t, sess, `{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"ping","arguments":{}}}`)
	rctx, rcancel := context.WithTimeout(context.Background(), testWait)
	defer rcancel()
	up, err := sess.Recv(rctx)
	if err != nil || up.Method != "ping" {
		t.Fatalf("want ping, got %v %v", up, err)
	}
	review21Send(t, sess, `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"hang","reason":"host"}}`)
	review21Send(t, sess, `{"jsonrpc":"2.0","id":20,"method":"tools/call","params":{"name":"silent","arguments":{}}}`)
	time.Sleep(20 * time.Millisecond)
	review21Send(t, sess, `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":20,"reason":"host"}}`)
	if err := sess.Send(frame.NewResult(up.OutID(), []byte(`{}`))); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	sess.Close()
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("Close took %v", d)
	}
	if !review21Settle(2*time.Second, func() bool {
		return review21Stacks("backends.waitPosted", "backends.(*httpCore).waitTurn", "backends.(*streamable).postRequest", "backends.(*streamable).postOther") == 0
	}) {
		t.Errorf("POST goroutines left after Close")
	}
}
