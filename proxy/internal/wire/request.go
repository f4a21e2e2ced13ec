package wire

import (
	"io"
	"strconv"
	"sync/atomic"
	"unsafe"

	"github.com/reshard/reshard/internal/resp"
)

// Request is one client command. Raw is its RESP encoding as the client sent
// it (an inline command is re-encoded), Args its arguments. Both point into
// the connection's read buffer and stay valid only until the connection
// reads again, that is for the pipeline they came in: whatever must outlive
// it (a queued transaction) is copied.
type Request struct {
	Raw  []byte
	Args [][]byte
}

// The reader's limits and sizes. Redis's own: a read asks for 16 KB
// (PROTO_IOBUF_LEN), an inline command may be 64 KB (PROTO_INLINE_MAX_SIZE).
const (
	readChunk     = 16 << 10
	maxInline     = 64 << 10
	maxHeaderLine = 32 // "*<count>" or "$<length>" without CRLF; longer is malformed
)

// KeptReadBuf is the largest buffer kept for the next read or write; a
// larger one is dropped once empty, so one big request or reply does not
// pin its memory for the connection's life.
const KeptReadBuf = 64 << 10

// ProtocolError is a malformed or oversized request: the client gets
// "-ERR Protocol error: <msg>" after the replies of the commands before it,
// then the connection closes, as Redis does.
type ProtocolError struct{ msg string }

func (e *ProtocolError) Error() string { return "Protocol error: " + e.msg }

// Reader parses client requests in place. The proxy's own parser, not a
// library's, because it is the hot path: it allocates nothing per command
// (arguments are slices of the read buffer, argument lists share one reused
// array), and it enforces Redis's request limits (proto-max-bulk-len, the
// argument count, the query buffer) as it parses instead of in a second pass
// over the bytes.
//
// A command split over reads is resumed where parsing stopped, so a long
// command costs parsing once however it is cut. Arguments of that command are
// kept as offsets from its start until it is whole: the buffer may move when
// it grows.
type Reader struct {
	buf        []byte
	start, end int // buf[start:end] is read but not yet returned as commands

	// the RESP command being parsed, which starts at start
	nargs int   // arguments its header announced; 0 before the header
	pos   int   // where parsing goes on
	bulk  int   // length of the argument whose payload is awaited; -1 if none
	marks []int // start and end of each argument parsed so far, from start

	reqs []Request
	args [][]byte

	maxBulk, maxArgs, maxQuery int64

	shown shownBuffer // what Shown reports, for other goroutines
}

// shownBuffer is the reader's buffer as CLIENT LIST shows it, written by
// the reading goroutine at each batch and before each read.
type shownBuffer struct {
	query, free, size, argv atomic.Int64
}

// Shown returns, safe for use by any goroutine while another reads, what
// CLIENT LIST shows of the query buffer: query, the bytes read and not yet
// done with (the commands of the batch being served, from the first, and a
// partial command after them); free, the room left for the next read;
// size, the buffer's; argv, the bytes of the batch's argument lists (the
// arguments themselves stay in the buffer). Between batches query is the
// partial command and argv 0.
func (rd *Reader) Shown() (query, free, size, argv int64) {
	return rd.shown.query.Load(), rd.shown.free.Load(), rd.shown.size.Load(), rd.shown.argv.Load()
}

// show publishes the buffer's state: from is where the data not yet done
// with starts, nargs the arguments of the batch handed out.
func (rd *Reader) show(from, nargs int) {
	rd.shown.query.Store(int64(rd.end - from))
	rd.shown.free.Store(int64(len(rd.buf) - rd.end))
	rd.shown.size.Store(int64(len(rd.buf)))
	rd.shown.argv.Store(int64(nargs) * int64(unsafe.Sizeof([]byte(nil))))
}

// Limits are the request limits a Reader enforces as it parses, Redis's
// proto-max-bulk-len, the argument count of one command and
// client-query-buffer-limit.
type Limits struct {
	MaxBulkLen, MaxArgs, MaxQueryBuffer int64
}

// NewReader returns a reader that enforces lim.
func NewReader(lim Limits) *Reader {
	rd := &Reader{buf: make([]byte, readChunk), bulk: -1,
		maxBulk: lim.MaxBulkLen, maxArgs: lim.MaxArgs, maxQuery: lim.MaxQueryBuffer}
	rd.show(0, 0)
	return rd
}

// Next returns every whole command buffered, reading once more each time none
// is. The commands are valid until the next call. With a protocol error it
// returns the commands before the bad one and a *ProtocolError; with a read
// error, the commands it has and that error.
func (rd *Reader) Next(r io.Reader) ([]Request, error) {
	rd.reqs = rd.reqs[:0]
	rd.args = rd.args[:0]
	for {
		from := rd.start
		if err := rd.parse(); err != nil || len(rd.reqs) > 0 {
			rd.show(from, len(rd.args))
			return rd.reqs, err
		}
		rd.makeRoom()
		rd.show(rd.start, 0)
		n, err := r.Read(rd.buf[rd.end:])
		rd.end += n
		if err != nil {
			if n > 0 {
				if perr := rd.parse(); perr != nil {
					return rd.reqs, perr
				}
			}
			return rd.reqs, err
		}
	}
}

// makeRoom moves a partial command to the front of the buffer and grows it
// when less than half a read's worth is free.
func (rd *Reader) makeRoom() {
	if rd.start == rd.end {
		rd.pos -= rd.start
		rd.start, rd.end = 0, 0
		if len(rd.buf) > KeptReadBuf {
			rd.buf = make([]byte, readChunk)
		}
		return
	}
	if rd.start > 0 {
		copy(rd.buf, rd.buf[rd.start:rd.end])
		rd.end -= rd.start
		rd.pos -= rd.start
		rd.start = 0
	}
	if len(rd.buf)-rd.end >= readChunk/2 {
		return
	}
	size := 2 * len(rd.buf)
	if rd.bulk >= 0 {
		// the payload's length is known: make room for all of it at once
		size = max(size, rd.pos+rd.bulk+2+readChunk)
	}
	nb := make([]byte, size)
	copy(nb, rd.buf[:rd.end])
	rd.buf = nb
}

// parse turns whole commands of buf[start:end] into requests.
func (rd *Reader) parse() error {
	for rd.start < rd.end {
		if rd.nargs == 0 {
			if rd.buf[rd.start] != '*' {
				done, err := rd.inline()
				if err != nil || !done {
					return err
				}
				continue
			}
			done, err := rd.header()
			if err != nil || !done {
				return err
			}
			continue
		}
		done, err := rd.arguments()
		if err != nil || !done {
			return err
		}
		rd.finish()
	}
	return nil
}

// header reads "*<count>\r\n". A count of 0 or less is a command of no
// words (request{}), which Redis runs as nothing but which still takes a
// CLIENT REPLY SKIP.
func (rd *Reader) header() (bool, error) {
	line, next, ok, bad := rd.line(rd.start)
	if bad {
		return false, &ProtocolError{"invalid multibulk length"}
	}
	if !ok {
		return false, nil
	}
	n, isInt := resp.ParseInt(line[1:])
	if !isInt || n > rd.maxArgs {
		return false, &ProtocolError{"invalid multibulk length"}
	}
	if n <= 0 {
		rd.start, rd.pos = next, next
		rd.reqs = append(rd.reqs, Request{})
		return true, nil
	}
	rd.nargs, rd.pos, rd.bulk = int(n), next, -1
	rd.marks = rd.marks[:0]
	return true, nil
}

// arguments parses "$<len>\r\n<payload>\r\n" until the command is whole
// (true) or the buffer ends (false).
func (rd *Reader) arguments() (bool, error) {
	for len(rd.marks) < 2*rd.nargs {
		if rd.bulk < 0 {
			if rd.pos == rd.end {
				return false, nil
			}
			if c := rd.buf[rd.pos]; c != '$' {
				return false, &ProtocolError{"expected '$', got '" + string(c) + "'"}
			}
			line, next, ok, bad := rd.line(rd.pos)
			if bad {
				return false, &ProtocolError{"invalid bulk length"}
			}
			if !ok {
				return false, nil
			}
			n, isInt := resp.ParseInt(line[1:])
			if !isInt || n < 0 || n > rd.maxBulk {
				return false, &ProtocolError{"invalid bulk length"}
			}
			if int64(next-rd.start)+n+2 > rd.maxQuery {
				return false, &ProtocolError{"too big request"}
			}
			rd.bulk, rd.pos = int(n), next
		}
		if rd.end-rd.pos < rd.bulk+2 {
			return false, nil
		}
		endData := rd.pos + rd.bulk
		if rd.buf[endData] != '\r' || rd.buf[endData+1] != '\n' {
			return false, &ProtocolError{"invalid bulk length"}
		}
		rd.marks = append(rd.marks, rd.pos-rd.start, endData-rd.start)
		rd.pos, rd.bulk = endData+2, -1
	}
	return true, nil
}

// finish makes a request of the whole command at start.
func (rd *Reader) finish() {
	raw := rd.buf[rd.start:rd.pos:rd.pos]
	first := len(rd.args)
	for i := 0; i < len(rd.marks); i += 2 {
		rd.args = append(rd.args, raw[rd.marks[i]:rd.marks[i+1]:rd.marks[i+1]])
	}
	rd.reqs = append(rd.reqs, Request{Raw: raw, Args: rd.args[first:len(rd.args):len(rd.args)]})
	rd.start, rd.nargs = rd.pos, 0
}

// line finds the header line at from: ok is false while it is not all
// buffered; a line that does not end in CRLF, is empty or is too long is
// malformed (bad).
func (rd *Reader) line(from int) (line []byte, next int, ok, bad bool) {
	limit := min(rd.end, from+maxHeaderLine+2)
	for i := from; i < limit; i++ {
		if rd.buf[i] == '\n' {
			if i-1 <= from || rd.buf[i-1] != '\r' {
				return nil, 0, false, true
			}
			return rd.buf[from : i-1], i + 1, true, false
		}
	}
	return nil, 0, false, rd.end-from >= maxHeaderLine+2
}

// inline parses a command sent as a plain line of words, as telnet sends
// it. It is re-encoded as RESP, which is what the shards are sent; the
// encoding is allocated, as inline commands are rare.
func (rd *Reader) inline() (bool, error) {
	nl := -1
	for i := rd.start; i < rd.end; i++ {
		if rd.buf[i] == '\n' {
			nl = i
			break
		}
	}
	if nl < 0 {
		if rd.end-rd.start > maxInline {
			return false, &ProtocolError{"too big inline request"}
		}
		return false, nil
	}
	if nl-rd.start > maxInline {
		return false, &ProtocolError{"too big inline request"}
	}
	line := rd.buf[rd.start:nl]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	words, err := splitArgs(line)
	if err != nil {
		return false, err // stays unparsed: a later call reports it again
	}
	rd.start, rd.pos = nl+1, nl+1
	if len(words) == 0 {
		rd.reqs = append(rd.reqs, Request{}) // an empty line: as *0
		return true, nil
	}
	raw := resp.AppendArrayHeader(nil, len(words))
	ends := make([]int, len(words)) // where each payload ends in raw
	for i, w := range words {
		raw = resp.AppendBulk(raw, w)
		ends[i] = len(raw) - 2
	}
	args := make([][]byte, len(words))
	for i, w := range words {
		args[i] = raw[ends[i]-len(w) : ends[i] : ends[i]]
	}
	rd.reqs = append(rd.reqs, Request{Raw: raw, Args: args})
	return true, nil
}

var errUnbalancedQuotes = &ProtocolError{"unbalanced quotes in request"}

// splitArgs splits an inline command into words as Redis's sdssplitargs
// does: words separated by spaces; "double quotes" with \n \r \t \b \a \\ \"
// and \xHH escapes; 'single quotes' with \' only; a closing quote must be
// followed by a space or the end.
func splitArgs(line []byte) ([][]byte, error) {
	var words [][]byte
	i := 0
	for {
		for i < len(line) && isSpace(line[i]) {
			i++
		}
		if i == len(line) {
			return words, nil
		}
		var w []byte
		var quote byte // '"' or '\'' while inside quotes
		for done := false; !done; i++ {
			if quote == 0 {
				if i == len(line) {
					break
				}
				switch c := line[i]; {
				case isSpace(c):
					done = true
				case c == '"' || c == '\'':
					quote = c
				default:
					w = append(w, c)
				}
				continue
			}
			if i == len(line) {
				return nil, errUnbalancedQuotes
			}
			c := line[i]
			switch {
			case c == quote:
				if i+1 < len(line) && !isSpace(line[i+1]) {
					return nil, errUnbalancedQuotes
				}
				done = true
			case c != '\\' || i+1 == len(line):
				w = append(w, c)
			case quote == '\'':
				if line[i+1] == '\'' {
					i++
				}
				w = append(w, line[i])
			case line[i+1] == 'x' && i+3 < len(line) && isHex(line[i+2]) && isHex(line[i+3]):
				v, _ := strconv.ParseUint(string(line[i+2:i+4]), 16, 8)
				w = append(w, byte(v))
				i += 3
			default:
				i++
				w = append(w, unescape(line[i]))
			}
		}
		if w == nil {
			w = []byte{}
		}
		words = append(words, w)
	}
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\v' || c == '\f' || c == 0
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unescape(c byte) byte {
	switch c {
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	case 'b':
		return '\b'
	case 'a':
		return '\a'
	}
	return c
}
