package bridge

import (
	"bytes"
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/backends"
	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
	"github.com/mcpbridge/mcpbridge/internal/wiretest"
	"github.com/rs/zerolog"
)

// FuzzRouter drives the whole router (Run) with a sequence of host lines
// and backend behaviours decoded from the input, and checks it against a
// tiny model of what the host must see (issues #4 and #5):
//   - every response carries an id the host sent, byte for byte (or null,
//     for a line that was not JSON-RPC);
//   - a host id gets at most as many responses as requests were sent with
//     it, and at least that many minus its cancellations: duplicates in
//     flight are refused, late and doubled backend answers are dropped;
//   - Run ends after stdin EOF, whatever happened.
//
// The backend here is scripted rather than a go-sdk server, because the
// point is interleavings a real server would not produce on demand:
// answering twice, answering with unknown ids, holding answers, asking the
// host in the middle of a call.
func FuzzRouter(f *testing.F) {
	f.Add([]byte{0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte{0, 2, 0, 2, 3, 0, 1, 1, 4, 0, 7, 3})
	f.Add([]byte{6, 0, 6, 1, 2, 2, 2, 5, 5, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 64 {
			in = in[:64]
		}
		runRouterScript(t, in)
	})
}

var fuzzIDs = []string{"0", "1", `"a"`, "9007199254740993", "1.5", `"0"`}

// scripted is a backend whose answers follow the fuzz input.
type scripted struct {
	mu       sync.Mutex
	script   []byte
	out      chan *frame.Frame
	held     []*frame.Frame
	flushing bool
	closed   chan struct{}
	once     sync.Once
	upID     int
}

func (s *scripted) next() byte {
	if len(s.script) == 0 {
		return 0
	}
	b := s.script[0]
	s.script = s.script[1:]
	return b
}

func (s *scripted) Name() string { return "fz" }

func (s *scripted) Send(f *frame.Frame) error {
	// See the frame as a real backend would: with the router's edits.
	f, err := frame.Parse(bytes.Clone(f.Encoded()))
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case f.Method == mInitialize:
		s.emit(frame.NewResult(f.ID(), []byte(`{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"fz","version":"1"}}`)))
	case f.Method == mCancelled:
		rid := f.Bytes(f.Param("requestId"))
		for i, h := range s.held {
			if bytes.Equal(h.ID(), rid) {
				s.held = append(s.held[:i], s.held[i+1:]...)
				break
			}
		}
	case f.Kind == frame.Request:
		id := bytes.Clone(f.ID())
		ok := frame.NewResult(id, []byte(`{"content":[]}`))
		if s.flushing {
			s.emit(ok)
			return nil
		}
		switch s.next() % 6 {
		case 0:
			s.emit(ok)
		case 1: // answered twice: the second must be dropped
			s.emit(ok)
			s.emit(frame.NewResult(id, []byte(`{"content":[]}`)))
		case 2:
			s.held = append(s.held, ok)
		case 3:
			s.emit(frame.NewError(id, frame.ErrorObject{Code: -32000, Message: "tool failed"}))
		case 4: // ask the host first, then answer
			s.upID++
			s.emit(frame.NewRequest(frame.AppendInt(nil, int64(s.upID)), "sampling/createMessage", []byte(`{"messages":[],"maxTokens":1}`)))
			s.emit(ok)
		case 5: // an answer to nothing, then the real one
			s.emit(frame.NewResult([]byte("987654321"), []byte(`{}`)))
			s.emit(ok)
		}
	}
	return nil
}

// emit queues a frame for Recv; s.mu is held.
func (s *scripted) emit(f *frame.Frame) {
	select {
	case s.out <- f:
	case <-s.closed:
	}
}

// flush answers everything held and answers later requests at once.
func (s *scripted) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushing = true
	for _, h := range s.held {
		s.emit(h)
	}
	s.held = nil
}

func (s *scripted) Recv(ctx context.Context) (*frame.Frame, error) {
	select {
	case f := <-s.out:
		return f, nil
	case <-s.closed:
		return nil, backends.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *scripted) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}

func runRouterScript(t *testing.T, in []byte) {
	host, backendScript := in, in
	if len(in) > 1 {
		host, backendScript = in[:len(in)/2], in[len(in)/2:]
	}
	be := &scripted{script: bytes.Clone(backendScript), out: make(chan *frame.Frame, 1024), closed: make(chan struct{})}
	cfg := Config{
		Backends:      []config.Backend{{Name: "fz", Kind: config.KindStdio, Command: "scripted"}},
		Logger:        zerolog.Nop(),
		ShutdownGrace: time.Second,
		Open: func(context.Context, config.Backend, backends.Options) (backends.Session, error) {
			return be, nil
		},
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := Run(context.Background(), cfg, inR, outW)
		outW.Close()
		done <- err
	}()

	// The host side: read everything, answer the backend's requests.
	var mu sync.Mutex
	var lines [][]byte
	readDone := wiretest.Frames(t, outR, func(f *frame.Frame) {
		if f.Kind == frame.Request {
			io.WriteString(inW, `{"jsonrpc":"2.0","id":`+string(f.ID())+`,"result":{"role":"assistant","content":{"type":"text","text":"x"},"model":"m"}}`+"\n")
			return
		}
		mu.Lock()
		lines = append(lines, f.Raw())
		mu.Unlock()
	})

	sent := map[string]int{}
	cancels := map[string]int{}
	garbage := 0
	write := func(s string) { io.WriteString(inW, s+"\n") }
	write(`{"jsonrpc":"2.0","id":"init","method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"fz","version":"1"}}}`)
	write(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	sent[`"init"`]++
	for i := 0; i < len(host); i++ {
		op, arg := host[i]%4, 0
		if i+1 < len(host) {
			arg = int(host[i+1])
		}
		id := fuzzIDs[arg%len(fuzzIDs)]
		switch op {
		case 0, 1:
			write(`{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"t","arguments":{},"_meta":{"progressToken":` + id + `}}}`)
			sent[id]++
			i++
		case 2:
			write(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":` + id + `}}`)
			cancels[id]++
			i++
		case 3:
			write(`{not json`)
			garbage++
		}
	}
	time.Sleep(time.Millisecond) // let some requests reach the backend held; no assertion depends on it
	be.flush()
	inW.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not end after stdin EOF")
	}
	<-readDone

	got := map[string]int{}
	nulls := 0
	for _, l := range lines {
		f, _ := frame.Parse(bytes.Clone(l))
		if f.Kind != frame.Response {
			continue
		}
		id := string(f.ID())
		if id == "null" {
			nulls++
			continue
		}
		if sent[id] == 0 {
			t.Errorf("response with an id the host never sent: %s", l)
		}
		got[id]++
	}
	for id, n := range sent {
		if got[id] > n {
			t.Errorf("id %s: %d responses for %d requests", id, got[id], n)
		}
		if got[id] < n-cancels[id] {
			t.Errorf("id %s: %d responses for %d requests and %d cancels", id, got[id], n, cancels[id])
		}
	}
	if nulls != garbage {
		t.Errorf("%d garbage lines got %d null-id errors", garbage, nulls)
	}

}
