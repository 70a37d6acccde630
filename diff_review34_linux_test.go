//go:build linux

package main

import (
	"strings"
	"testing"
)

// main.go (d5097e1) ignores SIGPIPE with signal.Ignore so that a closed
// stderr cannot kill the bridge. An ignored disposition survives fork and
// exec (Go's child reset only restores the signals it handles), so every
// stdio backend, and everything it starts, now runs with SIGPIPE ignored:
// a backend's shell pipeline (`cmd | head -1`) no longer ends its writer,
// which loops on EPIPE or prints "Broken pipe" errors. The bridge's own
// need (not die on a write to a closed fd 1/2) is met by handling SIGPIPE
// (signal.Notify) rather than ignoring it, which children do not inherit.
func TestBackendsDoNotInheritAnIgnoredSIGPIPE(t *testing.T) {
	script := `m=$(sed -n 's/^SigIgn:[[:space:]]*//p' /proc/self/status); if [ $(( 0x$m & 0x1000 )) -ne 0 ]; then echo "r34 SIGPIPE ignored" >&2; else echo "r34 SIGPIPE default" >&2; fi; exit 1`
	_, out, stderr := r33Run(t, nil, initLine+"\n", "--stdio", "s=sh -c '"+script+"'")
	all := out + stderr
	switch {
	case strings.Contains(all, "r34 SIGPIPE ignored"):
		t.Errorf("the stdio backend was started with SIGPIPE ignored (inherited from the bridge's signal.Ignore): %s", firstLineWith(stderr, "r34 SIGPIPE"))
	case !strings.Contains(all, "r34 SIGPIPE default"):
		t.Fatalf("the backend's report is missing:\n%s", stderr)
	}
}
