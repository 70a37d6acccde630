//go:build windows

package backends

// Windows has no supervisor yet (a Job Object that kills on close is the
// plan; see README "Known limitations"): backends run directly.

func supervised(supervisor, path string, args []string) (string, []string) {
	return path, append([]string{path}, args...)
}

// Supervise is not used on Windows.
func Supervise(argv []string) int { return 2 }
