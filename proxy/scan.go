package proxy

import (
	"strconv"

	"github.com/reshard/reshard/proxy/command"

	"github.com/reshard/reshard/internal/resp"
	"github.com/reshard/reshard/proxy/internal/wire"
)

// SCAN over several shards. The proxy walks the shards one after the other
// in table order, and within a shard lets Redis's own cursor do the work, so
// each proxy SCAN call is one SCAN on one shard.
//
// The proxy cursor packs both positions into one number:
//
//	proxy cursor = shardCursor<<14 | shardIndex
//
// 14 bits hold any shard index a router.Table can have (at most one shard
// per slot, 16384). The shard's cursor gets the 49 bits above, so a proxy
// cursor stays below 2^63 and survives clients that parse cursors as signed
// 64-bit integers. A Redis cursor is below the size of the (larger, while
// rehashing) hash table of the keyspace, so 49 bits would need a table of
// 2^49 buckets (4 PiB of bucket pointers); a shard cursor that does not fit
// anyway is an error reply, never a silently wrong cursor.
//
// A shard's cursor 0 means that shard is done: the proxy answers with the
// next shard's index and shard cursor 0 (so cursor 0 is shard 0 from the
// start, as it must be), or 0 after the last shard. A page can therefore be
// empty while the scan is not over, which Redis allows too.
//
// Guarantee: a key present on its shard for the whole scan is returned,
// because every shard is scanned from 0 to 0 and Redis guarantees that per
// shard. The guarantee holds while the routing table stays the same: a key
// that a table swap moves from a shard not yet scanned to one already
// scanned can be missed (and a cursor's shard index refers to the table in
// use when it is next sent).

const (
	scanShardBits = 14
	scanShardMask = 1<<scanShardBits - 1
	// scanMaxShardCursor bounds a shard cursor so the proxy cursor stays
	// below 2^63.
	scanMaxShardCursor = 1<<(63-scanShardBits) - 1
)

// scanKeyspace serves SCAN cursor [MATCH pattern] [COUNT count] [TYPE type].
// The options go to the shard unchanged, so the shard checks them and its
// error replies (a syntax error, say) reach the client as Redis words them.
func scanKeyspace(s *session, r *route, _ *command.Info, c wire.Request) {
	cursor, ok := parseScanCursor(c.Args[1])
	if !ok {
		s.errorReply("ERR invalid cursor")
		return
	}
	shard, shardCursor := int(cursor&scanShardMask), cursor>>scanShardBits
	nshards := len(r.pools)
	if shard >= nshards {
		// Not a cursor this table can have given out: Redis would start
		// somewhere arbitrary, but the proxy cannot tell which shards such
		// a cursor has covered.
		s.errorReply("ERR invalid cursor")
		return
	}
	raw := make([]byte, 0, len(c.Raw)+24)
	raw = resp.AppendArrayHeader(raw, len(c.Args))
	raw = resp.AppendBulk(raw, c.Args[0])
	raw = resp.AppendBulk(raw, strconv.AppendUint(nil, shardCursor, 10))
	for _, a := range c.Args[2:] {
		raw = resp.AppendBulk(raw, a)
	}
	i := s.stageTo(shard, raw)
	s.calls = append(s.calls, call{first: i, n: 1, merge: scanMerger(shard, nshards, r.pools[shard].Addr)})
}

// scanMerger rewrites the shard's [cursor, keys] reply with the proxy cursor.
func scanMerger(shard, nshards int, addr string) merger {
	return func(s *session, c *call, out []byte) []byte {
		reply := s.b.Results[c.first]
		if wire.IsError(reply) {
			return append(out, reply...)
		}
		var buf [2][]byte
		elems, ok := wire.ArrayElems(reply, buf[:0])
		if !ok || len(elems) != 2 {
			return wire.AppendError(out, "ERR unexpected reply from shard")
		}
		text, ok := wire.BulkText(elems[0])
		if !ok {
			return wire.AppendError(out, "ERR unexpected reply from shard")
		}
		shardCursor, err := strconv.ParseUint(string(text), 10, 64)
		if err != nil {
			return wire.AppendError(out, "ERR unexpected reply from shard")
		}
		next, ok := nextScanCursor(shard, nshards, shardCursor)
		if !ok {
			return wire.AppendError(out, "ERR shard "+addr+" returned SCAN cursor "+string(text)+
				", too large for the proxy's cursor encoding")
		}
		out = resp.AppendArrayHeader(out, 2)
		out = resp.AppendBulk(out, strconv.AppendUint(nil, next, 10))
		return append(out, elems[1]...)
	}
}

// nextScanCursor is the proxy cursor that continues after shard answered
// shardCursor. ok is false if shardCursor does not fit the encoding.
func nextScanCursor(shard, nshards int, shardCursor uint64) (next uint64, ok bool) {
	switch {
	case shardCursor > scanMaxShardCursor:
		return 0, false
	case shardCursor != 0:
		return shardCursor<<scanShardBits | uint64(shard), true
	case shard+1 < nshards:
		return uint64(shard + 1), true
	default:
		return 0, true
	}
}

// parseScanCursor reads a cursor as Redis does (strtoul, refusing leading
// space, trailing bytes and overflow): an optional sign, then digits; the
// empty string is 0 and "-n" wraps around, as in Redis.
func parseScanCursor(b []byte) (uint64, bool) {
	neg := false
	if len(b) > 0 && (b[0] == '+' || b[0] == '-') {
		neg = b[0] == '-'
		b = b[1:]
		if len(b) == 0 {
			return 0, false
		}
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	if neg {
		n = -n
	}
	return n, true
}
