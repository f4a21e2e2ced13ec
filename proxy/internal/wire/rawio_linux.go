package wire

import (
	"io"
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawIO reads and writes a TCP connection with raw system calls, still
// waiting for readiness through Go's network poller (syscall.RawConn).
//
// Why: net.Conn's Read and Write enter every system call through the
// runtime's syscall bookkeeping, and each such entry wakes the runtime's
// monitor thread (sysmon) if it sleeps. Under a steady pipelined load the
// monitor then polls every 20µs to take the processor back from "blocking"
// calls, which on a loopback socket never block: they fail with EAGAIN.
// That polling cost about a tenth of the proxy's CPU at pipeline depth 16.
// A raw call is invisible to the monitor, which then backs off to 10ms.
//
// The sockets are non-blocking, so a raw call returns at once; when it would
// block, the poller parks the goroutine as net.Conn does, and deadlines
// still apply.
type rawIO struct {
	rc syscall.RawConn

	// the current read's and write's buffer and outcome (one goroutine may
	// read while another writes); the callbacks are bound once so that a
	// call allocates nothing
	rp, wp     []byte
	rn, wn     int
	rerr, werr syscall.Errno
	readFn     func(fd uintptr) bool
	writeFn    func(fd uintptr) bool
}

// NewRawIO returns raw I/O for a TCP connection, or nc itself for any other
// connection.
func NewRawIO(nc net.Conn) io.ReadWriter {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nc
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nc
	}
	r := &rawIO{rc: rc}
	r.readFn = r.read
	r.writeFn = r.write
	return r
}

func (r *rawIO) read(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&r.rp[0])), uintptr(len(r.rp)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		r.rn, r.rerr = int(n), e
		return true
	}
}

func (r *rawIO) write(fd uintptr) bool {
	for len(r.wp) > 0 {
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&r.wp[0])), uintptr(len(r.wp)))
		switch e {
		case 0:
			r.wn += int(n)
			r.wp = r.wp[n:]
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			r.werr = e
			return true
		}
	}
	return true
}

func (r *rawIO) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.rp, r.rn, r.rerr = p, 0, 0
	err := r.rc.Read(r.readFn)
	r.rp = nil
	switch {
	case err != nil:
		return 0, err
	case r.rerr != 0:
		return 0, r.rerr
	case r.rn == 0:
		return 0, io.EOF
	}
	return r.rn, nil
}

func (r *rawIO) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.wp, r.wn, r.werr = p, 0, 0
	err := r.rc.Write(r.writeFn)
	r.wp = nil
	if err == nil && r.werr != 0 {
		err = r.werr
	}
	return r.wn, err
}

// BytesReceived is the count of bytes the kernel has received on a TCP
// connection (TCP_INFO's tcpi_bytes_received), read or not; ok is false
// for another kind of connection, or if the kernel does not say.
func BytesReceived(nc net.Conn) (n uint64, ok bool) {
	tc, isTCP := nc.(*net.TCPConn)
	if !isTCP {
		return 0, false
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return 0, false
	}
	rc.Control(func(fd uintptr) {
		if info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			n, ok = info.Bytes_received, true
		}
	})
	return n, ok
}
