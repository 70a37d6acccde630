package main

import (
	"os"

	"golang.org/x/sys/unix"
)

// growStdio raises the host's stdin/stdout pipes to 1 MiB so large messages
// cross in fewer wake-ups (issue #6). Node hosts hand us a socketpair
// instead: there the socket buffers are raised. Errors are ignored.
func growStdio() {
	for _, f := range []*os.File{os.Stdin, os.Stdout} {
		rc, err := f.SyscallConn()
		if err != nil {
			continue
		}
		_ = rc.Control(func(fd uintptr) {
			if _, err := unix.FcntlInt(fd, unix.F_SETPIPE_SZ, 1<<20); err == nil {
				return
			}
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, 1<<20)
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
		})
	}
}

// pollableStdio returns the host's stdin and stdout as files served by the
// runtime's network poller when they are pipes or sockets (issue #6).
//
// A host hands them over in blocking mode, and Go reads a blocking file
// with a thread parked in read(2) between messages. The runtime's monitor
// thread then never sees the process idle: it keeps waking every 20 µs to
// 10 ms to look at that thread, and on a virtual machine each of those
// wake-ups costs more than relaying a small message (perf: 19 % of the
// bridge's CPU in sysmon's nanosleep at 100 KiB calls). In non-blocking
// mode a read that would wait parks the goroutine in the poller instead,
// and the whole process sleeps between messages.
//
// O_NONBLOCK belongs to the open file description, which the host may
// share, so it is only set on pipes and sockets (never a terminal or a
// file) and restore puts the blocking mode back; a bridge killed outright
// cannot, and leaves its ends of the host's pipes non-blocking.
func pollableStdio() (in, out *os.File, restore func()) {
	var changed []int
	nonblock := func(f *os.File, fd int) *os.File {
		// fd, not f.Fd(): Fd would put a pollable f back in blocking mode.
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		if err != nil || fl&unix.O_NONBLOCK != 0 {
			return f // non-blocking already: os served it by the poller from the start
		}
		var st unix.Stat_t
		if unix.Fstat(fd, &st) != nil {
			return f
		}
		if m := st.Mode & unix.S_IFMT; m != unix.S_IFIFO && m != unix.S_IFSOCK {
			return f
		}
		if unix.SetNonblock(fd, true) != nil {
			return f
		}
		changed = append(changed, fd)
		// NewFile sees the non-blocking mode and registers fd with the
		// poller.
		return os.NewFile(uintptr(fd), f.Name())
	}
	in, out = nonblock(os.Stdin, 0), nonblock(os.Stdout, 1)
	return in, out, func() {
		for _, fd := range changed {
			_ = unix.SetNonblock(fd, false)
		}
	}
}
