//go:build !linux

package backends

import "syscall"

func setParentDeathSignal(*syscall.SysProcAttr, syscall.Signal) {}

func growPipe(any) {}

// pipeEmpty is only asked on Linux (drainAfterExit).
func pipeEmpty(any) (empty, known bool) { return false, false }
