//go:build linux

package rawio

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// payload is n bytes that differ from one offset to the next.
func payload(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(1, uint64(n)))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func pipe(t *testing.T) (*os.File, *os.File) {
	t.Helper()
	r, w, err := os.Pipe() // non-blocking, served by the poller
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	// A broken implementation fails in bounded time.
	deadline := time.Now().Add(30 * time.Second)
	_ = r.SetDeadline(deadline)
	_ = w.SetDeadline(deadline)
	return r, w
}

// TestPipeWrappedOnlyInRawBuilds: a non-blocking pipe is read and written
// raw in a raw build (Enabled) and passed through otherwise.
func TestPipeWrappedOnlyInRawBuilds(t *testing.T) {
	r, w := pipe(t)
	if got := ReadCloser(r); (got != io.ReadCloser(r)) != Enabled {
		t.Errorf("ReadCloser wrapped = %v, want %v", got != io.ReadCloser(r), Enabled)
	}
	if got := WriteCloser(w); (got != io.WriteCloser(w)) != Enabled {
		t.Errorf("WriteCloser wrapped = %v, want %v", got != io.WriteCloser(w), Enabled)
	}
}

// TestBlockingFileLeftAlone: a descriptor in blocking mode is never read
// raw: a raw read of it would stop the whole process until data came.
func TestBlockingFileLeftAlone(t *testing.T) {
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	r, w := os.NewFile(uintptr(p[0]), "r"), os.NewFile(uintptr(p[1]), "w")
	defer r.Close()
	defer w.Close()
	if ReadCloser(r) != io.ReadCloser(r) || WriteCloser(w) != io.WriteCloser(w) {
		t.Fatal("a blocking pipe was wrapped")
	}
}

// TestPipeCarriesEverything: 3 MiB through a 64 KiB pipe in writes of
// every size, so the writer finds it full (EAGAIN, a wait on the poller)
// many times; the reader gets every byte in order, then EOF.
func TestPipeCarriesEverything(t *testing.T) {
	r, w := pipe(t)
	rr, ww := ReadCloser(r), WriteCloser(w)
	want := payload(3 << 20)
	errc := make(chan error, 1)
	go func() {
		rest := want
		for i := 1; len(rest) > 0; i *= 3 {
			n := min(len(rest), i%(256<<10)+1)
			if m, err := ww.Write(rest[:n]); err != nil || m != n {
				errc <- errors.Join(err, errors.New("short write"))
				return
			}
			rest = rest[n:]
		}
		errc <- ww.Close()
	}()
	got, err := io.ReadAll(rr)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, not the %d written", len(got), len(want))
	}
	if n, err := rr.Read(make([]byte, 8)); n != 0 || err != io.EOF {
		t.Fatalf("after EOF: %d, %v", n, err)
	}
	if n, err := rr.Read(nil); n != 0 || err != nil {
		t.Fatalf("empty read: %d, %v", n, err)
	}
}

// TestPipeClosedWhileReading: Close ends a read waiting on the poller with
// os.ErrClosed, as os.File's own Read does.
func TestPipeClosedWhileReading(t *testing.T) {
	r, _ := pipe(t)
	rr := ReadCloser(r)
	errc := make(chan error, 1)
	go func() {
		_, err := rr.Read(make([]byte, 10))
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond) // let it park
	if err := rr.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		var pe *os.PathError
		if !errors.Is(err, os.ErrClosed) || !errors.As(err, &pe) || pe.Op != "read" {
			t.Fatalf("read after close: %v, want a *os.PathError read around os.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the read did not end at Close")
	}
	if _, err := rr.Read(make([]byte, 1)); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("read of a closed file: %v", err)
	}
}

// TestPipeDeadline: the file's deadlines still end a raw read.
func TestPipeDeadline(t *testing.T) {
	r, _ := pipe(t)
	rr := ReadCloser(r)
	if err := r.SetReadDeadline(time.Now().Add(30 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := rr.Read(make([]byte, 1)); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read past the deadline: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the deadline did not end the read")
	}
}

// TestPipeReaderGone: a write to a pipe whose reader closed fails with
// EPIPE in an *os.PathError (and the process is not killed).
func TestPipeReaderGone(t *testing.T) {
	r, w := pipe(t)
	ww := WriteCloser(w)
	r.Close()
	_, err := ww.Write([]byte("x"))
	var pe *os.PathError
	if !errors.Is(err, syscall.EPIPE) || !errors.As(err, &pe) || pe.Op != "write" {
		t.Fatalf("write with no reader: %v", err)
	}
	ww.Close()
	if _, err := ww.Write([]byte("x")); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("write to a closed file: %v", err)
	}
}

// tcpPair returns both ends of a loopback connection, the client's from
// Conn.
func tcpPair(t *testing.T) (client net.Conn, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() { c, _ := ln.Accept(); acc <- c }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-acc
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	// A broken implementation fails in bounded time.
	deadline := time.Now().Add(30 * time.Second)
	_ = c.SetDeadline(deadline)
	_ = s.SetDeadline(deadline)
	client = Conn(c)
	if (client != c) != Enabled {
		t.Fatalf("Conn wrapped = %v, want %v", client != c, Enabled)
	}
	return client, s.(*net.TCPConn)
}

// TestTCPBothWays: 4 MiB each way at once (each side's buffers fill), and
// WriteBuffers sends many segments, empty ones among them, consuming them.
func TestTCPBothWays(t *testing.T) {
	c, s := tcpPair(t)
	up, down := payload(4<<20), payload(4<<20+7)
	var bufs net.Buffers
	for rest := up; len(rest) > 0; {
		n := min(len(rest), 1+len(bufs)*997%3000)
		bufs = append(bufs, rest[:n], nil)
		rest = rest[n:]
	}
	if len(bufs) < 2*iovMaxForTest {
		t.Fatalf("only %d segments: the test should need more than one writev", len(bufs))
	}
	errc := make(chan error, 2)
	go func() {
		n, err := WriteBuffers(c, &bufs)
		if err == nil && (n != int64(len(up)) || len(bufs) != 0) {
			err = errors.New("WriteBuffers wrote short or left segments")
		}
		if err == nil {
			err = c.(interface{ CloseWrite() error }).CloseWrite()
		}
		errc <- err
	}()
	go func() {
		_, err := s.Write(down)
		if err == nil {
			err = s.CloseWrite()
		}
		errc <- err
	}()
	gotUp, err := io.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	gotDown, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(gotUp, up) || !bytes.Equal(gotDown, down) {
		t.Fatalf("got %d and %d bytes, want %d and %d, equal", len(gotUp), len(gotDown), len(up), len(down))
	}
}

// iovMaxForTest is how many segments one writev takes at most.
const iovMaxForTest = 1024

// TestTCPErrorsAsNetGivesThem: closed, deadline and reset errors are
// *net.OpError values that errors.Is finds as net and os make them.
func TestTCPErrorsAsNetGivesThem(t *testing.T) {
	c, s := tcpPair(t)
	if err := c.SetReadDeadline(time.Now().Add(30 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	var oe *net.OpError
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() || !errors.As(err, &oe) || oe.Op != "read" {
		t.Fatalf("read past the deadline: %v", err)
	}
	_ = c.SetReadDeadline(time.Time{})

	// The peer resets the connection: a write or read fails with ECONNRESET.
	_ = s.SetLinger(0)
	s.Close()
	var werr error
	for i := 0; i < 100 && werr == nil; i++ { // the reset arrives after the first write
		_, werr = c.Write([]byte("x"))
		time.Sleep(time.Millisecond)
	}
	_, rerr := c.Read(make([]byte, 1))
	if !errors.Is(werr, syscall.ECONNRESET) && !errors.Is(werr, syscall.EPIPE) {
		t.Errorf("write after reset: %v", werr)
	}
	if !errors.Is(rerr, syscall.ECONNRESET) && rerr != io.EOF {
		t.Errorf("read after reset: %v", rerr)
	}

	errc := make(chan error, 1)
	c2, _ := tcpPair(t)
	go func() { _, err := c2.Read(make([]byte, 1)); errc <- err }()
	time.Sleep(50 * time.Millisecond)
	c2.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) || !errors.As(err, &oe) || oe.Op != "read" {
			t.Fatalf("read ended by Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the read")
	}
}
