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
// stdin. It is started by the first stdio backend that asks for it and
// lives as long as the bridge: exiting closes the pipe, which is what
// the guard waits for.
var guard struct {
	once sync.Once
	w    *os.File // nil if the pipe could not be made
	warn sync.Once
}

// guardPipe returns the guard's stdin, starting the guard (the binary at
// path) the first time. The process starts in the background: what is
// written before it runs waits in the pipe.
func guardPipe(path string, log zerolog.Logger) *os.File {
	guard.once.Do(func() {
		r, w, err := os.Pipe()
		if err != nil {
			log.Warn().Err(err).Msg("no guard for stdio backends: their process trees may outlive a killed bridge")
			return
		}
		guard.w = w
		go func() {
			defer r.Close()
			cmd := exec.Command(path, GuardArg)
			cmd.Stdin, cmd.Stderr = r, os.Stderr
			// Its own group: a signal to the bridge's group (Ctrl-C in a
			// terminal) must not take the guard before the bridge.
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := cmd.Start(); err != nil {
				log.Warn().Err(err).Msg("could not start the guard for stdio backends: their process trees may outlive a killed bridge")
				return
			}
			go func() { _ = cmd.Wait() }() // reap it should it ever end first
		}()
	})
	return guard.w
}

func guardLine(w *os.File, op byte, pgid int, log zerolog.Logger) {
	if w == nil {
		return
	}
	if _, err := w.Write(fmt.Appendf(nil, "%c%d\n", op, pgid)); err != nil {
		guard.warn.Do(func() {
			log.Warn().Err(err).Msg("the guard for stdio backends is gone: process trees may outlive a killed bridge")
		})
	}
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
	var w *os.File
	if opts.Supervisor != "" {
		w = guardPipe(opts.Supervisor, opts.Logger)
		guardLine(w, '+', pid, opts.Logger)
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
		guardLine(w, '-', pid, opts.Logger)
	}()
	return done
}
