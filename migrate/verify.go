package migrate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/reshard/reshard/router"
	"github.com/reshard/reshard/snapshot/rdb"
)

// Verification. DUMP on a target is not byte-equal to the source's value
// in general (a hashtable's order depends on its history, encodings follow
// the target's thresholds), so keys are compared by content: type, TTL to
// the second, and the value decoded from the RDB against what the target
// answers to GET, LRANGE, HMGET, SMISMEMBER, ZMSCORE, XRANGE and XINFO
// STREAM FULL, fetched in batches so a big key costs no more memory than a
// batch.

// verifyBatch is how many elements one verification read fetches.
const verifyBatch = 500

func (j *job) verify(ctx context.Context) error {
	vr := &VerifyReport{}
	j.rep.Verify = vr
	mismatch := func(format string, args ...any) {
		vr.MismatchCount++
		if len(vr.Mismatches) < maxMismatches {
			vr.Mismatches = append(vr.Mismatches, fmt.Sprintf(format, args...))
		}
	}
	tailChanged := false
	for _, ss := range j.scan.sources {
		if ss.tail != nil {
			if d := ss.tail.byDB[j.db]; d != nil && d.commands > 0 {
				tailChanged = true
			}
		}
	}
	// Key counts.
	for _, t := range j.targets {
		n, err := t.admin.DBSize(ctx).Result()
		if err != nil {
			return fmt.Errorf("%w: target %s: DBSIZE: %v", ErrTarget, t.info.Addr, err)
		}
		vc := VerifyCount{Addr: t.info.Addr, DBSize: n, Written: t.stats.written.Load(), Volatile: t.volatile}
		vc.Checked = (t.info.Keys == 0 || j.cfg.Flush) && !tailChanged && !j.cfg.AllowDuplicates
		if vc.Checked {
			vc.OK = n <= vc.Written && n >= vc.Written-vc.Volatile
			if !vc.OK {
				mismatch("target %s: DBSIZE %d, but %s written", t.info.Addr, n, count(vc.Written, "key"))
			}
		}
		vr.Counts = append(vr.Counts, vc)
	}
	// Functions.
	for _, t := range j.targets {
		libs, err := t.admin.FunctionList(ctx, redis.FunctionListQuery{}).Result()
		if err != nil && len(j.scan.libraries) > 0 {
			return fmt.Errorf("%w: target %s: FUNCTION LIST: %v", ErrTarget, t.info.Addr, err)
		}
		have := map[string]bool{}
		for _, l := range libs {
			have[l.Name] = true
		}
		for _, lib := range j.scan.libraries {
			if !have[lib.name] {
				mismatch("target %s: function library %q is missing", t.info.Addr, lib.name)
			}
		}
	}
	// A sample of keys, drawn with equal probability in one pass.
	var candidates int64
	for _, t := range j.targets {
		candidates += t.stats.written.Load()
	}
	// An estimate (the tail may have touched keys that are not in the
	// RDBs); Candidates is counted exactly in the pass.
	candidates -= int64(len(j.tailKeys))
	prob := 1.0
	if j.cfg.VerifySample >= 0 && candidates > 0 {
		prob = min(1, float64(j.cfg.VerifySample)/float64(candidates))
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x5eed))
	// With AllowDuplicates a key may hold a later source's value: only
	// the last source with keys in a slot is compared there.
	var last *[router.NumSlots]int16
	if j.cfg.AllowDuplicates {
		last = lastHolders(j.scan, j.skipRDB, j.db)
	}
	for i, ss := range j.scan.sources {
		if j.skipRDB[i] {
			continue
		}
		err := eachKey(ss.files, ss.RDB, false, func(e *rdb.Entry) error {
			if e.DB != j.db || j.tailKeys[string(e.Key)] || last != nil && last[router.Slot(e.Key)] != int16(i) {
				return nil
			}
			// A key that expires in the next seconds may be gone by the
			// time it is read: not a fair comparison.
			if e.ExpireMs >= 0 && e.ExpireMs <= j.nowMs()+5000 {
				return nil
			}
			vr.Candidates++
			if prob < 1 && rng.Float64() >= prob {
				return nil
			}
			if j.cfg.VerifySample >= 0 && vr.Sampled >= int64(j.cfg.VerifySample) {
				return nil
			}
			vr.Sampled++
			t := j.targets[j.table.ShardOf(e.Key)]
			if err := compareKey(ctx, t.admin, e); err != nil {
				var m *mismatchError
				if !errors.As(err, &m) {
					return fmt.Errorf("%w: target %s: verifying key %q: %v", ErrTarget, t.info.Addr, e.Key, err)
				}
				mismatch("target %s: %v", t.info.Addr, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	j.log.Info("verified", zap.Int64("sampled", vr.Sampled), zap.Int64("mismatches", vr.MismatchCount))
	if vr.MismatchCount > 0 {
		return fmt.Errorf("%w: %s, the first: %s", ErrVerify, count(vr.MismatchCount, "mismatch"), vr.Mismatches[0])
	}
	return nil
}

// eachKey calls fn for every key of an RDB file; with skipValues,
// Entry.Value is nil.
func eachKey(fs *files, path string, skipValues bool, fn func(e *rdb.Entry) error) error {
	f, err := fs.open(path)
	if err != nil {
		return sourceError(path, err)
	}
	defer f.Close()
	r, err := rdb.NewReader(f)
	if err != nil {
		return sourceError(path, err)
	}
	r.SkipValues(skipValues)
	for {
		e, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return sourceError(path, err)
		}
		if e.Kind == rdb.KindKey {
			if err := fn(e); err != nil {
				return err
			}
		}
	}
}

// mismatchError is a difference between a source key and its target.
type mismatchError struct{ msg string }

func (e *mismatchError) Error() string { return e.msg }

func mismatchf(key []byte, format string, args ...any) error {
	return &mismatchError{msg: fmt.Sprintf("key %q: ", key) + fmt.Sprintf(format, args...)}
}

// compareKey compares the key of entry e with what c holds: a
// *mismatchError for a difference, another error when c could not be read.
func compareKey(ctx context.Context, c *redis.Client, e *rdb.Entry) error {
	key := string(e.Key)
	typ, err := c.Type(ctx, key).Result()
	if err != nil {
		return err
	}
	if want := rdb.ObjectType(e.Type); typ != want {
		return mismatchf(e.Key, "type %s on the target, %s in the source", typ, want)
	}
	pttl, err := c.Do(ctx, "PTTL", key).Int64()
	if err != nil {
		return err
	}
	switch {
	case e.ExpireMs < 0 && pttl != -1:
		return mismatchf(e.Key, "TTL %dms on the target, none in the source", pttl)
	case e.ExpireMs >= 0 && pttl < 0:
		return mismatchf(e.Key, "no TTL on the target, expires at %d in the source", e.ExpireMs)
	case e.ExpireMs >= 0:
		if d := time.Now().UnixMilli() + pttl - e.ExpireMs; d > 1000 || d < -1000 {
			return mismatchf(e.Key, "expires %dms off the source's expiry", d)
		}
	}
	switch typ {
	case "string":
		return compareString(ctx, c, e)
	case "list":
		return compareList(ctx, c, e)
	case "hash":
		return compareHash(ctx, c, e)
	case "set":
		return compareSet(ctx, c, e)
	case "zset":
		return compareZSet(ctx, c, e)
	case "stream":
		return compareStream(ctx, c, e)
	}
	return mismatchf(e.Key, "type %s cannot be compared", typ)
}

func compareString(ctx context.Context, c *redis.Client, e *rdb.Entry) error {
	want, err := rdb.DecodeString(e)
	if err != nil {
		return err
	}
	got, err := c.Get(ctx, string(e.Key)).Bytes()
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return mismatchf(e.Key, "value of %d bytes on the target, %d in the source (or the bytes differ)", len(got), len(want))
	}
	return nil
}

func compareList(ctx context.Context, c *redis.Client, e *rdb.Entry) error {
	key := string(e.Key)
	var page []string
	var at int64 // index of page[0]
	var i int64
	err := rdb.EachListElement(e, func(el []byte) error {
		if i >= at+int64(len(page)) {
			var err error
			at = i
			if page, err = c.LRange(ctx, key, i, i+verifyBatch-1).Result(); err != nil {
				return err
			}
		}
		if i-at >= int64(len(page)) {
			return mismatchf(e.Key, "the target's list ends at %d elements", i)
		}
		if page[i-at] != string(el) {
			return mismatchf(e.Key, "element %d differs", i)
		}
		i++
		return nil
	})
	if err != nil {
		return err
	}
	return compareLen(ctx, c, e, "LLEN", i)
}

func compareLen(ctx context.Context, c *redis.Client, e *rdb.Entry, cmd string, want int64) error {
	n, err := c.Do(ctx, cmd, string(e.Key)).Int64()
	if err != nil {
		return err
	}
	if n != want {
		return mismatchf(e.Key, "%s %d on the target, %d elements in the source", cmd, n, want)
	}
	return nil
}

// batcher gathers elements and checks them a batch at a time.
type batcher struct {
	keys  []string
	vals  []string
	n     int64
	check func(keys, vals []string) error
}

func (b *batcher) add(k, v []byte) error {
	b.keys = append(b.keys, string(k))
	b.vals = append(b.vals, string(v))
	b.n++
	if len(b.keys) >= verifyBatch {
		return b.flush()
	}
	return nil
}

func (b *batcher) flush() error {
	if len(b.keys) == 0 {
		return nil
	}
	err := b.check(b.keys, b.vals)
	b.keys, b.vals = b.keys[:0], b.vals[:0]
	return err
}

func compareHash(ctx context.Context, c *redis.Client, e *rdb.Entry) error {
	key := string(e.Key)
	b := &batcher{check: func(fields, vals []string) error {
		got, err := c.HMGet(ctx, key, fields...).Result()
		if err != nil {
			return err
		}
		for i, g := range got {
			if s, ok := g.(string); !ok || s != vals[i] {
				return mismatchf(e.Key, "field %q differs or is missing", fields[i])
			}
		}
		return nil
	}}
	err := rdb.EachHashField(e, func(f, v []byte, _ int64) error { return b.add(f, v) })
	if err == nil {
		err = b.flush()
	}
	if err != nil {
		return err
	}
	return compareLen(ctx, c, e, "HLEN", b.n)
}

func compareSet(ctx context.Context, c *redis.Client, e *rdb.Entry) error {
	key := string(e.Key)
	b := &batcher{check: func(members, _ []string) error {
		args := make([]any, len(members))
		for i, m := range members {
			args[i] = m
		}
		got, err := c.SMIsMember(ctx, key, args...).Result()
		if err != nil {
			return err
		}
		for i, ok := range got {
			if !ok {
				return mismatchf(e.Key, "member %q is missing", members[i])
			}
		}
		return nil
	}}
	err := rdb.EachSetMember(e, func(m []byte) error { return b.add(m, nil) })
	if err == nil {
		err = b.flush()
	}
	if err != nil {
		return err
	}
	return compareLen(ctx, c, e, "SCARD", b.n)
}

func compareZSet(ctx context.Context, c *redis.Client, e *rdb.Entry) error {
	key := string(e.Key)
	b := &batcher{check: func(members, scores []string) error {
		got, err := c.ZMScore(ctx, key, members...).Result()
		if err != nil {
			return err
		}
		for i, g := range got {
			if strconv.FormatFloat(g, 'g', -1, 64) != scores[i] {
				return mismatchf(e.Key, "member %q: score %v on the target, %s in the source", members[i], g, scores[i])
			}
		}
		return nil
	}}
	err := rdb.EachZSetMember(e, func(m []byte, score float64) error {
		return b.add(m, []byte(strconv.FormatFloat(score, 'g', -1, 64)))
	})
	if err == nil {
		err = b.flush()
	}
	if err != nil {
		return err
	}
	return compareLen(ctx, c, e, "ZCARD", b.n)
}

func compareStream(ctx context.Context, c *redis.Client, e *rdb.Entry) error {
	key := string(e.Key)
	var page []any
	pos := 0
	next := "-"
	var n int64
	meta, err := rdb.DecodeStream(e, func(id rdb.StreamID, fields [][]byte) error {
		if pos >= len(page) {
			res, err := c.Do(ctx, "XRANGE", key, next, "+", "COUNT", verifyBatch).Slice()
			if err != nil {
				return err
			}
			page, pos = res, 0
			if len(page) == 0 {
				return mismatchf(e.Key, "the target's stream ends before entry %v", id)
			}
		}
		ent, _ := page[pos].([]any)
		pos++
		if len(ent) != 2 {
			return fmt.Errorf("XRANGE: unexpected entry %v", ent)
		}
		gotID, _ := ent[0].(string)
		next = "(" + gotID
		if gotID != id.String() {
			return mismatchf(e.Key, "entry %s on the target where the source has %v", gotID, id)
		}
		vals, _ := ent[1].([]any)
		if len(vals) != len(fields) {
			return mismatchf(e.Key, "entry %v: %d fields and values on the target, %d in the source", id, len(vals), len(fields))
		}
		for i, v := range vals {
			if s, _ := v.(string); s != string(fields[i]) {
				return mismatchf(e.Key, "entry %v: field or value %d differs", id, i)
			}
		}
		n++
		return nil
	})
	if err != nil {
		return err
	}
	if err := compareLen(ctx, c, e, "XLEN", n); err != nil {
		return err
	}
	// COUNT bounds the entries and every PEL listed: the largest PEL
	// gets them all, without listing more entries than that.
	count := 1
	for _, g := range meta.Groups {
		count = max(count, len(g.Pending))
	}
	info, err := c.XInfoStreamFull(ctx, key, count).Result()
	if err != nil {
		return err
	}
	if info.LastGeneratedID != meta.LastID.String() {
		return mismatchf(e.Key, "last id %s on the target, %v in the source", info.LastGeneratedID, meta.LastID)
	}
	if e.Type >= rdb.TypeStreamListpacks2 {
		if info.EntriesAdded != int64(meta.EntriesAdded) || info.MaxDeletedEntryID != meta.MaxDeletedID.String() {
			return mismatchf(e.Key, "entries-added %d, max-deleted-id %s on the target; %d, %v in the source",
				info.EntriesAdded, info.MaxDeletedEntryID, meta.EntriesAdded, meta.MaxDeletedID)
		}
	}
	if len(info.Groups) != len(meta.Groups) {
		return mismatchf(e.Key, "%d consumer groups on the target, %d in the source", len(info.Groups), len(meta.Groups))
	}
	byName := map[string]*redis.XInfoStreamGroup{}
	for i := range info.Groups {
		byName[info.Groups[i].Name] = &info.Groups[i]
	}
	for _, g := range meta.Groups {
		tg := byName[string(g.Name)]
		switch {
		case tg == nil:
			return mismatchf(e.Key, "consumer group %q is missing", g.Name)
		case tg.LastDeliveredID != g.LastID.String():
			return mismatchf(e.Key, "group %q: last-delivered-id %s on the target, %v in the source", g.Name, tg.LastDeliveredID, g.LastID)
		case g.EntriesRead >= 0 && tg.EntriesRead != g.EntriesRead:
			return mismatchf(e.Key, "group %q: entries-read %d on the target, %d in the source", g.Name, tg.EntriesRead, g.EntriesRead)
		case len(tg.Pending) != len(g.Pending):
			return mismatchf(e.Key, "group %q: %d pending entries on the target, %d in the source", g.Name, len(tg.Pending), len(g.Pending))
		case len(tg.Consumers) != len(g.Consumers):
			return mismatchf(e.Key, "group %q: %d consumers on the target, %d in the source", g.Name, len(tg.Consumers), len(g.Consumers))
		}
		for i, p := range g.Pending {
			tp := tg.Pending[i]
			if tp.ID != p.ID.String() || tp.Consumer != string(p.Consumer) || tp.DeliveryCount != int64(p.DeliveryCount) || tp.DeliveryTime.UnixMilli() != p.DeliveryTimeMs {
				return mismatchf(e.Key, "group %q: pending entry %v (consumer %q, %d deliveries, at %d) is %s (consumer %q, %d deliveries, at %d) on the target",
					g.Name, p.ID, p.Consumer, p.DeliveryCount, p.DeliveryTimeMs, tp.ID, tp.Consumer, tp.DeliveryCount, tp.DeliveryTime.UnixMilli())
			}
		}
		consumers := map[string]int64{}
		for _, tc := range tg.Consumers {
			consumers[tc.Name] = tc.PelCount
		}
		for _, cn := range g.Consumers {
			pc, ok := consumers[string(cn.Name)]
			if !ok || pc != int64(len(cn.Pending)) {
				return mismatchf(e.Key, "group %q: consumer %q missing or with another number of pending entries", g.Name, cn.Name)
			}
		}
	}
	return nil
}
