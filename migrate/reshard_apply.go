package migrate

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/reshard/reshard/internal/resp"
	"github.com/reshard/reshard/snapshot"
)

// Applying a source's command stream to the targets, from its fork to the
// cut: each command routed by the new table, a transaction as one MULTI/EXEC
// per target, the expiry guards set right as the stream passes them, and
// how far the targets are behind (applied, lag).

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
