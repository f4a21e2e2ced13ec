package proxy_test

import (
	"crypto/sha1"
	"encoding/hex"
	"slices"
	"strconv"
)

// More command families for the differential pipeline test: hashes, lists,
// sets and sorted sets beyond the basic commands, strings, bitmaps,
// HyperLogLogs, streams, geo, COPY, RENAME, RESTORE, SORT, expiry with
// options, scripts and functions, wrong arity and syntax for them, now and
// then a command of thousands of arguments, and a sixth of them in lower
// case. keyCommand reaches them (familyCommand), so they run in
// transactions and under CLIENT REPLY too. Multi-key commands take tagged
// keys only (one slot); replies Redis leaves to chance are avoided or made
// deterministic:
//   - HRANDFIELD, SRANDMEMBER and SPOP only with a count above any size the
//     generator builds (the whole hash or set: compared sorted), and never
//     so inside MULTI, where EXEC's reply is compared in order;
//   - stream ids are explicit (the generator's own, always rising, or
//     MS-* of a time it chose), never *; XPENDING only in its summary form,
//     XINFO only GROUPS and STREAM without FULL: the others show times;
//   - an expiry a command sets is removed by the next (PERSIST), after
//     (P)EXPIRETIME has read it back where it is a fixed time;
//   - SORT never shows the order a set is read in (sortCommand);
//   - GEOSEARCH with ASC or DESC, never ANY;
//   - one function library at a time, of one function: FUNCTION LIST and
//     DUMP show libraries and functions in a dictionary's order.
//
// LCS's keys (pdLCS) hold short strings only: SET, MSETNX and SETRANGE at a
// small offset write them, never COPY, RENAME, APPEND or a large value. LCS
// takes time and memory of the product of its strings' lengths, so on the
// megabyte values of pdStrings it would not end.

var (
	pdBits    = []string{"{t}b0", "{t}b1"}
	pdHLLs    = []string{"{t}p0", "{t}p1"}
	pdStreams = []string{"{t}x0", "{t}x1"}
	pdGeos    = []string{"{t}g0", "{t}g1"}
	pdLCS     = []string{"{t}c0", "{t}c1"}
	// every family's keys, for commands on keys of any type
	pdAllTagged = slices.Concat(pdStrings, pdLists, pdHashes, pdZsets, pdSets, pdBits, pdHLLs, pdStreams, pdGeos, pdLCS)
)

// familyCommand adds a command of one of the families above, or a short run
// of them; tagged keeps its keys in the transactions' slot.
func (g *pipeGen) familyCommand(tagged bool) {
	if g.rng.Intn(6) == 0 {
		// keywords in lower case (STREAMS, STORE, GET, BY, LIMIT, ...),
		// which the proxy must find to route the command by its keys
		g.lower = true
		defer func() { g.lower = false }()
	}
	if g.rng.Intn(40) == 0 && !g.small {
		g.wideCommand(tagged)
		return
	}
	switch g.rng.Intn(12) {
	case 11:
		g.scriptCommand(tagged)
	case 0:
		g.hashCommand(tagged)
	case 1:
		g.listCommand(tagged)
	case 2:
		g.setMoreCommand(tagged)
	case 3:
		g.zsetMoreCommand(tagged)
	case 4:
		g.stringCommand(tagged)
	case 5:
		g.bitmapCommand(tagged)
	case 6:
		g.hllCommand(tagged)
	case 7, 8:
		g.streamCommand(tagged)
	case 9:
		g.geoCommand(tagged)
	case 10:
		g.genericCommand(tagged)
	}
}

// wideCommand adds a command of many arguments, which the proxy may read
// in several parts: a list, a sorted set or a HyperLogLog of hundreds to
// thousands of elements, or a stream entry of many fields. Not of a set or
// a hash: past 128 elements their order is a dictionary's, and SRANDMEMBER
// and HRANDFIELD count on fewer than 100.
func (g *pipeGen) wideCommand(tagged bool) {
	n := 200 + g.rng.Intn(3000)
	var args []string
	switch g.rng.Intn(5) {
	case 0, 1:
		args = []string{g.pick([]string{"RPUSH", "LPUSH"}), g.key(pdLists, tagged)}
		for i := range n {
			args = append(args, g.pick([]string{"a", "b", strconv.Itoa(i)}))
		}
	case 2:
		args = []string{"ZADD", g.key(pdZsets, tagged)}
		for i := range n / 2 {
			args = append(args, strconv.Itoa(g.rng.Intn(100)), "w"+strconv.Itoa(i))
		}
	case 3:
		args = []string{"PFADD", g.key(pdHLLs, tagged)}
		for i := range n {
			args = append(args, "e"+strconv.Itoa(i))
		}
	case 4:
		args = []string{"XADD", g.key(pdStreams, tagged), g.xid()}
		for i := range n / 10 {
			args = append(args, "f"+strconv.Itoa(i), g.value())
		}
	}
	name := args[0] // push may change its case
	g.add(args...)
	if name != "PFADD" && g.rng.Intn(2) == 0 {
		// the wide reply back
		switch name {
		case "ZADD":
			g.add("ZRANGE", args[1], "0", "-1", "WITHSCORES")
		case "XADD":
			g.add("XRANGE", args[1], args[2], args[2])
		default:
			g.add("LRANGE", args[1], "0", "-1")
		}
	}
}

func (g *pipeGen) num(lo, hi int) string { return strconv.Itoa(lo + g.rng.Intn(hi-lo+1)) }

// elem is a list element, from few enough that LINSERT, LPOS and LREM find
// some.
func (g *pipeGen) elem() string {
	if g.rng.Intn(4) == 0 {
		return g.value()
	}
	return g.pick([]string{"a", "b", "c", "1", "2", "10", "-3"})
}

func (g *pipeGen) field() string { return "f" + strconv.Itoa(g.rng.Intn(8)) }

func (g *pipeGen) hashCommand(tagged bool) {
	k := g.key(pdHashes, tagged)
	switch g.rng.Intn(13) {
	case 0, 1:
		g.add("HINCRBY", k, g.field(), g.num(-20, 20))
	case 2:
		g.add("HINCRBYFLOAT", k, g.field(), g.pick([]string{"1.5", "-0.25", "1e3", "3.0000000000000004", "10", "abc", "inf"}))
	case 3:
		g.add("HSETNX", k, g.field(), g.value())
	case 4:
		g.add("HDEL", k, g.field(), g.field())
	case 5:
		g.add("HSTRLEN", k, g.field())
	case 6:
		g.add("HEXISTS", k, g.field())
	case 7:
		g.add("HLEN", k)
	case 8:
		g.add("HMGET", k, g.field(), g.field(), g.field())
	case 9:
		g.add(g.pick([]string{"HKEYS", "HVALS"}), k)
	case 10:
		g.add("HMSET", k, g.field(), g.value(), g.field(), g.value())
	case 11:
		if tagged {
			g.add("HRANDFIELD", k, "0")
			return
		}
		// a count above the hash's size: the whole hash
		args := []string{"HRANDFIELD", k, "100"}
		if g.rng.Intn(2) == 0 {
			args = append(args, "WITHVALUES")
		}
		g.push(pcmd{args: args, unordered: true})
	case 12:
		g.add("HSET", k, g.field(), g.pick([]string{"7", "-2", "1.5", "x"}))
	}
}

func (g *pipeGen) listCommand(tagged bool) {
	k := g.key(pdLists, tagged)
	dir := func() string { return g.pick([]string{"LEFT", "RIGHT"}) }
	switch g.rng.Intn(16) {
	case 0, 1:
		g.add("LINSERT", k, g.pick([]string{"BEFORE", "AFTER"}), g.elem(), g.elem())
	case 2, 3:
		args := []string{"LPOS", k, g.elem()}
		if g.rng.Intn(2) == 0 {
			args = append(args, "RANK", g.pick([]string{"1", "2", "-1", "-2", "0"}))
		}
		if g.rng.Intn(2) == 0 {
			args = append(args, "COUNT", g.num(0, 3))
		}
		if g.rng.Intn(3) == 0 {
			args = append(args, "MAXLEN", g.num(0, 5))
		}
		g.add(args...)
	case 4:
		g.add("LSET", k, g.num(-4, 4), g.elem())
	case 5:
		g.add("LTRIM", k, g.num(-3, 2), g.num(-2, 12))
	case 6:
		g.add("LREM", k, g.num(-2, 2), g.elem())
	case 7:
		g.add("RPOPLPUSH", g.pick(pdLists), g.pick(pdLists))
	case 8:
		args := []string{"LMPOP", "2", g.pick(pdLists), g.pick(pdLists), dir()}
		if g.rng.Intn(2) == 0 {
			args = append(args, "COUNT", g.num(1, 3))
		}
		g.add(args...)
	case 9:
		g.add("LINDEX", k, g.num(-3, 3))
	case 10:
		args := []string{g.pick([]string{"LPOP", "RPOP"}), k}
		if g.rng.Intn(2) == 0 {
			args = append(args, g.num(0, 3))
		}
		g.add(args...)
	case 11:
		g.add(g.pick([]string{"LPUSHX", "RPUSHX"}), k, g.elem(), g.elem())
	case 12:
		if g.rng.Intn(4) == 0 {
			// blocking for 10 ms at most when the lists are empty
			g.add("BLMPOP", "0.01", "2", g.pick(pdLists), g.pick(pdLists), dir(), "COUNT", g.num(1, 3))
		} else {
			g.add("RPUSH", k, g.elem(), g.elem(), g.elem())
		}
	case 13:
		g.add("LMOVE", g.pick(pdLists), g.pick(pdLists), dir(), dir())
	case 14:
		g.add("LRANGE", k, g.num(-4, 2), g.num(-2, 8))
	case 15:
		g.add("RPUSH", k, g.elem(), g.elem())
	}
}

func (g *pipeGen) setMoreCommand(tagged bool) {
	k := g.key(pdSets, tagged)
	member := func() string { return g.pick([]string{"a", "b", "1", "2", "m1", "\x00\xff"}) }
	switch g.rng.Intn(9) {
	case 0:
		args := []string{"SINTERCARD", "2", g.pick(pdSets), g.pick(pdSets)}
		if g.rng.Intn(2) == 0 {
			args = append(args, "LIMIT", g.num(0, 3))
		}
		g.add(args...)
	case 1:
		g.add("SMOVE", g.pick(pdSets), g.pick(pdSets), member())
	case 2:
		if tagged {
			g.add("SINTERCARD", "1", k)
		} else {
			g.push(pcmd{args: []string{"SDIFF", g.pick(pdSets), g.pick(pdSets)}, unordered: true})
		}
	case 3:
		g.add(g.pick([]string{"SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"}), g.pick(pdSets), g.pick(pdSets), g.pick(pdSets))
	case 4:
		g.add("SISMEMBER", k, member())
	case 5:
		g.add("SCARD", k)
	case 6:
		// a count above the set's size: the whole set
		if tagged {
			g.add("SCARD", k)
		} else {
			g.push(pcmd{args: []string{g.pick([]string{"SRANDMEMBER", "SPOP"}), k, "100"}, unordered: true})
		}
	case 7:
		g.add("SADD", k, "1", "2", "3") // an intset, unless it holds more
	case 8:
		g.add("SADD", k, member(), member())
	}
}

func (g *pipeGen) zsetMoreCommand(tagged bool) {
	k := g.key(pdZsets, tagged)
	member := func() string { return "m" + strconv.Itoa(g.rng.Intn(5)) }
	score := func() string {
		return g.pick([]string{"1", "1.5", "-2", "0.1", "1e3", "inf", "-inf", "0", "2"})
	}
	lo := func() string { return g.pick([]string{"-inf", "(1", "1", "0", "(0.1", "-2"}) }
	hi := func() string { return g.pick([]string{"+inf", "(2", "2", "1.5", "1e3", "(-inf"}) }
	lexLo := func() string { return g.pick([]string{"-", "[m1", "(m1", "[a"}) }
	lexHi := func() string { return g.pick([]string{"+", "[m3", "(m2", "[z"}) }
	limit := func(args []string) []string {
		if g.rng.Intn(2) == 0 {
			args = append(args, "LIMIT", g.num(0, 2), g.num(-1, 3))
		}
		return args
	}
	withScores := func(args []string) []string {
		if g.rng.Intn(2) == 0 {
			args = append(args, "WITHSCORES")
		}
		return args
	}
	two := []string{g.pick(pdZsets), g.pick(pdZsets)}
	if g.rng.Intn(4) == 0 {
		two[1] = g.pick(pdGeos) // sorted sets too
	}
	weights := func(args []string, agg bool) []string {
		if agg && g.rng.Intn(2) == 0 {
			args = append(args, "WEIGHTS", g.pick([]string{"1", "2", "0", "-1", "0.5"}), g.pick([]string{"1", "inf", "3"}))
		}
		if agg && g.rng.Intn(2) == 0 {
			args = append(args, "AGGREGATE", g.pick([]string{"SUM", "MIN", "MAX"}))
		}
		return args
	}
	switch g.rng.Intn(20) {
	case 0, 1:
		args := []string{"ZADD", k}
		for _, opt := range []string{"NX", "XX", "GT", "LT", "CH"} {
			if g.rng.Intn(5) == 0 {
				args = append(args, opt)
			}
		}
		if g.rng.Intn(4) == 0 {
			args = append(args, "INCR", score(), member())
		} else {
			args = append(args, score(), member(), score(), member())
		}
		g.add(args...)
	case 2:
		g.add(withScores(limit([]string{"ZRANGEBYSCORE", k, lo(), hi()}))...)
	case 3:
		g.add(withScores(limit([]string{"ZREVRANGEBYSCORE", k, hi(), lo()}))...)
	case 4:
		g.add(limit([]string{g.pick([]string{"ZRANGEBYLEX", "ZREVRANGEBYLEX"}), k, lexLo(), lexHi()})...)
	case 5:
		switch g.rng.Intn(3) {
		case 0:
			g.add(withScores(limit([]string{"ZRANGE", k, hi(), lo(), "BYSCORE", "REV"}))...)
		case 1:
			g.add(limit([]string{"ZRANGE", k, lexLo(), lexHi(), "BYLEX"})...)
		case 2:
			g.add(withScores([]string{"ZRANGE", k, g.num(-3, 1), g.num(-2, 4), "REV"})...)
		}
	case 6:
		if g.rng.Intn(2) == 0 {
			g.add("ZRANGESTORE", g.pick(pdZsets), g.pick(pdZsets), g.num(-3, 1), g.num(-1, 4))
		} else {
			g.add(limit([]string{"ZRANGESTORE", g.pick(pdZsets), g.pick(pdZsets), lo(), hi(), "BYSCORE"})...)
		}
	case 7, 8:
		cmd := g.pick([]string{"ZUNION", "ZINTER", "ZDIFF"})
		g.add(withScores(weights(append([]string{cmd, "2"}, two...), cmd != "ZDIFF"))...)
	case 9:
		cmd := g.pick([]string{"ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE"})
		g.add(weights(append([]string{cmd, g.pick(pdZsets), "2"}, two...), cmd != "ZDIFFSTORE")...)
	case 10:
		args := append([]string{"ZINTERCARD", "2"}, two...)
		if g.rng.Intn(2) == 0 {
			args = append(args, "LIMIT", g.num(0, 2))
		}
		g.add(args...)
	case 11:
		args := []string{"ZMPOP", "2", g.pick(pdZsets), g.pick(pdZsets), g.pick([]string{"MIN", "MAX"})}
		if g.rng.Intn(2) == 0 {
			args = append(args, "COUNT", g.num(1, 3))
		}
		if g.rng.Intn(5) == 0 {
			args = append([]string{"BZMPOP", "0.01"}, args[1:]...) // 10 ms at most
		}
		g.add(args...)
	case 12:
		g.add(g.pick([]string{"ZRANK", "ZREVRANK"}), k, member())
	case 13:
		g.add("ZCOUNT", k, lo(), hi())
	case 14:
		g.add("ZLEXCOUNT", k, lexLo(), lexHi())
	case 15:
		g.add("ZREM", k, member(), member())
	case 16:
		args := []string{g.pick([]string{"ZPOPMIN", "ZPOPMAX"}), k}
		if g.rng.Intn(2) == 0 {
			args = append(args, g.num(0, 3))
		}
		g.add(args...)
	case 17:
		g.add("ZCARD", k)
	case 18:
		switch g.rng.Intn(3) {
		case 0:
			g.add("ZREMRANGEBYRANK", k, g.num(-2, 0), g.num(0, 1))
		case 1:
			g.add("ZREMRANGEBYSCORE", k, lo(), hi())
		case 2:
			g.add("ZREMRANGEBYLEX", k, lexLo(), lexHi())
		}
	case 19:
		g.add("ZADD", k, "0", "a", "0", "b", "0", "c") // one score: for BYLEX
	}
}

// lcsValue is a short string of few letters, so that LCS finds matches.
func (g *pipeGen) lcsValue() string {
	b := make([]byte, g.rng.Intn(16))
	for i := range b {
		b[i] = "abcde"[g.rng.Intn(5)]
	}
	return string(b)
}

func (g *pipeGen) stringCommand(tagged bool) {
	k := g.key(pdStrings, tagged)
	switch g.rng.Intn(18) {
	case 0:
		g.add("GETRANGE", k, g.num(-5, 3), g.num(-3, 10))
	case 1:
		g.add("SETRANGE", g.pick(slices.Concat(pdStrings, pdLCS)), g.num(0, 20), g.lcsValue())
	case 2:
		// an expiry undone by the next command, or one of its own
		switch g.rng.Intn(3) {
		case 0:
			g.add("GETEX", k, "PERSIST")
		case 1:
			g.add("GETEX", k, g.pick([]string{"EX", "PX"}), "100000")
			g.add("PERSIST", k)
		case 2:
			g.add("GETEX", k, g.pick([]string{"EXAT", "PXAT"}), "4102444800000")
			g.add(g.pick([]string{"EXPIRETIME", "PEXPIRETIME"}), k)
			g.add("PERSIST", k)
		}
	case 3:
		g.add("GETDEL", k)
	case 4:
		g.add("SETNX", k, g.value())
	case 5:
		args := []string{"MSETNX"}
		for range 1 + g.rng.Intn(3) {
			if g.rng.Intn(2) == 0 {
				args = append(args, g.pick(pdLCS), g.lcsValue())
			} else {
				args = append(args, g.pick(pdStrings), g.value())
			}
		}
		g.add(args...)
	case 6:
		if g.rng.Intn(2) == 0 {
			g.add("SET", k, g.pick([]string{"1", "-2.5", "1e2", "0.1", "17.000", "3e-5"}))
		}
		g.add("INCRBYFLOAT", k, g.pick([]string{"1.5", "-0.1", "1e3", "5.0e3", "abc", "0.30000000000000004", "-7"}))
	case 7:
		if g.rng.Intn(2) == 0 {
			g.add("DECR", k)
		} else {
			g.add("DECRBY", k, g.num(-5, 5))
		}
	case 8:
		g.add("GETSET", k, g.value())
	case 9:
		args := []string{"SET", k, g.value()}
		switch g.rng.Intn(4) {
		case 0:
			args = append(args, "EX", "100000")
		case 1:
			args = append(args, "PX", "100000", "GET")
		case 2:
			args = append(args, "KEEPTTL", "XX")
		case 3:
			args = append(args, "NX", "GET")
		}
		g.add(args...)
		g.add("PERSIST", k)
	case 10:
		g.add(g.pick([]string{"SETEX", "PSETEX"}), k, g.pick([]string{"100000", "0", "-5"}), g.value())
		g.add("PERSIST", k)
	case 11, 12, 13:
		args := []string{"LCS", g.pick(pdLCS), g.pick(pdLCS)}
		switch g.rng.Intn(4) {
		case 0:
			args = append(args, "LEN")
		case 1:
			args = append(args, "IDX")
			if g.rng.Intn(2) == 0 {
				args = append(args, "MINMATCHLEN", g.num(0, 3))
			}
			if g.rng.Intn(2) == 0 {
				args = append(args, "WITHMATCHLEN")
			}
		}
		g.add(args...)
	case 14, 15:
		g.add("SET", g.pick(pdLCS), g.lcsValue())
	case 16:
		g.add("SUBSTR", k, g.num(0, 2), g.num(0, 5))
	case 17:
		g.add(g.pick([]string{"GET", "STRLEN"}), g.pick(pdLCS))
	}
}

func (g *pipeGen) bitmapCommand(tagged bool) {
	k := g.key(pdBits, tagged)
	if g.rng.Intn(6) == 0 {
		k = g.pick(pdStrings)
	}
	unit := func(args []string) []string {
		if g.rng.Intn(2) == 0 {
			args = append(args, g.pick([]string{"BYTE", "BIT"}))
		}
		return args
	}
	bfType := func() string { return g.pick([]string{"u8", "i8", "u4", "i5", "u1", "i64", "u63", "u64"}) }
	switch g.rng.Intn(12) {
	case 0, 1, 2:
		g.add("SETBIT", k, g.num(0, 300), g.pick([]string{"0", "1", "1", "2"}))
	case 3:
		g.add("GETBIT", k, g.num(0, 300))
	case 4:
		args := []string{"BITCOUNT", k}
		if g.rng.Intn(3) != 0 {
			args = unit(append(args, g.num(-3, 3), g.num(-2, 40)))
		}
		g.add(args...)
	case 5:
		args := []string{"BITPOS", k, g.pick([]string{"0", "1"})}
		switch g.rng.Intn(3) {
		case 1:
			args = append(args, g.num(-3, 5))
		case 2:
			args = unit(append(args, g.num(-3, 5), g.num(-2, 40)))
		}
		g.add(args...)
	case 6, 7:
		srcs := slices.Concat(pdBits, pdStrings[:2])
		op := g.pick([]string{"AND", "OR", "XOR", "NOT"})
		args := []string{"BITOP", op, g.pick(pdBits), g.pick(srcs)}
		if op != "NOT" || g.rng.Intn(4) == 0 { // NOT takes one source
			args = append(args, g.pick(srcs))
		}
		g.add(args...)
	case 8, 9:
		args := []string{"BITFIELD", k}
		for range 1 + g.rng.Intn(3) {
			switch g.rng.Intn(4) {
			case 0:
				args = append(args, "GET", bfType(), g.pick([]string{"0", "3", "#1", "100"}))
			case 1:
				args = append(args, "SET", bfType(), g.pick([]string{"0", "5", "#2"}), g.num(-300, 300))
			case 2:
				args = append(args, "INCRBY", bfType(), g.pick([]string{"0", "8", "#0"}), g.num(-200, 200))
			case 3:
				args = append(args, "OVERFLOW", g.pick([]string{"WRAP", "SAT", "FAIL"}))
			}
		}
		g.add(args...)
	case 10:
		g.add("BITFIELD_RO", k, "GET", bfType(), g.num(0, 20))
	case 11:
		g.add("GET", g.pick(pdBits))
	}
}

func (g *pipeGen) hllCommand(tagged bool) {
	k := g.key(pdHLLs, tagged)
	elems := func(args []string) []string {
		for range g.rng.Intn(5) {
			args = append(args, g.pick([]string{"a", "b", "c", "d", "1", "2", "\x00"}))
		}
		return args
	}
	switch g.rng.Intn(6) {
	case 0, 1, 2:
		g.add(elems([]string{"PFADD", k})...)
	case 3:
		g.add("PFCOUNT", k)
	case 4:
		g.add(append([]string{"PFCOUNT"}, g.keys(pdHLLs, 3)...)...)
	case 5:
		g.add(append([]string{"PFMERGE", g.pick(pdHLLs)}, g.keys(pdHLLs, 2)...)...)
	}
}

// xid returns a stream id above any the generator gave before, so that
// XADD with it succeeds.
func (g *pipeGen) xid() string {
	g.xseq += 1 + g.rng.Intn(2)
	id := strconv.Itoa(g.xseq/3+1) + "-" + strconv.Itoa(g.xseq%3)
	g.xids = append(g.xids, id)
	if len(g.xids) > 8 {
		g.xids = g.xids[1:]
	}
	return id
}

// oldXid returns an id the generator gave lately, or one below all of them.
func (g *pipeGen) oldXid() string {
	if len(g.xids) == 0 || g.rng.Intn(6) == 0 {
		return g.pick([]string{"0-1", "1-0", "1"})
	}
	return g.pick(g.xids)
}

func (g *pipeGen) streamCommand(tagged bool) {
	k := g.key(pdStreams, tagged)
	group := func() string { return g.pick([]string{"g1", "g1", "g2"}) }
	consumer := func() string { return g.pick([]string{"c1", "c2"}) }
	r := g.rng.Intn(22)
	if r >= 12 && r < 20 && g.rng.Intn(3) == 0 {
		// a group to read in, often there already (-BUSYGROUP)
		g.add("XGROUP", "CREATE", k, group(), g.pick([]string{"0", "$"}), "MKSTREAM")
	}
	switch r {
	case 0, 1, 2, 3:
		args := []string{"XADD", k}
		if g.rng.Intn(8) == 0 {
			args = append(args, "NOMKSTREAM")
		}
		switch g.rng.Intn(8) {
		case 0:
			args = append(args, "MAXLEN", "=", g.num(0, 5))
		case 1:
			args = append(args, "MINID", "=", g.oldXid())
		}
		switch r := g.rng.Intn(10); {
		case r == 0:
			args = append(args, g.oldXid()) // mostly an error: not above the last
		case r == 1:
			g.xseq += 3
			args = append(args, strconv.Itoa(g.xseq/3+1)+"-*") // a time of its own, the next sequence
		default:
			args = append(args, g.xid())
		}
		args = append(args, g.field(), g.value())
		if g.rng.Intn(3) == 0 {
			args = append(args, g.field(), g.value())
		}
		g.add(args...)
	case 4:
		g.add("XLEN", k)
	case 5, 6:
		args := []string{"XRANGE", k, g.pick([]string{"-", g.oldXid(), "(" + g.oldXid()}), "+"}
		if g.rng.Intn(2) == 0 {
			args = append(args, "COUNT", g.num(0, 3))
		}
		g.add(args...)
	case 7:
		g.add("XREVRANGE", k, "+", g.pick([]string{"-", g.oldXid()}), "COUNT", g.num(1, 4))
	case 8:
		if g.rng.Intn(2) == 0 {
			g.add("XTRIM", k, "MAXLEN", "=", g.num(0, 6))
		} else {
			g.add("XTRIM", k, "MINID", g.oldXid())
		}
	case 9:
		g.add("XDEL", k, g.oldXid(), g.oldXid())
	case 10, 11:
		args := []string{"XGROUP", "CREATE", k, group(), g.pick([]string{"0", "$", g.oldXid()})}
		if g.rng.Intn(2) == 0 {
			args = append(args, "MKSTREAM")
		}
		g.add(args...)
	case 12:
		switch g.rng.Intn(4) {
		case 0:
			g.add("XGROUP", "DESTROY", k, group())
		case 1:
			g.add("XGROUP", "CREATECONSUMER", k, group(), consumer())
		case 2:
			g.add("XGROUP", "DELCONSUMER", k, group(), consumer())
		case 3:
			g.add("XGROUP", "SETID", k, group(), g.pick([]string{"0", "$", g.oldXid()}))
		}
	case 13, 14, 15:
		args := []string{"XREADGROUP", "GROUP", group(), consumer()}
		if g.rng.Intn(2) == 0 {
			args = append(args, "COUNT", g.num(1, 3))
		}
		if g.rng.Intn(5) == 0 {
			args = append(args, "NOACK")
		}
		if g.rng.Intn(4) == 0 {
			args = append(args, "STREAMS", pdStreams[0], pdStreams[1], ">", g.pick([]string{">", "0"}))
		} else {
			args = append(args, "STREAMS", k, g.pick([]string{">", ">", "0"}))
		}
		g.add(args...)
	case 16:
		g.add("XACK", k, group(), g.oldXid(), g.oldXid())
	case 17:
		g.add("XPENDING", k, group()) // the summary: no idle times
	case 18:
		args := []string{"XCLAIM", k, group(), consumer(), "0", g.oldXid(), g.oldXid()}
		if g.rng.Intn(2) == 0 {
			args = append(args, "JUSTID")
		}
		g.add(args...)
	case 19:
		args := []string{"XAUTOCLAIM", k, group(), consumer(), "0", "0", "COUNT", g.num(1, 4)}
		if g.rng.Intn(2) == 0 {
			args = append(args, "JUSTID")
		}
		g.add(args...)
	case 20:
		// STREAM without FULL, which would show times
		g.add("XINFO", g.pick([]string{"GROUPS", "STREAM"}), k)
	case 21:
		switch g.rng.Intn(5) {
		case 0, 1:
			g.add("XREAD", "COUNT", g.num(1, 3), "STREAMS", k, g.pick([]string{"0", g.oldXid()}))
		case 2:
			g.add("XREAD", "STREAMS", pdStreams[0], pdStreams[1], "0", g.oldXid())
		case 3:
			// blocking, 10 ms at most: new entries only ($), or any
			g.add("XREAD", "BLOCK", "10", "STREAMS", k, g.pick([]string{"$", "0", g.oldXid()}))
		case 4:
			g.add("XREADGROUP", "BLOCK", "10", "GROUP", group(), consumer(), "COUNT", "2", "STREAMS", k, ">")
		}
	}
}

func (g *pipeGen) geoCommand(tagged bool) {
	k := g.key(pdGeos, tagged)
	if g.rng.Intn(6) == 0 {
		k = g.pick(pdZsets)
	}
	places := [][3]string{
		{"13.361389", "38.115556", "Palermo"},
		{"15.087269", "37.502669", "Catania"},
		{"12.496366", "41.902782", "Rome"},
		{"2.349014", "48.864716", "Paris"},
		{"-0.127758", "51.507351", "London"},
		{"200", "10", "Nowhere"}, // out of range: an error
	}
	member := func() string { return places[g.rng.Intn(len(places))][2] }
	unit := func() string { return g.pick([]string{"m", "km", "mi", "ft"}) }
	search := func(args []string) []string {
		if g.rng.Intn(2) == 0 {
			args = append(args, "FROMMEMBER", member())
		} else {
			args = append(args, "FROMLONLAT", "13.5", "38.5")
		}
		if g.rng.Intn(2) == 0 {
			args = append(args, "BYRADIUS", g.pick([]string{"100", "500", "2000"}), "km")
		} else {
			args = append(args, "BYBOX", "400", g.pick([]string{"400", "3000"}), "km")
		}
		args = append(args, g.pick([]string{"ASC", "DESC"}))
		if g.rng.Intn(3) == 0 {
			args = append(args, "COUNT", g.num(1, 3))
		}
		return args
	}
	switch g.rng.Intn(10) {
	case 0, 1, 2:
		args := []string{"GEOADD", k}
		if g.rng.Intn(5) == 0 {
			args = append(args, g.pick([]string{"NX", "XX"}))
		}
		if g.rng.Intn(5) == 0 {
			args = append(args, "CH")
		}
		for range 1 + g.rng.Intn(3) {
			p := places[g.rng.Intn(len(places))]
			args = append(args, p[0], p[1], p[2])
		}
		g.add(args...)
	case 3:
		args := []string{"GEODIST", k, member(), member()}
		if g.rng.Intn(2) == 0 {
			args = append(args, unit())
		}
		g.add(args...)
	case 4:
		g.add("GEOPOS", k, member(), member())
	case 5:
		g.add("GEOHASH", k, member(), member())
	case 6, 7:
		args := search([]string{"GEOSEARCH", k})
		for _, opt := range []string{"WITHCOORD", "WITHDIST", "WITHHASH"} {
			if g.rng.Intn(2) == 0 {
				args = append(args, opt)
			}
		}
		g.add(args...)
	case 8:
		args := search([]string{"GEOSEARCHSTORE", g.pick(pdGeos), g.pick(pdGeos)})
		if g.rng.Intn(2) == 0 {
			args = append(args, "STOREDIST")
		}
		g.add(args...)
	case 9:
		g.add("GEORADIUSBYMEMBER", k, member(), "300", "km", "ASC", "WITHDIST")
	}
}

// genericCommand adds COPY, RENAME, SORT or an expiry with options.
func (g *pipeGen) genericCommand(tagged bool) {
	// source and destination of one family, or of two (not LCS's, whose
	// values must stay short)
	pair := func() (string, string) {
		fams := [][]string{pdStrings, pdLists, pdHashes, pdZsets, pdSets, pdBits, pdHLLs, pdStreams, pdGeos}
		f := fams[g.rng.Intn(len(fams))]
		src, dst := g.pick(f), g.pick(f)
		if g.rng.Intn(4) == 0 {
			dst = g.pick(fams[g.rng.Intn(len(fams))])
		}
		return src, dst
	}
	opt := func(args []string) []string {
		if g.rng.Intn(3) != 0 {
			args = append(args, g.pick([]string{"NX", "XX", "GT", "LT"}))
		}
		return args
	}
	switch g.rng.Intn(10) {
	case 0, 1:
		src, dst := pair()
		args := []string{"COPY", src, dst}
		if g.rng.Intn(2) == 0 {
			args = append(args, "REPLACE")
		}
		g.add(args...)
	case 2:
		src, dst := pair()
		g.add(g.pick([]string{"RENAME", "RENAMENX"}), src, dst)
	case 3, 4, 5:
		g.sortCommand()
	case 6, 7:
		// expiries of fixed times, read back by EXPIRETIME, and removed
		k := g.key(pdAllTagged, tagged)
		g.add(opt([]string{"EXPIREAT", k, g.pick([]string{"4102444800", "4102444900"})})...)
		g.add(opt([]string{g.pick([]string{"EXPIREAT", "PEXPIREAT"}), k, g.pick([]string{"4102444850", "4102444850000"})})...)
		g.add(g.pick([]string{"EXPIRETIME", "PEXPIRETIME"}), k)
		g.add("PERSIST", k)
	case 8:
		k := g.key(pdAllTagged, tagged)
		g.add(opt([]string{g.pick([]string{"EXPIRE", "PEXPIRE"}), k, "100000"})...)
		g.add("PERSIST", k)
	case 9:
		switch g.rng.Intn(4) {
		case 0:
			g.add(g.pick([]string{"TYPE", "EXISTS"}), g.key(pdAllTagged, tagged))
		case 1:
			// an error: no LFU policy (the frequency would differ)
			g.add("OBJECT", "FREQ", g.key(pdAllTagged, tagged))
		case 2, 3:
			g.restoreCommand(tagged)
		}
	}
}

// pdDumps are DUMP's payloads of Redis 7.0 (RDB 10): the string "hello",
// the list a b c, the sorted set m0 1 m1 2, and one with a wrong checksum.
var pdDumps = []struct{ payload, kind string }{
	{"\x00\x05hello\n\x00cr\xdfve4 \n", "string"},
	{"\x12\x01\x02\x10\x10\x00\x00\x00\x03\x00\x81a\x02\x81b\x02\x81c\x02\xff\n\x00\xc8\x18\xb9\x0c\x953R\x9e", "list"},
	{"\x11\x13\x13\x00\x00\x00\x04\x00\x82m0\x03\x01\x01\x82m1\x03\x02\x01\xff\n\x00\xe3\x96m\xedr\xba\x83w", "zset"},
	{"\x00\x05hello\n\x00cr\xdfve4 \x00", "string"},
}

// restoreCommand adds RESTORE of a payload of pdDumps, into a key of its
// type (or, now and then, any), with no expiry or one PERSIST removes.
func (g *pipeGen) restoreCommand(tagged bool) {
	d := pdDumps[g.rng.Intn(len(pdDumps))]
	kind := map[string][]string{"string": pdStrings, "list": pdLists, "zset": pdZsets}[d.kind]
	k := g.key(kind, tagged)
	ttl := g.pick([]string{"0", "0", "100000", "4102444800000"})
	args := []string{"RESTORE", k, ttl, d.payload}
	if g.rng.Intn(2) == 0 {
		args = append(args, "REPLACE")
	}
	if ttl == "4102444800000" {
		args = append(args, "ABSTTL")
	}
	if g.rng.Intn(4) == 0 {
		args = append(args, g.pick([]string{"IDLETIME", "FREQ"}), g.num(0, 100))
	}
	g.add(args...)
	if ttl != "0" {
		g.add("PERSIST", k)
	}
}

// sortCommand adds SORT or SORT_RO of a list, a sorted set or a set. BY and
// GET read the tagged strings and hashes: {t}s1 for the element 1, {t}h0's
// fields for 0. A set is read in its dictionary's order, which differs
// between servers, and any key may hold one (a key of another type's
// name, made by SADD or COPY), so the order must never show: BY a pattern
// only without ALPHA (equal weights are then ordered by the elements
// themselves; under ALPHA they keep the input's order), and BY nosort only
// with STORE (which sorts a set anyway).
func (g *pipeGen) sortCommand() {
	fams := [][]string{pdLists, pdLists, pdZsets, pdSets}
	args := []string{"SORT", g.pick(fams[g.rng.Intn(len(fams))])}
	by := ""
	switch g.rng.Intn(6) {
	case 0, 1, 2:
		by = g.pick([]string{"{t}s*", "{t}h*->f1", "{t}nokey*"})
	case 3:
		by = "nosort"
	}
	if by != "" {
		args = append(args, "BY", by)
	}
	if g.rng.Intn(3) == 0 {
		args = append(args, "LIMIT", g.num(0, 2), g.num(-1, 4))
	}
	for range g.rng.Intn(3) {
		args = append(args, "GET", g.pick([]string{"#", "{t}s*", "{t}h*->f2", "{t}nokey*"}))
	}
	if g.rng.Intn(3) == 0 {
		args = append(args, g.pick([]string{"ASC", "DESC"}))
	}
	if by == "" && g.rng.Intn(2) == 0 {
		args = append(args, "ALPHA")
	}
	switch r := g.rng.Intn(4); {
	case r == 0 || by == "nosort":
		args = append(args, "STORE", g.pick(pdLists))
	case r == 1:
		args[0] = "SORT_RO"
	}
	g.add(args...)
}

// familyError adds a command of the families above with the wrong number
// of arguments, or one the shard refuses for its syntax.
func (g *pipeGen) familyError() {
	bad := [][]string{
		{"HINCRBY", g.pick(pdHashes), "f"}, {"HSTRLEN", g.pick(pdHashes)}, {"LINSERT", g.pick(pdLists), "BEFORE", "a"},
		{"LPOS", g.pick(pdLists)}, {"SINTERCARD"}, {"SMOVE", g.pick(pdSets), g.pick(pdSets)}, {"ZADD", g.pick(pdZsets), "1"},
		{"ZRANGESTORE", g.pick(pdZsets)}, {"ZMPOP", "1"}, {"GETRANGE", g.pick(pdStrings), "0"}, {"SETRANGE", g.pick(pdStrings), "0"},
		{"LCS", g.pick(pdLCS)}, {"BITOP", "AND", g.pick(pdBits)}, {"SETBIT", g.pick(pdBits), "1"}, {"PFMERGE"},
		{"XADD", g.pick(pdStreams), "1-1"}, {"XGROUP"}, {"XACK", g.pick(pdStreams), "g1"}, {"GEOADD", g.pick(pdGeos), "1", "2"},
		{"GEODIST", g.pick(pdGeos), "a"}, {"COPY", g.pick(pdStrings)}, {"RENAME", g.pick(pdStrings)}, {"SORT"}, {"GETEX"},
	}
	syntax := [][]string{
		{"LPOS", g.pick(pdLists), "a", "RANK"}, {"SINTERCARD", "3", g.pick(pdSets)}, {"ZUNION", "0", g.pick(pdZsets)},
		{"ZADD", g.pick(pdZsets), "NX", "XX", "1", "m"}, {"BITFIELD", g.pick(pdBits), "GET", "u99", "0"},
		{"XADD", g.pick(pdStreams), "MAXLEN", "x", "1-1", "f", "v"}, {"XREADGROUP", "GROUP", "g1", "c1", "STREAMS", g.pick(pdStreams)},
		{"GEOSEARCH", g.pick(pdGeos), "BYRADIUS", "1", "km"}, {"SET", g.pick(pdStrings), "v", "EX", "0"},
		{"GETEX", g.pick(pdStrings), "EX", "10", "PX", "10"}, {"LMPOP", "2", g.pick(pdLists), g.pick(pdLists), "UP"},
		{"SORT", g.pick(pdLists), "LIMIT", "1"}, {"EXPIRE", g.pick(pdStrings), "10", "NX", "XX"},
		// out of range: refused before anything is allocated
		{"SETRANGE", g.pick(pdLCS), "536870912", "x"}, {"SETBIT", g.pick(pdBits), "4294967296", "1"},
		{"BITFIELD", g.pick(pdBits), "GET", "u8", "4294967296"}, {"EXPIRE", g.pick(pdStrings), "9223372036854775807"},
		{"PEXPIREAT", g.pick(pdStrings), "-9223372036854775808"}, {"GETEX", g.pick(pdStrings), "EX", "0"},
		{"LPOS", g.pick(pdLists), "a", "RANK", "-9223372036854775808"}, {"ZADD", g.pick(pdZsets), "nan", "m0"},
		{"INCRBYFLOAT", g.pick(pdStrings), "1e309"}, {"HINCRBY", g.pick(pdHashes), "f0", "9223372036854775808"},
		{"XADD", g.pick(pdStreams), "0-0", "f", "v"},
		// a bad number of keys, of a function that exists or not
		{g.pick([]string{"FCALL", "FCALL_RO"}), g.pick([]string{"dget", "nosuch"}), g.pick([]string{"x", "-1", "5"}), g.pick(pdStrings)},
		{"EVALSHA", "0000000000000000000000000000000000000000", g.pick([]string{"x", "-1", "5"}), g.pick(pdStrings)},
		{"RESTORE", g.pick(pdStrings), "0", "not a payload", "REPLACE"}, {"XGROUP", "CREATE", g.pick(pdStreams), "g1", "bad-id"},
	}
	if g.rng.Intn(2) == 0 {
		g.push(pcmd{args: bad[g.rng.Intn(len(bad))], badArity: true})
	} else {
		g.add(syntax[g.rng.Intn(len(syntax))]...)
	}
}

var (
	// pdLoadScripts are loaded with SCRIPT LOAD and run by their SHA1.
	pdLoadScripts = []string{"return 7", "return redis.call('get', KEYS[1])", "return redis.call('incr', KEYS[1])"}
	// pdLibraries are versions of one library, dlib, each of one function
	// (FUNCTION LIST and DUMP show a library's functions, and the
	// libraries, in a dictionary's order), and one refused.
	pdLibraries = []string{
		"#!lua name=dlib\nredis.register_function{function_name='dget', callback=function(keys, args) return redis.call('get', keys[1]) end, flags={'no-writes'}}",
		"#!lua name=dlib\nredis.register_function('dincr', function(keys, args) return redis.call('incr', keys[1]) end)",
		"#!lua name=dlib\nredis.register_function('dget', function(keys, args) return redis.call('get', keys[1]) end)",
		"#!lua name=dlib\nreturn 1", // registers no function
	}
	// pdFunctionDump is FUNCTION DUMP of Redis 7.0 with pdLibraries[0]
	// loaded.
	pdFunctionDump = "\xf5\xc3@\x84@\x97\x1f#!lua name=dlib\x0aredis.register_f\x07unction{\xc0\x08\x00_`*\x10'dget', callback=\xc0\x1e\x12(keys, args) return \x06@R@*\x01('\x806@$\x1d[1]) end, flags={'no-writes'}}\x0a\x00\x9bo >\x7f\xfe\x06\x12"
)

// scriptCommand adds EVALSHA or FCALL of a script or function loaded
// before (or not: NOSCRIPT), or, outside transactions (the proxy refuses
// keyless commands there), SCRIPT and FUNCTION, which the proxy sends to
// every shard.
func (g *pipeGen) scriptCommand(tagged bool) {
	k := g.key(pdStrings, tagged)
	r := g.rng.Intn(12)
	if tagged {
		r %= 4
	}
	switch r {
	case 0, 1:
		sum := sha1.Sum([]byte(g.pick(pdLoadScripts)))
		g.add(g.pick([]string{"EVALSHA", "EVALSHA", "EVALSHA_RO"}), hex.EncodeToString(sum[:]), "1", k)
	case 2, 3:
		g.add(g.pick([]string{"FCALL", "FCALL", "FCALL_RO"}), g.pick([]string{"dget", "dincr"}), "1", k)
	case 4, 5:
		g.add("SCRIPT", "LOAD", g.pick(pdLoadScripts))
	case 6:
		args := []string{"SCRIPT", "EXISTS"}
		for _, sc := range pdLoadScripts[:1+g.rng.Intn(len(pdLoadScripts))] {
			sum := sha1.Sum([]byte(sc))
			args = append(args, hex.EncodeToString(sum[:]))
		}
		g.add(args...)
	case 7:
		if g.rng.Intn(3) == 0 {
			g.add("SCRIPT", "FLUSH", g.pick([]string{"SYNC", "ASYNC"}))
		} else {
			g.add("FUNCTION", "FLUSH")
		}
	case 8, 9:
		args := []string{"FUNCTION", "LOAD"}
		if g.rng.Intn(2) == 0 {
			args = append(args, "REPLACE")
		}
		g.add(append(args, g.pick(pdLibraries))...)
	case 10:
		switch g.rng.Intn(4) {
		case 0:
			g.add("FUNCTION", "DELETE", g.pick([]string{"dlib", "nolib"}))
		case 1:
			args := []string{"FUNCTION", "LIST"}
			if g.rng.Intn(2) == 0 {
				args = append(args, "LIBRARYNAME", g.pick([]string{"d*", "nolib"}))
			}
			if g.rng.Intn(2) == 0 {
				args = append(args, "WITHCODE")
			}
			g.add(args...)
		default:
			g.add("FUNCTION", "DUMP")
		}
	case 11:
		args := []string{"FUNCTION", "RESTORE", pdFunctionDump}
		if g.rng.Intn(2) == 0 {
			args = append(args, g.pick([]string{"APPEND", "REPLACE", "FLUSH"}))
		}
		g.add(args...)
	}
}
