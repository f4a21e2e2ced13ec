package snapshot

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/reshard/reshard/internal/resp"
)

// CaptureConfig describes the capture of one shard. DefaultCaptureConfig is
// the one place its defaults live.
type CaptureConfig struct {
	// Addr is the shard's host:port.
	Addr string
	// Username and Password authenticate before the handshake (AUTH
	// [username] password); empty Password sends no AUTH. The password is
	// never logged nor put in an error.
	Username string
	Password string
	// RDBPath receives the RDB as it arrives; TailPath the command stream
	// after it. Both files must not exist: Capture creates them, and
	// removes them again if the capture fails or is closed before StopAt
	// completes.
	RDBPath  string
	TailPath string
	// RDB, when set, receives the RDB instead of a file at RDBPath (which
	// is then left empty): the capture commits it once the RDB is
	// complete, and aborts it if the capture fails before that; a
	// committed sink is the caller's to remove.
	RDB Sink
	// CheckRDB checks the RDB (structure and CRC64, as CheckRDB does)
	// while it arrives, beside the transfer, and fails the capture on a
	// broken one; Result.RDBSummary holds what it found.
	CheckRDB bool
	// ListeningPort is announced with REPLCONF listening-port. 0 announces
	// the local port of the capture's own connection, which no real
	// replica uses, so the capture can recognise itself in the shard's
	// INFO replication when it has to explain a dropped link.
	ListeningPort int
	// DialTimeout bounds connecting to the shard (also for the probe that
	// explains a dropped link).
	DialTimeout time.Duration
	// LinkTimeout is how long the link may stay silent before the capture
	// gives up, like Redis's repl-timeout (60 s). A shard sends keepalive
	// newlines while it forks and PINGs while idle, so silence this long
	// means a stalled shard or network.
	LinkTimeout time.Duration
	// AckInterval is how often the capture sends REPLCONF ACK, as a
	// replica does every second; the shard uses the ACKs to tell a live
	// replica from a dead one.
	AckInterval time.Duration
	// Verify, when set, is called with RDBPath when StopAt has cut the
	// tail and closed the link; an error fails the capture. The default,
	// VerifyRDB, reads the file through package rdb (structure and CRC64);
	// any other checker (redis-check-rdb, ...) plugs in here.
	Verify func(path string) error
	// Logger receives a few Info lines per capture; nil logs nothing.
	Logger *zap.Logger
	// Follow prepares the capture for Stream.Follow: the tail is flushed
	// to a command boundary whenever the link has nothing more buffered,
	// and the time each stretch of the stream arrived is kept until the
	// follower has read it (a record per millisecond at most). Without
	// it the capture writes its tail as a snapshot needs, and Follow fails.
	Follow bool
	// KeepForkDelay leaves the shard's repl-diskless-sync-delay alone;
	// by default the capture sets it to 0 for its own handshake and back
	// right after (forkdelay.go), so it does not wait for it.
	KeepForkDelay bool
	// Acked, when set, gives the offset REPLCONF ACK reports (capped at
	// the offset received) instead of the offset received. A consumer
	// that applies the stream elsewhere (the live reshard) reports what it
	// has applied, so WAIT on the shard counts a write only once it has
	// reached the targets. It is called from the capture's goroutines and
	// must be cheap and safe for concurrent use.
	Acked func() int64

	// testBeforeCommand, when set, runs before each command of the stream
	// is read; tests use it to make the capture fall behind.
	testBeforeCommand func()
}

// DefaultCaptureConfig returns the defaults; the caller fills in Addr and
// the paths.
func DefaultCaptureConfig() CaptureConfig {
	return CaptureConfig{
		DialTimeout: 5 * time.Second,
		LinkTimeout: 60 * time.Second,
		AckInterval: time.Second,
		Verify:      VerifyRDB,
	}
}

func (c CaptureConfig) validate() error {
	switch {
	case c.Addr == "":
		return errors.New("snapshot: capture needs a shard address")
	case c.RDBPath == "" && c.RDB == nil:
		return fmt.Errorf("snapshot: capture of shard %s needs an RDB path or sink", c.Addr)
	case c.RDBPath != "" && c.RDB != nil:
		return fmt.Errorf("snapshot: capture of shard %s has both an RDB path and an RDB sink", c.Addr)
	case c.TailPath == "":
		return fmt.Errorf("snapshot: capture of shard %s needs a tail path", c.Addr)
	case c.RDBPath == c.TailPath:
		return fmt.Errorf("snapshot: capture of shard %s: RDB and tail path are both %q", c.Addr, c.RDBPath)
	case c.ListeningPort < 0 || c.ListeningPort > 65535:
		return fmt.Errorf("snapshot: listening port must be 0 to 65535, got %d", c.ListeningPort)
	case c.DialTimeout <= 0:
		return fmt.Errorf("snapshot: dial timeout must be positive, got %s", c.DialTimeout)
	case c.LinkTimeout <= 0:
		return fmt.Errorf("snapshot: link timeout must be positive, got %s", c.LinkTimeout)
	case c.AckInterval <= 0:
		return fmt.Errorf("snapshot: ack interval must be positive, got %s", c.AckInterval)
	}
	return nil
}

// Buffer sizes. The read buffer is also the largest write to the RDB file;
// the tail is written through its own buffer. Neither grows with the data.
const (
	readBufferSize = 256 << 10
	tailBufferSize = 256 << 10
)

// Capture connects to the shard as a replica and asks it for a full
// resynchronisation. It returns once the shard has forked and answered
// +FULLRESYNC, which can take seconds (repl-diskless-sync-delay): from then
// on ForkOffset is known and the RDB and the command stream are received
// in the background. The capture runs until StopAt completes, Close is
// called, ctx ends, or it fails (see Done and Err).
//
// If Capture returns an error, it has removed the files it created.
func Capture(ctx context.Context, cfg CaptureConfig) (*Stream, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	rdb := cfg.RDB
	if rdb == nil {
		f, err := createFileSink(cfg.RDBPath)
		if err != nil {
			return nil, fmt.Errorf("snapshot: capture of shard %s: %w", cfg.Addr, err)
		}
		rdb = f
	}
	tail, err := createExclusive(cfg.TailPath)
	if err != nil {
		rdb.Abort()
		return nil, fmt.Errorf("snapshot: capture of shard %s: %w", cfg.Addr, err)
	}
	dialer := net.Dialer{Timeout: cfg.DialTimeout}
	conn, err := dialer.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		rdb.Abort()
		tail.Close()
		os.Remove(cfg.TailPath)
		return nil, fmt.Errorf("snapshot: connect to shard %s: %w", cfg.Addr, err)
	}
	if cfg.ListeningPort == 0 {
		if a, ok := conn.LocalAddr().(*net.TCPAddr); ok {
			cfg.ListeningPort = a.Port
		}
	}
	dc := &deadlineConn{conn: conn, timeout: cfg.LinkTimeout}
	s := &Stream{
		cfg:     cfg,
		log:     log.With(zap.String("shard", cfg.Addr)),
		ctx:     ctx,
		conn:    conn,
		dc:      dc,
		br:      bufio.NewReaderSize(dc, readBufferSize),
		rdb:     &rdbWriter{sink: rdb},
		tail:    tail,
		tailW:   bufio.NewWriterSize(tail, tailBufferSize),
		done:    make(chan struct{}),
		ackStop: make(chan struct{}),
		rdbDone: make(chan struct{}),
	}
	s.pub.changed = make(chan struct{})
	s.target.Store(-1)
	s.phase.Store(int32(PhaseHandshake))
	s.stopAfter = context.AfterFunc(ctx, func() {
		s.abort(fmt.Errorf("%w (shard %s): %w", ErrClosed, cfg.Addr, context.Cause(ctx)))
	})
	if cfg.CheckRDB {
		s.rdb.check = startRDBCheck("RDB")
	}
	var fd *forkDelay
	if !cfg.KeepForkDelay {
		fd = lowerForkDelay(ctx, cfg, s.log)
		s.forkNote = fd.note
	}
	err = s.handshake()
	fd.restore() // the shard has forked, or will not for this capture
	if err != nil {
		s.stopAfter()
		conn.Close()
		s.removeFiles()
		return nil, s.explain(err, PhaseHandshake)
	}
	s.offset.Store(s.fork)
	s.phase.Store(int32(PhaseRDB))
	s.started = time.Now()
	s.log.Info("replication capture started",
		zap.String("replid", s.replID), zap.Int64("fork_offset", s.fork))
	s.wg.Add(1)
	go s.run()
	return s, nil
}

func createExclusive(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
}

// handshake authenticates, announces the replica's capabilities and asks
// for a full resync. Errors on REPLCONF are ignored, as a Redis replica
// does (old servers lack some subcommands), except those that say the
// connection may not replicate at all.
func (s *Stream) handshake() error {
	if args := resp.AuthArgs(s.cfg.Username, s.cfg.Password); args != nil {
		reply, err := s.roundTrip(args...)
		if err != nil {
			return err
		}
		if reply[0] != '+' {
			return &RefusedError{Addr: s.cfg.Addr, Command: "AUTH", Reply: reply}
		}
	}
	for _, args := range [][]string{
		{"REPLCONF", "listening-port", strconv.Itoa(s.cfg.ListeningPort)},
		{"REPLCONF", "capa", "eof", "capa", "psync2"},
	} {
		reply, err := s.roundTrip(args...)
		if err != nil {
			return err
		}
		if reply[0] == '-' {
			switch replyCode(reply) {
			case "NOPERM", "NOAUTH", "WRONGPASS":
				return &RefusedError{Addr: s.cfg.Addr, Command: "REPLCONF", Reply: reply}
			}
			s.log.Debug("replconf refused, continuing", zap.String("reply", reply))
		}
	}
	reply, err := s.roundTrip("PSYNC", "?", "-1")
	if err != nil {
		return err
	}
	if !strings.HasPrefix(reply, "+FULLRESYNC") {
		return &RefusedError{Addr: s.cfg.Addr, Command: "PSYNC", Reply: reply}
	}
	s.replID, s.fork, err = parseFullResync(reply)
	return err
}

// parseFullResync parses "+FULLRESYNC <replid> <offset>".
func parseFullResync(reply string) (string, int64, error) {
	f := strings.Fields(reply)
	if len(f) != 3 || f[0] != "+FULLRESYNC" || len(f[1]) != 40 {
		return "", 0, protocolf("malformed PSYNC reply %q", reply)
	}
	off, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil || off < 0 {
		return "", 0, protocolf("malformed offset in PSYNC reply %q", reply)
	}
	return f[1], off, nil
}

// roundTrip sends a command and reads its one-line reply.
func (s *Stream) roundTrip(args ...string) (string, error) {
	if err := s.send(resp.AppendCommandString(nil, args...)); err != nil {
		return "", err
	}
	return s.readLine()
}

// readLine reads a reply line of the handshake, skipping the bare newlines
// a master sends to keep a waiting replica's link alive. It returns the
// line without its line ending; it is never empty.
func (s *Stream) readLine() (string, error) {
	for {
		line, err := s.br.ReadSlice('\n')
		if err != nil {
			if err == bufio.ErrBufferFull {
				return "", protocolf("reply line longer than %d bytes", s.br.Size())
			}
			return "", err
		}
		str := strings.TrimRight(string(line), "\r\n")
		if str != "" {
			return str, nil
		}
	}
}

// send writes b to the shard. The reader goroutine (GETACK answers) and
// the ACK ticker both send, hence the lock.
func (s *Stream) send(b []byte) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.conn.SetWriteDeadline(time.Now().Add(s.cfg.LinkTimeout))
	if _, err := s.conn.Write(b); err != nil {
		return &linkError{err}
	}
	return nil
}

// deadlineConn is the reading side of the link. Every read gets a fresh
// LinkTimeout deadline, unless the stream has been interrupted (StopAt
// found the cut already behind the reader), in which case every read fails
// at once. The lock orders the two so an interrupt is never overwritten by
// a fresh deadline.
type deadlineConn struct {
	conn    net.Conn
	timeout time.Duration

	mu          sync.Mutex
	interrupted bool
}

func (d *deadlineConn) Read(b []byte) (int, error) {
	d.mu.Lock()
	if d.interrupted {
		d.conn.SetReadDeadline(time.Unix(1, 0))
	} else {
		d.conn.SetReadDeadline(time.Now().Add(d.timeout))
	}
	d.mu.Unlock()
	n, err := d.conn.Read(b)
	if err != nil {
		err = &linkError{err}
	}
	return n, err
}

func (d *deadlineConn) interrupt() {
	d.mu.Lock()
	d.interrupted = true
	d.conn.SetReadDeadline(time.Unix(1, 0))
	d.mu.Unlock()
}
