//go:build !linux

package backends

import "syscall"

func setParentDeathSignal(*syscall.SysProcAttr, syscall.Signal) {}

func growPipe(any) {}
