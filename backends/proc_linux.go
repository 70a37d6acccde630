//go:build linux

package backends

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// setParentDeathSignal asks the kernel to send sig to the child if the
// bridge dies without closing it (SIGKILL of the bridge). It reaches the
// direct child only, which is why a supervisor leads the group.
func setParentDeathSignal(a *syscall.SysProcAttr, sig syscall.Signal) { a.Pdeathsig = sig }

// growPipe raises a pipe's capacity to 1 MiB, so a large message crosses in
// fewer context switches (issue #6). SyscallConn, not Fd: Fd would make
// the file blocking. Errors are ignored: a smaller pipe still works.
func growPipe(v any) {
	sc, ok := v.(interface {
		SyscallConn() (syscall.RawConn, error)
	})
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, pipeBytes)
	})
}

// pipeUnread returns how many bytes the pipe read through v holds unread
// (FIONREAD); known is false if that cannot be asked (v is no pipe, or
// closed).
func pipeUnread(v any) (n int, known bool) {
	sc, ok := v.(interface {
		SyscallConn() (syscall.RawConn, error)
	})
	if !ok {
		return 0, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, false
	}
	n = -1
	if rc.Control(func(fd uintptr) {
		if v, err := unix.IoctlGetInt(int(fd), unix.TIOCINQ); err == nil { // TIOCINQ is FIONREAD
			n = v
		}
	}) != nil || n < 0 {
		return 0, false
	}
	return n, true
}
