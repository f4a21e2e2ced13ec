package snapshot

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/reshard/reshard/router"
)

// A Job is the cluster-wide BGSAVE: one capture per shard, one cut for all.
// This file holds its configuration and lifecycle; its steps are in
// job_capture.go, job_cut.go and job_publish.go, what it reports in
// job_status.go.
//
// Why the steps are in this order: a shard's RDB stands at its fork offset,
// which is known only once the shard has forked (+FULLRESYNC), and a shard
// may fork late: after repl-diskless-sync-delay when it keeps it (the
// captures lower it, forkdelay.go), after a background save already
// running when it syncs from disk. So the job waits for every
// fork first, with no barrier held, and only then stops client commands,
// for as long as one pipelined INFO round trip to every shard in parallel
// takes (connections are dialed and authenticated before the pause). The
// offsets read there are each shard's cut; every write acknowledged before
// the pause is below it, every write dispatched after it is above it, on
// every shard at once. Each capture's tail then runs from its fork to its
// cut, so the snapshot is the cluster's data at the pause, while the
// captures go on receiving RDBs and streams after the barrier is lifted.
//
// Invariants:
//   - A directory named like an id (Dir/<id>) is a complete snapshot: it
//     appears by rename, after every RDB passed the check made while it
//     arrived (and Verify), every tail passed CheckTail, manifest.json was
//     written, every file and the directory were fsynced; Dir is fsynced
//     after the rename. Work in progress lives in Dir/.tmp-<id>, which any
//     failure removes. In a bucket (Store) the same holds of the id's
//     prefix with manifest.json written last, and a failure deletes every
//     object the job sent.
//   - The barrier is paused at most once per job and always resumed, also
//     when reading the offsets fails; its pause never includes a fork wait.
//   - Credentials go to the shards only: not to logs, the manifest, or
//     Status.
//
// Goroutines: the job's own (run), owned by the Job and ended by Cancel or
// the ctx given to StartJob; per step, short-lived helpers it waits for; and
// each capture's, owned by its Stream, which the job closes before it ends.
// A Job never outlives its goroutines: Done is closed after all of them.
//
// Risks: a snapshot costs each shard what a replica's full sync costs (see
// the package comment); a job started while another runs on the same
// shards is allowed here (the proxy refuses a second BGSAVE); a cutover
// during a job would make its table wrong, so the proxy must not run both.

// Sentinel errors of snapshot jobs and of the snapshot directory. A job's
// error wraps at most one of them or one of the capture's (ErrSourceGone,
// ErrRefused, ...).
var (
	// ErrJobCanceled: Cancel was called before the job completed.
	ErrJobCanceled = errors.New("snapshot: job canceled")
	// ErrTimeout: a step of the job took longer than its JobConfig
	// timeout (the message names which).
	ErrTimeout = errors.New("snapshot: timed out")
	// ErrBarrier: the barrier could not be paused (in-flight commands did
	// not drain in time, or the proxy refused).
	ErrBarrier = errors.New("snapshot: write barrier failed")
	// ErrShardChanged: between the fork and the cut a shard restarted,
	// failed over or is otherwise not the instance being captured.
	ErrShardChanged = errors.New("snapshot: shard changed during the snapshot")
	// ErrNotSnapshot: an id or directory that is not a snapshot.
	ErrNotSnapshot = errors.New("snapshot: not a snapshot")
	// ErrBadManifest: a manifest.json that does not parse or validate.
	ErrBadManifest = errors.New("snapshot: bad manifest")
	// ErrBadName: a snapshot name with characters that are not allowed.
	ErrBadName = errors.New("snapshot: bad snapshot name")
)

// Barrier is the write barrier of whoever routes client commands (the
// proxy's *Server implements it).
type Barrier interface {
	// Pause returns once no new client command will be dispatched and
	// every command already dispatched has been answered; resume lifts
	// the barrier and must be called exactly once. If ctx ends first,
	// Pause returns an error and leaves nothing paused.
	Pause(ctx context.Context) (resume func(), err error)
}

// A ClientPauser is a Barrier whose clients can pause the shards
// themselves (CLIENT PAUSE through the proxy). The cut ends its own pause
// of the shards with CLIENT UNPAUSE, which ends theirs too; so the job
// gives the shards back what is left of the clients' pause, WRITE, in the
// same write as the UNPAUSE: a shard runs both commands in one go, never
// unpaused in between (it would expire keys there, which a paused Redis
// does not).
type ClientPauser interface {
	// ClientPauseLeft is what is left of the clients' pause; 0: none.
	ClientPauseLeft() time.Duration
}

// NoBarrier is the Barrier of shards that no proxy routes for, such as
// the masters of a Redis Cluster: it holds nothing, and the cut rests on
// CLIENT PAUSE on every shard (JobConfig.RequireShardPause).
type NoBarrier struct{}

// Pause returns at once; nothing is held.
func (NoBarrier) Pause(context.Context) (func(), error) { return func() {}, nil }

// JobConfig describes one cluster-wide snapshot. DefaultJobConfig is the one
// place its defaults live.
type JobConfig struct {
	// Dir holds the snapshots (STATE_DIR/snapshots); it is created if
	// missing. A snapshot goes to Dir/<id>, built in Dir/.tmp-<id>.
	Dir string
	// Store, when set instead of Dir, is where the snapshot goes (a
	// bucket, say): see Store.
	Store *Store
	// Name is an optional label recorded in the manifest: letters,
	// digits, '.', '_' and '-', at most 64 bytes.
	Name string
	// Table is the slot table the proxy routes by; every shard of it is
	// captured. It must stay the proxy's table until the job ends: a
	// cutover in between would make the snapshot describe a table no
	// shard matches any more.
	Table *router.Table
	// Username and Password authenticate to the shards (AUTH [username]
	// password); never logged, never in a manifest or a status.
	Username string
	Password string
	// Barrier stops client commands for the cut. Required.
	Barrier Barrier
	// Warning, if set, says what the cut does not hold when the shards
	// could not be paused themselves (writers the barrier does not stop,
	// such as another proxy on the same shards); it then goes to the
	// manifest and the status. A cut taken with every shard's writes
	// paused (job_cut.go) holds every writer, and drops it.
	Warning string
	// Logger receives a few Info lines per job (and the captures' own);
	// nil logs nothing.
	Logger *zap.Logger

	// ForkTimeout bounds the wait for every shard's +FULLRESYNC, which
	// Redis 7 delays by repl-diskless-sync-delay (5 s) and a disk-based
	// shard by a background save already running. No barrier is held
	// meanwhile.
	ForkTimeout time.Duration
	// CaptureTimeout bounds the whole job, from the first PSYNC to the
	// directory renamed into place (RDB transfers included).
	CaptureTimeout time.Duration
	// PauseTimeout bounds Barrier.Pause, the drain of in-flight commands.
	PauseTimeout time.Duration
	// OffsetTimeout bounds reading every shard's master_repl_offset while
	// the barrier is held; it is the longest the barrier is held for.
	OffsetTimeout time.Duration
	// ShardPause is how long CLIENT PAUSE ... WRITE holds the writes of
	// every shard's other clients at the cut, at most: the proxy lifts it
	// as soon as the offsets are read, which must happen within it. It
	// must exceed OffsetTimeout.
	ShardPause time.Duration
	// DialTimeout and LinkTimeout go to every capture (CaptureConfig).
	DialTimeout time.Duration
	LinkTimeout time.Duration
	// RequireShardPause fails the cut when a shard refuses CLIENT PAUSE,
	// instead of falling back to the barrier's cut alone: for shards no
	// proxy's barrier holds (a Redis Cluster, with NoBarrier), the pause is
	// all the cut has.
	RequireShardPause bool
	// KeepForkDelay leaves the shards' repl-diskless-sync-delay alone
	// (CaptureConfig.KeepForkDelay): the job then waits for it.
	KeepForkDelay bool
	// Verify, when set, is an extra check of each RDB after the job's own
	// (structure and CRC64 through package rdb, while it arrives), e.g.
	// redis-check-rdb. It needs a local file: a Dir, not a bucket.
	Verify func(path string) error

	// testBeforeOffset, set by tests only, runs before each shard's
	// offset is asked for at the cut (to read the shards at different
	// moments, as a slow network would).
	testBeforeOffset func(shard int)
}

// DefaultJobConfig returns the defaults; the caller fills in Dir, Table and
// Barrier (and credentials, Name, Logger).
func DefaultJobConfig() JobConfig {
	cc := DefaultCaptureConfig()
	return JobConfig{
		ForkTimeout:    2 * time.Minute,
		CaptureTimeout: time.Hour,
		PauseTimeout:   2 * time.Second,
		OffsetTimeout:  time.Second,
		ShardPause:     2 * time.Second,
		DialTimeout:    cc.DialTimeout,
		LinkTimeout:    cc.LinkTimeout,
	}
}

func (c JobConfig) validate() error {
	switch {
	case c.Dir == "" && c.Store == nil:
		return errors.New("snapshot: job needs a directory (Dir) or a Store")
	case c.Dir != "" && c.Store != nil:
		return errors.New("snapshot: job has both a directory (Dir) and a Store")
	case c.Verify != nil && c.Store != nil && !c.Store.Local():
		return errors.New("snapshot: Verify needs the RDB files on local disk, and the store is a bucket")
	case c.Table == nil:
		return errors.New("snapshot: job needs a slot table (Table)")
	case c.Barrier == nil:
		return errors.New("snapshot: job needs a write barrier (Barrier)")
	case c.ForkTimeout <= 0:
		return fmt.Errorf("snapshot: fork timeout must be positive, got %s", c.ForkTimeout)
	case c.CaptureTimeout <= 0:
		return fmt.Errorf("snapshot: capture timeout must be positive, got %s", c.CaptureTimeout)
	case c.PauseTimeout <= 0:
		return fmt.Errorf("snapshot: pause timeout must be positive, got %s", c.PauseTimeout)
	case c.OffsetTimeout <= 0:
		return fmt.Errorf("snapshot: offset timeout must be positive, got %s", c.OffsetTimeout)
	case c.ShardPause <= c.OffsetTimeout:
		return fmt.Errorf("snapshot: shard pause %s must exceed the offset timeout %s", c.ShardPause, c.OffsetTimeout)
	case c.DialTimeout <= 0:
		return fmt.Errorf("snapshot: dial timeout must be positive, got %s", c.DialTimeout)
	case c.LinkTimeout <= 0:
		return fmt.Errorf("snapshot: link timeout must be positive, got %s", c.LinkTimeout)
	}
	return validateName(c.Name)
}

// Job is one snapshot being taken. Its methods are safe for concurrent use.
type Job struct {
	cfg    JobConfig
	log    *zap.Logger
	id     string
	stage  staging
	cancel context.CancelCauseFunc
	done   chan struct{}
	err    error // set before done is closed

	mu      sync.Mutex
	status  Status
	streams []*Stream // for progress while cutting
}

// StartJob validates cfg, creates the job's temporary directory and starts
// the job in a goroutine owned by the Job; it returns at once. The job runs
// until it completes or fails, Cancel is called, or ctx ends: ctx is the
// job's lifetime (the proxy's, not a client request's).
//
// The job, in order: captures every shard in parallel into the temporary
// directory (or the bucket), checking every RDB (structure, CRC64) as it
// arrives, and waits for every fork; pauses the barrier, reads every
// shard's master_repl_offset and key count, lifts the barrier; cuts each
// capture there; checks every tail (parses, ends on a command boundary);
// writes manifest.json, fsyncs every file, renames the directory into
// place and fsyncs Dir (in a bucket: sends each tail, then the manifest).
// On any failure it removes what it wrote: nothing that looks complete is
// left behind.
func StartJob(ctx context.Context, cfg JobConfig) (*Job, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	store := cfg.Store
	if store == nil {
		store = DirStore(cfg.Dir)
	}
	started := time.Now()
	id, stage, err := store.begin(ctx, started)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	j := &Job{
		cfg:    cfg,
		log:    log.With(zap.String("job", id)),
		id:     id,
		stage:  stage,
		cancel: cancel,
		done:   make(chan struct{}),
		status: Status{
			State:   StateRunning,
			Phase:   PhaseCapturing,
			ID:      id,
			Name:    cfg.Name,
			Warning: cfg.Warning,
			Dir:     stage.location(),
			Epoch:   cfg.Table.Epoch(),
			Shards:  cfg.Table.NumShards(),
			Started: started,
		},
	}
	j.log.Info("snapshot started", zap.String("dir", stage.location()), zap.Int("shards", cfg.Table.NumShards()),
		zap.Uint64("epoch", cfg.Table.Epoch()))
	go j.run(ctx)
	return j, nil
}

// ID is the snapshot's id, also its directory's name.
func (j *Job) ID() string { return j.id }

// Done is closed when the job has ended, done or failed.
func (j *Job) Done() <-chan struct{} { return j.done }

// Status reports the job's state.
func (j *Job) Status() Status {
	j.mu.Lock()
	defer j.mu.Unlock()
	st := j.status
	if st.State == StateRunning && st.Bytes == 0 {
		for _, s := range j.streams {
			st.Bytes += s.Progress().RDBBytes
		}
	}
	return st
}

// Wait waits for the job to end and returns its error (nil when done), or
// ctx's error if ctx ends first.
func (j *Job) Wait(ctx context.Context) error {
	select {
	case <-j.done:
		return j.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Cancel stops the job; it fails with ErrJobCanceled unless it was already
// over. Cancel does not wait: use Wait or Done.
func (j *Job) Cancel() { j.cancel(ErrJobCanceled) }

// CancelFor is Cancel with the reason the job's error gives.
func (j *Job) CancelFor(reason string) { j.cancel(fmt.Errorf("%w: %s", ErrJobCanceled, reason)) }

func (j *Job) setPhase(p JobPhase) {
	j.mu.Lock()
	j.status.Phase = p
	j.mu.Unlock()
}

func (j *Job) run(ctx context.Context) {
	defer close(j.done)
	defer j.cancel(nil)
	m, err := j.take(ctx)
	if err != nil && ctx.Err() != nil {
		// Canceled from outside: every capture failed with ErrClosed and
		// the cause; the cause alone says it.
		err = context.Cause(ctx)
		if !errors.Is(err, ErrJobCanceled) {
			err = fmt.Errorf("%w: %w", ErrJobCanceled, err)
		}
	}
	if err != nil {
		// The captures have removed their own files, up to the RDBs they
		// committed; this takes the rest (before the job reports failed,
		// and outside the lock Status takes).
		j.stage.abort()
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.streams = nil
	j.status.Finished = time.Now()
	elapsed := j.status.Finished.Sub(j.status.Started)
	if err != nil {
		j.err = err
		j.status.State = StateFailed
		j.status.Dir = ""
		j.status.Bytes = 0
		j.status.Error = err.Error()
		j.log.Warn("snapshot failed", zap.String("phase", string(j.status.Phase)), zap.Error(err),
			zap.Duration("elapsed", elapsed))
		return
	}
	// The manifest's completion time, so the job and its manifest tell
	// the same story (LASTSAVE reads either).
	j.status.Finished = m.Completed
	elapsed = m.Completed.Sub(j.status.Started)
	j.status.State = StateDone
	j.status.Phase = PhaseComplete
	j.status.Keys = m.Keys
	j.status.Bytes = m.Bytes
	j.log.Info("snapshot done", zap.String("dir", j.stage.location()), zap.Int64("keys", m.Keys),
		zap.Int64("bytes", m.Bytes), zap.Int64("pause_us", m.PauseUS), zap.Duration("elapsed", elapsed))
}

// take runs the job's steps and returns the manifest of the snapshot it
// put in place.
func (j *Job) take(ctx context.Context) (Manifest, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, j.cfg.CaptureTimeout,
		fmt.Errorf("%w: the snapshot took longer than the capture timeout (%s)", ErrTimeout, j.cfg.CaptureTimeout))
	defer cancel()

	streams, err := j.startCaptures(ctx)
	if err != nil {
		return Manifest{}, err
	}
	defer func() {
		// A capture cut by StopAt is left as it is; any other is closed
		// and removes its files.
		for _, st := range streams {
			st.Close()
		}
	}()
	var notes []string
	for _, st := range streams {
		if n := st.ForkNote(); n != "" {
			notes = append(notes, "shard "+st.cfg.Addr+": "+n)
		}
	}
	j.mu.Lock()
	j.streams = streams
	j.status.Phase = PhaseCutting
	j.status.ForkDelay = strings.Join(notes, "; ")
	j.mu.Unlock()

	cut, err := j.cut(ctx, streams)
	if err != nil {
		return Manifest{}, err
	}
	j.mu.Lock()
	j.status.PauseUS = cut.pause.Microseconds()
	if cut.shardsPaused {
		j.status.Warning = "" // every writer was held at the shards themselves
	}
	j.status.Keys = cut.keys()
	j.mu.Unlock()
	j.log.Info("snapshot cut", zap.Int64("pause_us", cut.pause.Microseconds()), zap.Int64s("cut_offsets", cut.offsets()))

	results, err := j.stopAll(ctx, streams, cut)
	if err != nil {
		return Manifest{}, err
	}

	j.setPhase(PhaseVerifying)
	shards, err := j.verify(ctx, results, cut)
	if err != nil {
		return Manifest{}, err
	}

	j.setPhase(PhaseWriting)
	m := Manifest{
		Version: manifestVersion,
		ID:      j.id,
		Name:    j.cfg.Name,
		Created: j.status.Started.UTC(),
		CutTime: cut.at.UTC(),
		Epoch:   j.cfg.Table.Epoch(),
		Table:   tableOf(j.cfg.Table),
		PauseUS: cut.pause.Microseconds(),
		Warning: j.cfg.Warning,
		Shards:  shards,
	}
	if cut.shardsPaused {
		m.Warning = "" // every writer was held at the shards themselves
	}
	for _, sh := range shards {
		m.Keys += sh.KeysAtCut
		m.Bytes += sh.RDBSize + sh.TailSize
	}
	if err := j.publish(ctx, &m); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

func (j *Job) rdbName(i int) string  { return "shard-" + strconv.Itoa(i) + ".rdb" }
func (j *Job) tailName(i int) string { return "shard-" + strconv.Itoa(i) + ".tail.aof" }
