package migrate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/reshard/reshard/router"
)

// ReshardConfig describes a live reshard: from the table the proxy routes
// by to a new one, with the proxy's write barrier and its commit. Start
// from DefaultReshardConfig.
type ReshardConfig struct {
	// From is the current table (its shards are the sources); To the new
	// one (its shards are the targets), with To.Epoch() = From.Epoch()+1.
	// A target must not be a source (by run_id, so aliases are caught).
	From, To *router.Table
	// Rate, when positive, paces the copy: keys written into the targets
	// per second, over every source together (SetRate changes it while
	// the job runs). The catch-up is never paced: it must keep up with
	// the writes the sources take. 0: as fast as the targets take them.
	Rate int64
	// KeepForkDelay leaves the sources' repl-diskless-sync-delay alone
	// (snapshot.CaptureConfig.KeepForkDelay); by default each capture
	// lowers it to 0 for its own handshake, so the copy starts at once.
	KeepForkDelay bool
	// SourceUsername and SourcePassword authenticate to the sources,
	// TargetUsername and TargetPassword to the targets, each pair as
	// AUTH [username] password; an empty password sends no AUTH. The two
	// pairs are independent (the targets are often a new cluster with its
	// own password): neither defaults to the other. They are never logged
	// or reported.
	SourceUsername, SourcePassword string
	TargetUsername, TargetPassword string
	// WorkDir holds the spool: each source's RDB and command stream, in a
	// directory of the job's own, removed when the job ends. It needs room
	// for the sources' RDBs plus the stream written until the cutover.
	WorkDir string
	// Proxy is the proxy whose traffic moves: its write barrier, the seal
	// of the sources and the commit. Required.
	Proxy Proxy
	// RunID is the run id of the proxy running the reshard (its shard
	// connections are named after it, package proxyname). A target that
	// another reshard proxy is connected to is refused; this proxy's own
	// connections do not count, since a rollback's targets are the shards
	// it left at its last cutover.
	RunID string
	// Manual stops at state ready until Cutover is called.
	Manual bool
	// MaxLagBytes and MaxLagTime bound every source's lag for state ready:
	// bytes of stream received but not applied, and the age of the oldest
	// command received but not applied.
	MaxLagBytes int64
	MaxLagTime  time.Duration
	// CutoverTimeout bounds how long the barrier is held, from Pause to
	// resume: the drain of the proxy's in-flight commands, reading the
	// sources' offsets, applying the streams up to them, and Commit. On
	// timeout the barrier is lifted on the old table and the job aborted.
	CutoverTimeout time.Duration
	// Flush empties every target (FLUSHALL, FUNCTION FLUSH) before the
	// copy, for a reshard back onto shards that hold an old copy (a
	// rollback). Without it every target must hold no keys and no
	// function libraries.
	Flush bool
	// ExpiryGuard: an expiry closer than now + ExpiryGuard + the current
	// lag is written with a guard and set right in stream order, so a key
	// whose TTL the source renews while the copy or the catch-up lags
	// does not die early on its target (see reshard_expiry.go). 0 guards
	// only what the current lag puts at risk.
	ExpiryGuard time.Duration
	// DialTimeout bounds connecting to a shard; Timeout is how long a
	// target may leave a command unanswered, LinkTimeout how long a
	// source's replication link may stay silent, before the job fails.
	DialTimeout, Timeout, LinkTimeout time.Duration
	// Logger receives lowercase, structured lines (nothing per command).
	// Nil means zap.NewNop().
	Logger *zap.Logger

	// Test hooks.
	testAfterCopy   func(ctx context.Context, source int) // after a source's RDB is written, before its stream
	testInBarrier   func()                                // inside the barrier, after the offsets are read
	testHoldCatchUp bool                                  // never declare ready
}

// Proxy is what a reshard needs of the proxy whose traffic it moves
// (package proxy/control implements it). The job calls Pause once per
// cutover attempt, then Seal and Commit inside that barrier, from the
// job's own goroutine; an implementation need not be safe for concurrent
// use by more than one job.
type Proxy interface {
	// Pause closes the proxy's write barrier: when it returns, no client
	// command is dispatched and every dispatched one has been answered.
	// resume reopens it. ctx bounds the wait for the drain.
	Pause(ctx context.Context) (resume func(), err error)
	// Seal is called inside the barrier before the sources' offsets are
	// read: the proxy makes the sources refuse writes from anyone else
	// (another proxy, an application connected directly), so that every
	// write a source takes is before the cut and reaches the targets, or
	// is refused. An error aborts the job, and Seal must then have left
	// the sources as they were. If the job then does not commit (a
	// timeout, a failure, a Commit error), the unseal it returned is
	// called, still inside the barrier, before the proxy resumes on the
	// old table. Its ctx ends at the cutover's deadline.
	Seal(ctx context.Context) (unseal func(), err error)
	// Commit is called inside the barrier once every source's stream has
	// been applied up to the cut: the proxy persists the new table (the
	// point of no return) and swaps its route. A nil return is the
	// commit; an error aborts the job, and Commit must then have left the
	// persisted table as it was, unless it wraps ErrCommitUnknown: the job
	// then fails without unsealing. Its ctx ends at the cutover's deadline.
	Commit(ctx context.Context) error
}

// DefaultReshardConfig returns the defaults; the caller fills in the
// tables, WorkDir and Proxy.
func DefaultReshardConfig() ReshardConfig {
	return ReshardConfig{
		MaxLagBytes:    1 << 20,
		MaxLagTime:     500 * time.Millisecond,
		CutoverTimeout: 2 * time.Second,
		ExpiryGuard:    10 * time.Second,
		DialTimeout:    5 * time.Second,
		Timeout:        30 * time.Second,
		LinkTimeout:    60 * time.Second,
	}
}

func (c *ReshardConfig) validate() error {
	bad := func(field string, v any, why string) error {
		return fmt.Errorf("%w: %s = %v: %s", ErrInvalidConfig, field, v, why)
	}
	switch {
	case c.From == nil:
		return bad("From", nil, "give the current table")
	case c.Rate < 0:
		return bad("Rate", c.Rate, "give keys per second, or 0 for no pace")
	case c.To == nil:
		return bad("To", nil, "give the new table")
	case c.To.Epoch() != c.From.Epoch()+1:
		return bad("To", "epoch "+strconv.FormatUint(c.To.Epoch(), 10), fmt.Sprintf("the new table's epoch must be the current one's plus one (%d)", c.From.Epoch()+1))
	case c.WorkDir == "":
		return bad("WorkDir", `""`, "give a directory for the spool")
	case c.Proxy == nil:
		return bad("Proxy", nil, "the cutover needs the proxy's barrier, seal and commit")
	case c.MaxLagBytes < 0:
		return bad("MaxLagBytes", c.MaxLagBytes, "must not be negative")
	case c.MaxLagTime <= 0:
		return bad("MaxLagTime", c.MaxLagTime, "must be positive")
	case c.CutoverTimeout <= 0:
		return bad("CutoverTimeout", c.CutoverTimeout, "must be positive")
	case c.ExpiryGuard < 0:
		return bad("ExpiryGuard", c.ExpiryGuard, "must not be negative")
	case c.DialTimeout <= 0:
		return bad("DialTimeout", c.DialTimeout, "must be positive")
	case c.Timeout <= 0:
		return bad("Timeout", c.Timeout, "must be positive")
	case c.LinkTimeout <= 0:
		return bad("LinkTimeout", c.LinkTimeout, "must be positive")
	}
	return nil
}

// restoreConfig is the restore machinery's configuration for the copy,
// and for every other connection to a target.
func (c *ReshardConfig) restoreConfig() RestoreConfig {
	rc := DefaultRestoreConfig()
	rc.Username, rc.Password = c.TargetUsername, c.TargetPassword
	rc.DialTimeout, rc.Timeout = c.DialTimeout, c.Timeout
	rc.Logger = c.Logger
	rc.DB = 0
	return rc
}

// sourceConfig is restoreConfig with the sources' credentials, for the
// admin connections to the sources (pre-flight, the cutover's offsets).
func (c *ReshardConfig) sourceConfig() RestoreConfig {
	rc := c.restoreConfig()
	rc.Username, rc.Password = c.SourceUsername, c.SourcePassword
	return rc
}

// Errors of the live reshard, besides the restore's (ErrInvalidConfig,
// ErrPreflight and its problems, ErrTarget, ErrUnroutable, ErrBadSource)
// and the capture's (snapshot.ErrSourceGone, snapshot.ErrClosedBySource,
// ...), which a failed job's error wraps.
var (
	// ErrReshardAborted: Abort was called or the job's context ended
	// before the commit; the proxy stays on the old table.
	ErrReshardAborted = errors.New("migrate: reshard aborted")
	// ErrReshardCommitted: Abort came too late: Commit has been called.
	ErrReshardCommitted = errors.New("migrate: reshard already committed")
	// ErrNotReady: Cutover was called outside state ready, or on a job
	// that is not Manual.
	ErrNotReady = errors.New("migrate: reshard not ready for cutover")
	// ErrCutoverTimeout: the cutover did not complete within
	// CutoverTimeout; the barrier was lifted on the old table.
	ErrCutoverTimeout = errors.New("migrate: cutover timed out")
	// ErrCommit: Commit returned an error; the barrier was lifted on the
	// old table.
	ErrCommit = errors.New("migrate: commit failed")
	// ErrCommitUnknown: Commit could not tell whether its commit landed
	// (the store that holds the table went away while it wrote), and
	// wrapped this error. The job fails, the sources stay sealed (the new
	// table may be the persisted one), and the proxy, not the job, finds
	// out which table is current before it serves again.
	ErrCommitUnknown = errors.New("migrate: commit outcome unknown")
	// ErrSeal: Seal returned an error; the barrier was lifted on the old
	// table.
	ErrSeal = errors.New("migrate: sealing the sources failed")
	// ErrStream: a source's command stream holds something a reshard
	// cannot apply: SELECT of a database other than 0, FLUSHALL or
	// FLUSHDB (which would wipe other sources' keys on the targets), a
	// malformed command.
	ErrStream = errors.New("migrate: source stream cannot be applied")
)

// ReshardState is where a reshard stands.
type ReshardState string

// The states, in order; done, aborted and failed are final.
const (
	ReshardCopying    ReshardState = "copying"     // captures running, RDBs being written into the targets
	ReshardCatchingUp ReshardState = "catching_up" // streams being applied, some lag over the bounds
	ReshardReady      ReshardState = "ready"       // every lag within the bounds (Manual waits here)
	ReshardCutover    ReshardState = "cutover"     // the barrier is held
	ReshardDone       ReshardState = "done"        // committed: the proxy routes by the new table
	ReshardAborted    ReshardState = "aborted"     // Abort, the job's ctx, a cutover timeout or a failed Commit
	ReshardFailed     ReshardState = "failed"      // a source, a target or a stream failed the job
)

func (s ReshardState) final() bool {
	return s == ReshardDone || s == ReshardAborted || s == ReshardFailed
}

// ReshardJob is a live reshard running in the background. Its methods are
// safe for concurrent use, and none of them blocks on the job: the proxy
// may call them from a session that holds the barrier's gate (the cutover
// could not close the barrier while such a call waited for it).
type ReshardJob struct {
	cfg      ReshardConfig
	log      *zap.Logger
	id       string
	dir      string
	ctx      context.Context
	cancel   context.CancelCauseFunc
	fail     *jobState // the first failure of any source, target or stream
	done     chan struct{}
	cutReq   chan struct{}
	pace     *rate.Limiter // the copy's keys per second (ReshardConfig.Rate)
	sources  []*reshardSource
	infos    []targetInfo
	replicas replicaSet // the targets'

	wg sync.WaitGroup // the sources' goroutines

	mu         sync.Mutex
	state      ReshardState
	err        error
	committing bool // Commit has been called: Abort is too late
	times      ReshardTimes
	pause      time.Duration
	finalLag   []sourceLag // lags frozen when the job ended
}

// StartReshard checks the configuration and every shard (reachable,
// primaries, Redis 7.0 or later, no cluster mode, targets distinct from
// the sources, empty unless Flush, able to load the sources' RDB version,
// data only in database 0; the targets' replicas likewise, but for the
// role), then starts the job and returns. Problems are
// reported together in a *PreflightError; nothing has been written then.
// ctx bounds the whole job: its end aborts the job before the commit, so
// give a long-lived context, not a request's.
func StartReshard(ctx context.Context, cfg ReshardConfig) (*ReshardJob, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	var nonce [4]byte
	_, _ = rand.Read(nonce[:])
	id := fmt.Sprintf("reshard-%d-%s", cfg.To.Epoch(), hex.EncodeToString(nonce[:]))
	j := &ReshardJob{
		cfg:    cfg,
		id:     id,
		log:    cfg.Logger.With(zap.String("job", id), zap.Uint64("epoch", cfg.To.Epoch())),
		fail:   newJobState(),
		done:   make(chan struct{}),
		cutReq: make(chan struct{}, 1),
		pace:   rate.NewLimiter(paceLimit(cfg.Rate), paceBurst),
		state:  ReshardCopying,
	}
	rc := cfg.restoreConfig()
	j.replicas = newReplicaSet(cfg.To, &rc, j.log)
	infos, err := j.preflight(ctx)
	if err != nil {
		return nil, err
	}
	j.infos = infos
	if err := os.MkdirAll(cfg.WorkDir, 0o700); err != nil {
		return nil, fmt.Errorf("migrate: reshard work directory: %w", err)
	}
	if j.dir, err = os.MkdirTemp(cfg.WorkDir, id+"-"); err != nil {
		return nil, fmt.Errorf("migrate: reshard work directory: %w", err)
	}
	j.ctx, j.cancel = context.WithCancelCause(ctx)
	j.times.Started = time.Now()
	j.times.Copying = j.times.Started
	for i := range cfg.From.NumShards() {
		j.sources = append(j.sources, newReshardSource(j, i))
	}
	j.log.Info("reshard started", zap.Int("sources", cfg.From.NumShards()), zap.Int("targets", cfg.To.NumShards()),
		zap.Bool("manual", cfg.Manual), zap.Bool("flush", cfg.Flush))
	go j.run()
	return j, nil
}

// ID names the job in logs and in its work directory.
func (j *ReshardJob) ID() string { return j.id }

// Done is closed when the job has ended: done, aborted or failed.
func (j *ReshardJob) Done() <-chan struct{} { return j.done }

// SetRate paces the copy at keys per second from now on (0: no pace),
// whatever state the job is in; a copy already done is unaffected.
func (j *ReshardJob) SetRate(keys int64) error {
	if keys < 0 {
		return fmt.Errorf("migrate: rate must not be negative, got %d", keys)
	}
	j.pace.SetLimit(paceLimit(keys))
	j.mu.Lock()
	j.cfg.Rate = keys
	j.mu.Unlock()
	j.log.Info("copy rate set", zap.Int64("keys_per_second", keys))
	return nil
}

// paceBurst is how many keys the copy takes from the pace at once: it
// checks the pace every paceBurst keys of a source.
const paceBurst = 256

func paceLimit(keys int64) rate.Limit {
	if keys <= 0 {
		return rate.Inf
	}
	return rate.Limit(keys)
}

// Cutover starts the cutover of a Manual job in state ready and returns
// at once; Done and Status tell the outcome. It fails with ErrNotReady in
// any other state.
func (j *ReshardJob) Cutover() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.cfg.Manual {
		return fmt.Errorf("%w: not a manual reshard, it cuts over by itself once ready", ErrNotReady)
	}
	if j.state != ReshardReady {
		return fmt.Errorf("%w: state %s", ErrNotReady, j.state)
	}
	select {
	case j.cutReq <- struct{}{}:
	default:
	}
	return nil
}

// Abort stops the job at any point before Commit is called, including
// during the cutover (the barrier is then lifted on the old table), and
// returns at once; the job ends in state aborted. After Commit has been
// called it returns ErrReshardCommitted and changes nothing; on a job
// already ended it returns nil.
func (j *ReshardJob) Abort() error { return j.abort(ErrReshardAborted) }

// AbortFor is Abort with the reason the job's error gives.
func (j *ReshardJob) AbortFor(reason string) error {
	return j.abort(fmt.Errorf("%w: %s", ErrReshardAborted, reason))
}

func (j *ReshardJob) abort(cause error) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.committing {
		return ErrReshardCommitted
	}
	if j.state.final() {
		return nil
	}
	j.cancel(cause)
	return nil
}

func (j *ReshardJob) setState(s ReshardState) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.state == s || j.state.final() {
		return
	}
	now := time.Now()
	first := false
	set := func(t *time.Time) {
		if t.IsZero() {
			*t, first = now, true
		}
	}
	switch s {
	case ReshardCatchingUp:
		set(&j.times.CatchingUp)
	case ReshardReady:
		set(&j.times.Ready)
	case ReshardCutover:
		set(&j.times.Cutover)
	}
	j.state = s
	// A Manual job near its lag bounds goes back and forth between
	// ready and catching_up: only the first time is news.
	if first {
		j.log.Info("reshard state", zap.String("state", string(s)))
	} else {
		j.log.Debug("reshard state", zap.String("state", string(s)))
	}
}

// run is the job's goroutine: it owns the sources' goroutines and every
// connection, and ends them all before Done is closed.
func (j *ReshardJob) run() {
	state, err := j.drive()
	j.cancel(errJobEnded)
	j.wg.Wait()
	lags := make([]sourceLag, len(j.sources))
	for i, s := range j.sources {
		lags[i] = s.lag(time.Now())
		s.close()
	}
	if rerr := os.RemoveAll(j.dir); rerr != nil {
		j.log.Warn("removing the work directory failed", zap.String("dir", j.dir), zap.Error(rerr))
	}
	j.mu.Lock()
	j.state, j.err, j.finalLag = state, err, lags
	j.times.Finished = time.Now()
	j.mu.Unlock()
	if err != nil {
		j.log.Warn("reshard ended", zap.String("state", string(state)), zap.Error(err))
	} else {
		j.log.Info("reshard done", zap.Duration("elapsed", j.times.Finished.Sub(j.times.Started)),
			zap.Int64("pause_us", j.pause.Microseconds()))
	}
	close(j.done)
}

// errJobEnded cancels the job's context once it has ended, to stop what is
// left; it is never reported.
var errJobEnded = errors.New("migrate: reshard ended")

// ended classifies why the job's context or its failure ended it.
func (j *ReshardJob) ended() (ReshardState, error) {
	// an Abort first: the captures and appliers it stops fail with it
	cause := context.Cause(j.ctx)
	if errors.Is(cause, ErrReshardAborted) {
		return ReshardAborted, cause // ErrReshardAborted, or AbortFor's reason
	}
	if err := j.fail.err(); err != nil {
		return ReshardFailed, err
	}
	return ReshardAborted, fmt.Errorf("%w: %w", ErrReshardAborted, cause)
}

// drive runs the phases and returns the final state.
func (j *ReshardJob) drive() (ReshardState, error) {
	if err := j.startCopy(); err != nil {
		if st, e := j.ended(); j.fail.err() != nil || j.ctx.Err() != nil {
			return st, e
		}
		return ReshardFailed, err
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-j.fail.failed:
			return j.ended()
		case <-j.ctx.Done():
			return j.ended()
		case <-j.cutReq:
			return j.cutover()
		case <-tick.C:
			ready, copied := j.evaluate()
			switch {
			case !copied:
			case ready:
				j.setState(ReshardCatchingUp) // records when the catch-up began
				j.setState(ReshardReady)
				if !j.cfg.Manual {
					return j.cutover()
				}
			default:
				j.setState(ReshardCatchingUp)
			}
		}
	}
}

// evaluate reports whether every source has been copied and whether every
// lag is within the bounds.
func (j *ReshardJob) evaluate() (ready, copied bool) {
	now := time.Now()
	ready, copied = true, true
	for _, s := range j.sources {
		if !s.copied.Load() {
			copied = false
			ready = false
			continue
		}
		l := s.lag(now)
		if l.bytes > j.cfg.MaxLagBytes || l.time > j.cfg.MaxLagTime {
			ready = false
		}
	}
	if j.cfg.testHoldCatchUp {
		ready = false
	}
	return ready, copied
}

// startCopy empties the targets when asked, connects to them, and starts
// every source's capture (in parallel: each waits for its fork) and its
// goroutine (copy, then catch-up).
func (j *ReshardJob) startCopy() error {
	if j.cfg.Flush {
		if err := j.flushTargets(); err != nil {
			return err
		}
	}
	if err := j.replicas.attach(j.ctx); err != nil {
		return err
	}
	for _, s := range j.sources {
		if err := s.dial(j.ctx); err != nil {
			return err
		}
	}
	errs := make([]error, len(j.sources))
	var wg sync.WaitGroup
	for i, s := range j.sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.capture(j.ctx)
			if errs[i] != nil {
				j.fail.fail(errs[i])
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, s := range j.sources {
		j.wg.Add(2)
		go func() {
			defer j.wg.Done()
			s.watch(j.ctx)
		}()
		go func() {
			defer j.wg.Done()
			if err := s.run(j.ctx); err != nil && j.ctx.Err() == nil {
				j.fail.fail(err)
			}
		}()
	}
	return nil
}

func (j *ReshardJob) flushTargets() error {
	rc := j.cfg.restoreConfig()
	errs := make([]error, j.cfg.To.NumShards())
	var wg sync.WaitGroup
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			addr := j.cfg.To.Addr(i)
			c := adminClient(&rc, addr)
			defer c.Close()
			if err := c.FlushAll(j.ctx).Err(); err != nil {
				errs[i] = fmt.Errorf("%w: target %s: FLUSHALL: %v", ErrTarget, addr, err)
				return
			}
			if err := c.FunctionFlush(j.ctx).Err(); err != nil {
				errs[i] = fmt.Errorf("%w: target %s: FUNCTION FLUSH: %v", ErrTarget, addr, err)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	j.log.Info("targets flushed", zap.Int("targets", len(errs)))
	return nil
}
