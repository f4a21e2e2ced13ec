package snapshot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
			shards[i], errs[i] = j.verifyShard(ctx, i, res, cut.shards[i])
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

func (j *Job) verifyShard(ctx context.Context, i int, res Result, cut shardCut) (ShardManifest, error) {
	if res.RDBSummary == nil {
		return ShardManifest{}, fmt.Errorf("snapshot: shard %s: the capture did not check its RDB", res.Addr)
	}
	sum := *res.RDBSummary
	if sum.Size != res.RDBSize {
		return ShardManifest{}, fmt.Errorf("snapshot: shard %s: RDB of %d bytes holds %d bytes of RDB", res.Addr, res.RDBSize, sum.Size)
	}
	if path := j.stage.rdbPath(j.rdbName(i)); j.cfg.Verify != nil && path != "" {
		if err := j.cfg.Verify(path); err != nil {
			return ShardManifest{}, fmt.Errorf("snapshot: shard %s: verify %s: %w", res.Addr, path, err)
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
	if err := j.stage.tailDone(ctx, j.tailName(i)); err != nil {
		return ShardManifest{}, fmt.Errorf("snapshot: shard %s: %w", res.Addr, err)
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

// publish writes the manifest and puts the snapshot in place: in a
// directory, every file made durable and the directory renamed; in a
// bucket, the manifest sent after every file.
func (j *Job) publish(ctx context.Context, m *Manifest) error {
	m.Completed = time.Now().UTC()
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("snapshot: manifest: %w", err)
	}
	var files []string
	for _, sh := range m.Shards {
		files = append(files, sh.RDBFile, sh.TailFile)
	}
	return j.stage.publish(ctx, append(b, '\n'), files)
}
