//go:build !linux

package wire

import (
	"io"
	"net"
)

// NewRawIO returns nc: raw system calls are used on Linux only.
func NewRawIO(nc net.Conn) io.ReadWriter { return nc }

// BytesReceived is known on Linux only.
func BytesReceived(nc net.Conn) (uint64, bool) { return 0, false }
