package bridge

import (
	"context"
	"fmt"
	"github.com/mcpbridge/mcpbridge/backends"
	"github.com/mcpbridge/mcpbridge/config"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/frame"
)

// orderSession records what the bridge sends its backend, in order.
type orderSession struct {
	backends.Session
	mu   sync.Mutex
	sent []string // method, or "id" for host requests
}

func (s *orderSession) Send(f *frame.Frame) error {
	s.mu.Lock()
	if f.Method == "tools/call" {
		s.sent = append(s.sent, "call "+string(f.Bytes(f.Param("arguments", "text"))))
	} else {
		s.sent = append(s.sent, f.Method)
	}
	err := s.Session.Send(f)
	s.mu.Unlock()
	return err
}

// TestAssumedInitializedKeepsOrder: the host's requests held for
// notifications/initialized are routed in order before anything it sends
// later (releaseQueued; with the host's own initialized they are routed
// on the reader before it reads on). When the assumeGrace timer releases
// them, from its own goroutine, the reader routed the host's next requests
// at the same time: a call sent after the held ones reached the backend
// before some of them (twelfth review; later requests now join the queue
// until it is empty).
func TestAssumedInitializedKeepsOrder(t *testing.T) {
	rec := &orderSession{}
	cfg := Config{Open: func(ctx context.Context, b config.Backend, _ backends.Options) (backends.Session, error) {
		rec.Session = serve(t, b.Name, testServer(b.Name))
		return rec, nil
	}}
	h := bridgedWire(t, cfg, namedServer{"a", nil})
	h.Send(initLine)
	h.Response("0")
	const held = 1500
	var b strings.Builder
	for i := 1; i <= held; i++ {
		fmt.Fprintf(&b, `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"text":"held %d"}}}`+"\n", i, i)
	}
	io.WriteString(h.W, b.String())
	time.Sleep(assumeGrace - 20*time.Millisecond)
	id := 10000
	for end := time.Now().Add(100 * time.Millisecond); time.Now().Before(end); id++ {
		h.Send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"text":"later %d"}}}`, id, id))
		time.Sleep(200 * time.Microsecond)
	}
	h.Response(fmt.Sprint(held))
	h.Response(fmt.Sprint(id - 1))
	rec.mu.Lock()
	defer rec.mu.Unlock()
	lastHeld, firstLater, initAt := -1, -1, -1
	for i, s := range rec.sent {
		switch {
		case s == "notifications/initialized" && initAt < 0:
			initAt = i
		case strings.HasPrefix(s, `call "held`):
			lastHeld = i
		case strings.HasPrefix(s, `call "later`) && firstLater < 0:
			firstLater = i
		}
	}
	if firstLater < lastHeld || firstLater < initAt {
		t.Fatalf("the backend got %s (#%d) before %s (#%d); its initialized at #%d", rec.sent[firstLater], firstLater, rec.sent[lastHeld], lastHeld, initAt)
	}
}
