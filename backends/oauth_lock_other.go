//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly || solaris || illumos || windows)

package backends

import (
	"errors"
	"os"
)

// tryLock: no file locks here; bridges for one server are not coordinated.
func tryLock(*os.File) (busy bool, err error) {
	return false, errors.ErrUnsupported
}
