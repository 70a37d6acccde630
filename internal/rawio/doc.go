// Package rawio reads and writes the bridge's own non-blocking descriptors
// (the host's reopened stdin and stdout pipes, the stdio backends' pipes,
// the HTTP backends' TCP connections) with raw system calls, still waiting
// for readiness on the runtime's network poller (issue #6).
//
// Go's os and net packages make every read and write a system call the
// scheduler is told about (entersyscall). With the bridge's one P that has
// two costs on every message: the call wakes the runtime's monitor thread
// (sysmon) from its deep sleep whenever the process had been idle, and a
// call that takes longer than one monitor tick (20 µs: a 100 KiB copy on
// this project's VM) gets its P taken away and handed to another thread,
// which finds nothing to do and sleeps again. On a virtual machine each of
// those thread wake-ups costs more than relaying a small message. A read or
// write of a non-blocking descriptor cannot block, so it needs none of
// that: a raw system call does the copy, and when the descriptor is not
// ready (EAGAIN) the goroutine parks on the poller exactly as os and net
// park it (syscall.RawConn's Read and Write), deadlines and Close included.
//
// Only descriptors in non-blocking mode are wrapped, checked when wrapped;
// the caller promises that no other process can switch them back to
// blocking mode (a description only the bridge holds). Anything else is
// returned as it is. Errors have the types os and net give (*os.PathError,
// *net.OpError, wrapping os.ErrClosed, net.ErrClosed, deadline errors and
// errnos), so callers need not know which path read.
//
// Builds with the race detector use the standard path: its happens-before
// edges through system calls (syscall's ioSync) are not made by raw ones.
package rawio
