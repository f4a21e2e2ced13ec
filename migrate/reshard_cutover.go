package migrate

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// cutover moves the proxy to the new table, or leaves it on the old one:
//
//  1. Before the barrier: the targets' replicas through their first sync
//     (replicas.go), and a connection to every source, so reading
//     the offsets costs one round trip in the barrier.
//  2. Barrier.Pause: no client command is dispatched any more, every
//     dispatched one has been answered. No write reaches a source through
//     the proxy from here on.
//  3. Seal, when set: the sources refuse writes from anyone else, so the
//     cut below misses none of them. Then every source's
//     master_repl_offset (and replication id, to be sure the capture
//     still follows the same instance): the cut.
//  4. Each source's applier applies its stream up to the cut, sets every
//     expiry guard left right, waits for every reply and stops: from here
//     on nothing writes to the targets but the proxy. Commands a source
//     received after the cut (from its own clients, or its expiry) are
//     not applied: after the commit they would race the proxy's writes.
//     The targets' replicas then reach their targets' offsets.
//  5. Commit: the proxy persists the new table and swaps its route.
//  6. Resume: queued client commands go to the new table.
//
// Steps 2 to 5 are bounded by CutoverTimeout. A timeout, an Abort, a
// failure or a Commit error before the commit lifts the barrier on the old
// table; the job then ends (aborted or failed): its appliers may have
// stopped, so it cannot go back to catching up.
func (j *ReshardJob) cutover() (ReshardState, error) {
	// the targets' replicas through their first sync, before the barrier
	sctx, scancel := context.WithTimeout(j.ctx, j.cfg.LinkTimeout)
	err := j.replicas.inSync(sctx)
	scancel()
	if err != nil {
		if st, e := j.ended(); j.fail.err() != nil || j.ctx.Err() != nil {
			return st, e
		}
		return ReshardFailed, fmt.Errorf("%w: not in sync with its target after %s: %w", ErrTarget, j.cfg.LinkTimeout, err)
	}
	j.setState(ReshardCutover)
	j.log.Info("cutover started")
	rc := j.cfg.sourceConfig()
	clients := make([]*redis.Client, len(j.sources))
	for i, s := range j.sources {
		clients[i] = adminClient(&rc, s.addr)
		defer clients[i].Close()
		if err := clients[i].Ping(j.ctx).Err(); err != nil {
			if st, e := j.ended(); j.fail.err() != nil || j.ctx.Err() != nil {
				return st, e
			}
			return ReshardFailed, fmt.Errorf("migrate: cutover: source %s: %w", s.addr, err)
		}
	}

	start := time.Now()
	deadline := start.Add(j.cfg.CutoverTimeout)
	cctx, cancel := context.WithDeadline(j.ctx, deadline)
	defer cancel()
	resume, err := j.cfg.Proxy.Pause(cctx)
	if err != nil {
		if j.ctx.Err() != nil || j.fail.err() != nil {
			return j.ended()
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return ReshardAborted, fmt.Errorf("%w: the proxy's commands in flight did not drain within %s; still on the old table", ErrCutoverTimeout, j.cfg.CutoverTimeout)
		}
		return ReshardAborted, fmt.Errorf("%w: write barrier: %w", ErrReshardAborted, err)
	}
	release := func() {
		resume()
		j.mu.Lock()
		j.pause = time.Since(start)
		j.mu.Unlock()
	}

	state, err := j.cutInside(cctx, clients)
	release()
	if err != nil {
		return state, err
	}
	j.log.Info("cutover committed", zap.Int64("pause_us", j.pause.Microseconds()))
	return ReshardDone, nil
}

// cutInside is steps 3 to 5, with the barrier held. A job that seals and
// then does not commit unseals before it returns.
func (j *ReshardJob) cutInside(ctx context.Context, clients []*redis.Client) (state ReshardState, err error) {
	unseal, err := j.cfg.Proxy.Seal(ctx)
	if err != nil {
		if j.ctx.Err() != nil || j.fail.err() != nil {
			return j.ended()
		}
		return ReshardAborted, fmt.Errorf("%w: %w; still on the old table", ErrSeal, err)
	}
	defer func() {
		if state != ReshardDone && !errors.Is(err, ErrCommitUnknown) {
			unseal()
		}
	}()
	return j.cut(ctx, clients)
}

// cut is cutInside once the sources are sealed.
func (j *ReshardJob) cut(ctx context.Context, clients []*redis.Client) (ReshardState, error) {
	// A timeout says what it was waiting for.
	timeout := func(what string) (ReshardState, error) {
		if j.ctx.Err() != nil || j.fail.err() != nil {
			return j.ended()
		}
		return ReshardAborted, fmt.Errorf("%w after %s: %s; still on the old table", ErrCutoverTimeout, j.cfg.CutoverTimeout, what)
	}
	cuts := make([]int64, len(j.sources))
	errs := make([]error, len(j.sources))
	var wg sync.WaitGroup
	for i, s := range j.sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cuts[i], errs[i] = readCut(ctx, clients[i], s)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return timeout("reading the sources' replication offsets")
	}
	if err := errors.Join(errs...); err != nil {
		return ReshardFailed, err
	}
	if h := j.cfg.testInBarrier; h != nil {
		h()
	}
	for i, s := range j.sources {
		s.stop(cuts[i])
	}
	for i, s := range j.sources {
		select {
		case <-s.atCut:
		case <-j.fail.failed:
			return j.ended()
		case <-ctx.Done():
			l := s.lag(time.Now())
			return timeout(fmt.Sprintf("source %s's stream applied up to offset %d, the cut is at %d", s.addr, l.applied, cuts[i]))
		}
	}

	// reads from the targets' replicas after the commit see the copy
	if err := j.replicas.caughtUp(ctx); err != nil {
		if ctx.Err() != nil {
			return timeout(err.Error())
		}
		return ReshardFailed, fmt.Errorf("%w: %w", ErrTarget, err)
	}
	if ctx.Err() != nil {
		return timeout("before the commit")
	}
	j.mu.Lock()
	if j.ctx.Err() != nil {
		j.mu.Unlock()
		return j.ended()
	}
	j.committing = true
	j.mu.Unlock()
	if err := j.cfg.Proxy.Commit(ctx); err != nil {
		j.mu.Lock()
		j.committing = false
		j.mu.Unlock()
		if errors.Is(err, ErrCommitUnknown) {
			return ReshardFailed, fmt.Errorf("%w: %w; the sources stay fenced until the proxy has read which table is current", ErrCommit, err)
		}
		return ReshardAborted, fmt.Errorf("%w: %w; still on the old table", ErrCommit, err)
	}
	return ReshardDone, nil
}

// readCut reads a source's master_repl_offset, and checks that the
// capture still follows the same instance.
func readCut(ctx context.Context, c *redis.Client, s *reshardSource) (int64, error) {
	text, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return 0, fmt.Errorf("migrate: cutover: source %s: INFO replication: %w", s.addr, err)
	}
	f := parseInfo(text)
	off, err := strconv.ParseInt(f["master_repl_offset"], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("migrate: cutover: source %s: no master_repl_offset in INFO replication", s.addr)
	}
	if id := f["master_replid"]; id != s.st.ReplID() {
		return 0, fmt.Errorf("migrate: cutover: source %s: replication id %s, the capture follows %s: the source restarted, failed over or was replaced", s.addr, id, s.st.ReplID())
	}
	if off < s.st.ForkOffset() {
		return 0, fmt.Errorf("migrate: cutover: source %s: offset %d is before the fork offset %d", s.addr, off, s.st.ForkOffset())
	}
	return off, nil
}
