package snapshot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// After the captures are stopped at the cut: reading back every shard's RDB
// and tail, and publishing the snapshot (manifest, fsyncs, rename into
// place).

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
	from := res.Addr
	if from == j.cfg.Table.Addr(i) {
		from = ""
	}
	return ShardManifest{
		Index:        i,
		Addr:         j.cfg.Table.Addr(i),
		From:         from,
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
