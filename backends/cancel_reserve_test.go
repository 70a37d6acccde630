package backends

import (
	"context"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
)

// With every POST slot held, the router's cancellation of call 10 takes a
// slot of the cancellations' reserve and is POSTed, and the error answer
// endUpsFor sends right after waits for it. Before (the thirtieth review),
// the cancellation found no slot (only its call's POST was ended), and the
// answer, taking the slot that gave back, reached the server without it.
func TestAllSlotsHeldCancellationStillPrecedesTheAnswer(t *testing.T) {
	ts, mu, order := samplingOrderServer(t)
	s, err := newStreamable(config.Backend{Name: "b1", Kind: config.KindHTTP, URL: ts.URL}, review21Opts())
	if err != nil {
		t.Fatal(err)
	}
	s.sem = make(chan struct{}, 2) // 4,096 in use
	t.Cleanup(func() { s.Close() })
	review21Send(t, s, `%s`, initRequest)
	review21Recv(t, s, "1")
	review21Send(t, s, `%s`, initialized)
	review21Settle(testWait, func() bool { return len(s.sem) == 0 })
	ups := map[int]*frame.Frame{}
	for id := 10; id < 12; id++ {
		review21Send(t, s, `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"sample","arguments":{}}}`, id)
		rctx, rcancel := context.WithTimeout(context.Background(), testWait)
		up, err := s.Recv(rctx)
		rcancel()
		if err != nil || up.Method != "sampling/createMessage" {
			t.Fatalf("want the sampling request, got %v %v", up, err)
		}
		ups[id] = up
	}
	f, _ := frame.Parse([]byte(`{"jsonrpc":"2.0","id":20,"method":"tools/call","params":{"name":"sample","arguments":{}}}`))
	if err := s.Send(f); err == nil {
		t.Fatal("premise: a third call found a slot")
	}
	// hostCancel: the cancellation (a reserve slot) ...
	c, _ := frame.Parse([]byte(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":10,"reason":"host"}}`))
	if err := s.Send(c); err != nil {
		t.Fatalf("the cancellation with every slot held: %v", err)
	}
	// ... then endUpsFor's error answer, once a slot is back (call 10's
	// aborted POST, or any other POST ending).
	review21Settle(testWait, func() bool { return len(s.sem) < 2 })
	ef := frame.NewError(ups[10].OutID(), frame.ErrorObject{Code: frame.CodeInternalError, Message: "cancelled by mcpbridge"})
	if err := s.Send(ef); err != nil {
		t.Fatalf("answer: %v", err)
	}
	review21Settle(3*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(order["10"]) > 0 })
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if o := order["10"]; len(o) == 0 || o[0] != "cancelled" {
		t.Errorf("call 10: the server received %q: the sampling error without (or before) the call's cancellation", o)
	}
}
