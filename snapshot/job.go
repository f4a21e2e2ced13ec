package snapshot

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/reshard/reshard/internal/resp"
	"github.com/reshard/reshard/router"
)

// A Job is the cluster-wide BGSAVE: one capture per shard, one cut for all.
//
// Why the steps are in this order: a shard's RDB stands at its fork offset,
// which is known only once the shard has forked (+FULLRESYNC), and Redis 7
// forks for a diskless replica only after repl-diskless-sync-delay (5 s by
// default) and at the next replication cron tick. So the job waits for every
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
//     appears by rename, after every RDB passed CheckRDB (and Verify), every
//     tail passed CheckTail, manifest.json was written, every file and the
//     directory were fsynced; Dir is fsynced after the rename. Work in
//     progress lives in Dir/.tmp-<id>, which any failure removes.
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

// JobConfig describes one cluster-wide snapshot. DefaultJobConfig is the one
// place its defaults live.
type JobConfig struct {
	// Dir holds the snapshots (STATE_DIR/snapshots); it is created if
	// missing. A snapshot goes to Dir/<id>, built in Dir/.tmp-<id>.
	Dir string
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
	// Warning, if set, says what the cut does not hold (writers the
	// barrier does not stop, such as another proxy on the same shards);
	// it goes to the manifest and the status.
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
	// DialTimeout and LinkTimeout go to every capture (CaptureConfig).
	DialTimeout time.Duration
	LinkTimeout time.Duration
	// Verify, when set, is an extra check of each RDB after the job's own
	// (structure and CRC64 through package rdb), e.g. redis-check-rdb.
	Verify func(path string) error
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
		DialTimeout:    cc.DialTimeout,
		LinkTimeout:    cc.LinkTimeout,
	}
}

func (c JobConfig) validate() error {
	switch {
	case c.Dir == "":
		return errors.New("snapshot: job needs a directory (Dir)")
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
	case c.DialTimeout <= 0:
		return fmt.Errorf("snapshot: dial timeout must be positive, got %s", c.DialTimeout)
	case c.LinkTimeout <= 0:
		return fmt.Errorf("snapshot: link timeout must be positive, got %s", c.LinkTimeout)
	}
	return validateName(c.Name)
}

// State is where a job stands as a whole.
type State string

const (
	StateRunning State = "running"
	StateDone    State = "done"
	StateFailed  State = "failed"
)

// JobPhase is the step a running job is in; a failed job keeps the phase
// it failed in.
type JobPhase string

const (
	// PhaseCapturing: replication handshakes, waiting for every fork.
	PhaseCapturing JobPhase = "capturing"
	// PhaseCutting: the barrier and the offsets, then receiving the RDBs
	// and each command stream up to its cut offset.
	PhaseCutting JobPhase = "cutting"
	// PhaseVerifying: reading back every RDB and tail.
	PhaseVerifying JobPhase = "verifying"
	// PhaseWriting: the manifest, fsyncs and the rename.
	PhaseWriting JobPhase = "writing"
	// PhaseComplete: the snapshot is in place.
	PhaseComplete JobPhase = "done"
)

// Status is a job's state at one moment.
type Status struct {
	State State
	Phase JobPhase
	ID    string
	Name  string
	// Dir is the snapshot's directory: where it will be while running,
	// where it is when done, empty when failed (nothing is left).
	Dir    string
	Epoch  uint64
	Shards int
	// Keys is the keys at the cut over all shards (known once cut).
	Keys int64
	// Bytes is the size of the snapshot's files; while running, the RDB
	// bytes received so far.
	Bytes int64
	// PauseUS is how long client commands were held by the barrier, in
	// microseconds, from the call to Pause to the return of resume.
	PauseUS  int64
	Error    string
	Warning  string // JobConfig.Warning
	Started  time.Time
	Finished time.Time
}

// Info renders the status as INFO-style "field:value" lines (CRLF
// terminated), for PROXY SNAPSHOT STATUS. Times are Unix seconds (0 when
// not yet); an error is put on one line.
func (s Status) Info() string {
	var b strings.Builder
	field := func(k, v string) {
		b.WriteString(k)
		b.WriteByte(':')
		b.WriteString(v)
		b.WriteString("\r\n")
	}
	unix := func(t time.Time) string {
		if t.IsZero() {
			return "0"
		}
		return strconv.FormatInt(t.Unix(), 10)
	}
	elapsed := time.Duration(0)
	if !s.Started.IsZero() {
		end := s.Finished
		if end.IsZero() {
			end = time.Now()
		}
		elapsed = end.Sub(s.Started)
	}
	field("state", string(s.State))
	field("phase", string(s.Phase))
	field("id", s.ID)
	field("name", s.Name)
	field("dir", s.Dir)
	field("epoch", strconv.FormatUint(s.Epoch, 10))
	field("shards", strconv.Itoa(s.Shards))
	field("keys", strconv.FormatInt(s.Keys, 10))
	field("bytes", strconv.FormatInt(s.Bytes, 10))
	field("pause_us", strconv.FormatInt(s.PauseUS, 10))
	field("started", unix(s.Started))
	field("finished", unix(s.Finished))
	field("elapsed_ms", strconv.FormatInt(elapsed.Milliseconds(), 10))
	field("error", strings.NewReplacer("\r", " ", "\n", " ").Replace(s.Error))
	if s.Warning != "" {
		field("warning", strings.NewReplacer("\r", " ", "\n", " ").Replace(s.Warning))
	}
	return b.String()
}

// Job is one snapshot being taken. Its methods are safe for concurrent use.
type Job struct {
	cfg    JobConfig
	log    *zap.Logger
	id     string
	tmp    string // Dir/.tmp-<id>
	final  string // Dir/<id>
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
// directory and waits for every fork; pauses the barrier, reads every
// shard's master_repl_offset and key count, lifts the barrier; cuts each
// capture there; verifies every RDB (structure, CRC64) and tail (parses,
// ends on a command boundary); writes manifest.json, fsyncs every file,
// renames the directory into place and fsyncs Dir. On any failure it
// removes the temporary directory: no directory that looks complete is
// left behind.
func StartJob(ctx context.Context, cfg JobConfig) (*Job, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	started := time.Now()
	var id, tmp, final string
	for attempt := 0; ; attempt++ {
		id = newID(started)
		tmp = filepath.Join(cfg.Dir, tempPrefix+id)
		final = filepath.Join(cfg.Dir, id)
		_, err := os.Lstat(final)
		if err == nil {
			err = fs.ErrExist
		} else if errors.Is(err, fs.ErrNotExist) {
			err = os.Mkdir(tmp, 0o700)
		}
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) || attempt == 9 {
			return nil, fmt.Errorf("snapshot: create %s: %w", tmp, err)
		}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	j := &Job{
		cfg:    cfg,
		log:    log.With(zap.String("job", id)),
		id:     id,
		tmp:    tmp,
		final:  final,
		cancel: cancel,
		done:   make(chan struct{}),
		status: Status{
			State:   StateRunning,
			Phase:   PhaseCapturing,
			ID:      id,
			Name:    cfg.Name,
			Warning: cfg.Warning,
			Dir:     final,
			Epoch:   cfg.Table.Epoch(),
			Shards:  cfg.Table.NumShards(),
			Started: started,
		},
	}
	j.log.Info("snapshot started", zap.String("dir", final), zap.Int("shards", cfg.Table.NumShards()),
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
		// The captures have removed their own files; this takes the
		// manifest and the directory (before the job reports failed, and
		// outside the lock Status takes).
		os.RemoveAll(j.tmp)
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
	j.log.Info("snapshot done", zap.String("dir", j.final), zap.Int64("keys", m.Keys),
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
	j.mu.Lock()
	j.streams = streams
	j.status.Phase = PhaseCutting
	j.mu.Unlock()

	cut, err := j.cut(ctx, streams)
	if err != nil {
		return Manifest{}, err
	}
	j.mu.Lock()
	j.status.PauseUS = cut.pause.Microseconds()
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

// startCaptures starts a capture of every shard in parallel and returns
// once every one has its fork offset. The first failure closes the others,
// including a capture that fails after its own fork while other shards are
// still to fork; so does ForkTimeout. The captures live as long as ctx.
func (j *Job) startCaptures(ctx context.Context) ([]*Stream, error) {
	n := j.cfg.Table.NumShards()
	// Each capture's lifetime is ctx; forkCtx ends it early on a failure
	// of another shard or the fork timeout, and is canceled with ctx.
	forkCtx, forkCancel := context.WithCancelCause(ctx)
	timer := time.AfterFunc(j.cfg.ForkTimeout, func() {
		forkCancel(fmt.Errorf("%w: not every shard forked within the fork timeout (%s)", ErrTimeout, j.cfg.ForkTimeout))
	})
	streams := make([]*Stream, n)
	var (
		wg       sync.WaitGroup
		watchers sync.WaitGroup
		mu       sync.Mutex
		first    error
	)
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
		}
		mu.Unlock()
		forkCancel(err)
	}
	forked := make(chan struct{}) // closed once every capture has returned
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cc := DefaultCaptureConfig()
			cc.Addr = j.cfg.Table.Addr(i)
			cc.Username = j.cfg.Username
			cc.Password = j.cfg.Password
			cc.RDBPath = filepath.Join(j.tmp, j.rdbName(i))
			cc.TailPath = filepath.Join(j.tmp, j.tailName(i))
			cc.DialTimeout = j.cfg.DialTimeout
			cc.LinkTimeout = j.cfg.LinkTimeout
			cc.Verify = nil // the job verifies, with more checks, after every cut
			cc.Logger = j.log
			st, err := Capture(forkCtx, cc)
			if err != nil {
				fail(err)
				return
			}
			streams[i] = st
			// A capture that ends now (its shard died during the
			// transfer) would otherwise be noticed only at the cut,
			// after every other shard forked.
			watchers.Add(1)
			go func() {
				defer watchers.Done()
				select {
				case <-st.Done():
					if err := st.Err(); err != nil {
						fail(err)
					}
				case <-forked:
				}
			}()
		}()
	}
	wg.Wait()
	close(forked)
	watchers.Wait()
	fired := !timer.Stop()
	if first == nil && fired {
		first = context.Cause(forkCtx)
	}
	if first != nil {
		for _, st := range streams {
			if st != nil {
				st.Close()
			}
		}
		forkCancel(first)
		return nil, first
	}
	// forkCtx stays the captures' lifetime from here on; it ends with ctx.
	return streams, nil
}

// cutPoint is what the barrier yielded.
type cutPoint struct {
	at     time.Time // when the barrier was lifted
	pause  time.Duration
	shards []shardCut
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
	cuts, err := readCuts(conns, time.Now().Add(j.cfg.OffsetTimeout))
	resume()
	cp := cutPoint{at: time.Now(), pause: time.Since(start), shards: cuts}
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
func readCuts(conns []*shardConn, deadline time.Time) ([]shardCut, error) {
	cuts := make([]shardCut, len(conns))
	errs := make([]error, len(conns))
	req := resp.AppendCommandString(resp.AppendCommandString(nil, "INFO", "replication"), "INFO", "keyspace")
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.conn.SetDeadline(deadline)
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

// stopAll cuts every capture at its offset, in parallel. The first failure
// closes the others.
func (j *Job) stopAll(ctx context.Context, streams []*Stream, cut cutPoint) ([]Result, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	results := make([]Result, len(streams))
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for i, st := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := st.StopAt(ctx, cut.shards[i].offset)
			if err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
				cancel(err)
				return
			}
			results[i] = res
		}()
	}
	wg.Wait()
	return results, first
}

// verify reads back every shard's files, in parallel, and returns the
// shards' manifest entries.
func (j *Job) verify(ctx context.Context, results []Result, cut cutPoint) ([]ShardManifest, error) {
	shards := make([]ShardManifest, len(results))
	errs := make([]error, len(results))
	var wg sync.WaitGroup
	for i, res := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			shards[i], errs[i] = j.verifyShard(i, res, cut.shards[i])
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	return shards, nil
}

func (j *Job) verifyShard(i int, res Result, cut shardCut) (ShardManifest, error) {
	sum, err := CheckRDB(res.RDBPath)
	if err != nil {
		return ShardManifest{}, fmt.Errorf("snapshot: shard %s: %w", res.Addr, err)
	}
	if sum.Size != res.RDBSize {
		return ShardManifest{}, fmt.Errorf("snapshot: shard %s: RDB of %d bytes holds %d bytes of RDB", res.Addr, res.RDBSize, sum.Size)
	}
	if j.cfg.Verify != nil {
		if err := j.cfg.Verify(res.RDBPath); err != nil {
			return ShardManifest{}, fmt.Errorf("snapshot: shard %s: verify %s: %w", res.Addr, res.RDBPath, err)
		}
	}
	tail, err := CheckTail(res.TailPath)
	if err != nil {
		return ShardManifest{}, fmt.Errorf("snapshot: shard %s: %w", res.Addr, err)
	}
	if tail.Size != res.TailSize || tail.Commands != res.TailCommands {
		return ShardManifest{}, fmt.Errorf("snapshot: shard %s: tail has %d commands in %d bytes, the capture wrote %d in %d",
			res.Addr, tail.Commands, tail.Size, res.TailCommands, res.TailSize)
	}
	return ShardManifest{
		Index:        i,
		Addr:         res.Addr,
		RedisVersion: cut.redisVersion,
		RDBVersion:   sum.Version,
		ReplID:       res.ReplID,
		ForkOffset:   res.ForkOffset,
		CutOffset:    res.CutOffset,
		Transfer:     res.Transfer,
		RDBFile:      j.rdbName(i),
		RDBSize:      sum.Size,
		RDBCRC64:     formatCRC(sum.CRC64),
		TailFile:     j.tailName(i),
		TailSize:     tail.Size,
		TailCRC64:    formatCRC(tail.CRC64),
		TailCommands: tail.Commands,
		Keys:         sum.Keys,
		Expires:      sum.Expires,
		DBKeys:       sum.DBKeys,
		KeysAtCut:    cut.keys,
	}, nil
}

// publish writes the manifest, makes every file durable and renames the
// directory into place.
func (j *Job) publish(ctx context.Context, m *Manifest) error {
	m.Completed = time.Now().UTC()
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("snapshot: manifest: %w", err)
	}
	if err := writeFileSync(filepath.Join(j.tmp, ManifestFile), append(b, '\n')); err != nil {
		return fmt.Errorf("snapshot: write manifest: %w", err)
	}
	// The captures fsynced their files; again here, so the rule "every
	// file fsynced before the rename" does not rest on another package.
	for _, sh := range m.Shards {
		for _, name := range []string{sh.RDBFile, sh.TailFile} {
			if err := syncFile(filepath.Join(j.tmp, name)); err != nil {
				return fmt.Errorf("snapshot: fsync %s: %w", name, err)
			}
		}
	}
	if err := syncDir(j.tmp); err != nil {
		return fmt.Errorf("snapshot: fsync %s: %w", j.tmp, err)
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if _, err := os.Lstat(j.final); err == nil {
		return fmt.Errorf("snapshot: %s already exists", j.final)
	}
	if err := os.Rename(j.tmp, j.final); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	if err := syncDir(j.cfg.Dir); err != nil {
		// Complete but perhaps not durable: a failed job leaves nothing.
		os.RemoveAll(j.final)
		return fmt.Errorf("snapshot: fsync %s: %w", j.cfg.Dir, err)
	}
	return nil
}
