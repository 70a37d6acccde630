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
