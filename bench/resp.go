package bench

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/reshard/reshard/internal/resp"
)

// errProtocol is returned by replyReader for bytes that are not a RESP2 reply.
var errProtocol = errors.New("bench: protocol error")

// maxReplyDepth bounds the nesting of arrays the reader follows, so hostile
// input cannot grow the stack without limit.
const maxReplyDepth = 32

// appendBulk appends one RESP bulk string.
func appendBulk(buf, b []byte) []byte {
	buf = append(buf, '$')
	buf = strconv.AppendInt(buf, int64(len(b)), 10)
	buf = append(buf, '\r', '\n')
	buf = append(buf, b...)
	return append(buf, '\r', '\n')
}

// appendSet appends SET key value as a RESP array.
func appendSet(buf, key, value []byte) []byte {
	buf = append(buf, "*3\r\n$3\r\nSET\r\n"...)
	buf = appendBulk(buf, key)
	return appendBulk(buf, value)
}

// appendGet appends GET key as a RESP array.
func appendGet(buf, key []byte) []byte {
	buf = append(buf, "*2\r\n$3\r\nGET\r\n"...)
	return appendBulk(buf, key)
}

// appendAuth appends AUTH password as a RESP array.
func appendAuth(buf []byte, password string) []byte {
	buf = append(buf, "*2\r\n$4\r\nAUTH\r\n"...)
	return appendBulk(buf, []byte(password))
}

// replyReader frames RESP2 replies (the protocol a connection speaks until
// it sends HELLO 3, which Run never does) without keeping their contents:
// Run only needs to know when a reply is complete and whether it is an error.
type replyReader struct {
	r *bufio.Reader
}

// next reads one whole reply. For an error reply it returns isErr and the
// error text without the leading '-' and the CRLF; text is only valid until
// the next call. An error inside an array is not a failed command (EXEC
// returns those) and does not set isErr. err is an I/O or protocol error,
// after which the stream cannot be used.
func (rr *replyReader) next() (isErr bool, text []byte, err error) {
	line, err := rr.line()
	if err != nil {
		return false, nil, err
	}
	if line[0] == '-' {
		return true, line[1:], nil
	}
	if err := rr.rest(line, 0); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // the stream ended inside a reply
		}
		return false, nil, err
	}
	return false, nil, nil
}

// line reads one CRLF-terminated line, returned without the CRLF.
func (rr *replyReader) line() ([]byte, error) {
	line, err := rr.r.ReadSlice('\n')
	if err != nil {
		if err == io.EOF && len(line) > 0 {
			return nil, io.ErrUnexpectedEOF
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("%w: reply line longer than %d bytes", errProtocol, rr.r.Size())
		}
		return nil, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("%w: malformed line %q", errProtocol, line)
	}
	return line[:len(line)-2], nil
}

// rest consumes whatever follows the header line of a reply.
func (rr *replyReader) rest(line []byte, depth int) error {
	switch line[0] {
	case '+', '-':
		return nil
	case ':':
		if _, ok := resp.ParseInt(line[1:]); !ok {
			return fmt.Errorf("%w: bad integer %q", errProtocol, line)
		}
		return nil
	case '$':
		n, ok := resp.ParseInt(line[1:])
		if !ok || n < -1 {
			return fmt.Errorf("%w: bad bulk length %q", errProtocol, line)
		}
		if n == -1 {
			return nil
		}
		if _, err := rr.r.Discard(int(n)); err != nil {
			return err
		}
		cr, err := rr.r.ReadByte()
		if err != nil {
			return err
		}
		lf, err := rr.r.ReadByte()
		if err != nil {
			return err
		}
		if cr != '\r' || lf != '\n' {
			return fmt.Errorf("%w: bulk string not terminated by CRLF", errProtocol)
		}
		return nil
	case '*':
		n, ok := resp.ParseInt(line[1:])
		if !ok || n < -1 {
			return fmt.Errorf("%w: bad array length %q", errProtocol, line)
		}
		if depth >= maxReplyDepth {
			return fmt.Errorf("%w: arrays nested deeper than %d", errProtocol, maxReplyDepth)
		}
		for i := int64(0); i < n; i++ {
			elem, err := rr.line()
			if err != nil {
				return err
			}
			if err := rr.rest(elem, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("%w: unexpected reply type %q", errProtocol, line[0])
}
