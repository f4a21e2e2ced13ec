package migrate

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/reshard/reshard/internal/resp"
	"github.com/reshard/reshard/router"
	"github.com/reshard/reshard/snapshot/rdb"
)

// Big keys.
//
// One RESTORE of a value with millions of elements blocks a target for as
// long as it takes to build them: seconds, for every client of that shard.
// A value above BigKeyBytes is therefore decoded and written as a series of
// small commands (RPUSH, HSET, SADD, ZADD with scores in full precision,
// APPEND for strings, XADD and consumer-group commands for streams), each
// of at most ChunkElements elements and about ChunkBytes bytes.
//
// A reader must never see half a key, so the chunks go to a temporary key
// and a transaction renames it into place at the end:
//
//	MULTI; PEXPIREAT tmp T (or PERSIST tmp); RENAME tmp key; EXEC
//
// RENAME overwrites the key if it exists, which is the Replace semantics,
// and carries the TTL. The temporary key must live in the same slot as the
// real key (the target is one shard today, but a slot moves as a unit in a
// later reshard, and a Redis Cluster target would refuse a cross-slot
// RENAME): its name is "{T}reshard-restore-tmp:NONCE:N" where T is a short
// string found by search whose slot is the key's slot. The key's own hash
// tag cannot be reused in general: a key without a tag hashes whole, and
// wrapping it in braces does not keep its slot when it contains '{' or '}'.
// Until the rename the temporary key carries a 24-hour TTL, so a restore
// that dies midway leaves nothing behind for long.
//
// Streams are rebuilt exactly through commands: entries with XADD at their
// ids; groups with XGROUP CREATE at their last-delivered id and entries-read
// counter; consumers with XGROUP CREATECONSUMER; each pending entry with
// XCLAIM ... TIME t RETRYCOUNT n FORCE JUSTID, which sets its owner,
// delivery time and count as they were. A pending entry whose message was
// deleted cannot be claimed (XCLAIM skips ids not in the stream), so such
// messages are added as placeholders, claimed, and deleted again; then
// XSETID restores the last id, entries-added and max-deleted-id counters.
// What commands cannot set is a consumer's seen-time and active-time: they
// become the time of the restore. A stream with neither entries nor pending
// entries (nothing to chunk) is restored whole.

const tmpKeyTTL = 24 * 3600 * 1000

// chunkable reports whether e is written in chunks when it is big.
func chunkable(e *rdb.Entry) bool {
	switch rdb.ObjectType(e.Type) {
	case "string", "list", "set", "zset", "hash", "stream":
		return true
	}
	return false
}

// slotTags finds, for every slot, a short string that hashes to it.
func slotTags() *[router.NumSlots]string {
	var t [router.NumSlots]string
	found := 0
	var buf []byte
	for n := int64(0); found < router.NumSlots; n++ {
		buf = strconv.AppendInt(buf[:0], n, 36)
		s := router.Slot(buf)
		if t[s] == "" {
			t[s] = string(buf)
			found++
		}
	}
	return &t
}

func (j *job) tempKey(slot uint16) string {
	if j.tags == nil {
		j.tags = slotTags()
	}
	j.tmpSeq++
	return "{" + j.tags[slot] + "}reshard-restore-tmp:" + j.nonce + ":" + strconv.Itoa(j.tmpSeq)
}

// chunker gathers the elements of one command and sends it when it is
// full.
type chunker struct {
	j    *job
	ctx  context.Context
	p    *pipe
	key  string // the real key, for errors
	tmp  string
	cmd  string
	args []byte // the elements, RESP-encoded
	n    int    // elements in args (a score and its member count once)
	argc int    // bulk strings in args
	sent int    // commands sent
}

func (c *chunker) add(parts ...[]byte) error {
	for _, p := range parts {
		c.args = resp.AppendBulk(c.args, p)
		c.argc++
	}
	c.n++
	if c.n >= c.j.cfg.ChunkElements || len(c.args) >= c.j.cfg.ChunkBytes {
		return c.flush()
	}
	return nil
}

func (c *chunker) flush() error {
	if c.n == 0 {
		return nil
	}
	args, argc := c.args, c.argc
	err := c.p.send(c.ctx, pending{op: opChunk, key: c.key}, func(b []byte) []byte {
		b = resp.AppendArrayHeader(b, argc+2)
		b = resp.AppendBulkString(b, c.cmd)
		b = resp.AppendBulkString(b, c.tmp)
		return append(b, args...)
	})
	c.args, c.n, c.argc = c.args[:0], 0, 0
	if err != nil {
		return err
	}
	c.sent++
	if c.sent == 1 {
		return c.command("PEXPIRE", c.tmp, int64(tmpKeyTTL))
	}
	return nil
}

// command sends one whole command of the big key.
func (c *chunker) command(args ...any) error {
	return c.p.send(c.ctx, pending{op: opChunk, key: c.key}, func(b []byte) []byte {
		return appendCommand(b, args...)
	})
}

// writeBigKey writes e in chunks under a temporary key and renames it into
// place.
func (j *job) writeBigKey(ctx context.Context, t *target, p *pipe, e *rdb.Entry, slot uint16) error {
	c := &chunker{j: j, ctx: ctx, p: p, key: string(e.Key), tmp: j.tempKey(slot), args: j.scratch[:0]}
	defer func() { j.scratch = c.args[:0] }()
	var err error
	switch rdb.ObjectType(e.Type) {
	case "string":
		err = j.bigString(c, e)
	case "list":
		c.cmd = "RPUSH"
		err = rdb.EachListElement(e, func(el []byte) error { return c.add(el) })
	case "set":
		c.cmd = "SADD"
		err = rdb.EachSetMember(e, func(m []byte) error { return c.add(m) })
	case "zset":
		c.cmd = "ZADD"
		var sb []byte
		err = rdb.EachZSetMember(e, func(m []byte, score float64) error {
			sb = appendScore(sb[:0], score)
			return c.add(sb, m)
		})
	case "hash":
		err = j.bigHash(c, e)
	case "stream":
		var whole bool
		whole, err = j.bigStream(c, e)
		if err == nil && whole {
			return j.restoreKey(ctx, t, p, e)
		}
	}
	if err == nil {
		err = c.flush()
	}
	if err != nil {
		return decodeError(e, err)
	}
	t.bigKeys++
	// Commit: the TTL and the rename in one transaction.
	if err := c.command("MULTI"); err != nil {
		return err
	}
	if e.ExpireMs >= 0 {
		err = c.command("PEXPIREAT", c.tmp, e.ExpireMs)
	} else {
		err = c.command("PERSIST", c.tmp)
	}
	if err != nil {
		return err
	}
	if err := c.command("RENAME", c.tmp, e.Key); err != nil {
		return err
	}
	return p.send(ctx, pending{op: opCommit, key: c.key}, func(b []byte) []byte {
		return appendCommand(b, "EXEC")
	})
}

func decodeError(e *rdb.Entry, err error) error {
	if _, ok := err.(*rdb.Error); ok {
		return &wrapped{sentinel: ErrBadSource, cause: err, msg: fmt.Sprintf("decoding big key %q: %v", e.Key, err)}
	}
	return err
}

func (j *job) bigString(c *chunker, e *rdb.Entry) error {
	s, err := rdb.DecodeString(e)
	if err != nil {
		return err
	}
	c.cmd = "APPEND"
	for len(s) > 0 {
		n := min(len(s), j.cfg.ChunkBytes)
		if err := c.add(s[:n]); err != nil {
			return err
		}
		if err := c.flush(); err != nil { // APPEND takes one value
			return err
		}
		s = s[n:]
	}
	return nil
}

func (j *job) bigHash(c *chunker, e *rdb.Entry) error {
	c.cmd = "HSET"
	type fieldTTL struct {
		field []byte
		ms    int64
	}
	var ttls []fieldTTL
	err := rdb.EachHashField(e, func(f, v []byte, exp int64) error {
		if exp >= 0 {
			ttls = append(ttls, fieldTTL{bytes.Clone(f), exp})
		}
		return c.add(f, v)
	})
	if err != nil {
		return err
	}
	if err := c.flush(); err != nil {
		return err
	}
	// Field TTLs (Redis 7.4+): the targets load RDB 12, or the pre-flight
	// would have refused the type.
	for _, ft := range ttls {
		if err := c.command("HPEXPIREAT", c.tmp, ft.ms, "FIELDS", "1", ft.field); err != nil {
			return err
		}
	}
	return nil
}

// appendScore writes a score as ZADD takes it, in the shortest form that
// parses back to the same float64.
func appendScore(b []byte, f float64) []byte {
	switch {
	case math.IsInf(f, 1):
		return append(b, "inf"...)
	case math.IsInf(f, -1):
		return append(b, "-inf"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}

func lessID(a, b rdb.StreamID) bool {
	return a.Ms < b.Ms || a.Ms == b.Ms && a.Seq < b.Seq
}

// bigStream rebuilds a stream; see the package comment above. whole means
// the stream has nothing to chunk and is to be restored whole.
func (j *job) bigStream(c *chunker, e *rdb.Entry) (whole bool, err error) {
	meta, err := rdb.DecodeStream(e, func(rdb.StreamID, [][]byte) error { return nil })
	if err != nil {
		return false, err
	}
	var pel []rdb.StreamID
	for _, g := range meta.Groups {
		for _, p := range g.Pending {
			pel = append(pel, p.ID)
		}
	}
	slices.SortFunc(pel, func(a, b rdb.StreamID) int {
		switch {
		case lessID(a, b):
			return -1
		case lessID(b, a):
			return 1
		}
		return 0
	})
	pel = slices.Compact(pel)
	if meta.Length == 0 && len(pel) == 0 {
		return true, nil
	}
	var placeholders []rdb.StreamID
	pi := 0
	placeholder := func(id rdb.StreamID) error {
		placeholders = append(placeholders, id)
		return c.command("XADD", c.tmp, id.String(), "reshard-placeholder", "")
	}
	first := true
	_, err = rdb.DecodeStream(e, func(id rdb.StreamID, fields [][]byte) error {
		for pi < len(pel) && lessID(pel[pi], id) {
			if err := placeholder(pel[pi]); err != nil {
				return err
			}
			pi++
		}
		if pi < len(pel) && pel[pi] == id {
			pi++
		}
		err := c.p.send(c.ctx, pending{op: opChunk, key: c.key}, func(b []byte) []byte {
			b = resp.AppendArrayHeader(b, 3+len(fields))
			b = resp.AppendBulkString(b, "XADD")
			b = resp.AppendBulkString(b, c.tmp)
			b = resp.AppendBulkString(b, id.String())
			for _, f := range fields {
				b = resp.AppendBulk(b, f)
			}
			return b
		})
		if err == nil && first {
			first = false
			err = c.command("PEXPIRE", c.tmp, int64(tmpKeyTTL))
		}
		return err
	})
	if err != nil {
		return false, err
	}
	for ; pi < len(pel); pi++ {
		if err := placeholder(pel[pi]); err != nil {
			return false, err
		}
	}
	if first {
		if err := c.command("PEXPIRE", c.tmp, int64(tmpKeyTTL)); err != nil {
			return false, err
		}
	}
	v2 := e.Type >= rdb.TypeStreamListpacks2
	for _, g := range meta.Groups {
		args := []any{"XGROUP", "CREATE", c.tmp, g.Name, g.LastID.String()}
		if v2 && g.EntriesRead >= 0 {
			args = append(args, "ENTRIESREAD", g.EntriesRead)
		}
		if err := c.command(args...); err != nil {
			return false, err
		}
		for _, cn := range g.Consumers {
			if err := c.command("XGROUP", "CREATECONSUMER", c.tmp, g.Name, cn.Name); err != nil {
				return false, err
			}
		}
		for _, p := range g.Pending {
			if p.Consumer == nil {
				return false, fmt.Errorf("%w: stream %q, group %q: pending entry %v has no consumer", ErrBadSource, e.Key, g.Name, p.ID)
			}
			err := c.command("XCLAIM", c.tmp, g.Name, p.Consumer, "0", p.ID.String(),
				"TIME", p.DeliveryTimeMs, "RETRYCOUNT", p.DeliveryCount, "FORCE", "JUSTID")
			if err != nil {
				return false, err
			}
		}
	}
	for len(placeholders) > 0 {
		n := min(len(placeholders), j.cfg.ChunkElements)
		args := []any{"XDEL", c.tmp}
		for _, id := range placeholders[:n] {
			args = append(args, id.String())
		}
		if err := c.command(args...); err != nil {
			return false, err
		}
		placeholders = placeholders[n:]
	}
	args := []any{"XSETID", c.tmp, meta.LastID.String()}
	if v2 {
		args = append(args, "ENTRIESADDED", meta.EntriesAdded, "MAXDELETEDID", meta.MaxDeletedID.String())
	}
	return false, c.command(args...)
}
