package proxy

import (
	"errors"
	"io"
	"net"
)

// guardConn enforces Redis's request limits on the raw client stream before
// redcon parses it, because redcon itself accepts any bulk length and would
// grow its buffer for as long as a client sends. It follows the RESP framing
// of requests header by header, skipping bulk payloads by their length, so it
// costs little more than the bytes of the headers.
//
// On a violation it first returns the bytes of the complete commands before
// the bad one, so their replies go out in order, and on the next Read (which
// redcon makes only after flushing those replies) writes Redis's protocol
// error and fails.
type guardConn struct {
	net.Conn
	maxBulk, maxArgs, maxQuery int64

	state    int
	line     []byte // a header line being gathered
	args     int64  // bulk headers still expected in this command
	skip     int64  // payload bytes (with CRLF) still to pass
	cmdBytes int64  // bytes of the current command so far
	failure  string // protocol error to report on the next Read
}

const (
	gsStart  = iota // at a command boundary
	gsMulti         // in the "*<n>" header line
	gsBulkHd        // in a "$<len>" header line
	gsBody          // in a bulk payload
	gsInline        // in an inline command line
)

const maxInline = 64 << 10 // Redis's PROTO_INLINE_MAX_SIZE

var errGuard = errors.New("proxy: client protocol limit exceeded")

func (g *guardConn) Read(p []byte) (int, error) { return g.read(g.Conn, p) }

func (g *guardConn) read(c io.ReadWriter, p []byte) (int, error) {
	if g.failure != "" {
		c.Write([]byte("-ERR Protocol error: " + g.failure + "\r\n"))
		return 0, errGuard
	}
	n, err := c.Read(p)
	if n > 0 {
		if ok, good := g.scan(p[:n]); !ok {
			if good == 0 {
				c.Write([]byte("-ERR Protocol error: " + g.failure + "\r\n"))
				return 0, errGuard
			}
			return good, nil
		}
	}
	return n, err
}

// scan advances the state machine over b. On a violation it returns false
// and the length of the prefix that ended at the last command boundary.
func (g *guardConn) scan(b []byte) (ok bool, good int) {
	boundary := 0
	for i := 0; i < len(b); {
		switch g.state {
		case gsStart:
			g.cmdBytes = 0
			if b[i] == '*' {
				g.state = gsMulti
				g.line = g.line[:0]
			} else {
				g.state = gsInline
				g.line = g.line[:0]
			}
			continue
		case gsBody:
			step := min(g.skip, int64(len(b)-i))
			g.skip -= step
			g.cmdBytes += step
			i += int(step)
			if g.cmdBytes > g.maxQuery {
				g.failure = "too big request"
				return false, boundary
			}
			if g.skip == 0 {
				g.args--
				if g.args <= 0 {
					g.state = gsStart
					boundary = i
				} else {
					g.state = gsBulkHd
					g.line = g.line[:0]
				}
			}
			continue
		case gsInline:
			c := b[i]
			i++
			g.cmdBytes++
			if c == '\n' {
				g.state = gsStart
				boundary = i
			} else if g.cmdBytes > maxInline {
				g.failure = "too big inline request"
				return false, boundary
			}
			continue
		}
		// gsMulti or gsBulkHd: gather the header line
		c := b[i]
		i++
		g.cmdBytes++
		if c != '\n' {
			if len(g.line) > 32 {
				if g.state == gsMulti {
					g.failure = "invalid multibulk length"
				} else {
					g.failure = "invalid bulk length"
				}
				return false, boundary
			}
			g.line = append(g.line, c)
			continue
		}
		hdr := g.line
		if len(hdr) > 0 && hdr[len(hdr)-1] == '\r' {
			hdr = hdr[:len(hdr)-1]
		}
		if g.state == gsMulti {
			n, ok := parseLen(hdr[1:])
			if !ok || n > g.maxArgs {
				g.failure = "invalid multibulk length"
				return false, boundary
			}
			if n <= 0 {
				g.state = gsStart
				boundary = i
				continue
			}
			g.args = n
			g.state = gsBulkHd
			g.line = g.line[:0]
			continue
		}
		// a bulk header: redcon reports a malformed one itself
		if len(hdr) == 0 || hdr[0] != '$' {
			g.state = gsStart
			continue
		}
		n, ok := parseLen(hdr[1:])
		if !ok || n < 0 || n > g.maxBulk {
			g.failure = "invalid bulk length"
			return false, boundary
		}
		g.skip = n + 2
		g.state = gsBody
	}
	return true, len(b)
}
