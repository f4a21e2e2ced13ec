package snapshot

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
)

// A Sink receives one file of a snapshot as it arrives: a local file, or
// an object sent to a store in parts (*objstore.Upload is one). What was
// written is complete and durable only once Commit returns nil.
type Sink interface {
	io.Writer
	// Commit makes what was written complete and durable (a local file
	// is fsynced and closed; an upload completed).
	Commit() error
	// Abort discards what was written; after Commit it does nothing.
	Abort()
}

// fileSink is a Sink on a new local file.
type fileSink struct {
	f    *os.File
	path string
}

// createFileSink creates path, which must not exist.
func createFileSink(path string) (*fileSink, error) {
	f, err := createExclusive(path)
	if err != nil {
		return nil, err
	}
	return &fileSink{f: f, path: path}, nil
}

func (s *fileSink) Write(b []byte) (int, error) { return s.f.Write(b) }

func (s *fileSink) Commit() error {
	if s.f == nil {
		return errors.New("snapshot: file already committed or aborted")
	}
	err := s.f.Sync()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	s.f = nil
	return err
}

func (s *fileSink) Abort() {
	if s.f == nil {
		return
	}
	s.f.Close()
	s.f = nil
	os.Remove(s.path)
}

// rdbCheck runs CheckRDB over an RDB while it is being written elsewhere,
// so that a file sent to a store is checked without being read back. The
// writer hands it copies of what it writes through a bounded queue of
// reused buffers: the check runs beside the transfer, never more than
// checkQueue chunks behind it, and memory stays fixed.
type rdbCheck struct {
	name  string
	queue chan []byte
	free  chan []byte
	stop  chan struct{} // closed by the checker when it ends early
	done  chan struct{}
	cur   []byte // the chunk the checker is reading
	given int64  // bytes Read has returned
	sum   RDBSummary
	err   error
}

const (
	checkQueue = 16
	checkChunk = readBufferSize
)

// startRDBCheck starts the checker; name goes into its errors.
func startRDBCheck(name string) *rdbCheck {
	c := &rdbCheck{
		name:  name,
		queue: make(chan []byte, checkQueue),
		free:  make(chan []byte, checkQueue+1),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	go func() {
		defer close(c.done)
		c.sum, c.err = readRDBSummary(bufio.NewReaderSize(c, 64<<10), name)
		if c.err == nil && c.sum.Size != c.read() {
			// Bytes after the RDB's end: CheckRDB stops at its EOF
			// opcode and checksum, so read on to count them.
			c.err = fmt.Errorf("check %s: bytes after the end of the RDB", name)
		}
		close(c.stop)
	}()
	return c
}

// read drains what is left and returns how many bytes were handed over
// in all; the checker has consumed sum.Size of them.
func (c *rdbCheck) read() int64 {
	n := c.given + int64(len(c.cur))
	c.cur = nil
	for b := range c.queue {
		n += int64(len(b))
	}
	return n
}

// Read is the checker's side of the queue.
func (c *rdbCheck) Read(p []byte) (int, error) {
	for len(c.cur) == 0 {
		b, ok := <-c.queue
		if !ok {
			return 0, io.EOF
		}
		c.cur = b
	}
	n := copy(p, c.cur)
	c.cur = c.cur[n:]
	c.given += int64(n)
	if len(c.cur) == 0 {
		select {
		case c.free <- c.cur[:0:cap(c.cur)]:
		default:
		}
		c.cur = nil
	}
	return n, nil
}

// write hands a copy of b to the checker. It fails once the checker has
// ended early (a broken RDB), with the checker's error.
func (c *rdbCheck) write(b []byte) error {
	for len(b) > 0 {
		var buf []byte
		select {
		case buf = <-c.free:
		default:
			buf = make([]byte, 0, checkChunk)
		}
		k := copy(buf[:cap(buf)], b)
		select {
		case c.queue <- buf[:k]:
		case <-c.stop:
			return c.err
		}
		b = b[k:]
	}
	return nil
}

// finish ends the input and returns what the check found.
func (c *rdbCheck) finish() (RDBSummary, error) {
	close(c.queue)
	<-c.done
	return c.sum, c.err
}
