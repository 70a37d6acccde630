//go:build !linux

package backends

import "syscall"

func setParentDeathSignal(*syscall.SysProcAttr, syscall.Signal) {}

func growPipe(any) {}

// pipeUnread is only asked on Linux (drainAfterExit).
func pipeUnread(any) (n int, known bool) { return 0, false }
