//go:build windows

package backends

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// setProcessGroup is a no-op on Windows for now; see README "Known limitations"
// (a Job Object that kills on close is planned, issue #5).
func setProcessGroup(cmd *exec.Cmd, supervised bool) {}

func signalGroup(cmd *exec.Cmd, kill bool) {
	if cmd.Process != nil && kill {
		_ = cmd.Process.Kill()
	}
}

func executable(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if st.IsDir() {
		return fmt.Errorf("%s is a directory", p)
	}
	return nil
}

// candidates tries the PATHEXT extensions, as cmd.exe does.
func candidates(p string) []string {
	exts := strings.Split(strings.ToLower(os.Getenv("PATHEXT")), ";")
	if len(exts) == 1 && exts[0] == "" {
		exts = []string{".com", ".exe", ".bat", ".cmd"}
	}
	out := []string{p}
	for _, e := range exts {
		if e != "" {
			out = append(out, p+e)
		}
	}
	return out
}
