//go:build unix

package backends

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// supervised wraps argv so that it runs under the supervisor binary.
func supervised(supervisor, path string, args []string) (string, []string) {
	return supervisor, append([]string{supervisor, SuperviseArg, path}, args...)
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	if err != nil {
		return 1
	}
	return 0
}

// Supervise is the main function of a backend's supervisor: mcpbridge
// re-executed as the leader of the backend's process group. It runs argv
// in its own group and, when the bridge dies without closing it (SIGKILL
// of the bridge), kills the whole group: a parent-death signal alone would
// reach only the direct child, not `npx`'s node or `sh -c`'s server
// (issue #5). When the backend exits, the rest of its group is killed with
// it, the supervisor included.
//
// It learns of the bridge's death two ways: the parent-death signal
// (SIGUSR1, Linux) and, as a backstop and on other systems, its parent
// process id changing, checked every 250 ms.
func Supervise(argv []string) int {
	if len(argv) == 0 {
		fmt.Fprintln(os.Stderr, "mcpbridge supervisor: no command")
		return 2
	}
	parent, _ := strconv.Atoi(os.Getenv(parentEnv))
	os.Unsetenv(parentEnv)
	if parent != 0 && os.Getppid() != parent {
		return 1 // the bridge died before we started
	}
	// Lead a process group of our own (the bridge starts us so); if run
	// some other way, make one, so that killing "our group" can never
	// reach whoever started us.
	if syscall.Getpgrp() != os.Getpid() {
		if err := syscall.Setpgid(0, 0); err != nil {
			fmt.Fprintf(os.Stderr, "mcpbridge supervisor: setpgid: %v\n", err)
			return 1
		}
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "mcpbridge supervisor: %v\n", err)
		return 127
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	killGroup := func() {
		_ = syscall.Kill(0, syscall.SIGKILL) // our group: the backend's whole tree, and us
	}
	for {
		select {
		case err := <-exited:
			// The backend is gone; what it left in the group goes too.
			// This also covers the bridge being killed: the backend sees
			// its stdin close and exits, often before we are told the
			// bridge died. Killing the group ends us as well, so the exit
			// status is reported on stderr, which the bridge logs.
			if err != nil {
				fmt.Fprintf(os.Stderr, "mcpbridge supervisor: backend %v\n", err)
			}
			killGroup()
			return exitCode(err)
		case s := <-sigs:
			if s == syscall.SIGUSR1 {
				if parent == 0 || os.Getppid() != parent {
					killGroup()
				}
				continue
			}
			// SIGTERM and friends from the bridge's shutdown ladder go
			// to the whole group; pass them on in case only we got it.
			_ = cmd.Process.Signal(s)
		case <-tick.C:
			if parent != 0 && os.Getppid() != parent {
				killGroup()
			}
		}
	}
}
