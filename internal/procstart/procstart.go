// Package procstart does what must come first in an mcpbridge process,
// before the other packages' initialization. main imports it for its init
// alone. It imports nothing that needs initializing before it, so Go runs
// its init among the first.
//
// First, on Linux, it maps the executable's read-only pages (code and
// read-only data) into the process with one system call instead of one
// page fault per first touch (prefault_linux.go). Then it runs Go code on
// one thread (GOMAXPROCS=1) unless the environment sets GOMAXPROCS.
//
// Why one thread: a bridge does microseconds of work per message and hands
// each message between goroutines (host reader, router, HTTP worker,
// writer); with a second P every hand-off wakes another thread, and on a
// virtual machine those futex wake-ups and context switches cost more than
// the work (issue #6, `go run ./bench/compare`: CPU per 1,000 small calls
// and per 100 KiB call both fell by about a quarter). Blocking system calls
// still get threads of their own.
//
// Why here: lowering GOMAXPROCS stops the world and hands the dropped P's
// cached spans back to the heap, writing into pages touched for the first
// time; done from main, after every package's init, that cost about 2 ms of
// cold start. See PERFORMANCE.md for both measurements.
package procstart

import (
	"runtime"
	"syscall"
)

func init() {
	prefault()
	if _, set := syscall.Getenv("GOMAXPROCS"); !set {
		runtime.GOMAXPROCS(1)
	}
}
