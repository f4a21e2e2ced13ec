package migrate

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/reshard/reshard/internal/resp"
	"github.com/reshard/reshard/router"
	"github.com/reshard/reshard/snapshot"
	"github.com/reshard/reshard/snapshot/rdb"
)

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
		if n&255 == 0 {
			pos := r.Offset()
			j.bytesDone.Store(pos)
			if err := ctx.Err(); err != nil {
				return err
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

// apply applies the stream from the fork on, until the cut.
func (s *reshardSource) apply(ctx context.Context) error {
	fol, err := s.st.Follow()
	if err != nil {
		return err
	}
	s.fol = fol
	beat := time.NewTicker(time.Second)
	defer beat.Stop()
	stopCh := s.stopCh
	for {
		if cut := s.stopAt.Load(); cut >= 0 && !s.inTx && s.consumed.Load() >= cut {
			return s.finishAtCut(ctx)
		}
		ev, ok, err := fol.Next()
		if err != nil {
			return fmt.Errorf("migrate: source %s: stream: %w", s.addr, err)
		}
		if !ok {
			// Nothing more for now: what is buffered goes out.
			for _, p := range s.pipes {
				p.kick()
			}
			select {
			case <-fol.Wait():
			case <-stopCh:
				stopCh = nil
			case <-beat.C:
				if err := s.heartbeat(ctx); err != nil {
					return err
				}
			case <-s.rj.fail.failed:
				return s.rj.fail.err()
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		if err := s.applyEvent(ctx, ev); err != nil {
			return err
		}
	}
}

// heartbeat sends a PING to every target while the stream is idle, so a
// target that went away fails the job now rather than at the cutover.
func (s *reshardSource) heartbeat(ctx context.Context) error {
	for _, p := range s.pipes {
		if err := p.send(ctx, pending{op: opFence, key: "PING", done: make(chan struct{})}, func(b []byte) []byte {
			return appendCommand(b, "PING")
		}); err != nil {
			return err
		}
		p.kick()
	}
	return nil
}

// stop asks the applier to stop once it has applied the stream up to
// cut; atCut is closed then.
func (s *reshardSource) stop(cut int64) {
	s.stopAt.Store(cut)
	s.stopOnce.Do(func() { close(s.stopCh) })
}

// finishAtCut sets every guard left right (from now on the target expires
// by its own clock), waits for every reply, and signals the cut.
func (s *reshardSource) finishAtCut(ctx context.Context) error {
	s.fix = s.guards.due(math.MaxInt64, s.fix[:0])
	if err := s.sendFixups(ctx, s.fix); err != nil {
		return err
	}
	if err := s.j.drain(ctx); err != nil {
		return err
	}
	s.guarded.Store(0)
	close(s.atCut)
	return nil
}

func (s *reshardSource) streamErr(ev snapshot.Event, format string, args ...any) error {
	return problemf(ErrStream, "source %s, stream offset %d: %s", s.addr, ev.Offset, fmt.Sprintf(format, args...))
}

// applyEvent applies one event of the stream.
func (s *reshardSource) applyEvent(ctx context.Context, ev snapshot.Event) error {
	if !s.inTx {
		if err := s.releaseDue(ctx, ev.Received); err != nil {
			return err
		}
	}
	if ev.Args == nil {
		// Inside a transaction, the EXEC advances past it.
		if !s.inTx {
			s.advance(ev)
		}
		return nil
	}
	args := ev.Args
	o := opTail
	switch name := lowerName(args[0]); name {
	case "select":
		if len(args) != 2 || string(args[1]) != "0" {
			return s.streamErr(ev, "SELECT %s: only database 0 can be resharded (a client connected to the shard directly wrote to another database)", clip(args[min(1, len(args)-1)], 20))
		}
		if !s.inTx {
			s.advance(ev)
		}
		return nil
	case "flushall", "flushdb":
		// Replayed, it would wipe every source's keys on the targets;
		// dropped, the targets would keep keys the source no longer has.
		// Deleting only this source's keys would need an inventory of
		// them on every target. The proxy refuses FLUSHALL and FLUSHDB
		// while a reshard runs, so this came from a client of the shard.
		return s.streamErr(ev, "%s: a reshard cannot apply it without wiping the other sources' keys on the targets; run the reshard again", strings.ToUpper(name))
	case "multi":
		if s.inTx {
			return s.streamErr(ev, "MULTI inside MULTI")
		}
		s.inTx, s.tx = true, s.tx[:0]
		return nil
	case "exec":
		if !s.inTx {
			return s.streamErr(ev, "EXEC without MULTI")
		}
		s.inTx = false
		if err := s.sendTx(ctx, ev.Offset); err != nil {
			return err
		}
		s.advance(ev)
		return nil
	case "function":
		args, o = functionArgs(args), opStreamFunction
	case "rename", "renamenx", "copy":
		if len(args) >= 3 {
			s.guards.carry(args[1], args[2])
		}
	}
	nz, err := normalizeExpiry(args, ev.Received.UnixMilli())
	if err != nil {
		return s.streamErr(ev, "%v", err)
	}
	args = nz.args
	if nz.tIdx >= 0 {
		lag := time.Since(ev.Received)
		if nz.at < time.Now().UnixMilli()+(s.rj.cfg.ExpiryGuard+lag).Milliseconds()+guardSlack {
			args[nz.tIdx] = strconv.AppendInt(nil, s.guards.add(nz.key, nz.at), 10)
			s.guarded.Store(int64(s.guards.len()))
		}
	}
	s.parts, err = s.rt.route(args, s.parts[:0])
	if err != nil {
		return &wrapped{sentinel: ErrUnroutable, cause: err, msg: fmt.Sprintf("source %s, stream offset %d: %v", s.addr, ev.Offset, err)}
	}
	s.commands.Add(1)
	if s.inTx {
		for _, p := range s.parts {
			s.tx = append(s.tx, part{target: p.target, args: cloneArgs(p.args)})
		}
		return nil
	}
	for _, p := range s.parts {
		if err := s.sendPart(ctx, p, o, ev.Offset); err != nil {
			return err
		}
	}
	s.advance(ev)
	return nil
}

// functionArgs makes a FUNCTION command idempotent: every source's stream
// carries it, so each target gets it once per source.
func functionArgs(args [][]byte) [][]byte {
	if len(args) < 2 {
		return args
	}
	switch strings.ToLower(string(args[1])) {
	case "load":
		for _, a := range args[2:] {
			if bytes.EqualFold(a, []byte("REPLACE")) {
				return args
			}
		}
		return append([][]byte{args[0], args[1], []byte("REPLACE")}, args[2:]...)
	case "restore":
		// FUNCTION RESTORE payload [FLUSH|APPEND|REPLACE]
		if len(args) == 4 && bytes.EqualFold(args[3], []byte("FLUSH")) {
			return args
		}
		if len(args) >= 3 {
			return [][]byte{args[0], args[1], args[2], []byte("REPLACE")}
		}
	}
	return args
}

func describeArgs(args [][]byte) string {
	if len(args) > 1 {
		return fmt.Sprintf("%s %q", clip(args[0], 20), clip(args[1], 60))
	}
	return clip(args[0], 20)
}

// sendPart queues a command on its target's stream connection (on every
// target's when p.target < 0); end is the stream offset after it.
func (s *reshardSource) sendPart(ctx context.Context, pt part, o op, end int64) error {
	for i, p := range s.pipes {
		if pt.target >= 0 && i != pt.target {
			continue
		}
		args := pt.args
		p.sentEnd.Store(end)
		err := p.send(ctx, pending{op: o, key: describeArgs(args), end: end}, func(b []byte) []byte {
			return resp.AppendCommand(b, args...)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// sendTx sends a transaction of the stream as one MULTI/EXEC per target it
// touches: atomic on each target, not across them.
func (s *reshardSource) sendTx(ctx context.Context, end int64) error {
	var order []int
	seen := make([]bool, len(s.pipes))
	for _, p := range s.tx {
		for i := range s.pipes {
			if (p.target < 0 || p.target == i) && !seen[i] {
				seen[i] = true
				order = append(order, i)
			}
		}
	}
	multi, exec := [][]byte{[]byte("MULTI")}, [][]byte{[]byte("EXEC")}
	for _, ti := range order {
		if err := s.sendPart(ctx, part{target: ti, args: multi}, opTx, 0); err != nil {
			return err
		}
		for _, p := range s.tx {
			if p.target == ti || p.target < 0 {
				o := opTail
				if lowerName(p.args[0]) == "function" {
					o = opStreamFunction
				}
				if err := s.sendPart(ctx, part{target: ti, args: p.args}, o, 0); err != nil {
					return err
				}
			}
		}
		if err := s.sendPart(ctx, part{target: ti, args: exec}, opTx, end); err != nil {
			return err
		}
	}
	s.tx = s.tx[:0]
	return nil
}

// releaseDue sets right the guards whose true expiry the stream has
// passed (see reshard_expiry.go).
func (s *reshardSource) releaseDue(ctx context.Context, received time.Time) error {
	clock := received.UnixMilli() - guardSlack
	if s.guards.len() == 0 || s.guards.h[0].at > clock {
		return nil
	}
	s.fix = s.guards.due(clock, s.fix[:0])
	s.guarded.Store(int64(s.guards.len()))
	return s.sendFixups(ctx, s.fix)
}

// sendFixups sends guardScript for the entries, grouped by target.
func (s *reshardSource) sendFixups(ctx context.Context, entries []guardEntry) error {
	if len(entries) == 0 {
		return nil
	}
	byTarget := make([][]guardEntry, len(s.pipes))
	for _, e := range entries {
		t := s.rj.cfg.To.ShardOf([]byte(e.key))
		byTarget[t] = append(byTarget[t], e)
	}
	for t, es := range byTarget {
		for len(es) > 0 {
			batch := es[:min(len(es), guardBatch)]
			es = es[len(batch):]
			p := s.pipes[t]
			err := p.send(ctx, pending{op: opExpiryFixup, key: fmt.Sprintf("%d keys from %q", len(batch), clip([]byte(batch[0].key), 60))}, func(b []byte) []byte {
				b = resp.AppendArrayHeader(b, 3+3*len(batch))
				b = resp.AppendBulkString(b, "EVAL")
				b = resp.AppendBulkString(b, guardScript)
				b = resp.AppendBulkInt(b, int64(len(batch)))
				for _, e := range batch {
					b = resp.AppendBulkString(b, e.key)
				}
				for _, e := range batch {
					b = resp.AppendBulkInt(b, e.at+guardShift)
					b = resp.AppendBulkInt(b, e.at)
				}
				return b
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// advance records that everything up to ev has been queued.
func (s *reshardSource) advance(ev snapshot.Event) {
	s.lagMu.Lock()
	if n := len(s.lagQ); n > 0 && s.lagQ[n-1].at.Equal(ev.Received) {
		s.lagQ[n-1].end = ev.Offset
	} else {
		s.lagQ = append(s.lagQ, lagMark{end: ev.Offset, at: ev.Received})
	}
	s.lagMu.Unlock()
	s.consumed.Store(ev.Offset)
}

// applied is the stream offset up to which every command has been
// answered by its target: what was queued, except behind a connection
// with commands unanswered, the end of the last one answered there.
//
// It is called by the capture's goroutines (Acked), which start after
// dial has set s.pipes, and by Status once started is set.
func (s *reshardSource) applied() int64 {
	a := s.consumed.Load()
	for _, p := range s.pipes {
		acked := p.ackedEnd.Load()
		if p.sentEnd.Load() > acked {
			a = min(a, acked)
		}
	}
	return max(a, s.fork.Load())
}

// sourceLag is how far a source's stream is behind.
type sourceLag struct {
	received, applied int64
	bytes             int64
	time              time.Duration
}

func (s *reshardSource) lag(now time.Time) sourceLag {
	if !s.started.Load() {
		return sourceLag{}
	}
	l := sourceLag{received: s.st.Offset(), applied: s.applied()}
	l.bytes = max(l.received-l.applied, 0)
	s.lagMu.Lock()
	i := 0
	for i < len(s.lagQ) && s.lagQ[i].end <= l.applied {
		i++
	}
	s.lagQ = append(s.lagQ[:0], s.lagQ[i:]...)
	if len(s.lagQ) > 0 {
		l.time = now.Sub(s.lagQ[0].at)
	}
	s.lagMu.Unlock()
	if l.bytes > 0 && !s.copied.Load() {
		l.time = now.Sub(s.forkAt)
	}
	return l
}
