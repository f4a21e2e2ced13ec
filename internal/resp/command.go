package resp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// CommandLimits bounds one command read by a CommandReader. A replication
// stream never comes near sensible limits, so a command beyond them is a
// corrupt stream; each caller sets them to what it must accept.
type CommandLimits struct {
	MaxArgs    int64 // arguments of one command, its name included
	MaxBulkLen int64 // bytes of one argument
}

// CommandReader reads whole commands the way a Redis master sends them to
// a replica and a snapshot's tail file holds them: RESP arrays of bulk
// strings, nothing else (no inline commands; client requests are the
// proxy's own parser's). It is the reader for callers that need each
// command's arguments: the restore replaying a tail, the live reshard
// following one as it grows.
//
// The arguments alias a buffer that the next call reuses. The buffer grows
// a MiB at a time as payload bytes arrive, not by the length a header
// announces, so a forged length in a corrupt stream cannot reserve memory
// the stream does not hold.
//
// A CommandReader is not safe for concurrent use.
type CommandReader struct {
	r     *bufio.Reader
	lim   CommandLimits
	off   int64 // bytes of r consumed by whole lines and payloads
	arena []byte
	ends  []int
	args  [][]byte
}

// NewCommandReader returns a reader of the commands of r. A header line
// longer than r's buffer is refused.
func NewCommandReader(r *bufio.Reader, lim CommandLimits) *CommandReader {
	return &CommandReader{r: r, lim: lim}
}

// Offset is the number of bytes of r the commands read so far take: after
// a successful Next, the offset just after its command.
func (c *CommandReader) Offset() int64 { return c.off }

// CommandError is a command that could not be read, at the byte offset
// (counted from where the CommandReader started) of the line, payload or
// terminator that failed. Err is io.ErrUnexpectedEOF when the stream ends
// inside the command, the reader's own error, or a description of bytes
// that are not a command.
type CommandError struct {
	Offset int64
	Err    error
}

func (e *CommandError) Error() string {
	if e.Err == io.ErrUnexpectedEOF {
		return fmt.Sprintf("at offset %d: the stream ends inside a command (truncated)", e.Offset)
	}
	return fmt.Sprintf("at offset %d: %v", e.Offset, e.Err)
}

func (e *CommandError) Unwrap() error { return e.Err }

// Next reads one command and returns its arguments, valid until the next
// call. err is io.EOF only when r ends before the command's first byte;
// any other error is a *CommandError, after which the stream is out of
// step and the reader cannot be used.
func (c *CommandReader) Next() ([][]byte, error) {
	start := c.off
	line, err := c.line()
	if err == io.EOF {
		return nil, io.EOF
	}
	if err != nil {
		return nil, c.fail(start, err)
	}
	if line[0] != '*' {
		return nil, c.fail(start, fmt.Errorf("expected a command array, got %s", quote(line)))
	}
	argc, ok := ParseInt(line[1 : len(line)-2])
	if !ok || argc < 1 || argc > c.lim.MaxArgs {
		return nil, c.fail(start, fmt.Errorf("bad array header %s", quote(line)))
	}
	c.arena, c.ends = c.arena[:0], c.ends[:0]
	for range argc {
		at := c.off
		h, err := c.line()
		if err != nil {
			return nil, c.fail(at, err)
		}
		if h[0] != '$' {
			return nil, c.fail(at, fmt.Errorf("expected a bulk string, got %s", quote(h)))
		}
		n, ok := ParseInt(h[1 : len(h)-2])
		if !ok || n < 0 || n > c.lim.MaxBulkLen {
			return nil, c.fail(at, fmt.Errorf("bad bulk header %s", quote(h)))
		}
		if err := c.payload(n); err != nil {
			return nil, err
		}
	}
	c.args = c.args[:0]
	prev := 0
	for _, e := range c.ends {
		c.args = append(c.args, c.arena[prev:e:e])
		prev = e
	}
	if cap(c.arena) > 16<<20 && len(c.arena) < 1<<20 {
		c.arena = nil // do not keep a huge command's buffer for small ones
	}
	return c.args, nil
}

// payload appends a bulk string's n bytes to the arena and checks the CRLF
// after them.
func (c *CommandReader) payload(n int64) error {
	start := len(c.arena)
	for need := n + 2; need > 0; {
		k := int(min(need, 1<<20))
		at := len(c.arena)
		c.arena = grow(c.arena, k)
		if _, err := io.ReadFull(c.r, c.arena[at:]); err != nil {
			return c.fail(c.off, truncated(err))
		}
		need -= int64(k)
	}
	c.off += n + 2
	if c.arena[start+int(n)] != '\r' || c.arena[start+int(n)+1] != '\n' {
		return c.fail(c.off-2, errors.New("bulk string not terminated by CRLF"))
	}
	c.arena = c.arena[:start+int(n)]
	c.ends = append(c.ends, len(c.arena))
	return nil
}

// line reads one CRLF-terminated line, CRLF included. It returns io.EOF
// only when r ends before the line's first byte. The slice is valid until
// the next read from r.
func (c *CommandReader) line() ([]byte, error) {
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		switch {
		case err == io.EOF && len(line) == 0:
			return nil, io.EOF
		case errors.Is(err, bufio.ErrBufferFull):
			return nil, fmt.Errorf("header line longer than %d bytes", c.r.Size())
		}
		return nil, truncated(err)
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("malformed line %s", quote(line))
	}
	c.off += int64(len(line))
	return line, nil
}

func (c *CommandReader) fail(at int64, err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF // inside a command: a line after the first
	}
	return &CommandError{Offset: at, Err: err}
}

// truncated turns the ends of r inside a command into io.ErrUnexpectedEOF
// and leaves r's other errors alone.
func truncated(err error) error {
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// grow makes room for n more bytes after len(b) and returns b with its
// length extended by n.
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), 2*cap(b)+n)
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+n]
}

// quote shortens a protocol fragment for an error message.
func quote(b []byte) string {
	const max = 64
	if len(b) > max {
		return fmt.Sprintf("%q...", b[:max])
	}
	return fmt.Sprintf("%q", b)
}
