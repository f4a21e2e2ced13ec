package snapshot

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/reshard/reshard/internal/resp"
)

// Phase is where a capture stands.
type Phase int32

const (
	PhaseHandshake Phase = iota // connecting, waiting for +FULLRESYNC
	PhaseRDB                    // receiving the RDB
	PhaseStream                 // following the command stream
	PhaseDone                   // cut at StopAt's offset; files complete
	PhaseFailed                 // failed or closed; files removed
)

func (p Phase) String() string {
	switch p {
	case PhaseHandshake:
		return "handshake"
	case PhaseRDB:
		return "rdb"
	case PhaseStream:
		return "stream"
	case PhaseDone:
		return "done"
	case PhaseFailed:
		return "failed"
	}
	return "phase(" + strconv.Itoa(int(p)) + ")"
}

// Progress is a capture's state at one moment.
type Progress struct {
	Phase Phase
	// RDBBytes is how much of the RDB has been written to its file.
	RDBBytes int64
	// Offset is the replication offset processed so far: the fork offset
	// until the RDB is complete, then advanced command by command.
	Offset int64
}

// Result describes a completed capture: an RDB standing at ForkOffset and
// a tail that takes it to CutOffset.
type Result struct {
	Addr   string
	ReplID string
	// ForkOffset is the offset the RDB stands at (+FULLRESYNC's offset).
	ForkOffset int64
	// CutOffset is the offset the RDB plus the tail stand at.
	CutOffset int64
	// Transfer is "disk" ($<length>) or "diskless" ($EOF:<mark>).
	Transfer string
	RDBPath  string // empty when the RDB went to CaptureConfig.RDB
	RDBSize  int64
	// RDBSummary is what CaptureConfig.CheckRDB found; nil without it.
	RDBSummary *RDBSummary
	RDBVersion int
	// RDBTime is from +FULLRESYNC to the RDB fsynced.
	RDBTime  time.Duration
	TailPath string
	TailSize int64
	// TailCommands counts the commands in the tail (MULTI and EXEC
	// included), which is also the number of replies a replay gets.
	TailCommands int64
}

// Stream is one running capture. Its methods are safe for concurrent use.
type Stream struct {
	cfg CaptureConfig
	log *zap.Logger
	ctx context.Context

	conn    net.Conn
	dc      *deadlineConn
	br      *bufio.Reader
	writeMu sync.Mutex // serialises writes to conn

	// Set by the handshake, read-only after Capture returns.
	forkNote string // why the shard's fork delay was not lowered
	replID   string
	fork     int64
	started  time.Time

	// Written by the reader goroutine only.
	rdb         *rdbWriter
	tail        *os.File
	tailW       *bufio.Writer
	transfer    string
	rdbTime     time.Duration
	rdbSum      *RDBSummary
	checkpoints []boundary
	skips       []skipped // appended under pub.mu: a Follower reads them

	// pub is what a Follower may read: the tail up to a command boundary
	// flushed to the file, and the offset it stands at (see publish).
	pub     published
	rdbDone chan struct{} // closed when the RDB file is complete

	phase     atomic.Int32
	offset    atomic.Int64
	streaming atomic.Bool
	target    atomic.Int64 // StopAt's offset, -1 before
	stopped   atomic.Bool  // StopAt was called

	abortMu    sync.Mutex
	abortCause error

	stopAfter func() bool // unregisters the ctx callback
	ackStop   chan struct{}
	wg        sync.WaitGroup
	done      chan struct{}
	err       error  // set before done is closed
	result    Result // set before done is closed
}

// boundary is the state of the capture between two commands.
type boundary struct {
	off  int64 // replication offset
	tail int64 // bytes of the tail file
	kept int64 // commands in the tail file
	inTx bool  // between MULTI and EXEC
}

// skipped is a command counted in the offset but left out of the tail.
type skipped struct{ off, n int64 }

// checkpointEvery is how much tail lies between two remembered boundaries:
// a cut behind the reader re-reads at most this much of the tail file.
const checkpointEvery = 1 << 20

// ForkNote is empty, or says why the capture waited for the shard's
// repl-diskless-sync-delay (its CONFIG refused, say).
func (s *Stream) ForkNote() string { return s.forkNote }

// ReplID is the shard's replication id from +FULLRESYNC.
func (s *Stream) ReplID() string { return s.replID }

// ForkOffset is the replication offset the RDB stands at.
func (s *Stream) ForkOffset() int64 { return s.fork }

// Offset is the replication offset processed so far.
func (s *Stream) Offset() int64 { return s.offset.Load() }

// Progress reports the capture's state.
func (s *Stream) Progress() Progress {
	return Progress{Phase: Phase(s.phase.Load()), RDBBytes: s.rdb.n.Load(), Offset: s.offset.Load()}
}

// Done is closed when the capture has ended: cut, failed or closed.
func (s *Stream) Done() <-chan struct{} { return s.done }

// Err is nil while the capture runs and after a successful StopAt;
// otherwise the reason it ended.
func (s *Stream) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// StopAt waits until the stream has reached offset, cuts the tail exactly
// there, fsyncs it and closes the link. offset must be a command boundary
// at or after ForkOffset: the shard's master_repl_offset read from INFO
// always is one, and is never inside MULTI/EXEC. It waits for the RDB too,
// then runs CaptureConfig.Verify on it, so a nil error means both files
// are complete and the RDB checked.
//
// StopAt may be called once. If ctx ends first, the capture is closed (its
// files removed) and StopAt returns an error wrapping ErrClosed and ctx's
// cause. A bad offset (ErrBadCut) fails the whole capture, except one
// before the fork, which is rejected without effect.
func (s *Stream) StopAt(ctx context.Context, offset int64) (Result, error) {
	if offset < s.fork {
		return Result{}, fmt.Errorf("%w: shard %s: offset %d is before the fork offset %d", ErrBadCut, s.cfg.Addr, offset, s.fork)
	}
	if !s.stopped.CompareAndSwap(false, true) {
		return Result{}, fmt.Errorf("snapshot: shard %s: StopAt called twice", s.cfg.Addr)
	}
	s.target.Store(offset)
	// The reader checks the target after each command; if it already went
	// past, it may be blocked reading a command that will never come.
	if s.streaming.Load() && s.offset.Load() >= offset {
		s.dc.interrupt()
	}
	select {
	case <-s.done:
	case <-ctx.Done():
		s.abort(fmt.Errorf("%w (shard %s): stop at offset %d: %w", ErrClosed, s.cfg.Addr, offset, context.Cause(ctx)))
		<-s.done
	}
	if s.err != nil {
		return Result{}, s.err
	}
	return s.result, nil
}

// Close stops the capture and waits for its goroutines. A capture that has
// not completed StopAt fails with ErrClosed and its files are removed; a
// completed one is left as it is. Close is idempotent and returns nil.
func (s *Stream) Close() error {
	s.abort(fmt.Errorf("%w (shard %s)", ErrClosed, s.cfg.Addr))
	<-s.done
	s.wg.Wait()
	return nil
}

// abort records why the capture is being ended from outside and breaks
// the link, which ends the reader's blocking reads.
func (s *Stream) abort(cause error) {
	s.abortMu.Lock()
	if s.abortCause == nil {
		s.abortCause = cause
	}
	s.abortMu.Unlock()
	s.conn.Close()
}

func (s *Stream) aborted() error {
	s.abortMu.Lock()
	defer s.abortMu.Unlock()
	return s.abortCause
}

// run is the reader goroutine: RDB, then the stream until the cut.
func (s *Stream) run() {
	defer s.wg.Done()
	err := s.receiveRDB()
	ackDone := make(chan struct{})
	ackStarted := false
	if err == nil {
		close(s.rdbDone)
		// A replica ACKs right after loading the RDB; after a diskless
		// transfer the shard sends no stream until it has that ACK.
		err = s.ack(s.fork)
		if err == nil {
			ackStarted = true
			go s.ackLoop(ackDone)
			err = s.follow()
		}
	}
	close(s.ackStop)
	if ackStarted {
		<-ackDone
	}
	s.conn.Close()
	// Verified only now, with the link closed: reading the file again
	// while the shard buffers the stream for us could push the capture
	// over client-output-buffer-limit on a large RDB.
	if err == nil && s.cfg.Verify != nil && s.cfg.RDBPath != "" {
		if verr := s.cfg.Verify(s.cfg.RDBPath); verr != nil {
			err = fmt.Errorf("snapshot: shard %s: verify RDB %s: %w", s.cfg.Addr, s.cfg.RDBPath, verr)
		}
	}
	s.stopAfter()
	if err != nil {
		s.err = s.explain(err, Phase(s.phase.Load()))
		s.phase.Store(int32(PhaseFailed))
		s.removeFiles()
	} else {
		s.phase.Store(int32(PhaseDone))
		s.log.Info("capture cut",
			zap.Int64("cut_offset", s.result.CutOffset), zap.Int64("tail_bytes", s.result.TailSize),
			zap.Int64("tail_commands", s.result.TailCommands))
	}
	close(s.done)
	s.wakeFollower()
}

// ackLoop sends REPLCONF ACK every AckInterval until the reader stops. A
// failed write ends it quietly: the reader sees the broken link and
// reports it.
func (s *Stream) ackLoop(done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(s.cfg.AckInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ackStop:
			return
		case <-t.C:
			if err := s.ack(s.ackOffset(s.offset.Load())); err != nil {
				return
			}
		}
	}
}

func (s *Stream) ack(offset int64) error {
	return s.send(resp.AppendCommandString(nil, "REPLCONF", "ACK", strconv.FormatInt(offset, 10)))
}

// receiveRDB reads the bulk header and spools the RDB to its file.
func (s *Stream) receiveRDB() error {
	line, err := s.readLine()
	if err != nil {
		return err
	}
	switch {
	case len(line) == 45 && line[:5] == "$EOF:":
		s.transfer = "diskless"
		ms := newMarkScanner([]byte(line[5:]))
		for done := false; !done; {
			if _, err := s.br.Peek(1); err != nil {
				return err
			}
			chunk, _ := s.br.Peek(s.br.Buffered())
			var n int
			n, done, err = ms.feed(chunk, s.rdb)
			if err != nil {
				return err
			}
			s.br.Discard(n)
		}
	case line[0] == '$':
		n, ok := parseLen([]byte(line[1:]))
		if !ok || n < 0 {
			return protocolf("bad RDB bulk header %q", line)
		}
		s.transfer = "disk"
		if err := copyN(s.rdb, s.br, n); err != nil {
			return err
		}
	default:
		return protocolf("expected the RDB, got %q", line)
	}
	version, err := s.rdb.version()
	if err != nil {
		return err
	}
	s.rdb.rdbVersion = version
	if c := s.rdb.check; c != nil {
		s.rdb.check = nil
		sum, err := c.finish()
		if err != nil {
			return fmt.Errorf("snapshot: shard %s: %w", s.cfg.Addr, err)
		}
		s.rdbSum = &sum
	}
	if err := s.rdb.sink.Commit(); err != nil {
		return &fileError{err}
	}
	s.rdb.committed = true
	s.rdbTime = time.Since(s.started)
	s.log.Info("rdb received", zap.String("transfer", s.transfer),
		zap.Int64("rdb_bytes", s.rdb.n.Load()), zap.Duration("elapsed", s.rdbTime))
	return nil
}

// follow reads the command stream into the tail until the cut.
func (s *Stream) follow() error {
	p := cmdParser{r: s.br}
	cur := boundary{off: s.fork}
	s.checkpoints = append(s.checkpoints, cur)
	if s.cfg.Follow {
		if err := s.publish(cur); err != nil {
			return err
		}
	}
	s.phase.Store(int32(PhaseStream))
	s.streaming.Store(true)
	for {
		if t := s.target.Load(); t >= 0 && cur.off >= t {
			return s.cut(cur, t)
		}
		if s.cfg.testBeforeCommand != nil {
			s.cfg.testBeforeCommand()
		}
		n, kind, err := p.next(s.tailW)
		if err != nil {
			// Whatever broke the stream, the cut may already be behind us
			// (an interrupt from StopAt breaks it on purpose).
			if t := s.target.Load(); t >= 0 && cur.off >= t {
				return s.cut(cur, t)
			}
			return err
		}
		if kind.kept() {
			cur.tail += n
			cur.kept++
			switch kind {
			case kindMulti:
				cur.inTx = true
			case kindExec:
				cur.inTx = false
			}
		} else {
			s.pub.mu.Lock()
			s.skips = append(s.skips, skipped{off: cur.off, n: n})
			s.pub.mu.Unlock()
		}
		cur.off += n
		if cur.tail-s.checkpoints[len(s.checkpoints)-1].tail >= checkpointEvery {
			s.checkpoints = append(s.checkpoints, cur)
		}
		s.offset.Store(cur.off)
		if kind == kindGetack {
			if err := s.ack(s.ackOffset(cur.off)); err != nil {
				return err
			}
		}
		// Publish before a read that may block, so a follower never waits
		// for a command that has arrived, and at least every publishEvery
		// bytes of tail under a steady stream.
		if s.cfg.Follow && (s.br.Buffered() == 0 || s.tailW.Buffered() >= publishEvery) {
			if err := s.publish(cur); err != nil {
				return err
			}
		}
	}
}

// cut ends the tail at offset target; cur is the boundary the reader is
// at, at or past target. Bytes of a partly read command after cur are
// dropped with everything else past the cut.
func (s *Stream) cut(cur boundary, target int64) error {
	if err := s.tailW.Flush(); err != nil {
		return &fileError{err}
	}
	b := cur
	if cur.off != target {
		var err error
		if b, err = s.findBoundary(target); err != nil {
			return err
		}
	}
	if b.inTx {
		return fmt.Errorf("%w: shard %s: offset %d is inside a MULTI/EXEC transaction", ErrBadCut, s.cfg.Addr, target)
	}
	if err := s.tail.Truncate(b.tail); err != nil {
		return &fileError{err}
	}
	if err := s.tail.Sync(); err != nil {
		return &fileError{err}
	}
	if err := s.tail.Close(); err != nil {
		return &fileError{err}
	}
	s.tail = nil
	s.offset.Store(target)
	s.result = Result{
		Addr:         s.cfg.Addr,
		ReplID:       s.replID,
		ForkOffset:   s.fork,
		CutOffset:    target,
		Transfer:     s.transfer,
		RDBPath:      s.cfg.RDBPath,
		RDBSize:      s.rdb.n.Load(),
		RDBVersion:   s.rdb.rdbVersion,
		RDBSummary:   s.rdbSum,
		RDBTime:      s.rdbTime,
		TailPath:     s.cfg.TailPath,
		TailSize:     b.tail,
		TailCommands: b.kept,
	}
	return nil
}

// findBoundary finds the state at offset target, behind the reader, by
// re-reading the tail file from the last checkpoint before target and
// stepping over the commands that were left out of it.
func (s *Stream) findBoundary(target int64) (boundary, error) {
	i := sort.Search(len(s.checkpoints), func(i int) bool { return s.checkpoints[i].off > target }) - 1
	b := s.checkpoints[i]
	f, err := os.Open(s.cfg.TailPath)
	if err != nil {
		return b, &fileError{err}
	}
	defer f.Close()
	if _, err := f.Seek(b.tail, io.SeekStart); err != nil {
		return b, &fileError{err}
	}
	p := cmdParser{r: bufio.NewReaderSize(f, 64<<10)}
	k := sort.Search(len(s.skips), func(k int) bool { return s.skips[k].off >= b.off })
	start := b.off // of the last command stepped over
	for b.off < target {
		start = b.off
		if k < len(s.skips) && s.skips[k].off == b.off {
			b.off += s.skips[k].n
			k++
			continue
		}
		n, kind, err := p.next(io.Discard)
		if err != nil {
			return b, fmt.Errorf("snapshot: shard %s: re-read tail %s: %w", s.cfg.Addr, s.cfg.TailPath, err)
		}
		b.off += n
		b.tail += n
		b.kept++
		switch kind {
		case kindMulti:
			b.inTx = true
		case kindExec:
			b.inTx = false
		}
	}
	if b.off != target {
		return b, fmt.Errorf("%w: shard %s: offset %d is not on a command boundary (a command spans offsets %d to %d)",
			ErrBadCut, s.cfg.Addr, target, start, b.off)
	}
	return b, nil
}

func (s *Stream) removeFiles() {
	if c := s.rdb.check; c != nil {
		s.rdb.check = nil
		c.finish()
	}
	if !s.rdb.committed {
		s.rdb.sink.Abort()
	} else if s.cfg.RDB == nil {
		os.Remove(s.cfg.RDBPath)
	}
	if s.tail != nil {
		s.tail.Close()
	}
	os.Remove(s.cfg.TailPath)
}

// explain turns the error that ended a capture into the one reported:
// a close from outside wins; a link error is explained by probing the
// shard; others get the shard's address.
func (s *Stream) explain(err error, phase Phase) error {
	if cause := s.aborted(); cause != nil {
		return cause
	}
	var le *linkError
	var pe *protoError
	var fe *fileError
	switch {
	case errors.As(err, &le):
		return s.classify(le, phase)
	case errors.As(err, &pe):
		return fmt.Errorf("%w: shard %s, %s phase: %s", ErrProtocol, s.cfg.Addr, phase, pe.detail)
	case errors.As(err, &fe):
		return fmt.Errorf("snapshot: shard %s: %w", s.cfg.Addr, fe.err)
	}
	return err
}

// rdbWriter writes the RDB to its sink, counting bytes and keeping its
// header, and hands a copy to the check when there is one.
type rdbWriter struct {
	sink       Sink
	committed  bool
	check      *rdbCheck
	n          atomic.Int64
	head       [9]byte
	rdbVersion int
}

func (w *rdbWriter) Write(b []byte) (int, error) {
	if n := w.n.Load(); n < int64(len(w.head)) {
		copy(w.head[n:], b)
	}
	n, err := w.sink.Write(b)
	w.n.Add(int64(n))
	if err == nil && w.check != nil {
		err = w.check.write(b[:n])
	}
	return n, err
}

// version checks the "REDIS0011" magic and returns the RDB version.
func (w *rdbWriter) version() (int, error) {
	if w.n.Load() < int64(len(w.head)) || string(w.head[:5]) != "REDIS" {
		return 0, protocolf("the payload is not an RDB (starts with %s)", quote(w.head[:min(int(w.n.Load()), len(w.head))]))
	}
	v, err := strconv.Atoi(string(w.head[5:]))
	if err != nil {
		return 0, protocolf("bad RDB version %s", quote(w.head[5:]))
	}
	return v, nil
}
