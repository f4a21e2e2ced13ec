package migrate

import (
	"math/bits"

	"github.com/reshard/reshard/snapshot/rdb"
)

// The pre-flight's memory estimate: what a key will add to a target's
// used_memory, from what the scan sees of it without decoding its value
// (rdb.Entry: type, key length, Expanded, Elements, TTL). It models the
// layout of 64-bit Redis 7 with jemalloc, the allocator of every Redis
// build that matters here, and errs on the high side: a target that
// would run out of memory half-way is refused before anything is
// written, so the estimate must not be low, and a target refused for
// want of room it had is the lesser harm.
//
// Calibrated against INFO memory: the used_memory a restore into an
// empty Redis 7.0.15 added, for each kind of value, measured by
// TestRestoreMemoryEstimate (which fails outside 1 to 2). Estimate (margin
// included) over measured, 2026-12:
//
//	kind                        keys   measured a key  estimate/measured
//	string int (12 digits)      5000        92 B        1.15
//	string embstr (20 B)        5000       109 B        1.13
//	string raw (200 B)          5000       301 B        1.11
//	string embstr with a TTL    5000       166 B        1.17
//	DEBUG POPULATE             20000        93 B        1.13
//	list, quicklist of 1 node   1000       345 B        1.07
//	list, quicklist (5000 el.)    20    111387 B        1.14
//	hash listpack (10 fields)   1000       320 B        1.15
//	hash hashtable (300 f.)       20     12363 B        1.10
//	set intset (20)             1000       159 B        1.21
//	set hashtable (200)         1000     11776 B        1.21
//	set hashtable (1000)          10     72331 B        1.22
//	zset listpack (10)          1000       160 B        1.32
//	zset skiplist (500)           20     55716 B        1.20
//	stream (200 entries)         100      5402 B        1.08
//	stream, 2 groups, 250 PEL    100     24440 B        1.32
//	every type and encoding      525       894 B        1.08
//	(the test's populate: LZF strings, plain list nodes, TTLs)
//
// (Set listpacks need Redis 7.2; the test measures them there.)
//
// The old figure, RDB bytes plus 64 B a key, was about 0.9 of what small
// strings take and 0.2 to 0.3 of what a hashtable hash, a set or a
// skiplist zset takes (hash hashtable: 60 KB of RDB plus 1.3 KB for 20
// keys against 247 KB used), whose RDB holds bare strings but whose
// memory holds a dict entry, a bucket and an allocation per element.
//
// What it does not model: a target whose *-max-listpack-* settings
// differ from the source's converts values to the other encoding on load
// (a listpack hash that becomes a hashtable takes several times more);
// list-compress-depth on the target takes less. Both are rare for a
// restore into fresh shards of the same Redis.

// memMargin is the share added to the sum of the estimates: for jemalloc
// rounding the model averages (it sees a value's total and count, not
// each element's length), the main dict's table during a rehash (three
// tables' worth of buckets for a while), and fragmentation inside the
// listpacks Redis re-encodes on load.
const memMargin = 0.10

// jemalloc returns the size class jemalloc serves a request of n bytes
// from: multiples of 16 up to 128, then four classes per doubling.
func jemalloc(n int64) int64 {
	switch {
	case n <= 8:
		return 8
	case n <= 128:
		return (n + 15) &^ 15
	}
	step := int64(1) << (bits.Len64(uint64(n-1)) - 3)
	return (n + step - 1) / step * step
}

// sdsSize is the allocation of an sds string of n bytes: header, bytes,
// terminator. The 3-byte header of sdshdr8 is used below 256 bytes
// (Redis uses a 1-byte one below 32 for some strings: a byte or two
// high).
func sdsSize(n int64) int64 {
	hdr := int64(3)
	switch {
	case n >= 1<<32:
		hdr = 17
	case n >= 1<<16:
		hdr = 9
	case n >= 1<<8:
		hdr = 5
	}
	return jemalloc(hdr + n + 1)
}

// Sizes of Redis 7 structures on 64-bit builds, allocated.
const (
	robjSize      = 16 // redisObject
	dictEntrySize = 32 // dictEntry (24 B) as jemalloc serves it
	bucketSize    = 16 // a table slot (8 B) at a load factor between 0.5 and 1
	dictSize      = 64 // dict (56 B)
	quicklistSize = 48 // quicklist (40 B)
	qlNodeSize    = 48 // quicklistNode (36 B)
	embstrMax     = 44 // the longest string stored as one embstr allocation
	// A skiplist node is 24 B plus 16 B a level, 1.33 levels on average
	// (p = 1/4): 48 B for most nodes, 64 B or 80 B for some.
	zslNodeSize = 56
	// A sorted set's skiplist: zset, zskiplist and a 32-level header.
	zsetFixed = 16 + 32 + 640
	// A stream: the stream struct, its rax and the radix nodes of its
	// listpack nodes' keys; and per element (a listpack node, or a
	// pending entry of a group or a consumer, whose 16-byte id and
	// delivery record the RDB bytes already count) what the radix trees
	// and the streamNACK add. Measured: 76 B a pending entry in all
	// (group and consumer), of which the RDB holds 41.
	streamFixed   = 768
	streamElement = 32
)

// MemoryEstimate is what key e (read with values skipped) is expected to
// add to the used_memory of the Redis it is restored into, margin
// included: the pre-flight's estimate, calibrated as said above. reshard
// plan --by memory weighs slots by it.
func MemoryEstimate(e *rdb.Entry) int64 { return withMargin(memEstimate(e)) }

// memEstimate is what one key is expected to add to a target's
// used_memory (before memMargin).
func memEstimate(e *rdb.Entry) int64 {
	n := int64(dictEntrySize) + bucketSize + sdsSize(int64(len(e.Key)))
	if e.ExpireMs >= 0 {
		// The expires dict shares the key: an entry and a bucket, and
		// its rehashes (57 B a key measured).
		n += dictEntrySize + 2*bucketSize
	}
	return n + valueEstimate(e.Type, e.Expanded, e.Elements)
}

// valueEstimate is the memory of a value: its object and what hangs off
// it. size is rdb.Entry.Expanded, elements rdb.Entry.Elements.
func valueEstimate(typ byte, size, elements int64) int64 {
	// perString is the allocation of one of k strings that share size
	// bytes of the RDB (each has a length prefix of a byte or more).
	perString := func(size, k int64) int64 {
		if k <= 0 {
			return 0
		}
		return sdsSize(max(size/k-1, 0))
	}
	switch typ {
	case rdb.TypeString:
		if size-1 <= embstrMax {
			return jemalloc(robjSize + 3 + size)
		}
		return robjSize + sdsSize(size)
	case rdb.TypeHashZipmap, rdb.TypeListZiplist, rdb.TypeSetIntset, rdb.TypeZSetZiplist,
		rdb.TypeHashZiplist, rdb.TypeHashListpack, rdb.TypeZSetListpack, rdb.TypeSetListpack,
		rdb.TypeHashListpackEx, rdb.TypeHashListpackExPreGA:
		return robjSize + jemalloc(size)
	case rdb.TypeListQuicklist, rdb.TypeListQuicklist2:
		nodes := max(elements, 1)
		return robjSize + quicklistSize + nodes*(qlNodeSize+jemalloc(size/nodes+1))
	case rdb.TypeList:
		// Elements one by one, loaded into listpacks of about 8 KiB:
		// a listpack entry adds up to 11 bytes of encoding and back
		// length.
		lp := size + 11*elements
		nodes := lp/8192 + 1
		return robjSize + quicklistSize + nodes*(qlNodeSize+jemalloc(lp/nodes+1))
	case rdb.TypeSet:
		return robjSize + dictSize + elements*(dictEntrySize+bucketSize+perString(size, elements))
	case rdb.TypeHash, rdb.TypeHashMetadata, rdb.TypeHashMetadataPreGA:
		return robjSize + dictSize + elements*(dictEntrySize+bucketSize+2*perString(size, 2*elements))
	case rdb.TypeZSet, rdb.TypeZSet2:
		// Binary scores take 8 bytes of the RDB a member, text ones up
		// to 18: the member strings hold the rest.
		members := size - 8*elements
		if typ == rdb.TypeZSet {
			members = size - 18*elements
		}
		return robjSize + zsetFixed + dictSize + elements*(dictEntrySize+bucketSize+zslNodeSize+perString(max(members, elements), elements))
	case rdb.TypeStreamListpacks, rdb.TypeStreamListpacks2, rdb.TypeStreamListpacks3:
		return robjSize + streamFixed + size + elements*streamElement
	}
	// Module values and anything unknown: twice the RDB bytes, a guess
	// (module values are refused anyway).
	return robjSize + 2*size
}

// withMargin adds memMargin to an estimate.
func withMargin(n int64) int64 { return n + int64(float64(n)*memMargin) }
