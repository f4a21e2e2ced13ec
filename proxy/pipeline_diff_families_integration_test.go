package proxy_test

import (
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
//
// This file holds familyCommand, the wide commands, hashes, lists, sets,
// sorted sets and the families' errors; strings, bitmaps and HyperLogLogs
// are in pipeline_diff_strings_integration_test.go, streams and geo in
// pipeline_diff_streams_geo_integration_test.go, the commands on keys of any
// type and scripts in pipeline_diff_generic_integration_test.go.

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

// familyError adds a command of the families with the wrong number
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
