package snapshot

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/reshard/reshard/internal/resp"
)

// Following the command stream while it is captured.
//
// The live reshard applies a shard's stream to other servers as it
// arrives. It does not get the commands from the capture's reader goroutine
// (a slow consumer there would slow the link, and the shard disconnects a
// replica that falls too far behind); it reads them back from the tail
// file, which the capture keeps flushed: the reader publishes the tail up to
// the last complete command, with the replication offset it stands at,
// before every read that may block and at least every publishEvery bytes.
// The file is the buffer between the link and the consumer, so however far
// the consumer falls behind, the link keeps up.
//
// Offsets: the tail leaves PING and REPLCONF out, but they count in the
// replication offset, and a cut read from master_repl_offset may fall just
// after them. The follower steps over them with the capture's record of
// skipped commands, so every event carries the exact offset after it.

// publishEvery bounds how much tail the capture buffers before it
// publishes it to a follower under a stream that never pauses.
const publishEvery = 64 << 10

// publishGrain: publications closer together than this share one record
// of their time, so the records stay few (about a thousand a second at
// most) however small the reads.
const publishGrain = time.Millisecond

// published is the part of the capture a Follower may read.
type published struct {
	mu   sync.Mutex
	tail int64 // tail bytes flushed, at a command boundary
	off  int64 // replication offset at tail (skipped commands included)
	// recs says when each stretch of the stream was published; a follower
	// drops the ones it has passed.
	recs    []pubRecord
	head    int           // recs before head are passed
	changed chan struct{} // closed and replaced on every publication
	follow  bool          // a Follower exists
}

type pubRecord struct {
	off int64 // the stretch ends at this offset
	at  time.Time
}

// publish flushes the tail and makes everything up to cur visible to a
// follower. Only the reader goroutine calls it.
func (s *Stream) publish(cur boundary) error {
	if err := s.tailW.Flush(); err != nil {
		return &fileError{err}
	}
	now := time.Now()
	s.pub.mu.Lock()
	if cur.off != s.pub.off || len(s.pub.recs) == 0 {
		s.pub.tail, s.pub.off = cur.tail, cur.off
		if n := len(s.pub.recs); n > 0 && now.Sub(s.pub.recs[n-1].at) < publishGrain {
			s.pub.recs[n-1].off = cur.off
		} else {
			s.pub.recs = append(s.pub.recs, pubRecord{off: cur.off, at: now})
		}
		close(s.pub.changed)
		s.pub.changed = make(chan struct{})
	}
	s.pub.mu.Unlock()
	return nil
}

// wakeFollower wakes a follower waiting for more when the capture ends.
func (s *Stream) wakeFollower() {
	s.pub.mu.Lock()
	close(s.pub.changed)
	s.pub.changed = make(chan struct{})
	s.pub.mu.Unlock()
}

// ackOffset is the offset to acknowledge when received has been received.
func (s *Stream) ackOffset(received int64) int64 {
	if s.cfg.Acked == nil {
		return received
	}
	return max(min(s.cfg.Acked(), received), s.fork)
}

// RDBReceived is closed when the RDB file is complete (written, fsynced
// and closed), so it can be read while the stream is still being captured.
// It is never closed if the capture fails first; select on Done too.
func (s *Stream) RDBReceived() <-chan struct{} { return s.rdbDone }

// Event is one step of the command stream as a Follower reads it.
type Event struct {
	// Args is the command, or nil when the event only moves Offset over
	// PING and REPLCONF, which the tail leaves out. The slices are valid
	// until the next call of Next.
	Args [][]byte
	// Offset is the replication offset just after the event.
	Offset int64
	// Received is when the capture published the command, within about a
	// millisecond of its arrival (never before it by more than that).
	Received time.Time
}

// ErrFollow: Follow was called on a capture not configured for it, before
// its RDB was complete, or a second time.
var ErrFollow = errors.New("snapshot: cannot follow the capture")

// Follower reads the command stream of a running capture from its tail
// file as it is received, from the fork offset on. It is not safe for
// concurrent use; a Stream has at most one. Do not combine it with StopAt,
// which may truncate the file under it.
type Follower struct {
	s    *Stream
	f    *os.File
	lim  *limitReader
	cr   *resp.CommandReader // its Offset is the tail bytes consumed
	off  int64               // replication offset there, skipped commands stepped over
	k    int                 // next skip to step over
	wait chan struct{}
}

// Follow returns the capture's Follower. The capture must have been
// started with CaptureConfig.Follow and its RDB must be complete (see
// RDBReceived); the first event is the first command after ForkOffset.
func (s *Stream) Follow() (*Follower, error) {
	if !s.cfg.Follow {
		return nil, fmt.Errorf("%w: shard %s: the capture was not started with CaptureConfig.Follow", ErrFollow, s.cfg.Addr)
	}
	select {
	case <-s.rdbDone:
	default:
		return nil, fmt.Errorf("%w: shard %s: the RDB has not been received yet", ErrFollow, s.cfg.Addr)
	}
	s.pub.mu.Lock()
	defer s.pub.mu.Unlock()
	if s.pub.follow {
		return nil, fmt.Errorf("%w: shard %s: the capture already has a follower", ErrFollow, s.cfg.Addr)
	}
	f, err := os.Open(s.cfg.TailPath)
	if err != nil {
		return nil, fmt.Errorf("snapshot: follow shard %s: %w", s.cfg.Addr, err)
	}
	s.pub.follow = true
	lim := &limitReader{f: f}
	// The tail holds what the capture's parser accepted, so the follower
	// must accept as much.
	cr := resp.NewCommandReader(bufio.NewReaderSize(lim, 256<<10), resp.CommandLimits{MaxArgs: maxArgs, MaxBulkLen: maxBulkLen})
	return &Follower{s: s, f: f, lim: lim, cr: cr, off: s.fork}, nil
}

// Offset is the replication offset of everything Next has returned.
func (f *Follower) Offset() int64 { return f.off }

// Wait returns a channel that is closed when Next, having returned no
// event, may have one: the capture published more or ended. Take it after
// the Next that returned nothing.
func (f *Follower) Wait() <-chan struct{} { return f.wait }

// Close closes the tail file. The capture goes on.
func (f *Follower) Close() error { return f.f.Close() }

// Next returns the next event without blocking. ok is false when there is
// none yet: Wait then gives a channel closed when there may be one. err is
// set when the capture has ended and every event before its end has been
// returned: the capture's error, or io.EOF after a successful StopAt.
func (f *Follower) Next() (ev Event, ok bool, err error) {
	s := f.s
	s.pub.mu.Lock()
	tail, off := s.pub.tail, s.pub.off
	skips := s.skips
	f.wait = s.pub.changed
	s.pub.mu.Unlock()
	f.lim.limit = tail

	start := f.off
	// Skipped commands before the next kept one (or before the end of
	// what is published; a skip recorded but not yet published waits).
	for f.k < len(skips) && skips[f.k].off == f.off && f.off+skips[f.k].n <= off {
		f.off += skips[f.k].n
		f.k++
	}
	// The capture publishes only whole commands, so the bytes of the next
	// one are all there.
	if pos := f.cr.Offset(); pos < tail {
		args, err := f.cr.Next()
		if err != nil {
			return Event{}, false, fmt.Errorf("%w: shard %s: tail %s: %w", ErrProtocol, s.cfg.Addr, s.cfg.TailPath, err)
		}
		f.off += f.cr.Offset() - pos
		return Event{Args: args, Offset: f.off, Received: f.received()}, true, nil
	}
	if f.off != off {
		return Event{}, false, fmt.Errorf("%w: shard %s: follower at offset %d at the end of the published tail, which stands at %d",
			ErrProtocol, s.cfg.Addr, f.off, off)
	}
	if f.off > start {
		return Event{Offset: f.off, Received: f.received()}, true, nil
	}
	select {
	case <-s.done:
		if s.err != nil {
			return Event{}, false, s.err
		}
		return Event{}, false, io.EOF
	default:
	}
	return Event{}, false, nil
}

// received is the time of the publication that covers f.off; records the
// follower has passed are dropped.
func (f *Follower) received() time.Time {
	p := &f.s.pub
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.head < len(p.recs)-1 && p.recs[p.head].off < f.off {
		p.head++
	}
	at := p.recs[p.head].at
	if p.head > 1024 && p.head > len(p.recs)/2 {
		p.recs = append(p.recs[:0], p.recs[p.head:]...)
		p.head = 0
	}
	return at
}

// limitReader reads the tail file up to what the capture has published,
// so the follower's buffer never holds bytes of a command half written.
// Every byte before the limit is in the file (the capture flushes before it
// publishes), so an end of the file there is unexpected too: it never
// passes for the io.EOF that Next returns after a successful StopAt.
type limitReader struct {
	f     *os.File
	read  int64
	limit int64
}

func (r *limitReader) Read(b []byte) (int, error) {
	if r.read >= r.limit {
		return 0, io.ErrUnexpectedEOF
	}
	if int64(len(b)) > r.limit-r.read {
		b = b[:r.limit-r.read]
	}
	n, err := r.f.Read(b)
	r.read += int64(n)
	if err == io.EOF {
		err = nil
		if n == 0 {
			err = io.ErrUnexpectedEOF
		}
	}
	return n, err
}
