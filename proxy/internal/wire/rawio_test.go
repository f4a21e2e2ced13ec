package wire

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (a, b net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	a, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b = <-accepted
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// TestRawIO moves more than the socket buffers hold both ways at once, so
// writes meet EAGAIN and wait, then checks EOF, deadlines and a closed
// connection.
func TestRawIO(t *testing.T) {
	a, b := tcpPair(t)
	ra, rb := NewRawIO(a), NewRawIO(b)
	if _, ok := ra.(*rawIO); !ok && runtime.GOOS == "linux" {
		t.Fatalf("NewRawIO gave %T for a TCP connection", ra)
	}
	const size = 8 << 20
	payload := func(seed byte) []byte {
		p := make([]byte, size)
		for i := range p {
			p[i] = seed + byte(i*7)
		}
		return p
	}
	pa, pb := payload(1), payload(2)

	var wg sync.WaitGroup
	errs := make(chan error, 4)
	send := func(w io.Writer, c net.Conn, p []byte) {
		defer wg.Done()
		n, err := w.Write(p)
		if err == nil && n != len(p) {
			err = io.ErrShortWrite
		}
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		if err != nil {
			errs <- err
		}
	}
	got := make([][]byte, 2)
	recv := func(r io.Reader, i int) {
		defer wg.Done()
		var buf bytes.Buffer
		p := make([]byte, 5000) // odd size: reads end mid-write
		for {
			n, err := r.Read(p)
			buf.Write(p[:n])
			if err == io.EOF {
				break
			}
			if err != nil {
				errs <- err
				return
			}
		}
		got[i] = buf.Bytes()
	}
	wg.Add(4)
	go send(ra, a, pa)
	go send(rb, b, pb)
	go recv(rb, 0) // what a sent
	go recv(ra, 1)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if !bytes.Equal(got[0], pa) || !bytes.Equal(got[1], pb) {
		t.Fatalf("data differs: got %d and %d bytes, sent %d each", len(got[0]), len(got[1]), size)
	}

	// A read deadline ends a read that waits.
	c, _ := tcpPair(t)
	rc := NewRawIO(c)
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := rc.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v, want a deadline error", err)
	}
	c.SetReadDeadline(time.Time{})

	// Closing the connection ends a waiting read with net.ErrClosed.
	done := make(chan error, 1)
	go func() {
		_, err := rc.Read(make([]byte, 10))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	c.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read on a closed connection: %v, want net.ErrClosed", err)
	}
	if _, err := rc.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write on a closed connection: %v, want net.ErrClosed", err)
	}

	// The peer's reset shows as an error on write, not a hang.
	e, f := tcpPair(t)
	re := NewRawIO(e)
	f.(*net.TCPConn).SetLinger(0)
	f.Close()
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = re.Write(make([]byte, 64<<10))
	}
	if err == nil {
		t.Fatal("writes to a reset connection kept succeeding")
	}
}
