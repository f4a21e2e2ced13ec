package migrate

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/reshard/reshard/internal/resp"
)

// The restore's own RESP: commands of mixed argument types, and the
// commands of a tail file. The framing itself (encoding, reading the
// targets' replies) is internal/resp's.

// appendCommand appends a whole command of string, []byte and integer
// arguments, so that a command mixing a key, a name and a TTL reads as one
// call.
func appendCommand(b []byte, args ...any) []byte {
	b = resp.AppendArrayHeader(b, len(args))
	for _, a := range args {
		switch v := a.(type) {
		case string:
			b = resp.AppendBulkString(b, v)
		case []byte:
			b = resp.AppendBulk(b, v)
		case int64:
			b = resp.AppendBulkInt(b, v)
		case int:
			b = resp.AppendBulkInt(b, int64(v))
		case uint64:
			b = resp.AppendBulkString(b, strconv.FormatUint(v, 10))
		default:
			panic(fmt.Sprintf("migrate: appendCommand: argument of type %T", a)) // programming error
		}
	}
	return b
}

// Limits of one tail command; a replication stream never comes near them,
// so anything beyond is a corrupt file.
const (
	maxTailArgs    = 1 << 24
	maxTailBulkLen = 1 << 30
)

// cmdReader reads the commands of a tail file: RESP arrays of bulk strings,
// as a replica receives them. Arguments alias an arena reused by the next
// call.
type cmdReader struct {
	br    *bufio.Reader
	off   int64 // offset of the next command
	arena []byte
	args  [][]byte
	ends  []int
}

func newCmdReader(r io.Reader) *cmdReader {
	return &cmdReader{br: bufio.NewReaderSize(r, 64<<10)}
}

// next returns the next command and its offset in the file, or io.EOF at a
// clean end. A file that ends inside a command is ErrBadSource (truncated).
func (r *cmdReader) next() (args [][]byte, off int64, err error) {
	off = r.off
	line, err := r.line()
	if err != nil {
		if err == io.EOF {
			return nil, off, io.EOF
		}
		return nil, off, r.fail(off, err)
	}
	if line[0] != '*' {
		return nil, off, r.fail(off, fmt.Errorf("expected a command array, got %q", clip(line, 40)))
	}
	n, ok := resp.ParseInt(line[1 : len(line)-2])
	if !ok || n < 1 || n > maxTailArgs {
		return nil, off, r.fail(off, fmt.Errorf("bad array header %q", clip(line, 40)))
	}
	r.arena, r.ends = r.arena[:0], r.ends[:0]
	for range n {
		at := r.off
		h, err := r.line()
		if err != nil {
			return nil, off, r.fail(at, truncated(err))
		}
		if h[0] != '$' {
			return nil, off, r.fail(at, fmt.Errorf("expected a bulk string, got %q", clip(h, 40)))
		}
		l, ok := resp.ParseInt(h[1 : len(h)-2])
		if !ok || l < 0 || l > maxTailBulkLen {
			return nil, off, r.fail(at, fmt.Errorf("bad bulk header %q", clip(h, 40)))
		}
		start := len(r.arena)
		// Grow as the bytes arrive, so a forged length in a corrupt file
		// cannot reserve more memory than the file has.
		for need := int(l) + 2; need > 0; {
			k := min(need, 1<<20)
			at := len(r.arena)
			r.arena = growBytes(r.arena, k)
			if _, err := io.ReadFull(r.br, r.arena[at:]); err != nil {
				return nil, off, r.fail(r.off, truncated(err))
			}
			need -= k
		}
		r.off += l + 2
		buf := r.arena[start:]
		if buf[l] != '\r' || buf[l+1] != '\n' {
			return nil, off, r.fail(r.off-2, errors.New("bulk string not followed by CRLF"))
		}
		r.arena = r.arena[:start+int(l)]
		r.ends = append(r.ends, len(r.arena))
	}
	r.args = r.args[:0]
	prev := 0
	for _, e := range r.ends {
		r.args = append(r.args, r.arena[prev:e:e])
		prev = e
	}
	return r.args, off, nil
}

// line reads one CRLF-terminated line of at most 64 KiB.
func (r *cmdReader) line() ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	if err != nil {
		if err == io.EOF && len(line) > 0 {
			return nil, io.ErrUnexpectedEOF
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, errors.New("line longer than 64 KiB")
		}
		return nil, err
	}
	r.off += int64(len(line))
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("bad line %q", clip(line, 40))
	}
	return line, nil
}

func (r *cmdReader) fail(at int64, err error) error {
	return &tailError{Offset: at, Err: err}
}

func truncated(err error) error {
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("file ends inside a command (truncated)")
	}
	return err
}

// tailError is a malformed tail file at an offset.
type tailError struct {
	Offset int64
	Err    error
}

func (e *tailError) Error() string { return fmt.Sprintf("at offset %d: %v", e.Offset, e.Err) }
func (e *tailError) Unwrap() error { return e.Err }

// growBytes makes room for n more bytes after len(b) and returns b with
// its length extended by n.
func growBytes(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), 2*cap(b)+n)
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+n]
}

// clip shortens b for an error message.
func clip(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
