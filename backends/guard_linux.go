//go:build linux

package backends

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// On Linux a stdio backend is started directly, as the leader of its own
// process group, and one guard per bridge (mcpbridge re-executed with
// GuardArg) ends the groups of a bridge that dies without closing them.
// The guard runs beside the backends rather than in front of each, so no
// backend waits for a second Go program to start (issue #6: about 15 ms
// of every stdio backend's cold start and restart), and N backends cost
// one extra process, not N.
const guardSupported = true

// GuardArg is the first argument that turns the mcpbridge binary into the
// bridge's guard (see Guard).
const GuardArg = "__mcpbridge_guard"

// Guard is the main function of the bridge's guard. Its stdin is a pipe
// whose only writer is the bridge: "+PGID" lines add a backend's process
// group, "-PGID" lines drop it. When the bridge dies, however it dies, the
// kernel closes that pipe; the guard reads EOF and SIGKILLs every group it
// still holds: the backends' whole trees, `npx`'s node and `sh -c`'s
// server included (issue #5). No signal is involved, so there is no window
// in which the guard could miss the bridge's death.
func Guard() int {
	groups := map[int]bool{}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		line := sc.Text()
		if len(line) < 2 {
			continue
		}
		pgid, err := strconv.Atoi(line[1:])
		if err != nil || pgid <= 1 {
			fmt.Fprintf(os.Stderr, "mcpbridge guard: ignoring %q\n", line)
			continue
		}
		switch line[0] {
		case '+':
			groups[pgid] = true
		case '-':
			delete(groups, pgid)
		}
	}
	for pgid := range groups {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
	return 0
}

// guard is the bridge's end of its guard: the write end of the guard's
// stdin, and the groups handed to it. The guard is started by the first
// stdio backend that asks for it and lives as long as the bridge: exiting
// closes the pipe, which is what the guard waits for. Should it die (a
// write fails), the next backend start starts another and hands it every
// group still alive (at most maxGuardStarts in all).
var guard struct {
	mu     sync.Mutex
	w      *os.File // nil while no guard runs
	live   map[int]bool
	starts int
}

const maxGuardStarts = 5

// startGuard starts the guard (the binary at path) and waits until it
// runs, so a backend started next is covered from its first instant.
// Callers hold guard.mu.
func startGuard(path string, log zerolog.Logger) bool {
	if guard.starts >= maxGuardStarts {
		return false
	}
	guard.starts++
	r, w, err := os.Pipe()
	if err != nil {
		log.Warn().Err(err).Msg("no guard for stdio backends: their process trees may outlive a killed bridge")
		return false
	}
	defer r.Close()
	cmd := exec.Command(path, GuardArg)
	cmd.Stdin, cmd.Stderr = r, os.Stderr
	// Its own group: a signal to the bridge's group (Ctrl-C in a
	// terminal) must not take the guard before the bridge.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		log.Warn().Err(err).Msg("could not start the guard for stdio backends: their process trees may outlive a killed bridge")
		return false
	}
	go func() { _ = cmd.Wait() }() // reap it should it end before the bridge
	guard.w = w
	// A guard started after another died gets every group still alive.
	var all []byte
	for g := range guard.live {
		all = fmt.Appendf(all, "+%d\n", g)
	}
	return len(all) == 0 || guardWrite(all, log)
}

// guardReady starts the guard, if it does not run yet, before a backend
// is started: a bridge killed in the instant after that start then still
// leaves no tree behind.
func guardReady(opts Options) {
	if opts.Supervisor == "" {
		return
	}
	guard.mu.Lock()
	defer guard.mu.Unlock()
	if guard.w == nil {
		startGuard(opts.Supervisor, opts.Logger)
	}
}

// guardGroup hands the process group pgid to the guard (op '+') or takes
// it back (op '-').
func guardGroup(path string, op byte, pgid int, log zerolog.Logger) {
	guard.mu.Lock()
	defer guard.mu.Unlock()
	if guard.live == nil {
		guard.live = map[int]bool{}
	}
	if op == '+' {
		guard.live[pgid] = true
	} else {
		delete(guard.live, pgid)
	}
	if guard.w != nil && guardWrite(fmt.Appendf(nil, "%c%d\n", op, pgid), log) {
		return
	}
	if op == '+' {
		startGuard(path, log) // a new guard gets this group with the others
	}
}

// guardWrite writes to the guard; a failed write means it died (EPIPE:
// Go does not raise SIGPIPE for a pipe other than stdout or stderr).
// Callers hold guard.mu.
func guardWrite(b []byte, log zerolog.Logger) bool {
	if _, err := guard.w.Write(b); err != nil {
		guard.w.Close()
		guard.w = nil
		log.Warn().Err(err).Msg("the guard for stdio backends is gone; a new one starts with the next backend")
		return false
	}
	return true
}

// trackExit watches the backend cmd (started as the leader of its own
// process group). When it exits, the rest of its group is killed before
// the leader is reaped, while its group id cannot have been reused: a
// grandchild that still holds the backend's stdout would otherwise keep
// the session from ever seeing its end. exited is closed after that; the
// caller reaps the process (cmd.Wait) only then. With opts.Supervisor set,
// the group is also handed to the guard for the time it lives.
func trackExit(cmd *exec.Cmd, opts Options) (exited <-chan struct{}) {
	pid := cmd.Process.Pid
	guarded := opts.Supervisor != ""
	if guarded {
		guardGroup(opts.Supervisor, '+', pid, opts.Logger)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var info unix.Siginfo
		for {
			// WNOWAIT: learn of the exit, leave the reaping to cmd.Wait.
			err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
			if !errors.Is(err, unix.EINTR) {
				break
			}
		}
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		if guarded {
			guardGroup(opts.Supervisor, '-', pid, opts.Logger)
		}
	}()
	return done
}
