package proxy_test

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/internal/redistest"
)

const crossSlotReply = "-CROSSSLOT Keys in request don't hash to the same slot"

const shaScript = "return redis.call('get', KEYS[2])"

// crossSlotCases are multi-key commands the proxy does not split: their keys
// ($A, $B and the destination $D) must share one slot. setup runs first
// (single-key commands); stored is the key the command writes, if any.
var crossSlotCases = []struct {
	name   string
	setup  [][]string
	args   []string
	stored string
}{
	{"SUNIONSTORE", [][]string{{"SADD", "$A", "x"}, {"SADD", "$B", "y"}}, []string{"SUNIONSTORE", "$D", "$A", "$B"}, "$D"},
	{"SINTERSTORE", [][]string{{"SADD", "$A", "x", "y"}, {"SADD", "$B", "y"}}, []string{"SINTERSTORE", "$D", "$A", "$B"}, "$D"},
	{"SDIFFSTORE", [][]string{{"SADD", "$A", "x", "y"}, {"SADD", "$B", "y"}}, []string{"SDIFFSTORE", "$D", "$A", "$B"}, "$D"},
	{"SUNION", [][]string{{"SADD", "$A", "x"}, {"SADD", "$B", "x"}}, []string{"SUNION", "$A", "$B"}, ""},
	{"SINTER", [][]string{{"SADD", "$A", "x", "y"}, {"SADD", "$B", "y"}}, []string{"SINTER", "$A", "$B"}, ""},
	{"SDIFF", [][]string{{"SADD", "$A", "x", "y"}, {"SADD", "$B", "y"}}, []string{"SDIFF", "$A", "$B"}, ""},
	{"SINTERCARD", [][]string{{"SADD", "$A", "x", "y"}, {"SADD", "$B", "y"}}, []string{"SINTERCARD", "2", "$A", "$B"}, ""},
	{"SMOVE", [][]string{{"SADD", "$A", "x"}}, []string{"SMOVE", "$A", "$B", "x"}, "$B"},
	{"RENAME", [][]string{{"SET", "$A", "v"}}, []string{"RENAME", "$A", "$B"}, "$B"},
	{"RENAMENX", [][]string{{"SET", "$A", "v"}}, []string{"RENAMENX", "$A", "$B"}, "$B"},
	{"COPY", [][]string{{"SET", "$A", "v"}}, []string{"COPY", "$A", "$B"}, "$B"},
	{"MSETNX", nil, []string{"MSETNX", "$A", "1", "$B", "2"}, "$B"},
	{"LMOVE", [][]string{{"RPUSH", "$A", "x", "y"}}, []string{"LMOVE", "$A", "$B", "LEFT", "RIGHT"}, "$B"},
	{"RPOPLPUSH", [][]string{{"RPUSH", "$A", "x", "y"}}, []string{"RPOPLPUSH", "$A", "$B"}, "$B"},
	{"LMPOP", [][]string{{"RPUSH", "$B", "x", "y"}}, []string{"LMPOP", "2", "$A", "$B", "LEFT"}, ""},
	{"ZUNIONSTORE", [][]string{{"ZADD", "$A", "1", "x"}, {"ZADD", "$B", "2", "y"}}, []string{"ZUNIONSTORE", "$D", "2", "$A", "$B"}, "$D"},
	{"ZINTERSTORE", [][]string{{"ZADD", "$A", "1", "x"}, {"ZADD", "$B", "2", "x"}}, []string{"ZINTERSTORE", "$D", "2", "$A", "$B", "AGGREGATE", "MAX"}, "$D"},
	{"ZDIFFSTORE", [][]string{{"ZADD", "$A", "1", "x", "2", "y"}, {"ZADD", "$B", "1", "x"}}, []string{"ZDIFFSTORE", "$D", "2", "$A", "$B"}, "$D"},
	{"ZUNION", [][]string{{"ZADD", "$A", "1", "x"}, {"ZADD", "$B", "2", "y"}}, []string{"ZUNION", "2", "$A", "$B", "WITHSCORES"}, ""},
	{"ZINTERCARD", [][]string{{"ZADD", "$A", "1", "x"}, {"ZADD", "$B", "2", "x"}}, []string{"ZINTERCARD", "2", "$A", "$B"}, ""},
	{"ZRANGESTORE", [][]string{{"ZADD", "$A", "1", "x", "2", "y"}}, []string{"ZRANGESTORE", "$D", "$A", "0", "-1"}, "$D"},
	{"ZMPOP", [][]string{{"ZADD", "$B", "1", "x"}}, []string{"ZMPOP", "2", "$A", "$B", "MIN"}, ""},
	{"BITOP", [][]string{{"SET", "$A", "a"}, {"SET", "$B", "c"}}, []string{"BITOP", "AND", "$D", "$A", "$B"}, "$D"},
	{"PFMERGE", [][]string{{"PFADD", "$A", "x"}, {"PFADD", "$B", "y"}}, []string{"PFMERGE", "$D", "$A", "$B"}, "$D"},
	{"PFCOUNT", [][]string{{"PFADD", "$A", "x"}, {"PFADD", "$B", "y"}}, []string{"PFCOUNT", "$A", "$B"}, ""},
	{"LCS", [][]string{{"SET", "$A", "ohmytext"}, {"SET", "$B", "mynewtext"}}, []string{"LCS", "$A", "$B"}, ""},
	{"SORT STORE", [][]string{{"RPUSH", "$A", "3", "1", "2"}}, []string{"SORT", "$A", "STORE", "$B"}, "$B"},
	{"GEORADIUS STORE", [][]string{{"GEOADD", "$A", "0", "0", "p"}}, []string{"GEORADIUS", "$A", "0", "0", "100", "km", "STORE", "$B"}, "$B"},
	{"GEOSEARCHSTORE", [][]string{{"GEOADD", "$A", "0", "0", "p"}}, []string{"GEOSEARCHSTORE", "$D", "$A", "FROMLONLAT", "0", "0", "BYRADIUS", "100", "km"}, "$D"},
	{"EVAL two keys", [][]string{{"SET", "$B", "w"}}, []string{"EVAL", "redis.call('set', KEYS[1], ARGV[1]) return redis.call('get', KEYS[2])", "2", "$A", "$B", "v"}, "$A"},
	{"EVAL_RO two keys", [][]string{{"SET", "$B", "w"}}, []string{"EVAL_RO", "return redis.call('get', KEYS[2])", "2", "$A", "$B"}, ""},
	{"EVALSHA two keys", [][]string{{"SCRIPT", "LOAD", shaScript}, {"SET", "$B", "w"}}, []string{"EVALSHA", "$SHA", "2", "$A", "$B"}, ""},
	{"FCALL two keys", [][]string{{"FUNCTION", "LOAD", "REPLACE", "#!lua name=xlib\nredis.register_function('xget', function(keys, args) return redis.call('get', keys[2]) end)"}, {"SET", "$B", "w"}}, []string{"FCALL", "xget", "2", "$A", "$B"}, ""},
	{"XREAD STREAMS a b", [][]string{{"XADD", "$A", "1-1", "f", "v"}, {"XADD", "$B", "1-2", "f", "w"}}, []string{"XREAD", "COUNT", "5", "STREAMS", "$A", "$B", "0", "0"}, ""},
	{"XREADGROUP STREAMS a b", [][]string{{"XGROUP", "CREATE", "$A", "g", "0", "MKSTREAM"}, {"XGROUP", "CREATE", "$B", "g", "0", "MKSTREAM"}, {"XADD", "$A", "1-1", "f", "v"}, {"XADD", "$B", "1-2", "f", "w"}}, []string{"XREADGROUP", "GROUP", "g", "c", "STREAMS", "$A", "$B", ">", ">"}, ""},
}

func TestIntegrationCrossSlot(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3})
	ref := redistest.Start(t)
	px, rf := dialRaw(t, c.Addr), dialRaw(t, ref.Addr())
	shards := directClients(c)
	sum := sha1.Sum([]byte(shaScript))
	sha := hex.EncodeToString(sum[:])

	layouts := []struct {
		name  string
		names func(i int) map[string]string
		needD bool // the layout differs from a good one only in $D
	}{
		{"keys on different shards", func(i int) map[string]string {
			p := fmt.Sprintf("x%d:", i)
			return map[string]string{"$A": keyOn(t, c, p+"a", 0), "$B": keyOn(t, c, p+"b", 1), "$D": keyOn(t, c, p+"d", 2)}
		}, false},
		{"keys on one shard in different slots", func(i int) map[string]string {
			p := fmt.Sprintf("y%d:", i)
			a := keyOn(t, c, p+"a", 1)
			return map[string]string{"$A": a, "$B": keyBeside(t, c, p+"b", a), "$D": keyBeside(t, c, p+"d", a)}
		}, false},
		{"only the destination in another slot", func(i int) map[string]string {
			tag := fmt.Sprintf("{z%d}", i)
			return map[string]string{"$A": tag + "a", "$B": tag + "b", "$D": keyBeside(t, c, fmt.Sprintf("z%d:d", i), tag+"a")}
		}, true},
	}
	run := func(rc *rawConn, names map[string]string, args []string) string {
		t.Helper()
		out := make([]string, len(args))
		for i, a := range args {
			if k, ok := names[a]; ok {
				a = k
			} else if a == "$SHA" {
				a = sha
			}
			out[i] = a
		}
		return rc.do(out...)
	}
	setup := func(rc *rawConn, who string, names map[string]string, cmds [][]string) {
		t.Helper()
		for _, s := range cmds {
			if got := run(rc, names, s); strings.HasPrefix(got, "-") {
				t.Fatalf("%s: setup %v: %s", who, s, got)
			}
		}
	}

	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			for i, tc := range crossSlotCases {
				hasD := false
				for _, a := range tc.args {
					hasD = hasD || a == "$D"
				}
				if l.needD && !hasD {
					continue
				}
				names := l.names(i)
				setup(px, "proxy", names, tc.setup)
				if got := run(px, names, tc.args); got != crossSlotReply {
					t.Errorf("%s: got %s, want %s", tc.name, got, crossSlotReply)
				}
				if tc.stored != "" {
					if got := shardsHolding(t, shards, names[tc.stored]); len(got) != 0 {
						t.Errorf("%s: refused command still wrote %s (on shards %v)", tc.name, tc.stored, got)
					}
				}
			}
		})
	}

	t.Run("hash tags", func(t *testing.T) {
		for i, tc := range crossSlotCases {
			tag := fmt.Sprintf("{u%d}", i)
			names := map[string]string{"$A": tag + "a", "$B": tag + "b", "$D": tag + "d"}
			setup(px, "proxy", names, tc.setup)
			setup(rf, "redis-server", names, tc.setup)
			got := run(px, names, tc.args)
			want := run(rf, names, tc.args)
			if strings.HasPrefix(want, "-") {
				t.Errorf("%s: redis-server answered %s; the case tests nothing", tc.name, want)
			}
			if got != want {
				t.Errorf("%s: got %s, want %s (as redis-server)", tc.name, got, want)
			}
			if tc.stored != "" {
				checkOnlyOn(t, c, shards, names[tc.stored])
			}
		}
	})
}

// TestIntegrationClusterRefusals checks the options Redis Cluster refuses
// because they reach beyond the command's slot, which a shard of the proxy
// would otherwise run on its own keys alone: SORT's BY and GET patterns
// whose keys may lie in other slots (the proxy used to sort by what one
// shard held, a wrong answer), and COPY into another database (one no
// client of the proxy can select).
func TestIntegrationClusterRefusals(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3})
	rc := dialRaw(t, c.Addr)
	for _, args := range [][]string{
		{"RPUSH", "{t}l", "2", "1", "3"},
		{"MSET", "{t}w_1", "30", "{t}w_2", "20", "{t}w_3", "10", "v_1", "a", "v_2", "b", "v_3", "c"},
	} {
		rc.do(args...)
	}
	byPattern := "-ERR BY option of SORT denied in Cluster mode when keys formed by the pattern may be in different slots."
	getPattern := "-ERR GET option of SORT denied in Cluster mode when keys formed by the pattern may be in different slots."
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"SORT", "{t}l", "BY", "{t}w_*"}, `["3", "2", "1"]`},
		{[]string{"SORT", "{t}l", "BY", "nosort", "GET", "#"}, `["2", "1", "3"]`},
		{[]string{"SORT", "{t}l", "BY", "w_*"}, byPattern},
		{[]string{"sort_ro", "{t}l", "by", "*{t}"}, byPattern},
		{[]string{"SORT", "{t}l", "LIMIT", "0", "2", "GET", "v_*"}, getPattern},
		{[]string{"SORT", "{t}l", "GET", "#", "GET", "{t}w_*", "STORE", "{t}out"}, ":6"},
		{[]string{"COPY", "{t}l", "{t}l2", "DB", "1"}, "-ERR Copying to another database is not allowed in cluster mode"},
		{[]string{"COPY", "{t}l", "{t}l2", "DB", "16"}, "-ERR DB index is out of range"},
		{[]string{"COPY", "{t}l", "{t}l2", "REPLACE", "db", "0"}, ":1"},
	} {
		if got := rc.do(tc.args...); got != tc.want {
			t.Errorf("%q = %s, want %s", tc.args, got, tc.want)
		}
	}
	// Queued in a transaction, they are answered inside EXEC's reply, as
	// Redis Cluster answers them, and the rest of the transaction runs.
	rc.write(encode("MULTI") + encode("SORT", "{t}l", "GET", "v_*") + encode("SET", "{t}x", "1") +
		encode("COPY", "{t}l", "{t}l3", "DB", "1") + encode("PUBLISH", "ch", "m") + encode("EXEC"))
	exec := "[" + getPattern + ", +OK, -ERR Copying to another database is not allowed in cluster mode, :0]"
	for _, want := range []string{"+OK", "+QUEUED", "+QUEUED", "+QUEUED", "+QUEUED", exec} {
		if got := render(rc.read()); got != want {
			t.Errorf("MULTI, SORT GET v_*, SET, COPY DB 1, PUBLISH, EXEC: %s, want %s", got, want)
		}
	}
	if got := rc.do("GET", "{t}x"); got != `"1"` {
		t.Errorf("the transaction's SET did not run: GET = %s", got)
	}
	// A transaction that does not run answers nothing for them.
	watcher, other := dialRaw(t, c.Addr), dialRaw(t, c.Addr)
	watcher.do("WATCH", "{t}x")
	other.do("SET", "{t}x", "2")
	watcher.write(encode("MULTI") + encode("SORT", "{t}l", "BY", "w_*") + encode("EXEC"))
	for _, want := range []string{"+OK", "+QUEUED", "(nil array)"} {
		if got := render(watcher.read()); got != want {
			t.Errorf("WATCH, MULTI, SORT BY w_*, EXEC after a change: %s, want %s", got, want)
		}
	}
}
