package backend

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/reshard/reshard/internal/resp"
	"github.com/reshard/reshard/internal/sentinel"
	"github.com/reshard/reshard/proxy/internal/wire"
)

// Dialer opens connections to shards. A new connection first sends AUTH
// when the shards need a password (the route's credentials), then HELLO 3 for
// a RESP3 session's connection, in one write, and checks each reply before
// the connection is used. Last comes CLIENT SETNAME with the proxy's name
// (NewDialer's setname), so that a shard's CLIENT LIST tells which proxy a
// connection belongs to; it also makes a shard that wants a password the proxy was
// not given say so (NOAUTH), and the shard is then reported down instead
// of answering every client command with its own NOAUTH. A shard that
// refuses CLIENT SETNAME otherwise (an ACL user without it) is used all
// the same: the name only helps the reshard's check for other proxies.
// Without a name the dialer sends PING in its place. Errors name the
// command refused, never its arguments.
//
// A shard given as sentinel:NAME is dialled at the address the Resolver
// names, and the connection is used only if the server's ROLE says it is
// a primary (Sentinel's client rules); a dial that fails asks the
// sentinels afresh and tries the address they give then, once.
type Dialer struct {
	timeout time.Duration
	auth    []byte // AUTH [username] password, encoded; nil without a password
	setname []byte // CLIENT SETNAME name, encoded; nil: PING
	resolve Resolver
}

// Resolver returns the address of the primary of a sentinel:NAME shard:
// the one last known, or with fresh set the one the sentinels give now.
type Resolver func(addr string, fresh bool) (string, error)

// WithResolver returns the dialer with r for sentinel:NAME shards.
func (dl Dialer) WithResolver(r Resolver) Dialer {
	dl.resolve = r
	return dl
}

func NewDialer(timeout time.Duration, username, password string, setname []byte) Dialer {
	d := Dialer{timeout: timeout, setname: setname}
	if args := resp.AuthArgs(username, password); args != nil {
		raw := make([][]byte, len(args))
		for i, a := range args {
			raw[i] = []byte(a)
		}
		d.auth = resp.AppendCommand(nil, raw...)
	}
	return d
}

var pingCommand = resp.AppendCommand(nil, []byte("PING"))

var roleCommand = resp.AppendCommand(nil, []byte("ROLE"))

// Dial connects to addr; hello, if not nil, is sent after AUTH. With
// received set, every byte read from the connection is counted there.
func (dl Dialer) Dial(addr string, hello []byte, received *atomic.Int64) (net.Conn, *bufio.Reader, error) {
	if _, ok := sentinel.Name(addr); !ok || dl.resolve == nil {
		return dl.dial(addr, addr, hello, received, false)
	}
	at, err := dl.resolve(addr, false)
	if err != nil {
		return nil, nil, err
	}
	nc, r, err := dl.dial(addr, at, hello, received, true)
	if err == nil {
		return nc, r, nil
	}
	if now, rerr := dl.resolve(addr, true); rerr == nil && now != at {
		return dl.dial(addr, now, hello, received, true)
	}
	return nil, nil, err
}

// dial connects to at, the address of shard addr; with role set, it also
// checks that the server is a primary.
func (dl Dialer) dial(addr, at string, hello []byte, received *atomic.Int64, role bool) (net.Conn, *bufio.Reader, error) {
	if at != addr {
		addr = addr + " (" + at + ")"
	}
	nc, err := net.DialTimeout("tcp", at, dl.timeout)
	if err != nil {
		return nil, nil, err
	}
	var rd io.Reader = wire.NewRawIO(nc)
	if received != nil {
		rd = CountingReader{rd, received}
	}
	r := bufio.NewReaderSize(rd, 64<<10)
	last, lastName := dl.setname, "CLIENT SETNAME"
	if last == nil {
		last, lastName = pingCommand, "PING"
	}
	nc.SetDeadline(time.Now().Add(dl.timeout))
	setup := append(append(append([]byte(nil), dl.auth...), hello...), last...)
	if role {
		setup = append(setup, roleCommand...)
	}
	if _, err := nc.Write(setup); err != nil {
		nc.Close()
		return nil, nil, err
	}
	for _, step := range [...]struct {
		name     string
		sent     bool
		optional bool // an error other than NOAUTH is not the connection's
	}{{"AUTH", dl.auth != nil, false}, {"HELLO", hello != nil, false}, {lastName, true, dl.setname != nil}, {"ROLE", role, false}} {
		if !step.sent {
			continue
		}
		reply, err := wire.ReadReply(r, nil)
		switch {
		case err != nil:
		case bytes.HasPrefix(reply, []byte("-NOAUTH")):
			err = fmt.Errorf("%s needs a password (--shard-password): %s", addr, bytes.TrimSpace(reply[1:]))
		case wire.IsError(reply) && !step.optional:
			err = fmt.Errorf("%s refused %s: %s", addr, step.name, bytes.TrimSpace(reply[1:]))
		case step.name == "ROLE" && !isPrimary(reply):
			err = fmt.Errorf("%s is not a primary (ROLE %.40q); waiting for Sentinel to name one", addr, reply)
		}
		if err != nil {
			nc.Close()
			return nil, nil, err
		}
	}
	nc.SetDeadline(time.Time{})
	return nc, r, nil
}

// isPrimary reports whether a ROLE reply is a primary's: an array whose
// first element is "master".
func isPrimary(reply []byte) bool {
	i := bytes.IndexByte(reply, '\n')
	return len(reply) > 0 && (reply[0] == '*' || reply[0] == '>') && i > 0 &&
		bytes.HasPrefix(reply[i+1:], []byte("$6\r\nmaster\r\n"))
}

// CountingReader counts in N the bytes read through it.
type CountingReader struct {
	R io.Reader
	N *atomic.Int64
}

func (cr CountingReader) Read(p []byte) (int, error) {
	n, err := cr.R.Read(p)
	cr.N.Add(int64(n))
	return n, err
}
