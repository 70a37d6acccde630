//go:build !linux

package main

import (
	"io"
	"os"
)

func growStdio() {}

var stdioNotes []string

func pollableStdio() (in io.Reader, out io.Writer, restore func()) {
	return os.Stdin, os.Stdout, func() {}
}
