//go:build windows

package backends

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"unsafe"

	"golang.org/x/sys/windows"
)

// setProcessGroup has nothing to set before the start on Windows: the
// process tree is held by a Job Object attached right after (attachTree).
func setProcessGroup(cmd *exec.Cmd, supervised bool) {}

// attachTree puts the started process in a Job Object that kills every
// process in it when its last handle closes: when Close releases it, and
// when the bridge dies in any way, since the kernel closes its handles
// (issue #5). Children the backend starts join the job too. A child
// spawned in the instant between start and attach escapes; Go's exec has
// no suspended start to close that gap.
func attachTree(cmd *exec.Cmd) (release func(), err error) {
	job, err := windows.CreateJobObject(nil, nil)
	if err != nil {
		return func() {}, fmt.Errorf("job object: %w", err)
	}
	info := windows.JOBOBJECT_EXTENDED_LIMIT_INFORMATION{
		BasicLimitInformation: windows.JOBOBJECT_BASIC_LIMIT_INFORMATION{
			LimitFlags: windows.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
		},
	}
	if _, err := windows.SetInformationJobObject(job, windows.JobObjectExtendedLimitInformation,
		uintptr(unsafe.Pointer(&info)), uint32(unsafe.Sizeof(info))); err != nil {
		windows.CloseHandle(job)
		return func() {}, fmt.Errorf("job object limits: %w", err)
	}
	proc, err := windows.OpenProcess(windows.PROCESS_SET_QUOTA|windows.PROCESS_TERMINATE, false, uint32(cmd.Process.Pid))
	if err != nil {
		windows.CloseHandle(job)
		return func() {}, fmt.Errorf("open process: %w", err)
	}
	defer windows.CloseHandle(proc)
	if err := windows.AssignProcessToJobObject(job, proc); err != nil {
		windows.CloseHandle(job)
		return func() {}, fmt.Errorf("assign to job object: %w", err)
	}
	return func() { windows.CloseHandle(job) }, nil
}

// signalGroup ends the process tree: Windows has no SIGTERM for console
// programs, so both steps of the ladder kill.
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
