package migrate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/reshard/reshard/internal/resp"
	"github.com/reshard/reshard/router"
	"github.com/reshard/reshard/snapshot/rdb"
)

// target is one target shard during a restore.
type target struct {
	idx   int
	info  targetInfo
	admin *redis.Client
	pipes []*pipe
	stats targetStats

	// Counted by the producer.
	expired, bigKeys, volatile int64
	planned                    Share
	first, last                time.Time
}

// job is one run of Restore. The producer (the goroutine that called
// Restore) reads the sources and queues commands on the targets' pipes.
type job struct {
	cfg   RestoreConfig
	log   *zap.Logger
	table *router.Table
	srcs  []source
	scan  *scanResult
	db    int
	// skipRDB[i]: source i's tail empties the database, so its RDB keys
	// are not restored.
	skipRDB []bool

	targets  []*target
	replicas replicaSet // the targets'
	state    *jobState
	rep      *Report

	phase                 atomic.Value // string
	keysDone, bytesDone   atomic.Int64
	keysTotal, bytesTotal int64
	started               time.Time

	// Big keys.
	tags    *[router.NumSlots]string
	nonce   string
	tmpSeq  int
	scratch []byte

	parts    []part
	tailKeys map[string]bool // keys touched by a tail (Verify skips them)
}

// Restore restores the sources into the target topology: pre-flight checks
// (all of them, before anything is written), then every key of every RDB
// as a RESTORE (or, above BigKeyBytes, as chunks of commands) to the target
// that owns its slot, each source's tail after its RDB, and optionally a
// verification. It returns a Report in every case; on failure the error
// says what failed (wrapping one of the package's sentinel errors) and the
// report holds what was done until then.
//
// Restore writes into database 0 of the targets and does not change
// anything else on them (no CONFIG SET), except FLUSHALL when Flush is set.
// It blocks until done or ctx ends; it owns every goroutine it starts.
func Restore(ctx context.Context, cfg RestoreConfig) (Report, error) {
	rep := Report{Started: time.Now(), DB: cfg.DB, DryRun: cfg.DryRun}
	err := restore(ctx, cfg, &rep)
	rep.Duration = time.Since(rep.Started)
	if err != nil {
		rep.Err = err.Error()
	}
	return rep, err
}

func restore(ctx context.Context, cfg RestoreConfig, rep *Report) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	table, err := router.NewTable(0, cfg.Targets)
	if err != nil {
		return &ConfigError{Fields: []string{"Targets"}, Value: router.FormatSpec(cfg.Targets), Why: err.Error()}
	}
	srcs, err := resolveSources(&files{ctx: ctx, s3: cfg.S3}, cfg.Sources)
	if err != nil {
		return &PreflightError{Problems: []error{err}}
	}
	var nonce [6]byte
	_, _ = rand.Read(nonce[:])
	j := &job{cfg: cfg, log: cfg.Logger, table: table, srcs: srcs, state: newJobState(), rep: rep, nonce: hex.EncodeToString(nonce[:])}
	j.replicas = newReplicaSet(table, &j.cfg, cfg.Logger)
	j.phase.Store("preflight")
	defer j.closeAdmin()
	if err := j.preflight(ctx); err != nil {
		return err
	}
	if cfg.DryRun {
		return nil
	}
	err = j.run(ctx)
	if err != nil && !errors.Is(err, ErrVerify) {
		err = j.partial(ctx, err)
	}
	return err
}

func (j *job) closeAdmin() {
	for _, t := range j.targets {
		if t.admin != nil {
			t.admin.Close()
		}
	}
}

func (j *job) nowMs() int64 { return j.cfg.Now().UnixMilli() }

// run writes everything; the pre-flight has passed.
func (j *job) run(ctx context.Context) (err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A failed pipe cancels the producer wherever it waits. The goroutine
	// ends with ctx, which the deferred cancel ends.
	go func() {
		select {
		case <-j.state.failed:
			cancel()
		case <-ctx.Done():
		}
	}()
	// The root cause beats the cancellation it caused.
	defer func() {
		if jerr := j.state.err(); jerr != nil && err != nil {
			err = jerr
		}
	}()

	if j.cfg.Flush {
		for _, t := range j.targets {
			if err := t.admin.FlushAll(ctx).Err(); err != nil {
				return fmt.Errorf("%w: target %s: FLUSHALL: %v", ErrTarget, t.info.Addr, err)
			}
		}
		j.log.Info("targets flushed", zap.Int("targets", len(j.targets)))
	}
	if err := j.replicas.attach(ctx); err != nil {
		return err
	}
	for _, t := range j.targets {
		for range j.cfg.ConnsPerTarget {
			p, err := dialPipe(ctx, &j.cfg, t.info.Addr, j.state, &t.stats)
			if err != nil {
				return err
			}
			t.pipes = append(t.pipes, p)
		}
	}
	defer func() {
		for _, t := range j.targets {
			for _, p := range t.pipes {
				p.close()
			}
		}
		j.collect()
	}()

	if j.cfg.Verify {
		j.tailKeys = map[string]bool{}
	}
	j.started = time.Now()
	stopProgress := j.startProgress()
	defer stopProgress()
	for _, t := range j.targets {
		t.first = j.started
	}

	if err := j.loadFunctions(ctx); err != nil {
		return err
	}
	j.phase.Store("restore")
	var base int64
	for i, ss := range j.scan.sources {
		if !j.skipRDB[i] {
			j.log.Info("restoring rdb", zap.String("file", ss.RDB), zap.Int64("bytes", ss.size))
			if err := j.restoreRDB(ctx, ss, base); err != nil {
				return err
			}
		}
		base += ss.size
		j.bytesDone.Store(base)
		if err := j.drain(ctx); err != nil {
			return err
		}
		if ss.tail != nil {
			j.phase.Store("tail")
			j.log.Info("applying tail", zap.String("file", ss.Tail), zap.Int64("bytes", ss.tail.size))
			if err := j.applyTail(ctx, ss); err != nil {
				return err
			}
			if err := j.drain(ctx); err != nil {
				return err
			}
			j.phase.Store("restore")
		}
	}
	stopProgress()
	j.log.Info("restore written", zap.Int64("keys", j.keysDone.Load()), zap.Duration("elapsed", time.Since(j.started)))
	if j.cfg.Cluster {
		if err := j.checkClusterUnchanged(ctx); err != nil {
			return err
		}
	}
	if len(j.replicas.reps) > 0 {
		j.phase.Store("replicas")
		if err := j.replicasDone(ctx); err != nil {
			return err
		}
	}
	if j.cfg.Verify {
		j.phase.Store("verify")
		j.collect()
		if err := j.verify(ctx); err != nil {
			return err
		}
	}
	return nil
}

// collect copies the counters into the report.
func (j *job) collect() {
	for i, t := range j.targets {
		tr := &j.rep.Targets[i]
		tr.Written = t.stats.written.Load()
		tr.TailCommands = t.stats.tail.Load()
		tr.Errors = t.stats.errors.Load()
		tr.Benign = t.stats.benign.Load()
		tr.Expired = t.expired
		tr.BigKeys = t.bigKeys
		if !t.last.IsZero() {
			tr.Duration = t.last.Sub(t.first)
		}
	}
}

// drain waits until every command sent so far has been answered.
func (j *job) drain(ctx context.Context) error {
	var dones []chan struct{}
	for _, t := range j.targets {
		for _, p := range t.pipes {
			d, err := p.fence(ctx)
			if err != nil {
				return err
			}
			dones = append(dones, d)
		}
	}
	for _, d := range dones {
		select {
		case <-d:
		case <-j.state.failed:
			return j.state.err()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	now := time.Now()
	for _, t := range j.targets {
		t.last = now
	}
	return nil
}

func (j *job) loadFunctions(ctx context.Context) error {
	for _, lib := range j.scan.libraries {
		for _, t := range j.targets {
			code := lib.code
			err := t.pipes[0].send(ctx, pending{op: opFunction, key: lib.name}, func(b []byte) []byte {
				return appendCommand(b, "FUNCTION", "LOAD", "REPLACE", code)
			})
			if err != nil {
				return err
			}
		}
	}
	j.rep.Functions = len(j.scan.libraries)
	return nil
}

// restoreRDB streams one RDB file to the targets.
func (j *job) restoreRDB(ctx context.Context, ss *sourceScan, base int64) error {
	f, err := ss.files.open(ss.RDB)
	if err != nil {
		return sourceError(ss.RDB, err)
	}
	defer f.Close()
	r, err := rdb.NewReader(f)
	if err != nil {
		return sourceError(ss.RDB, err)
	}
	nslots := len(j.targets[0].pipes)
	for n := 0; ; n++ {
		e, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return sourceError(ss.RDB, err)
		}
		if n&255 == 0 {
			j.bytesDone.Store(base + r.Offset())
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if e.Kind != rdb.KindKey {
			continue
		}
		if e.DB != j.db {
			j.rep.OtherDBKeys++
			continue
		}
		j.keysDone.Add(1)
		slot := router.Slot(e.Key)
		t := j.targets[j.table.ShardOfSlot(slot)]
		if e.ExpireMs >= 0 {
			if e.ExpireMs <= j.nowMs() {
				t.expired++
				continue
			}
			t.volatile++
		}
		p := t.pipes[int(slot)%nslots]
		if int64(len(e.Value)) > j.cfg.BigKeyBytes && chunkable(e) {
			err = j.writeBigKey(ctx, t, p, e, slot)
		} else {
			err = j.restoreKey(ctx, t, p, e)
		}
		if err != nil {
			return err
		}
	}
}

// restoreKey queues RESTORE key ttl payload REPLACE ABSTTL, with the LRU
// idle time or LFU counter the source recorded, if any.
//
// A plain string goes as SET key value [PXAT ms] instead: the same result
// (SET replaces a key of any type, drops or sets the TTL, and encodes the
// value as int, embstr or raw exactly as RESTORE does), and it costs the
// target about a fifth less CPU than RESTORE (measured on Redis 7.0:
// 1.9 against 1.45 µs a key through redis-cli --pipe), which is the whole
// difference when a target is the bottleneck, as it is for small keys.
// Without a TTL it joins the strings around it on the pipe in one MSET
// (queueString), which saves the target the dispatch of a command per key,
// another fifth or so of its CPU (see msetKeys). With a TTL it stays a
// SET ... PXAT: MSET sets none, and a PEXPIREAT after it would leave the
// key without one in between.
// Keys with an LRU/LFU record keep RESTORE, which can carry it.
func (j *job) restoreKey(ctx context.Context, t *target, p *pipe, e *rdb.Entry) error {
	if e.Type == rdb.TypeString && e.Idle < 0 && e.Freq < 0 && t.info.RDBVersion >= 10 {
		if v, err := rdb.DecodeString(e); err == nil {
			// A value as large as an MSET's bound goes alone, as SET,
			// rather than through the MSET's buffer.
			if e.ExpireMs < 0 && len(e.Key)+len(v) < msetBytes && !j.cfg.Cluster {
				return p.queueString(ctx, e.Key, v)
			}
			return p.send(ctx, pending{op: opRestore, key: string(e.Key)}, func(b []byte) []byte {
				n := 3
				if e.ExpireMs >= 0 {
					n += 2
				}
				b = resp.AppendArrayHeader(b, n)
				b = resp.AppendBulkString(b, "SET")
				b = resp.AppendBulk(b, e.Key)
				b = resp.AppendBulk(b, v)
				if e.ExpireMs >= 0 {
					b = resp.AppendBulkString(b, "PXAT")
					b = resp.AppendBulkInt(b, e.ExpireMs)
				}
				return b
			})
		}
		// A string that does not decode goes as RESTORE, whose error
		// will name it.
	}
	version := t.info.RDBVersion
	return p.send(ctx, pending{op: opRestore, key: string(e.Key)}, func(b []byte) []byte {
		// ABSTTL only where there is a TTL: one argument less to parse
		// for most keys is measurable on the target.
		n := 5
		if e.ExpireMs >= 0 {
			n++
		}
		if e.Idle >= 0 || e.Freq >= 0 {
			n += 2
		}
		b = resp.AppendArrayHeader(b, n)
		b = resp.AppendBulkString(b, "RESTORE")
		b = resp.AppendBulk(b, e.Key)
		b = resp.AppendBulkInt(b, max(e.ExpireMs, 0))
		b = resp.AppendBulkHeader(b, 1+len(e.Value)+10)
		b = rdb.AppendDumpPayload(b, e, version)
		b = append(b, '\r', '\n')
		b = resp.AppendBulkString(b, "REPLACE")
		if e.ExpireMs >= 0 {
			b = resp.AppendBulkString(b, "ABSTTL")
		}
		switch {
		case e.Idle >= 0:
			b = resp.AppendBulkString(b, "IDLETIME")
			b = resp.AppendBulkInt(b, e.Idle)
		case e.Freq >= 0:
			b = resp.AppendBulkString(b, "FREQ")
			b = resp.AppendBulkInt(b, int64(e.Freq))
		}
		return b
	})
}

// startProgress calls cfg.Progress every ProgressInterval from a goroutine
// it owns; the returned function stops it (and may be called twice).
func (j *job) startProgress() func() {
	if j.cfg.Progress == nil {
		return func() {}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(j.cfg.ProgressInterval)
		defer tk.Stop()
		for {
			select {
			case <-tk.C:
				j.cfg.Progress(j.progress())
			case <-stop:
				j.cfg.Progress(j.progress())
				return
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(stop)
			wg.Wait()
		})
	}
}

func (j *job) progress() Progress {
	el := time.Since(j.started)
	p := Progress{
		Phase:      j.phase.Load().(string),
		Keys:       j.keysDone.Load(),
		KeysTotal:  j.keysTotal,
		Bytes:      j.bytesDone.Load(),
		BytesTotal: j.bytesTotal,
		Elapsed:    el,
	}
	if s := el.Seconds(); s > 0 {
		p.KeysPerSec = float64(p.Keys) / s
		if p.Bytes > 0 && p.BytesTotal > p.Bytes {
			p.ETA = time.Duration(float64(p.BytesTotal-p.Bytes) / (float64(p.Bytes) / s) * float64(time.Second))
		}
	}
	return p
}

// replicasDone waits for every replica of the targets to hold everything
// written, bounded by Timeout.
func (j *job) replicasDone(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, j.cfg.Timeout)
	defer cancel()
	if err := j.replicas.inSync(ctx); err != nil {
		return fmt.Errorf("%w: not in sync with its target after %s: %w", ErrTarget, j.cfg.Timeout, err)
	}
	if err := j.replicas.caughtUp(ctx); err != nil {
		return fmt.Errorf("%w: %w", ErrTarget, err)
	}
	j.log.Info("every replica holds the restore", zap.Int("replicas", len(j.replicas.reps)))
	return nil
}
