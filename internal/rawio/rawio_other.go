//go:build !linux || race

package rawio

import (
	"io"
	"net"
)

// Enabled says whether this build reads and writes raw.
const Enabled = false

// ReadCloser returns r itself in this build.
func ReadCloser(r io.ReadCloser) io.ReadCloser { return r }

// WriteCloser returns w itself in this build.
func WriteCloser(w io.WriteCloser) io.WriteCloser { return w }

// Conn returns c itself in this build.
func Conn(c net.Conn) net.Conn { return c }

// WriteBuffers writes b to c, consuming it, as net.Buffers.WriteTo does.
func WriteBuffers(c net.Conn, b *net.Buffers) (int64, error) { return b.WriteTo(c) }
