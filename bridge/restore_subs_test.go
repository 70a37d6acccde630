package bridge

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/backends"
	"github.com/mcpbridge/mcpbridge/frame"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestSubscriptionSurvivesOwnerRestart: the host subscribed to
// test://shared (listed by a and b; a, declared first, owns it). a dies;
// while it is down the host re-lists resources (b announced a change), so
// the URI table names b. When a comes back, the subscription must be
// restored somewhere: a is its owner again, yet it was not replayed to a
// (its owner "is b" at that instant) and never sent to b either.
func TestSubscriptionSurvivesOwnerRestart(t *testing.T) {
	srvA, subsA, _ := subsServer("a")
	srvB, subsB, _ := subsServer("b")
	release := make(chan struct{})
	reopening := make(chan struct{}, 1)
	cfg, sessA := oneRestarting(t, "b", "a", srvB, srvA, func(ctx context.Context, _ int64) (backends.Session, error) {
		select {
		case reopening <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return serve(t, "a", srvA), nil
	})
	b := bridgedWire(t, cfg)
	handshake(b.wire)
	b.Send(`{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":"test://shared"}}`)
	if r := b.Response("1"); r.IsError() {
		t.Fatalf("subscribe: %s", r.Raw())
	}
	if countOf(subsA, "test://shared") != 1 {
		t.Fatalf("subscription did not reach a")
	}
	(<-sessA).Close()
	select {
	case <-reopening:
	case <-time.After(testTimeout):
		t.Fatal("a was not restarted")
	}
	// b changes its resources while a is down; the host re-lists.
	n0 := b.Count(func(f *frame.Frame) bool { return f.Method == mResourcesChanged })
	srvB.AddResource(&mcp.Resource{URI: "test://b/new", Name: "new"}, func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return readResult(req.Params.URI, "new"), nil
	})
	if !waitShort(b, 5*time.Second, func(f *frame.Frame) bool { return f.Method == mResourcesChanged }) || b.Count(func(f *frame.Frame) bool { return f.Method == mResourcesChanged }) == n0 {
		t.Fatal("no resources/list_changed from b")
	}
	b.Send(`{"jsonrpc":"2.0","id":2,"method":"resources/list"}`)
	b.Response("2")

	nTools := b.Count(func(f *frame.Frame) bool { return f.Method == mToolsChanged })
	close(release)
	deadline := time.Now().Add(testTimeout)
	for b.Count(func(f *frame.Frame) bool { return f.Method == mToolsChanged }) == nTools {
		if time.Now().After(deadline) {
			t.Fatal("a never came back")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // let the restored subscribe land
	na, nb := countOf(subsA, "test://shared"), countOf(subsB, "test://shared")
	t.Logf("subscribe of test://shared reached a %d and b %d times", na, nb)
	// Whoever owns it now, an update of test://shared must reach the host.
	b.Send(`{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"test://shared"}}`)
	owner := "a"
	if r := b.Response("3"); strings.Contains(string(r.Result()), "content of b") {
		owner = "b"
	}
	srv := srvA
	if owner == "b" {
		srv = srvB
	}
	_ = srv.ResourceUpdated(context.Background(), &mcp.ResourceUpdatedNotificationParams{URI: "test://shared"})
	if !waitShort(b, 2*time.Second, func(f *frame.Frame) bool {
		return f.Method == "notifications/resources/updated" && strings.Contains(string(f.Params()), "test://shared")
	}) {
		t.Errorf("the host's subscription to test://shared was lost across a's restart: now routed to %s, subscribe reached a %d and b %d times, and %s's update never reached the host", owner, na, nb, owner)
	}
}
