package wire

import (
	"bufio"
	"errors"
	"io"
	"strconv"

	"github.com/reshard/reshard/internal/resp"
)

// Framing of RESP2 and RESP3 replies. The proxy forwards replies as raw
// bytes; it only needs to know where one reply ends, and, for the few
// commands whose replies it merges, the elements of an array.

var (
	errIncomplete = errors.New("wire: incomplete reply")
	errBadReply   = errors.New("wire: malformed reply")
)

// maxReplyElements bounds an aggregate header so a corrupt stream cannot
// make the framer loop for long.
const maxReplyElements = 1 << 31

// ParseLen parses a reply header's number; lengths beyond 1 TiB are refused
// so a corrupt stream cannot make the framer allocate without bound.
func ParseLen(b []byte) (int64, bool) {
	n, ok := resp.ParseInt(b)
	return n, ok && n <= 1<<40
}

// itemKind says how a header line is followed.
func itemKind(t byte) (kind int, ok bool) {
	switch t {
	case '+', '-', ':', '_', ',', '#', '(':
		return kindLine, true
	case '$', '!', '=':
		return kindBulk, true
	case '*', '~', '>':
		return kindArray, true
	case '%', '|':
		return kindMap, true
	}
	return 0, false
}

const (
	kindLine = iota
	kindBulk
	kindArray
	kindMap
)

// ReplyLen returns the length of the first complete reply in b, or
// errIncomplete if b holds only a prefix of one.
func ReplyLen(b []byte) (int, error) {
	pos := 0
	for want := int64(1); want > 0; want-- {
		if pos >= len(b) {
			return 0, errIncomplete
		}
		end := IndexCRLF(b[pos:])
		if end == -1 {
			return 0, errIncomplete
		}
		if end < 1 { // a bare CR, or an empty line
			return 0, errBadReply
		}
		line := b[pos : pos+end]
		pos += end + 2
		kind, ok := itemKind(line[0])
		if !ok {
			return 0, errBadReply
		}
		if kind == kindLine {
			continue
		}
		n, ok := ParseLen(line[1:])
		if !ok || n < -1 {
			return 0, errBadReply
		}
		switch kind {
		case kindBulk:
			if n < 0 {
				continue
			}
			if int64(len(b)-pos) < n+2 {
				return 0, errIncomplete
			}
			pos += int(n)
			if b[pos] != '\r' || b[pos+1] != '\n' {
				return 0, errBadReply
			}
			pos += 2
		case kindArray:
			want += max(n, 0)
		case kindMap:
			want += 2 * max(n, 0)
			if line[0] == '|' {
				want++ // an attribute precedes the reply it describes
			}
		}
		if want > maxReplyElements {
			return 0, errBadReply
		}
	}
	return pos, nil
}

// IndexCRLF returns where the CRLF ending b's first line is, -1 when b has no
// complete line yet, and -2 for a line with a bare CR or LF in it.
func IndexCRLF(b []byte) int {
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '\n':
			return -2
		case '\r':
			if i+1 == len(b) {
				return -1
			}
			if b[i+1] == '\n' {
				return i
			}
			return -2
		}
	}
	return -1
}

// ReadReply appends one complete reply read from r to dst. Small replies
// that are already buffered are copied in one piece; large ones stream.
func ReadReply(r *bufio.Reader, dst []byte) ([]byte, error) {
	if buf, _ := r.Peek(r.Buffered()); len(buf) > 0 {
		n, err := ReplyLen(buf)
		if err == nil {
			dst = append(dst, buf[:n]...)
			_, _ = r.Discard(n)
			return dst, nil
		}
		if err != errIncomplete {
			return dst, err
		}
	}
	return ReadReplyStream(r, dst)
}

func ReadReplyStream(r *bufio.Reader, dst []byte) ([]byte, error) {
	for want := int64(1); want > 0; want-- {
		start := len(dst)
		var err error
		dst, err = ReadLine(r, dst)
		if err != nil {
			return dst, err
		}
		line := dst[start : len(dst)-2]
		kind, ok := itemKind(line[0])
		if !ok {
			return dst, errBadReply
		}
		if kind == kindLine {
			continue
		}
		n, ok := ParseLen(line[1:])
		if !ok || n < -1 {
			return dst, errBadReply
		}
		switch kind {
		case kindBulk:
			if n < 0 {
				continue
			}
			at := len(dst)
			dst = grow(dst, int(n)+2)
			if _, err := io.ReadFull(r, dst[at:]); err != nil {
				return dst, err
			}
			if dst[len(dst)-2] != '\r' || dst[len(dst)-1] != '\n' {
				return dst, errBadReply
			}
		case kindArray:
			want += max(n, 0)
		case kindMap:
			want += 2 * max(n, 0)
			if line[0] == '|' {
				want++
			}
		}
		if want > maxReplyElements {
			return dst, errBadReply
		}
	}
	return dst, nil
}

// ReadLine appends one CRLF-terminated line (CRLF included) to dst.
func ReadLine(r *bufio.Reader, dst []byte) ([]byte, error) {
	start := len(dst)
	for {
		chunk, err := r.ReadSlice('\n')
		dst = append(dst, chunk...)
		if err == nil {
			break
		}
		if err != bufio.ErrBufferFull {
			return dst, err
		}
	}
	if len(dst)-start < 3 || dst[len(dst)-2] != '\r' {
		return dst, errBadReply
	}
	return dst, nil
}

func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b[:len(b)+n]
	}
	nb := make([]byte, len(b)+n, 2*len(b)+n)
	copy(nb, b)
	return nb
}

// ArrayElems splits a complete array reply into the raw bytes of its
// elements. It returns ok=false if reply is not an array (an error reply,
// say), and appends to dst.
func ArrayElems(reply []byte, dst [][]byte) ([][]byte, bool) {
	if len(reply) == 0 || reply[0] != '*' && reply[0] != '>' && reply[0] != '~' {
		return dst, false
	}
	end := IndexCRLF(reply)
	if end < 1 {
		return dst, false
	}
	n, ok := ParseLen(reply[1:end])
	if !ok {
		return dst, false
	}
	return elemsFrom(reply, end+2, n, dst)
}

// MapElems is ArrayElems for a map reply too (RESP3): its keys and values
// in turn.
func MapElems(reply []byte) ([][]byte, bool) {
	if len(reply) == 0 || reply[0] != '%' {
		return ArrayElems(reply, nil)
	}
	end := IndexCRLF(reply)
	if end < 1 {
		return nil, false
	}
	n, ok := ParseLen(reply[1:end])
	if !ok {
		return nil, false
	}
	return elemsFrom(reply, end+2, 2*n, nil)
}

// elemsFrom appends to dst the n replies that start at reply[pos:].
func elemsFrom(reply []byte, pos int, n int64, dst [][]byte) ([][]byte, bool) {
	for i := int64(0); i < n; i++ {
		l, err := ReplyLen(reply[pos:])
		if err != nil {
			return dst, false
		}
		dst = append(dst, reply[pos:pos+l])
		pos += l
	}
	return dst, true
}

// IntReply parses an integer reply.
func IntReply(reply []byte) (int64, bool) {
	if len(reply) < 4 || reply[0] != ':' {
		return 0, false
	}
	return ParseLen(reply[1 : len(reply)-2])
}

// BulkText returns the payload of a bulk string reply.
func BulkText(reply []byte) ([]byte, bool) {
	if len(reply) < 4 || (reply[0] != '$' && reply[0] != '=') {
		return nil, false
	}
	end := IndexCRLF(reply)
	if end < 1 {
		return nil, false
	}
	n, ok := ParseLen(reply[1:end])
	if !ok || n < 0 || int64(len(reply)) < int64(end)+2+n {
		return nil, false
	}
	return reply[end+2 : end+2+int(n)], true
}

func IsError(reply []byte) bool { return len(reply) > 0 && (reply[0] == '-' || reply[0] == '!') }

// Reply encoders: append RESP2 replies to a buffer.

func AppendError(b []byte, msg string) []byte {
	b = append(b, '-')
	for i := 0; i < len(msg); i++ {
		c := msg[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		b = append(b, c)
	}
	return append(b, '\r', '\n')
}

func AppendStatus(b []byte, s string) []byte {
	b = append(b, '+')
	b = append(b, s...)
	return append(b, '\r', '\n')
}

func AppendInt(b []byte, n int64) []byte {
	b = append(b, ':')
	b = strconv.AppendInt(b, n, 10)
	return append(b, '\r', '\n')
}

// AppendMapHeader starts a map of n pairs: a RESP3 map, or in RESP2 the
// flat array of 2n items Redis sends instead.
func AppendMapHeader(b []byte, n, proto int) []byte {
	if proto != 3 {
		return resp.AppendArrayHeader(b, 2*n)
	}
	b = append(b, '%')
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, '\r', '\n')
}

func AppendNull(b []byte) []byte { return append(b, "$-1\r\n"...) }

// AppendNullIn is a null in protocol proto: RESP3's own, or RESP2's null
// bulk string.
func AppendNullIn(b []byte, proto int) []byte {
	if proto == 3 {
		return append(b, "_\r\n"...)
	}
	return AppendNull(b)
}

// AppendVerbatim is text as Redis sends INFO, CLIENT LIST and CLUSTER NODES:
// in RESP3 a verbatim string of format txt, in RESP2 a bulk string.
func AppendVerbatim(b []byte, text string, proto int) []byte {
	if proto != 3 {
		return resp.AppendBulkString(b, text)
	}
	b = append(b, '=')
	b = strconv.AppendInt(b, int64(len(text)+4), 10)
	b = append(b, "\r\ntxt:"...)
	b = append(b, text...)
	return append(b, '\r', '\n')
}

// AppendHelp is the reply of a HELP subcommand, as Redis sends it: an array
// of status lines.
func AppendHelp(b []byte, lines []string) []byte {
	b = resp.AppendArrayHeader(b, len(lines))
	for _, l := range lines {
		b = AppendStatus(b, l)
	}
	return b
}
