package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/reshard/reshard/internal/resp"
)

// The admin connection: a plain RESP connection for the commands whose
// replies matter (PROXY RESHARD, reading the sequence keys back), apart from
// the load's connections.

// maxAdminReply bounds one reply on an admin connection: statuses,
// PROXY RESHARD STATUS and sequence numbers are all far smaller.
const maxAdminReply = 1 << 20

// adminConn is a plain RESP connection for commands whose replies matter:
// PROXY RESHARD, and reading the sequence keys back.
type adminConn struct {
	conn net.Conn
	br   *bufio.Reader
	buf  []byte // the last reply
}

func dialAdmin(ctx context.Context, addr, password string) (*adminConn, error) {
	d := net.Dialer{Timeout: dialTimeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	a := &adminConn{conn: conn, br: bufio.NewReaderSize(conn, readBufSize)}
	if password != "" {
		if _, err := a.do(ctx, "AUTH", password); err != nil {
			a.close()
			return nil, fmt.Errorf("auth: %w", err)
		}
	}
	return a, nil
}

func (a *adminConn) close() { a.conn.Close() }

// do sends one command and returns its reply as text: a status, an
// integer or a bulk string ("" for nil); an array is skipped as "".
func (a *adminConn) do(ctx context.Context, args ...string) (string, error) {
	buf := resp.AppendCommandString(nil, args...)
	deadline := time.Now().Add(10 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	a.conn.SetDeadline(deadline)
	if _, err := a.conn.Write(buf); err != nil {
		return "", err
	}
	return a.reply()
}

// reply reads one reply: see do.
func (a *adminConn) reply() (string, error) {
	var err error
	a.buf, err = resp.ReadReply(a.br, a.buf[:0], maxAdminReply)
	if err != nil {
		return "", err
	}
	text, _ := resp.Payload(a.buf)
	if a.buf[0] == '-' {
		return "", errors.New(string(text))
	}
	return string(text), nil
}
