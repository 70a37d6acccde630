//go:build !linux

package main

import "os"

func growStdio() {}

var stdioNotes []string

func pollableStdio() (in, out *os.File, restore func()) {
	return os.Stdin, os.Stdout, func() {}
}
