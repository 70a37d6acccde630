package bridge

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// TestCancelledPendingDoesNotTakeABatchSlot: the host sends tools/call id
// 7 (pending: the merged lists are held by b), cancels it, and reuses id 7
// in a batch [7, 8]. Dropping the cancelled call must not count as the
// batch member 7's answer: the batch's answer is one array holding both 7
// and 8.
func TestCancelledPendingDoesNotTakeABatchSlot(t *testing.T) {
	b, release := heldLists(t)
	handshake(b.wire)

	b.Send(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"a_echo","arguments":{"text":"the cancelled call"}}}` + "\n" +
		`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7,"reason":"user"}}` + "\n" +
		`[{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"a_sleep","arguments":{"ms":300}}},` +
		`{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"a_echo","arguments":{"text":"eight"}}}]`)
	time.Sleep(300 * time.Millisecond)
	close(release)

	b.Send(`{"jsonrpc":"2.0","id":"after","method":"tools/call","params":{"name":"a_sleep","arguments":{"ms":600}}}`)
	b.Response(`"after"`)
	time.Sleep(100 * time.Millisecond)

	line := b.Line(func(l []byte) bool { return len(l) > 0 && l[0] == '[' })
	if line == nil {
		t.Fatalf("no batch answer:\n%s", b.Dump())
	}
	var items []struct {
		ID json.RawMessage `json:"id"`
	}
	if err := json.Unmarshal(line, &items); err != nil {
		t.Fatal(err)
	}
	var ids [][]byte
	for _, it := range items {
		ids = append(ids, it.ID)
	}
	if len(items) != 2 || !(bytes.Equal(ids[0], []byte("7")) || bytes.Equal(ids[1], []byte("7"))) {
		t.Fatalf("batch [7, 8] answered %s; want both in one array; all lines:\n%s", line, b.Dump())
	}
}

// TestCancelledSingleDoesNotTakeABatchSlot: the other way round: a batch
// [7, 8] waits to be routed, a single request reuses id 7 and is
// cancelled; dropping the single one must not count as the batch member's
// answer (eighth review: the pending request took the batch that held its
// id, not the one it came in).
func TestCancelledSingleDoesNotTakeABatchSlot(t *testing.T) {
	b, release := heldLists(t)
	handshake(b.wire)
	b.Send(`[{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"a_sleep","arguments":{"ms":300}}},` +
		`{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"a_echo","arguments":{"text":"eight"}}}]` + "\n" +
		`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"a_echo","arguments":{"text":"the cancelled single"}}}` + "\n" +
		`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7,"reason":"user"}}`)
	time.Sleep(300 * time.Millisecond)
	close(release)
	b.Send(`{"jsonrpc":"2.0","id":"after","method":"tools/call","params":{"name":"a_sleep","arguments":{"ms":800}}}`)
	b.Response(`"after"`)
	time.Sleep(100 * time.Millisecond)
	line := b.Line(func(l []byte) bool { return len(l) > 0 && l[0] == '[' })
	if line == nil {
		t.Fatalf("no batch answer:\n%s", b.Dump())
	}
	var items []json.RawMessage
	if err := json.Unmarshal(line, &items); err != nil {
		t.Fatal(err)
	}
	if len(items) != 2 {
		t.Fatalf("batch [7, 8] answered %s; want both in one array; all lines:\n%s", line, b.Dump())
	}
}
