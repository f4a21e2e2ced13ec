package migrate

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/reshard/reshard/router"
	"github.com/reshard/reshard/snapshot"
	"github.com/reshard/reshard/snapshot/rdb"
)

// A live reshard's source shard: its connections to the targets, its
// capture, and the copy of its RDB into the targets; applying its command
// stream is in reshard_apply.go.

// reshardSource is one source shard of a live reshard: its capture, its
// copy into the targets (the restore machinery of restore.go, through its
// own connections to every target), then the application of its command
// stream. Its goroutine (run) is the only writer to its connections, so
// the commands of one source reach each target in stream order; sources
// are independent of each other, their keys being disjoint.
type reshardSource struct {
	rj     *ReshardJob
	idx    int
	addr   string
	log    *zap.Logger
	j      *job    // this source's targets and connections
	pipes  []*pipe // per target, the connection the stream goes through
	st     *snapshot.Stream
	fol    *snapshot.Follower
	forkAt time.Time
	guards *guardSet
	rt     tailRouter

	// started is set once st, forkAt, j and pipes are, for the goroutines
	// that only read (Status, the capture's ACKs).
	started  atomic.Bool
	fork     atomic.Int64
	copied   atomic.Bool
	rdbSize  atomic.Int64
	consumed atomic.Int64 // stream offset of everything queued to the targets
	commands atomic.Int64 // stream commands applied (queued)
	guarded  atomic.Int64 // guards pending
	stopAt   atomic.Int64 // the cut, -1 before the cutover
	stopOnce sync.Once
	stopCh   chan struct{}
	atCut    chan struct{} // closed when applied up to the cut, and stopped

	lagMu sync.Mutex
	lagQ  []lagMark // stretches queued and not yet known applied, oldest first

	// The applier's scratch.
	parts []part
	tx    []part
	inTx  bool
	fix   []guardEntry
}

// The live reshard's own kinds of commands on a pipe.
const (
	opStreamFunction = opTx + 1 + iota // FUNCTION command of a source's stream
	opExpiryFixup                      // guardScript (reshard_expiry.go)
)

// lagMark: the stream up to end was received at (about) at.
type lagMark struct {
	end int64
	at  time.Time
}

func newReshardSource(rj *ReshardJob, i int) *reshardSource {
	s := &reshardSource{
		rj:     rj,
		idx:    i,
		addr:   rj.cfg.From.Addr(i),
		guards: newGuardSet(),
		rt:     tailRouter{table: rj.cfg.To},
		stopCh: make(chan struct{}),
		atCut:  make(chan struct{}),
	}
	s.log = rj.log.With(zap.String("shard", s.addr))
	s.stopAt.Store(-1)
	return s
}

// dial opens this source's connections to every target: ConnsPerTarget
// for the copy, the first of which carries the stream afterwards.
func (s *reshardSource) dial(ctx context.Context) error {
	rc := s.rj.cfg.restoreConfig()
	var nonce [6]byte
	_, _ = rand.Read(nonce[:])
	s.j = &job{cfg: rc, log: s.log, table: s.rj.cfg.To, state: s.rj.fail, rep: &Report{}, nonce: hex.EncodeToString(nonce[:])}
	for i, info := range s.rj.infos {
		t := &target{idx: i, info: info}
		s.j.targets = append(s.j.targets, t)
		for range rc.ConnsPerTarget {
			p, err := dialPipe(ctx, &rc, info.Addr, s.rj.fail, &t.stats)
			if err != nil {
				return err
			}
			t.pipes = append(t.pipes, p)
		}
		s.pipes = append(s.pipes, t.pipes[0])
	}
	return nil
}

// capture starts the capture; it returns once the source has forked.
func (s *reshardSource) capture(ctx context.Context) error {
	cfg := &s.rj.cfg
	cc := snapshot.DefaultCaptureConfig()
	cc.Addr = s.addr
	cc.Username, cc.Password = cfg.SourceUsername, cfg.SourcePassword
	cc.RDBPath = filepath.Join(s.rj.dir, fmt.Sprintf("source-%d.rdb", s.idx))
	cc.TailPath = filepath.Join(s.rj.dir, fmt.Sprintf("source-%d.stream", s.idx))
	cc.DialTimeout, cc.LinkTimeout = cfg.DialTimeout, cfg.LinkTimeout
	// The RDB reader checks the checksum as the copy reads the file.
	cc.Verify = nil
	// WAIT on a source then waits for the targets; acknowledge often so
	// it does not wait for the ticker long.
	cc.AckInterval = 100 * time.Millisecond
	cc.Acked = s.applied
	cc.Follow = true
	cc.KeepForkDelay = cfg.KeepForkDelay
	cc.Logger = s.log
	st, err := snapshot.Capture(ctx, cc)
	if err != nil {
		return fmt.Errorf("migrate: source %s: %w", s.addr, err)
	}
	s.forkAt = time.Now()
	s.consumed.Store(st.ForkOffset())
	s.fork.Store(st.ForkOffset())
	s.st = st
	s.started.Store(true)
	return nil
}

// run copies, then applies the stream until the cutover stops it or the
// job ends.
func (s *reshardSource) run(ctx context.Context) error {
	if err := s.copy(ctx); err != nil {
		return err
	}
	if h := s.rj.cfg.testAfterCopy; h != nil {
		h(ctx, s.idx)
	}
	s.copied.Store(true)
	return s.apply(ctx)
}

// watch fails the job as soon as the capture fails, whatever the source's
// goroutine is doing.
func (s *reshardSource) watch(ctx context.Context) {
	select {
	case <-s.st.Done():
		if err := s.st.Err(); err != nil && ctx.Err() == nil {
			s.rj.fail.fail(fmt.Errorf("migrate: source %s: %w", s.addr, err))
		}
	case <-ctx.Done():
	}
}

// close releases everything; the job's goroutines have ended.
func (s *reshardSource) close() {
	if s.fol != nil {
		s.fol.Close()
	}
	if s.j != nil {
		for _, t := range s.j.targets {
			for _, p := range t.pipes {
				p.close()
			}
		}
	}
	if s.st != nil {
		s.st.Close()
	}
}

// copy writes the source's RDB into the targets, routed by the new table,
// once the capture has received it.
func (s *reshardSource) copy(ctx context.Context) error {
	select {
	case <-s.st.RDBReceived():
	case <-s.st.Done():
		return fmt.Errorf("migrate: source %s: %w", s.addr, s.st.Err())
	case <-ctx.Done():
		return ctx.Err()
	}
	path := filepath.Join(s.rj.dir, fmt.Sprintf("source-%d.rdb", s.idx))
	f, err := os.Open(path)
	if err != nil {
		return sourceError(path, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil {
		s.rdbSize.Store(fi.Size())
	}
	r, err := rdb.NewReader(f)
	if err != nil {
		return sourceError(path, err)
	}
	j := s.j
	start := time.Now()
	size := s.rdbSize.Load()
	guard := s.rj.cfg.ExpiryGuard
	var horizonMs, nowMs int64
	forkMs := s.forkAt.UnixMilli()
	var expired, keys int64
	for n := 0; ; n++ {
		e, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return sourceError(path, err)
		}
		if n%paceBurst == 0 {
			pos := r.Offset()
			j.bytesDone.Store(pos)
			if err := ctx.Err(); err != nil {
				return err
			}
			if n > 0 {
				if err := s.rj.pace.WaitN(ctx, paceBurst); err != nil {
					return err
				}
			}
			// Expiries up to the moment the stream will have caught up
			// are at risk: the copy's remaining time (from its pace so
			// far), the stream it lets pile up, and the guard.
			now := time.Now()
			var remaining time.Duration
			if pos > 0 {
				remaining = time.Duration(float64(now.Sub(start)) * float64(size-pos) / float64(pos))
			}
			nowMs = now.UnixMilli()
			horizonMs = (guard + now.Sub(s.forkAt) + 2*remaining).Milliseconds() + guardSlack
		}
		switch e.Kind {
		case rdb.KindFunction:
			code := bytes.Clone(e.Value)
			for _, p := range s.pipes {
				err := p.send(ctx, pending{op: opFunction, key: libraryName(code)}, func(b []byte) []byte {
					return appendCommand(b, "FUNCTION", "LOAD", "REPLACE", code)
				})
				if err != nil {
					return err
				}
			}
			continue
		case rdb.KindModuleAux:
			name, _ := rdb.ModuleName(e.ModuleID)
			return problemf(ErrModuleType, "source %s holds auxiliary data of module type %q; modules are not resharded", s.addr, name)
		case rdb.KindKey:
		default:
			continue
		}
		if e.DB != 0 {
			return problemf(ErrStream, "source %s holds keys in database %d (key %q): only database 0 can be resharded", s.addr, e.DB, clip(e.Key, 60))
		}
		if e.ExpireMs >= 0 {
			if e.ExpireMs <= forkMs-guardSlack {
				// Dead at the fork: any later command on it found it
				// expired (and the source sent a DEL).
				expired++
				continue
			}
			if e.ExpireMs < nowMs+horizonMs {
				e.ExpireMs = s.guards.add(e.Key, e.ExpireMs)
			}
		}
		keys++
		j.keysDone.Add(1)
		slot := router.Slot(e.Key)
		t := j.targets[j.table.ShardOfSlot(slot)]
		p := t.pipes[int(slot)%len(t.pipes)]
		if int64(len(e.Value)) > j.cfg.BigKeyBytes && chunkable(e) {
			err = j.writeBigKey(ctx, t, p, e, slot)
		} else {
			err = j.restoreKey(ctx, t, p, e)
		}
		if err != nil {
			return err
		}
	}
	j.bytesDone.Store(size)
	if err := j.drain(ctx); err != nil {
		return err
	}
	// The stream goes through the first connection of each target alone.
	for _, t := range j.targets {
		for _, p := range t.pipes[1:] {
			p.close()
		}
		t.pipes = t.pipes[:1]
	}
	s.guarded.Store(int64(s.guards.len()))
	s.log.Info("source copied", zap.Int64("keys", keys), zap.Int64("expired", expired), zap.Int64("rdb_bytes", size),
		zap.Int("guarded", s.guards.len()), zap.Duration("elapsed", time.Since(start)))
	return nil
}
