package backends

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/frame"
)

// The legacy SSE transport shares httpCore.order: a cancellation POST the
// server never answers holds no later answer (its server requests name no
// request stream, so they wait for no cancellation).
func TestSSEStuckCancellationDelaysNoAnswer(t *testing.T) {
	var mu sync.Mutex
	got := map[string]time.Time{}
	events := make(chan string, 16)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			serveEndpointStream(w, r, events)
			return
		}
		f, ok := postedFrame(w, r)
		if !ok {
			return
		}
		if f.Method == "notifications/cancelled" {
			<-r.Context().Done() // never answered
			return
		}
		if f.Kind == frame.Response {
			mu.Lock()
			got[string(f.ID())] = time.Now()
			mu.Unlock()
		}
		w.WriteHeader(http.StatusAccepted)
		if f.Method == "initialize" {
			events <- fmt.Sprintf("event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":%s}\n\n", f.ID(), review21InitResult)
		}
	}))
	t.Cleanup(ts.Close)
	s := openReview21SSE(t, ts)
	ping := func(n int) time.Duration {
		events <- fmt.Sprintf("event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"p%d\",\"method\":\"ping\"}\n\n", n)
		ctx, cancel := context.WithTimeout(context.Background(), testWait)
		defer cancel()
		up, err := s.Recv(ctx)
		if err != nil || up.Method != "ping" {
			t.Fatalf("want ping, got %v %v", up, err)
		}
		start := time.Now()
		if err := s.Send(frame.NewResult(up.OutID(), []byte(`{}`))); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf(`"p%d"`, n)
		review21Settle(4*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); _, ok := got[want]; return ok })
		mu.Lock()
		defer mu.Unlock()
		at, ok := got[want]
		if !ok {
			t.Fatalf("answer %s never reached the server", want)
		}
		return at.Sub(start)
	}
	if d := ping(1); d > time.Second {
		t.Fatalf("baseline %v", d)
	}
	review21Send(t, s, `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":99,"reason":"host"}}`)
	time.Sleep(3 * time.Second)
	if d := ping(2); d > time.Second {
		t.Errorf("a ping answer 3 s after a cancellation whose POST hangs reached the server after %v", d.Round(10*time.Millisecond))
	}
}
