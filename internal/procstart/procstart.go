// Package procstart does what must come first in an mcpbridge process,
// before the other packages' initialization. main imports it for its init
// alone. It imports nothing that needs initializing before it, so Go runs
// its init among the first.
//
// First, on Linux, it maps the executable's read-only pages (code and
// read-only data) and the heap a start is about to use into the process
// with a few system calls instead of one page fault per first touch
// (prefault_linux.go); not in the bridge's helper processes. Then it runs
// Go code on one thread (GOMAXPROCS=1) unless the environment sets
// GOMAXPROCS.
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

// helperPrefix starts the first argument of mcpbridge re-executed as a
// helper process (backends.GuardArg, backends.SuperviseArg).
const helperPrefix = "__mcpbridge_"

func init() {
	if !helper() {
		// A helper starts off the host's critical path and lives as long
		// as the bridge: it would only keep the prefaulted memory.
		prefault()
	}
	if v, _ := syscall.Getenv("GOMAXPROCS"); v == "" {
		runtime.GOMAXPROCS(1)
	}
}
