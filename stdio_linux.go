package main

import (
	"fmt"
	"io"
	"os"

	"github.com/mcpbridge/mcpbridge/internal/rawio"
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

// stdioNotes says how pollableStdio left stdin and stdout; run logs them at
// debug level once the logger exists.
var stdioNotes []string

// pollableStdio returns the host's stdin and stdout as files served by the
// runtime's network poller when they are pipes or sockets (issue #6).
//
// A host hands them over in blocking mode, and Go reads a blocking file
// with a thread parked in read(2) between messages. The runtime's monitor
// thread then never sees the process idle: it keeps waking every 20 µs to
// 10 ms to look at that thread, and on a virtual machine each of those
// wake-ups costs more than relaying a small message (perf: 19 % of the
// bridge's CPU in sysmon's nanosleep at 100 KiB calls). Served by the
// poller, a read that would wait parks the goroutine instead, and the whole
// process sleeps between messages.
//
// O_NONBLOCK belongs to the open file description, which the host may
// share. A pipe is therefore reopened through /proc/self/fd: a description
// of the same pipe that only the bridge holds, non-blocking, while the
// host's stays as it was. A socket cannot be reopened; it is switched to
// non-blocking where it is (Node-based hosts hand over a socketpair end
// that only the bridge holds; inetd, socat and systemd put one socket on
// both fds, which then share the flag) and restore puts blocking mode back.
// Terminals, files and anything already non-blocking (which os serves by
// the poller from the start) are left alone.
//
// A reopened pipe, whose description nothing else can switch back to
// blocking mode, is then read and written with raw system calls
// (internal/rawio); a socket, whose description others may share, is not.
//
// It records what it did with each in stdioNotes, for the debug log.
func pollableStdio() (in io.Reader, out io.Writer, restore func()) {
	files := [2]*os.File{os.Stdin, os.Stdout}
	var raw [2]bool // reopened pipes, read and written raw
	names := [2]string{"stdin", "stdout"}
	// Look at both before changing either: one socket may be both.
	var kind [2]uint32 // S_IFMT of a blocking pipe or socket; 0 otherwise
	for fd := range 2 {
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		var st unix.Stat_t
		switch {
		case err != nil || unix.Fstat(fd, &st) != nil:
			stdioNotes = append(stdioNotes, names[fd]+": not open")
		case fl&unix.O_NONBLOCK != 0:
			stdioNotes = append(stdioNotes, names[fd]+": non-blocking already, served by the poller")
		case st.Mode&unix.S_IFMT == unix.S_IFIFO || st.Mode&unix.S_IFMT == unix.S_IFSOCK:
			kind[fd] = st.Mode & unix.S_IFMT
		default:
			stdioNotes = append(stdioNotes, names[fd]+": not a pipe or socket, read and written blocking")
		}
	}
	var sockets []int
	for fd := range 2 {
		switch kind[fd] {
		case unix.S_IFIFO:
			// O_NONBLOCK also keeps the open itself from waiting for a
			// peer that has gone; on failure the pipe stays as it was.
			access := unix.O_RDONLY
			if fd == 1 {
				access = unix.O_WRONLY
			}
			nfd, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", fd), access|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
			if err != nil {
				stdioNotes = append(stdioNotes, fmt.Sprintf("%s: a pipe that could not be reopened (%v), read and written blocking", names[fd], err))
				continue
			}
			// NewFile sees the non-blocking mode and registers nfd with
			// the poller.
			files[fd] = os.NewFile(uintptr(nfd), files[fd].Name())
			raw[fd] = true
			stdioNotes = append(stdioNotes, names[fd]+": a pipe, reopened non-blocking")
		case unix.S_IFSOCK:
			if err := unix.SetNonblock(fd, true); err != nil {
				stdioNotes = append(stdioNotes, fmt.Sprintf("%s: a socket that could not be made non-blocking (%v)", names[fd], err))
				continue
			}
			sockets = append(sockets, fd)
			stdioNotes = append(stdioNotes, names[fd]+": a socket, made non-blocking until exit")
		}
	}
	for _, fd := range sockets {
		// A duplicate, not fd itself: Go kills a process whose write to
		// fd 1 fails with EPIPE (SIGPIPE), which would skip restore; on
		// another fd it is an error the bridge handles.
		nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
		if err != nil {
			nfd = fd
		}
		files[fd] = os.NewFile(uintptr(nfd), files[fd].Name())
	}
	in, out = files[0], files[1]
	if raw[0] {
		in = rawio.ReadCloser(files[0])
	}
	if raw[1] {
		out = rawio.WriteCloser(files[1])
	}
	return in, out, func() {
		for _, fd := range sockets {
			_ = unix.SetNonblock(fd, false)
		}
	}
}
