package resp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// ErrProtocol marks a reply stream that is not RESP. After it the stream
// is out of step, so the connection cannot be used for another reply.
var ErrProtocol = errors.New("resp: protocol error")

// MaxDepth is how deeply aggregates may nest in a reply. The deepest
// replies Redis sends (EXEC of XINFO STREAM FULL, say) nest a handful of
// levels; the bound keeps a corrupt or hostile stream from growing the
// reader's stack without limit.
const MaxDepth = 64

// maxErrorLen bounds a RESP3 blob error that SkipReply keeps as text.
// Redis's errors are a line long.
const maxErrorLen = 1 << 20

// ReadReply appends one complete reply read from r to dst, exactly as it
// came (header lines and CRLFs included), and returns the extended slice.
// Any RESP2 or RESP3 type is accepted; an error reply is a reply like any
// other, for the caller to look at. A reply longer than maxLen bytes is
// refused before its payload is read, so maxLen bounds the memory one
// reply can take. A line longer than r's buffer is refused too.
//
// err is io.EOF only when r ended before the reply's first byte,
// io.ErrUnexpectedEOF when it ended inside it, one wrapping ErrProtocol
// for bytes that are not RESP, and otherwise r's own error. After an
// error the stream cannot be used, and dst may hold part of the reply.
func ReadReply(r *bufio.Reader, dst []byte, maxLen int) ([]byte, error) {
	f := framer{r: r, keep: true, dst: dst, maxLen: int64(maxLen)}
	err := f.run()
	return f.dst, err
}

// SkipReply reads one complete reply from r without keeping it, for a
// caller that only needs to know whether the command failed. It returns
// the text of the first error in the reply, without its type byte and
// CRLF: the reply itself when it is an error, else the first error among
// its elements in the order they arrived (EXEC's reply holds the errors of
// the commands it ran), "" when there is none. Lengths are not capped,
// since nothing is kept. err is as for ReadReply.
func SkipReply(r *bufio.Reader) (errText string, err error) {
	f := framer{r: r}
	err = f.run()
	return f.errText, err
}

// Payload returns what a reply read by ReadReply holds when it is a single
// value: the text after the type byte of a one-line reply (status, error,
// integer, ...), or the bytes of a bulk string, verbatim string or blob
// error. ok is false for a null bulk string, an aggregate, and anything
// that is not a whole reply. The caller tells the types apart by reply[0].
func Payload(reply []byte) (payload []byte, ok bool) {
	end := bytes.Index(reply, []byte("\r\n"))
	if end < 1 {
		return nil, false
	}
	switch reply[0] {
	case '$', '=', '!':
		n, ok := ParseInt(reply[1:end])
		if !ok || n < 0 || n > int64(len(reply)-end-4) {
			return nil, false
		}
		return reply[end+2 : end+2+int(n)], true
	case '*', '~', '>', '%', '|':
		return nil, false
	}
	return reply[1:end], true
}

// framer reads one reply, keeping its bytes in dst or dropping them.
type framer struct {
	r       *bufio.Reader
	keep    bool
	dst     []byte
	kept    int64 // bytes of this reply appended to dst
	maxLen  int64
	started bool // a byte of the reply has been read
	errText string
	errSeen bool
}

func (f *framer) run() error {
	err := f.reply(0)
	if err == io.EOF && f.started {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// reply reads one reply, and the attributes before it, at nesting depth.
func (f *framer) reply(depth int) error {
	for {
		line, err := f.line()
		if err != nil {
			return err
		}
		body := line[1:]
		switch line[0] {
		case '+', '_', ',', '#', '(': // status, null, double, boolean, big number
			return nil
		case '-':
			f.noteError(body)
			return nil
		case ':':
			if _, ok := ParseInt(body); !ok {
				return fmt.Errorf("%w: bad integer %q", ErrProtocol, line)
			}
			return nil
		case '$', '=', '!': // bulk string, verbatim string, blob error
			n, ok := ParseInt(body)
			if !ok || n < -1 {
				return fmt.Errorf("%w: bad bulk length %q", ErrProtocol, line)
			}
			if n < 0 {
				return nil
			}
			return f.payload(n, line[0] == '!')
		case '*', '~', '>', '%', '|': // array, set, push, map, attribute
			n, ok := ParseInt(body)
			if !ok || n < -1 {
				return fmt.Errorf("%w: bad aggregate length %q", ErrProtocol, line)
			}
			if depth >= MaxDepth {
				return fmt.Errorf("%w: reply nested deeper than %d", ErrProtocol, MaxDepth)
			}
			pairs := line[0] == '%' || line[0] == '|'
			attribute := line[0] == '|'
			for range n {
				if err := f.reply(depth + 1); err != nil {
					return err
				}
				if !pairs {
					continue
				}
				if err := f.reply(depth + 1); err != nil {
					return err
				}
			}
			if attribute {
				continue // an attribute precedes the reply it describes
			}
			return nil
		default:
			return fmt.Errorf("%w: unexpected reply type %q", ErrProtocol, line[0])
		}
	}
}

// line reads one CRLF-terminated line and returns it without the CRLF. The
// slice is valid until the next read from r.
func (f *framer) line() ([]byte, error) {
	line, err := f.r.ReadSlice('\n')
	if len(line) > 0 {
		f.started = true
	}
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("%w: reply line longer than %d bytes", ErrProtocol, f.r.Size())
		}
		return nil, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("%w: malformed line %q", ErrProtocol, line)
	}
	if f.keep {
		if err := f.reserve(int64(len(line))); err != nil {
			return nil, err
		}
		f.dst = append(f.dst, line...)
	}
	return line[:len(line)-2], nil
}

// payload reads the n bytes and the CRLF that follow a bulk header.
func (f *framer) payload(n int64, isError bool) error {
	if f.keep {
		if err := f.reserve(n + 2); err != nil {
			return err
		}
		at := len(f.dst)
		f.dst = append(f.dst, make([]byte, n+2)...)
		if _, err := io.ReadFull(f.r, f.dst[at:]); err != nil {
			return err
		}
		return checkCRLF(f.dst[len(f.dst)-2:])
	}
	if isError && !f.errSeen {
		if n > maxErrorLen {
			return fmt.Errorf("%w: blob error of %d bytes", ErrProtocol, n)
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(f.r, b); err != nil {
			return err
		}
		f.noteError(b[:n])
		return checkCRLF(b[n:])
	}
	for n > 0 {
		k := min(n, 1<<30) // Discard takes an int
		if _, err := f.r.Discard(int(k)); err != nil {
			return err
		}
		n -= k
	}
	cr, err := f.r.ReadByte()
	if err != nil {
		return err
	}
	lf, err := f.r.ReadByte()
	if err != nil {
		return err
	}
	return checkCRLF([]byte{cr, lf})
}

// reserve refuses n more bytes of a kept reply that would take it past
// maxLen.
func (f *framer) reserve(n int64) error {
	if n > f.maxLen-f.kept {
		return fmt.Errorf("%w: reply longer than %d bytes", ErrProtocol, f.maxLen)
	}
	f.kept += n
	return nil
}

func (f *framer) noteError(text []byte) {
	if !f.keep && !f.errSeen {
		f.errText, f.errSeen = string(text), true
	}
}

func checkCRLF(b []byte) error {
	if b[0] != '\r' || b[1] != '\n' {
		return fmt.Errorf("%w: bulk string not terminated by CRLF", ErrProtocol)
	}
	return nil
}
