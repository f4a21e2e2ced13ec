package backend

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/reshard/reshard/internal/resp"
	"github.com/reshard/reshard/proxy/internal/wire"
)

// Dedicated connections serve the commands that hold state on their
// connection or block it: transactions (WATCH ... EXEC), blocking pops, WAIT.
// A session borrows one from its shard's pool for the length of that command
// (or from WATCH to EXEC) and returns it only in a clean state; a connection
// whose state is unknown (a client vanished while it was blocked) is closed
// instead, which also makes the shard forget the blocked client.

// Dedicated is a plain request/response connection to one shard, used by one
// session at a time.
type Dedicated struct {
	NetConn net.Conn
	R       *bufio.Reader
	id      []byte // the shard's CLIENT ID of this connection, for CLIENT UNBLOCK
	// made while a script ran on the shard, which answered CLIENT ID with
	// BUSY: not kept, so no blocking command gets a connection it cannot
	// unblock
	noReuse bool
}

// RoundTrip writes raw (n commands) and reads n replies into dst.
func (d *Dedicated) RoundTrip(raw []byte, n int, dst [][]byte) ([][]byte, error) {
	if len(raw) > 0 {
		if _, err := d.NetConn.Write(raw); err != nil {
			return dst, err
		}
	}
	for i := 0; i < n; i++ {
		reply, err := wire.ReadReply(d.R, nil)
		if err != nil {
			return dst, err
		}
		dst = append(dst, reply)
	}
	return dst, nil
}

// DedicatedPool keeps the idle dedicated connections of one shard.
type DedicatedPool struct {
	Addr   string
	dialer Dialer
	hello  []byte // HELLO 3 for RESP3 sessions' connections, or nil
	held   *atomic.Pointer[Hold]

	mu     sync.Mutex
	idle   []*Dedicated
	closed bool
}

const maxIdleDedicated = 32

func (dp *DedicatedPool) Get() (*Dedicated, error) {
	if h := dp.held.Load(); h != nil {
		h.Wait()
	}
	dp.mu.Lock()
	if n := len(dp.idle); n > 0 {
		d := dp.idle[n-1]
		dp.idle = dp.idle[:n-1]
		dp.mu.Unlock()
		return d, nil
	}
	dp.mu.Unlock()
	nc, r, err := dp.dialer.Dial(dp.Addr, dp.hello, nil)
	if err != nil {
		return nil, err
	}
	d := &Dedicated{NetConn: nc, R: r}
	replies, err := d.RoundTrip(cmdClientID, 1, nil)
	if err != nil {
		nc.Close()
		return nil, err
	}
	if n, ok := wire.IntReply(replies[0]); ok {
		d.id = []byte(strconv.FormatInt(n, 10))
	} else if bytes.HasPrefix(replies[0], busyPrefix) {
		d.noReuse = true
	}
	return d, nil
}

// Put returns a connection in a clean state (no WATCH, no MULTI, not
// blocked); put(nil) is a no-op.
func (dp *DedicatedPool) Put(d *Dedicated) {
	if d == nil {
		return
	}
	dp.mu.Lock()
	if dp.closed || d.noReuse || len(dp.idle) >= maxIdleDedicated || d.R.Buffered() > 0 {
		dp.mu.Unlock()
		d.NetConn.Close()
		return
	}
	dp.idle = append(dp.idle, d)
	dp.mu.Unlock()
}

// dropIdle closes the idle connections; the pool stays open.
func (dp *DedicatedPool) dropIdle() {
	dp.mu.Lock()
	idle := dp.idle
	dp.idle = nil
	dp.mu.Unlock()
	for _, d := range idle {
		d.NetConn.Close()
	}
}

func (dp *DedicatedPool) Close() {
	dp.mu.Lock()
	defer dp.mu.Unlock()
	dp.closed = true
	for _, d := range dp.idle {
		d.NetConn.Close()
	}
	dp.idle = nil
}

// Do runs one command on a connection of the pool and returns its reply, or
// an error reply naming the shard.
func (dp *DedicatedPool) Do(raw []byte) []byte { return dp.DoBy(raw, time.Time{}) }

// DoBy is do with a deadline (none if zero): a shard that has not answered
// by then gives the error reply, and the connection is closed.
func (dp *DedicatedPool) DoBy(raw []byte, deadline time.Time) []byte {
	return dp.DoLastBy(raw, 1, deadline)
}

// DoLastBy is DoBy for raw holding n commands, run in order on one
// connection: it returns the last one's reply.
func (dp *DedicatedPool) DoLastBy(raw []byte, n int, deadline time.Time) []byte {
	return dp.DoAllBy(raw, n, deadline)[n-1]
}

// DoAllBy is DoLastBy returning the n replies, each the error reply naming
// the shard if the shard could not be reached or did not answer in time.
func (dp *DedicatedPool) DoAllBy(raw []byte, n int, deadline time.Time) [][]byte {
	d, err := dp.Get()
	if err == nil {
		if !deadline.IsZero() {
			d.NetConn.SetDeadline(deadline)
		}
		var replies [][]byte
		if replies, err = d.RoundTrip(raw, n, nil); err == nil {
			if !deadline.IsZero() {
				d.NetConn.SetDeadline(time.Time{})
			}
			dp.Put(d)
			return replies
		}
		d.NetConn.Close()
	}
	replies := make([][]byte, n)
	for i := range replies {
		replies[i] = wire.AppendError(nil, dp.DownMessage(err))
	}
	return replies
}

// Blocked reports whether the shard has d's command blocked: it has read
// and run it, and waits for data (CLIENT LIST's flag b, asked over another
// connection of the pool). A command that did not block, answered or not,
// reports false, as does a connection without a known id.
func (dp *DedicatedPool) Blocked(d *Dedicated, deadline time.Time) bool {
	if d.id == nil {
		return false
	}
	reply := dp.DoBy(resp.AppendCommand(nil, clientBytes, []byte("LIST"), []byte("ID"), d.id), deadline)
	text, ok := wire.BulkText(reply)
	if !ok {
		return false
	}
	_, flags, _ := bytes.Cut(text, []byte(" flags="))
	flags, _, _ = bytes.Cut(flags, []byte(" "))
	return bytes.IndexByte(flags, 'b') >= 0
}

// ErrClientGone reports that the client hung up while its command blocked.
var ErrClientGone = errors.New("client disconnected")

var (
	cmdClientID = resp.AppendCommand(nil, []byte("CLIENT"), []byte("ID"))
	clientBytes = []byte("CLIENT")
	unblockWord = []byte("UNBLOCK")
)

// Unblock asks the shard, over another connection of the pool, to end d's
// blocked command as if it had timed out. An element the shard already
// popped for d still arrives as d's reply: nothing is lost.
func (dp *DedicatedPool) Unblock(d *Dedicated) error {
	if d.id == nil {
		return errors.New("no client id")
	}
	u, err := dp.Get()
	if err != nil {
		return err
	}
	if _, err := u.RoundTrip(resp.AppendCommand(nil, clientBytes, unblockWord, d.id), 1, nil); err != nil {
		u.NetConn.Close()
		return err
	}
	dp.Put(u)
	return nil
}

// RoundTripWatching is RoundTrip for a command that may block for long: it
// watches the client's socket meanwhile, and if the client hangs up it closes
// d (so the shard drops the blocked command) and returns ErrClientGone. When
// swapped closes (the routing table changed), it unblocks the command on the
// shard and reports interrupted, so the caller can run it on the new table.
// sent runs once the command is written. When stop closes (Shutdown), it
// ends as if the client had hung up.
func RoundTripWatching(d *Dedicated, p *DedicatedPool, raw []byte, client net.Conn, swapped, stop <-chan struct{}, sent func()) (reply []byte, interrupted bool, err error) {
	type result struct {
		replies [][]byte
		err     error
	}
	if _, err := d.NetConn.Write(raw); err != nil {
		return nil, false, err
	}
	sent()
	done := make(chan result, 1)
	go func() {
		replies, err := d.RoundTrip(nil, 1, nil)
		done <- result{replies, err}
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case res := <-done:
			if res.err != nil {
				return nil, interrupted, res.err
			}
			return res.replies[0], interrupted, nil
		case <-swapped:
			swapped = nil
			if err := p.Unblock(d); err == nil {
				interrupted = true
			}
			continue
		case <-tick.C:
			if !hungUp(client) {
				continue
			}
		case <-stop:
		}
		d.NetConn.Close()
		<-done
		return nil, interrupted, ErrClientGone
	}
}

// hungUp reports whether the peer of c has closed its side, without reading
// from it (the bytes belong to the RESP reader).
func hungUp(c net.Conn) bool {
	revents, err := wire.PollNow(c, unix.POLLRDHUP)
	if err == wire.ErrNoSocket {
		return false
	}
	return err != nil || revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR) != 0
}

// DownMessage is the error text of a command the shard could not take.
func (dp *DedicatedPool) DownMessage(err error) string {
	return "ERR shard " + dp.Addr + " is unavailable: " + err.Error()
}
