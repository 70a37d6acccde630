//go:build unix

package backends

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"syscall"
)

// setProcessGroup makes the child the leader of a new process group, so
// that signalGroup reaches its children too (npx → node, sh -c → server).
// With a supervisor, the supervisor is the leader and learns of the
// bridge's death by SIGUSR1; without, the child is killed outright.
func setProcessGroup(cmd *exec.Cmd, supervised bool) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	sig := syscall.SIGKILL
	if supervised {
		sig = syscall.SIGUSR1
	}
	setParentDeathSignal(cmd.SysProcAttr, sig)
}

// signalGroup sends SIGTERM (or SIGKILL) to the child's process group.
func signalGroup(cmd *exec.Cmd, kill bool) {
	if cmd.Process == nil {
		return
	}
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
}

func executable(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if st.IsDir() {
		return fmt.Errorf("%s is a directory", p)
	}
	if st.Mode().Perm()&0o111 == 0 {
		return &fs.PathError{Op: "exec", Path: p, Err: errors.New("permission denied")}
	}
	return nil
}

func candidates(p string) []string { return []string{p} }

// attachTree has nothing to do on Unix: the process group set up before
// the start (and the supervisor leading it) holds the tree.
func attachTree(*exec.Cmd) (release func(), err error) { return func() {}, nil }
