//go:build !linux

package backends

import "os/exec"

// Elsewhere the supervisor (Supervise) leads each stdio backend's group.
const guardSupported = false

// GuardArg is only used on Linux.
const GuardArg = "__mcpbridge_guard"

// Guard is only used on Linux.
func Guard() int { return 2 }

// guardReady has nothing to start: there is no guard.
func guardReady(Options) {}

// trackExit has nothing to watch: the supervisor ends the group when the
// backend exits.
func trackExit(*exec.Cmd, Options) <-chan struct{} {
	done := make(chan struct{})
	close(done)
	return done
}
