package wire

import (
	"errors"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrNoSocket: PollNow was given something without a socket.
var ErrNoSocket = errors.New("wire: not a socket")

// PollNow polls c's socket for events once, without waiting, and returns
// what it reports.
func PollNow(c any, events int16) (revents int16, err error) {
	sc, ok := c.(interface {
		SyscallConn() (syscall.RawConn, error)
	})
	if !ok {
		return 0, ErrNoSocket
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, err
	}
	// Control fails on a connection closed meanwhile (CLIENT KILL closes
	// a client's from another goroutine): say so, or a closed socket
	// would read as a quiet one.
	err = raw.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: events}}
		if n, e := unix.Poll(fds, 0); e == nil && n > 0 {
			revents = fds[0].Revents
		}
	})
	return revents, err
}
