package snapshot

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/reshard/reshard/internal/resp"
	"go.uber.org/zap"
)

// The cut: the barrier's pause, during which every shard's offset and key
// count are read over plain client connections dialed before it, and the
// INFO helpers those connections (and probe.go) use.
//
// The barrier holds this proxy's clients only. Inside it, the cut also
// pauses the writes of every shard's other clients (other proxies,
// applications connected directly): CLIENT PAUSE <ms> WRITE on every
// shard, every OK awaited, then every master_repl_offset read, then
// CLIENT UNPAUSE. Each shard's pause starts after t0, the time the pauses
// were sent, and lasts until t0 + ShardPause at the earliest; every
// offset is read after every pause began, and must arrive before t0 +
// ShardPause, so all the offsets were read while every shard took no
// write: they are one moment's, across shards and writers. So a write any
// client had acknowledged before it caused another write is in every
// snapshot that holds the later one. A shard that refuses CLIENT PAUSE
// (an ACL user without it, a renamed command) leaves the cut to the
// barrier alone, and the job's Warning stands.

// cutPoint is what the barrier yielded.
type cutPoint struct {
	at           time.Time // when the barrier was lifted
	pause        time.Duration
	shards       []shardCut
	shardsPaused bool // every shard's writes were paused for the cut
}

type shardCut struct {
	redisVersion string
	offset       int64 // master_repl_offset
	keys         int64 // over every database
}

func (c cutPoint) keys() int64 {
	var n int64
	for _, s := range c.shards {
		n += s.keys
	}
	return n
}

func (c cutPoint) offsets() []int64 {
	out := make([]int64, len(c.shards))
	for i, s := range c.shards {
		out[i] = s.offset
	}
	return out
}

// cut pauses the barrier, reads every shard's offset and key count, and
// lifts it. Everything that can be done before the pause is: connections
// are dialed, authenticated and asked for INFO server first, so the barrier
// is held for one pipelined round trip per shard, in parallel.
func (j *Job) cut(ctx context.Context, streams []*Stream) (cutPoint, error) {
	conns, err := j.dialShards(ctx)
	if err != nil {
		return cutPoint{}, err
	}
	defer func() {
		for _, c := range conns {
			c.conn.Close()
		}
	}()
	for _, st := range streams {
		// A capture that already failed would only fail StopAt: do not
		// stop the clients for it.
		if err := st.Err(); err != nil {
			return cutPoint{}, err
		}
	}

	pctx, cancel := context.WithTimeout(ctx, j.cfg.PauseTimeout)
	defer cancel()
	start := time.Now()
	resume, err := j.cfg.Barrier.Pause(pctx)
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return cutPoint{}, fmt.Errorf("%w: commands in flight did not drain within the pause timeout (%s)", ErrBarrier, j.cfg.PauseTimeout)
		}
		return cutPoint{}, fmt.Errorf("%w: %w", ErrBarrier, err)
	}
	cuts, paused, err := j.readPausedCuts(conns)
	resume()
	cp := cutPoint{at: time.Now(), pause: time.Since(start), shards: cuts, shardsPaused: paused}
	if err != nil {
		return cutPoint{}, err
	}
	for i, c := range conns {
		cp.shards[i].redisVersion = c.version
		st := streams[i]
		switch {
		case c.replID != st.ReplID():
			return cutPoint{}, fmt.Errorf("%w: shard %s: replication id %s at the cut, %s at the fork: it restarted, failed over or was replaced",
				ErrShardChanged, c.addr, c.replID, st.ReplID())
		case cp.shards[i].offset < st.ForkOffset():
			return cutPoint{}, fmt.Errorf("%w: shard %s: offset %d at the cut is before the fork offset %d",
				ErrShardChanged, c.addr, cp.shards[i].offset, st.ForkOffset())
		}
	}
	return cp, nil
}

// readPausedCuts reads every shard's cut with every shard's writes paused
// (see the top of this file), or with the barrier alone if a shard refuses
// CLIENT PAUSE; paused says which.
func (j *Job) readPausedCuts(conns []*shardConn) (cuts []shardCut, paused bool, err error) {
	t0 := time.Now()
	ms := strconv.FormatInt(j.cfg.ShardPause.Milliseconds(), 10)
	perr := sendAll(conns, resp.AppendCommandString(nil, "CLIENT", "PAUSE", ms, "WRITE"), t0.Add(j.cfg.OffsetTimeout))
	if perr != nil {
		sendAll(conns, cmdUnpause, time.Now().Add(j.cfg.OffsetTimeout))
		var refused *refusedError
		if !errors.As(perr, &refused) {
			return nil, false, perr
		}
		if j.cfg.RequireShardPause {
			return nil, false, fmt.Errorf("%w: a consistent cut of these shards needs CLIENT PAUSE on every one: %w", ErrBarrier, perr)
		}
		j.log.Warn("snapshot cut without pausing the shards: only this proxy's clients are held", zap.Error(perr))
		cuts, err = readCuts(conns, time.Now().Add(j.cfg.OffsetTimeout), j.cfg.testBeforeOffset)
		return cuts, false, err
	}
	deadline := time.Now().Add(j.cfg.OffsetTimeout)
	if end := t0.Add(j.cfg.ShardPause); end.Before(deadline) {
		deadline = end // an offset read after the earliest pause could end proves nothing
	}
	cuts, err = readCuts(conns, deadline, j.cfg.testBeforeOffset)
	unpause, n := cmdUnpause, 1
	if cp, ok := j.cfg.Barrier.(ClientPauser); ok {
		if left := cp.ClientPauseLeft(); left > 0 {
			ms := strconv.FormatInt(left.Milliseconds()+1, 10)
			unpause = resp.AppendCommandString(slices.Clip(cmdUnpause), "CLIENT", "PAUSE", ms, "WRITE")
			n = 2
		}
	}
	if uerr := sendAllN(conns, unpause, n, time.Now().Add(j.cfg.OffsetTimeout)); uerr != nil && err == nil {
		// the pause ends by itself at ShardPause
		j.log.Warn("snapshot cut: CLIENT UNPAUSE failed", zap.Error(uerr))
	}
	return cuts, err == nil, err
}

var cmdUnpause = resp.AppendCommandString(nil, "CLIENT", "UNPAUSE")

// refusedError is a shard's error reply to a command of the cut.
type refusedError struct{ addr, reply string }

func (e *refusedError) Error() string { return "shard " + e.addr + " refused: " + e.reply }

// sendAll sends cmd to every shard in parallel and reads each one's reply
// before deadline; an error reply is a *refusedError.
func sendAll(conns []*shardConn, cmd []byte, deadline time.Time) error {
	return sendAllN(conns, cmd, 1, deadline)
}

// sendAllN is sendAll for cmd holding n commands, whose n replies it reads.
func sendAllN(conns []*shardConn, cmd []byte, n int, deadline time.Time) error {
	errs := make([]error, len(conns))
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			c.conn.SetDeadline(deadline)
			if _, err := c.conn.Write(cmd); err != nil {
				errs[i] = fmt.Errorf("snapshot: shard %s: %w", c.addr, err)
				return
			}
			for range n {
				reply, err := resp.ReadReply(c.r, nil, c.r.Size())
				switch {
				case err != nil:
					errs[i] = fmt.Errorf("snapshot: shard %s: %w", c.addr, err)
					return
				case reply[0] == '-' && errs[i] == nil:
					errs[i] = &refusedError{c.addr, string(bytes.TrimSpace(reply[1:]))}
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// shardConn is a plain client connection to a shard, for the cut.
type shardConn struct {
	addr    string
	conn    net.Conn
	r       *bufio.Reader
	version string // redis_version
	replID  string // master_replid at the cut
}

// dialShards connects to every shard in parallel and reads INFO server.
func (j *Job) dialShards(ctx context.Context) ([]*shardConn, error) {
	n := j.cfg.Table.NumShards()
	conns := make([]*shardConn, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conns[i], errs[i] = j.dialShard(ctx, j.cfg.Table.Addr(i))
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, c := range conns {
			if c != nil {
				c.conn.Close()
			}
		}
		return nil, err
	}
	return conns, nil
}

func (j *Job) dialShard(ctx context.Context, addr string) (*shardConn, error) {
	d := net.Dialer{Timeout: j.cfg.DialTimeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("snapshot: connect to shard %s: %w", addr, err)
	}
	c := &shardConn{addr: addr, conn: conn, r: bufio.NewReader(conn)}
	conn.SetDeadline(time.Now().Add(j.cfg.DialTimeout))
	if err := c.setup(j.cfg.Username, j.cfg.Password); err != nil {
		conn.Close()
		return nil, fmt.Errorf("snapshot: shard %s: %w", addr, err)
	}
	conn.SetDeadline(time.Time{})
	return c, nil
}

// authenticate sends AUTH when there is a password and checks the reply.
func authenticate(w io.Writer, r *bufio.Reader, username, password string) error {
	args := resp.AuthArgs(username, password)
	if args == nil {
		return nil
	}
	if _, err := w.Write(resp.AppendCommandString(nil, args...)); err != nil {
		return err
	}
	// Both of AUTH's replies, +OK and an error, are one line, and a line
	// fits r's buffer.
	reply, err := resp.ReadReply(r, nil, r.Size())
	if err != nil {
		return err
	}
	if reply[0] != '+' {
		return fmt.Errorf("AUTH answered %q", bytes.TrimSpace(reply))
	}
	return nil
}

func (c *shardConn) setup(username, password string) error {
	if err := authenticate(c.conn, c.r, username, password); err != nil {
		return err
	}
	body, err := infoSection(c.conn, c.r, "server")
	if err != nil {
		return err
	}
	c.version = infoValue(body, "redis_version")
	return nil
}

// readCuts asks every shard, in parallel, for INFO replication and INFO
// keyspace in one pipelined write, and reads both before deadline.
func readCuts(conns []*shardConn, deadline time.Time, before func(shard int)) ([]shardCut, error) {
	cuts := make([]shardCut, len(conns))
	errs := make([]error, len(conns))
	req := resp.AppendCommandString(resp.AppendCommandString(nil, "INFO", "replication"), "INFO", "keyspace")
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.conn.SetDeadline(deadline)
			if before != nil {
				before(i)
			}
			repl, keyspace, err := c.readCut(req)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					err = fmt.Errorf("%w: no answer within the offset timeout", ErrTimeout)
				}
				errs[i] = fmt.Errorf("snapshot: read the cut offset of shard %s: %w", c.addr, err)
				return
			}
			info := parseReplInfo(repl)
			c.replID = info.replID
			cuts[i] = shardCut{offset: info.offset, keys: keyspaceKeys(keyspace)}
			if infoValue(repl, "master_repl_offset") == "" {
				errs[i] = fmt.Errorf("snapshot: shard %s: INFO replication has no master_repl_offset", c.addr)
			}
		}()
	}
	wg.Wait()
	return cuts, errors.Join(errs...)
}

func (c *shardConn) readCut(req []byte) (repl, keyspace string, err error) {
	if _, err := c.conn.Write(req); err != nil {
		return "", "", err
	}
	if repl, err = readBulk(c.r); err != nil {
		return "", "", err
	}
	keyspace, err = readBulk(c.r)
	return repl, keyspace, err
}

// maxInfoReply bounds an INFO reply: a text of up to 1 MiB and its
// header. Redis's are a few KiB.
const maxInfoReply = 1<<20 + len("$1048576\r\n\r\n")

// readBulk reads a bulk string reply (INFO's).
func readBulk(r *bufio.Reader) (string, error) {
	reply, err := resp.ReadReply(r, nil, maxInfoReply)
	if err != nil {
		return "", err
	}
	body, ok := resp.Payload(reply)
	if reply[0] != '$' || !ok {
		line, _, _ := bytes.Cut(reply, []byte("\r\n"))
		return "", fmt.Errorf("expected a bulk string, got %q", line)
	}
	return string(body), nil
}

// infoField returns one field of an INFO reply, "" if absent.
func infoValue(text, field string) string {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), field+":"); ok {
			return v
		}
	}
	return ""
}

// keyspaceKeys sums keys= over the dbN lines of INFO keyspace.
func keyspaceKeys(text string) int64 {
	var n int64
	for _, line := range strings.Split(text, "\n") {
		key, val, ok := strings.Cut(strings.TrimRight(line, "\r"), ":")
		if !ok || !strings.HasPrefix(key, "db") {
			continue
		}
		for _, f := range strings.Split(val, ",") {
			if v, ok := strings.CutPrefix(f, "keys="); ok {
				k, _ := strconv.ParseInt(v, 10, 64)
				n += k
			}
		}
	}
	return n
}
