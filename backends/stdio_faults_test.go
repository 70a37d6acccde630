package backends

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/config"
	"github.com/rs/zerolog"
)

// A stdio backend whose cwd does not exist must be reported as such; the
// error must not claim that the (existing) command is missing.
func TestMissingCwdIsNamed(t *testing.T) {
	cfg := config.Backend{Name: "s", Kind: config.KindStdio, Command: "sh", Args: []string{"-c", "cat"}, Dir: "/nonexistent/reviewb"}
	s, err := Open(context.Background(), cfg, Options{})
	if err == nil {
		s.Close()
		t.Fatal("started in a directory that does not exist")
	}
	if !strings.Contains(err.Error(), "/nonexistent/reviewb") {
		t.Fatalf("error does not name the missing directory: %v", err)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
func (w *syncBuffer) String() string { w.mu.Lock(); defer w.mu.Unlock(); return w.b.String() }

// README: "A stdio backend's stderr is copied into the log". One stderr
// line over 1 MiB must not silence everything the backend writes to stderr
// afterwards (its crash report, say).
func TestStderrAfterALongLine(t *testing.T) {
	var buf syncBuffer
	cfg := config.Backend{Name: "s", Kind: config.KindStdio, Command: "sh",
		Args: []string{"-c", `head -c 2000000 /dev/zero | tr '\0' x >&2; echo >&2; echo AFTER-THE-$((40+2))-LINE >&2; exec cat`}}
	s, err := Open(context.Background(), cfg, Options{Logger: zerolog.New(&buf)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(buf.String(), "AFTER-THE-42-LINE") {
			if !strings.Contains(buf.String(), `"truncatedBytes":1934465`) {
				t.Errorf("the long line was not logged cut to 64 KiB: ...%s", buf.String()[max(0, len(buf.String())-400):])
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("stderr after a long line never reached the log; log has %d bytes", len(buf.String()))
}
