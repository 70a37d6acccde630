//go:build linux && !race

package rawio

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Enabled says whether this build reads and writes raw.
const Enabled = true

// maxRW bounds one read or write, as os and net do.
const maxRW = 1 << 30

// rawConner is what *os.File, exec's pipe ends and *net.TCPConn have.
type rawConner interface {
	SyscallConn() (syscall.RawConn, error)
}

// nonBlocking returns v's RawConn when its descriptor is in non-blocking
// mode.
func nonBlocking(v any) (syscall.RawConn, bool) {
	sc, ok := v.(rawConner)
	if !ok {
		return nil, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, false
	}
	nb := false
	if err := rc.Control(func(fd uintptr) {
		fl, err := unix.FcntlInt(fd, unix.F_GETFL, 0)
		nb = err == nil && fl&unix.O_NONBLOCK != 0
	}); err != nil {
		return nil, false
	}
	return rc, nb
}

// ReadCloser returns r reading raw when it is a file (or an exec pipe end)
// in non-blocking mode that only the bridge holds; otherwise r itself.
// Close, and every other method, stay r's.
func ReadCloser(r io.ReadCloser) io.ReadCloser {
	rc, ok := nonBlocking(r)
	if !ok {
		return r
	}
	return &fileReader{ReadCloser: r, r: newReader(rc), name: fileName(r)}
}

// WriteCloser returns w writing raw when it is a file (or an exec pipe
// end) in non-blocking mode that only the bridge holds; otherwise w itself.
func WriteCloser(w io.WriteCloser) io.WriteCloser {
	rc, ok := nonBlocking(w)
	if !ok {
		return w
	}
	return &fileWriter{WriteCloser: w, w: newWriter(rc), name: fileName(w)}
}

// Conn returns c reading and writing raw when it is a TCP connection;
// otherwise c itself. Every other method is c's.
func Conn(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, ok := nonBlocking(tc)
	if !ok {
		return c
	}
	return &tcpConn{TCPConn: tc, r: newReader(rc), w: newWriter(rc)}
}

// WriteBuffers writes b to c, consuming it, as net.Buffers.WriteTo does:
// with raw writev calls when c came from Conn.
func WriteBuffers(c net.Conn, b *net.Buffers) (int64, error) {
	tc, ok := c.(*tcpConn)
	if !ok {
		return b.WriteTo(c)
	}
	n, errno, err := tc.w.writev(b)
	switch {
	case err != nil:
		return n, tc.opError("writev", err)
	case errno != 0:
		return n, tc.syscallError("writev", errno)
	}
	return n, nil
}

func fileName(v any) string {
	if f, ok := v.(interface{ Name() string }); ok {
		return f.Name()
	}
	return ""
}

// A reader reads a descriptor raw. Its state lives in the struct, and its
// step function is made once, so that a read allocates nothing (a closure
// handed to RawConn.Read would escape, on every call); mu makes concurrent
// reads (which RawConn serialises anyway) safe with that state.
type reader struct {
	mu    sync.Mutex
	rc    syscall.RawConn
	p     []byte
	n     int
	errno syscall.Errno
	step  func(fd uintptr) bool
}

func newReader(rc syscall.RawConn) *reader {
	r := &reader{rc: rc}
	r.step = r.readStep
	return r
}

// read reads once into p. n > 0 is data, n == 0 with no error the end of
// the stream; errno is the system call's error, err RawConn's own (the
// descriptor closed, a deadline passed).
func (r *reader) read(p []byte) (n int, errno syscall.Errno, err error) {
	if len(p) == 0 {
		return 0, 0, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.p, r.n, r.errno = p[:min(len(p), maxRW)], 0, 0
	err = r.rc.Read(r.step)
	n, errno = r.n, r.errno
	r.p = nil
	return n, errno, err
}

func (r *reader) readStep(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&r.p[0])), uintptr(len(r.p)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // not ready: park on the poller
		case 0:
			r.n = int(n)
		default:
			r.errno = e
		}
		return true
	}
}

// A writer writes a descriptor raw, with the same care as reader.
type writer struct {
	mu    sync.Mutex
	rc    syscall.RawConn
	p     []byte
	bufs  *net.Buffers
	iov   []syscall.Iovec
	n     int64
	errno syscall.Errno
	step  func(fd uintptr) bool
	stepv func(fd uintptr) bool
}

func newWriter(rc syscall.RawConn) *writer {
	w := &writer{rc: rc}
	w.step, w.stepv = w.writeStep, w.writevStep
	return w
}

// write writes all of p, parking on the poller whenever the descriptor is
// full.
func (w *writer) write(p []byte) (n int, errno syscall.Errno, err error) {
	if len(p) == 0 {
		return 0, 0, nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.p, w.n, w.errno = p, 0, 0
	err = w.rc.Write(w.step)
	n, errno = int(w.n), w.errno
	w.p = nil
	return n, errno, err
}

func (w *writer) writeStep(fd uintptr) bool {
	for int(w.n) < len(w.p) {
		rest := w.p[w.n:]
		r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&rest[0])), uintptr(min(len(rest), maxRW)))
		switch e {
		case 0:
			if r == 0 {
				w.errno = syscall.EIO // a write that takes nothing would loop for ever
				return true
			}
			w.n += int64(r)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			w.errno = e
			return true
		}
	}
	return true
}

// iovMax is the most iovecs one writev takes (Linux's UIO_MAXIOV).
const iovMax = 1024

// writev writes all of *b with writev, consuming what it wrote.
func (w *writer) writev(b *net.Buffers) (n int64, errno syscall.Errno, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.bufs, w.n, w.errno = b, 0, 0
	err = w.rc.Write(w.stepv)
	n, errno = w.n, w.errno
	w.bufs = nil
	clear(w.iov[:cap(w.iov)]) // keep no message alive
	return n, errno, err
}

func (w *writer) writevStep(fd uintptr) bool {
	b := w.bufs
	for {
		iov := w.iov[:0]
		for _, s := range *b {
			if len(s) == 0 {
				continue
			}
			v := syscall.Iovec{Base: &s[0]}
			v.SetLen(len(s))
			iov = append(iov, v)
			if len(iov) == iovMax {
				break
			}
		}
		w.iov = iov
		if len(iov) == 0 {
			*b = (*b)[:0]
			return true
		}
		r, _, e := syscall.RawSyscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
		switch e {
		case 0:
			if r == 0 {
				w.errno = syscall.EIO
				return true
			}
			w.n += int64(r)
			consume(b, int64(r))
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			w.errno = e
			return true
		}
	}
}

// consume drops the first n bytes of *b.
func consume(b *net.Buffers, n int64) {
	for len(*b) > 0 {
		if l := int64(len((*b)[0])); l > n {
			(*b)[0] = (*b)[0][n:]
			return
		} else {
			n -= l
			*b = (*b)[1:]
		}
	}
}

// A fileReader is a non-blocking file read raw.
type fileReader struct {
	io.ReadCloser
	r    *reader
	name string
}

func (f *fileReader) Read(p []byte) (int, error) {
	n, errno, err := f.r.read(p)
	switch {
	case err != nil:
		// Closed or past a deadline: the file's own Read says which,
		// with os's error (a read of nothing only takes the lock).
		if _, e := f.ReadCloser.Read(nil); e != nil {
			return 0, e
		}
		return 0, &os.PathError{Op: "read", Path: f.name, Err: err}
	case errno != 0:
		return 0, &os.PathError{Op: "read", Path: f.name, Err: errno}
	case n == 0 && len(p) > 0:
		return 0, io.EOF
	}
	return n, nil
}

// A fileWriter is a non-blocking file written raw.
type fileWriter struct {
	io.WriteCloser
	w    *writer
	name string
}

func (f *fileWriter) Write(p []byte) (int, error) {
	n, errno, err := f.w.write(p)
	switch {
	case err != nil:
		if _, e := f.WriteCloser.Write(nil); e != nil {
			return n, e
		}
		return n, &os.PathError{Op: "write", Path: f.name, Err: err}
	case errno != 0:
		return n, &os.PathError{Op: "write", Path: f.name, Err: errno}
	}
	return n, nil
}

// A tcpConn is a TCP connection read and written raw. Its other methods
// (Close, deadlines, addresses, CloseWrite) are the connection's.
type tcpConn struct {
	*net.TCPConn
	r *reader
	w *writer
}

func (c *tcpConn) Read(p []byte) (int, error) {
	n, errno, err := c.r.read(p)
	switch {
	case err != nil:
		return 0, c.opError("read", err)
	case errno != 0:
		return 0, c.syscallError("read", errno)
	case n == 0 && len(p) > 0:
		return 0, io.EOF
	}
	return n, nil
}

func (c *tcpConn) Write(p []byte) (int, error) {
	n, errno, err := c.w.write(p)
	switch {
	case err != nil:
		return n, c.opError("write", err)
	case errno != 0:
		return n, c.syscallError("write", errno)
	}
	return n, nil
}

// opError renames RawConn's error (an *net.OpError "raw-read" or
// "raw-write" around net.ErrClosed or a deadline error) to the operation
// net would have named.
func (c *tcpConn) opError(op string, err error) error {
	if oe, ok := err.(*net.OpError); ok {
		e := *oe
		e.Op = op
		return &e
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// syscallError is net's error for a failed system call.
func (c *tcpConn) syscallError(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError(op, errno)}
}
