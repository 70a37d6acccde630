package frame

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestWriterBounds: TryPut refuses a frame once the queue is full by count
// or by bytes, takes any one frame into an empty queue whatever its size,
// and takes frames again once Run has written the queued ones.
func TestWriterBounds(t *testing.T) {
	note := func(n int) *Frame {
		return NewNotification("x", []byte(`{"p":"`+strings.Repeat("a", n)+`"}`))
	}
	small, big := note(10), note(1000)

	byCount := NewWriter(&bytes.Buffer{}, 2, 0)
	for i := range 2 {
		if err := byCount.TryPut(small); err != nil {
			t.Fatalf("frame %d of 2: %v", i, err)
		}
	}
	if err := byCount.TryPut(small); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("a third frame into a queue of 2: %v", err)
	}

	var out bytes.Buffer
	byBytes := NewWriter(&out, 100, 1500)
	if err := byBytes.TryPut(note(5000)); err != nil {
		t.Fatalf("one frame over the bound into an empty queue: %v", err)
	}
	if err := byBytes.TryPut(small); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("a frame behind one over the bound: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- byBytes.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for byBytes.queued.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if q := byBytes.queued.Load(); q != 0 {
		t.Fatalf("%d bytes still counted after Run wrote the queue", q)
	}
	if err := byBytes.TryPut(big); err != nil {
		t.Fatalf("after the queue was written: %v", err)
	}
	if err := byBytes.TryPut(small); err != nil {
		t.Fatalf("a second frame within the bound: %v", err)
	}
	if err := byBytes.TryPut(big); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("a frame taking the queue over 1500 bytes: %v", err)
	}
	if q, want := byBytes.queued.Load(), int64(big.Len()+small.Len()); q != want {
		t.Fatalf("queued %d bytes, want %d (a refused frame must not stay counted)", q, want)
	}
}
