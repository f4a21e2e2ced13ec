package proxy_test

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/internal/proxytest"
)

// mustDo returns a function that runs a command on cl and fails t on an
// error reply.
func mustDo(t *testing.T, cl *redis.Client) func(args ...any) any {
	return func(args ...any) any {
		t.Helper()
		v, err := cl.Do(t.Context(), args...).Result()
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return v
	}
}

// SLOWLOG through the proxy is the shards' slow logs as one: GET merges
// their entries newest first, each shard's in its order, each id made
// unique as the shard's id times the number of shards plus one (the
// proxy's own log) plus the shard's index, a command every shard logged
// (SLOWLOG RESET) one entry; LEN sums;
// RESET empties every shard's. ROLE answers as a master with no replicas.
func TestIntegrationSlowlog(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3})
	ctx := t.Context()
	cl := c.Client()
	do := mustDo(t, cl)
	do("CONFIG", "SET", "slowlog-log-slower-than", "0") // every command
	if v := do("SLOWLOG", "RESET"); v != "OK" {
		t.Fatalf("SLOWLOG RESET = %v", v)
	}
	fill(t, cl, "slow:", 40)
	do("CONFIG", "SET", "slowlog-log-slower-than", "-1") // none from here on

	// what the shards hold, read from them directly: each holds its
	// SLOWLOG RESET, then SETs
	type entry struct {
		id   int64
		args string
	}
	perShard := map[int64][]entry{} // by shard index, newest first
	var reset int64
	var wantLen int64
	for i, sh := range c.Shards {
		logs, err := sh.Client().SlowLogGet(ctx, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(logs) < 2 || !strings.EqualFold(fmt.Sprint(logs[len(logs)-1].Args), "[slowlog reset]") {
			t.Fatalf("shard %d logged %v, want SETs after SLOWLOG RESET", i, logs)
		}
		if i == 0 {
			reset = logs[len(logs)-1].ID * 4
		}
		for _, l := range logs[:len(logs)-1] {
			perShard[int64(i)] = append(perShard[int64(i)], entry{id: l.ID*4 + int64(i), args: fmt.Sprint(l.Args)})
		}
		wantLen += int64(len(logs))
	}

	if n := cl.SlowLogLen(ctx).Val(); n != wantLen {
		t.Errorf("SLOWLOG LEN = %d, want the shards' sum %d", n, wantLen)
	}
	got, err := cl.SlowLogGet(ctx, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n := int64(len(got)); n != wantLen-2 {
		t.Fatalf("SLOWLOG GET -1: %d entries, want %d (every shard's, their SLOWLOG RESET once)", n, wantLen-2)
	}
	if last := got[len(got)-1]; last.ID != reset || !strings.EqualFold(fmt.Sprint(last.Args), "[slowlog reset]") {
		t.Errorf("SLOWLOG GET -1 ends with id %d %q, want SLOWLOG RESET with id %d", last.ID, last.Args, reset)
	}
	seen := map[int64]int{} // per shard, the entries met so far
	for _, g := range got[:len(got)-1] {
		sh := g.ID % 4
		i := seen[sh]
		seen[sh]++
		if i >= len(perShard[sh]) || perShard[sh][i] != (entry{id: g.ID, args: fmt.Sprint(g.Args)}) {
			t.Errorf("SLOWLOG GET -1: entry id %d %q is not shard %d's next, in its order", g.ID, g.Args, sh)
		}
	}
	if got, err := cl.SlowLogGet(ctx, 5).Result(); err != nil || len(got) != 5 {
		t.Errorf("SLOWLOG GET 5 = %d entries, %v; want 5", len(got), err)
	}
	if got := cl.Do(ctx, "SLOWLOG", "GET").Val(); len(got.([]any)) != 10 {
		t.Errorf("SLOWLOG GET with no count: %d entries, want 10", len(got.([]any)))
	}
	if err := cl.Do(ctx, "SLOWLOG", "GET", "-2").Err(); err == nil || err.Error() != "ERR count should be greater than or equal to -1" {
		t.Errorf("SLOWLOG GET -2: %v", err)
	}

	if v := do("SLOWLOG", "RESET"); v != "OK" {
		t.Fatalf("SLOWLOG RESET = %v", v)
	}
	for i, sh := range c.Shards {
		if n := sh.Client().SlowLogLen(ctx).Val(); n != 0 {
			t.Errorf("shard %d holds %d slow log entries after SLOWLOG RESET", i, n)
		}
	}

	for _, proto := range []int{2, 3} {
		rc := redis.NewClient(&redis.Options{Addr: c.Addr, Protocol: proto})
		got, err := rc.Do(ctx, "ROLE").Slice()
		rc.Close()
		if err != nil || len(got) != 3 || got[0] != "master" || got[1] != int64(0) || len(got[2].([]any)) != 0 {
			t.Errorf("ROLE in RESP%d = %v, %v; want [master 0 []]", proto, got, err)
		}
	}
}

// The merged slow log reads as one server's, as Redis's unit/slowlog
// checks it: a command sent to every shard is one entry, what ran after it
// comes before it, and slowlog-max-len bounds GET and LEN.
func TestIntegrationSlowlogOneServer(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3})
	ctx := t.Context()
	cl := c.Client()
	do := mustDo(t, cl)
	entries := func(count int) []string {
		t.Helper()
		logs, err := cl.SlowLogGet(ctx, int64(count)).Result()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, l := range logs {
			got = append(got, strings.ToLower(strings.Join(l.Args, " ")))
		}
		return got
	}

	do("CONFIG", "SET", "slowlog-log-slower-than", "0")
	for range 3 { // the SADD's shard and the others alike
		do("SLOWLOG", "RESET")
		do("SADD", "set", "a", "b")
		if got, want := entries(-1), []string{"sadd set a b", "slowlog reset"}; !slices.Equal(got, want) {
			t.Fatalf("SLOWLOG GET after SLOWLOG RESET, SADD = %q, want %q", got, want)
		}
	}

	do("CONFIG", "SET", "slowlog-max-len", "3")
	do("SLOWLOG", "RESET")
	do("SET", "key", "test")
	do("SADD", "set", "c")
	do("INCR", "num")
	do("LPUSH", "list", "a")
	if n := do("SLOWLOG", "LEN"); n != int64(3) {
		t.Errorf("SLOWLOG LEN = %v with slowlog-max-len 3, want 3", n)
	}
	for count, want := range map[int]int{-1: 3, 0: 0, 1: 1, 3: 3, 10: 3} {
		if got := entries(count); len(got) != want {
			t.Errorf("SLOWLOG GET %d = %q with slowlog-max-len 3, want %d entries", count, got, want)
		}
	}
	// the commands the proxy answers itself are logged too, by the proxy
	do("CONFIG", "SET", "slowlog-max-len", "10")
	named := dialRaw(t, c.Addr)
	named.do("CLIENT", "SETNAME", "pinger")
	do("SLOWLOG", "RESET")
	for range 3 {
		named.do("PING")
	}
	named.do("ECHO", "hello")
	logs, err := cl.SlowLogGet(ctx, -1).Result()
	if err != nil || len(logs) != 5 {
		t.Fatalf("SLOWLOG GET -1 after SLOWLOG RESET, 3 PING, ECHO = %v, %v; want 5 entries", logs, err)
	}
	for i, want := range []string{"echo hello", "ping", "ping", "ping"} {
		l := logs[i]
		if got := strings.ToLower(strings.Join(l.Args, " ")); got != want || l.ClientName != "pinger" || l.ClientAddr != named.nc.LocalAddr().String() {
			t.Errorf("entry %d = %q from %s %q, want %q from %s \"pinger\"", i, got, l.ClientAddr, l.ClientName, want, named.nc.LocalAddr())
		}
	}
	if got := strings.ToLower(strings.Join(logs[4].Args, " ")); got != "slowlog reset" {
		t.Errorf("entry 4 = %q, want slowlog reset", got)
	}
	for range 20 {
		named.do("PING")
	}
	if n := do("SLOWLOG", "LEN"); n != int64(10) {
		t.Errorf("SLOWLOG LEN after 20 PING = %v with slowlog-max-len 10, want 10", n)
	}

	do("CONFIG", "SET", "slowlog-max-len", "1")
	if n := do("SLOWLOG", "LEN"); n != int64(1) {
		t.Errorf("SLOWLOG LEN = %v with slowlog-max-len 1, want 1", n)
	}
	if got := entries(-1); len(got) != 1 || got[0] != "slowlog len" {
		t.Errorf("SLOWLOG GET -1 = %q with slowlog-max-len 1, want [slowlog len], the newest", got)
	}
}

// A slow log entry names the client that sent the command, as one server's
// does, not the proxy's connection to the shard: for a command slower
// than slowlog-log-slower-than (DEBUG SLEEP), and, with every command
// logged, for each client's commands, their arguments trimmed as Redis
// trims them.
func TestIntegrationSlowlogClient(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3, ShardArgs: []string{"--enable-debug-command", "yes"}})
	ctx := t.Context()
	cl := c.Client()
	do := mustDo(t, cl)
	alpha, beta := dialRaw(t, c.Addr), dialRaw(t, c.Addr)
	addrOf := map[string]string{"alpha": alpha.nc.LocalAddr().String(), "beta": beta.nc.LocalAddr().String()}
	alpha.do("CLIENT", "SETNAME", "alpha")
	beta.do("CLIENT", "SETNAME", "beta")
	type logged struct{ args, addr, name string }
	entries := func() []logged {
		t.Helper()
		logs, err := cl.SlowLogGet(ctx, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		var got []logged
		for _, l := range logs {
			got = append(got, logged{strings.ToLower(strings.Join(l.Args, " ")), l.ClientAddr, l.ClientName})
		}
		return got
	}

	do("CONFIG", "SET", "slowlog-log-slower-than", "100000")
	do("SLOWLOG", "RESET")
	alpha.do("DEBUG", "SLEEP", "0.2")
	beta.do("SET", "fast", "1")
	if got, want := entries(), []logged{{"debug sleep 0.2", addrOf["alpha"], "alpha"}}; !slices.Equal(got, want) {
		t.Errorf("SLOWLOG GET after a DEBUG SLEEP 0.2 = %q, want %q", got, want)
	}

	do("CONFIG", "SET", "slowlog-log-slower-than", "0")
	do("SLOWLOG", "RESET")
	many := []string{"SADD", "set"}
	for i := range 40 {
		many = append(many, strconv.Itoa(i))
	}
	long := strings.Repeat("a", 129)
	for i := range c.Shards {
		alpha.do("SET", keyOn(t, c, "a", i), "1")
		beta.do("SET", keyOn(t, c, "b", i), long)
	}
	alpha.do(many...)
	do("CONFIG", "SET", "slowlog-log-slower-than", "-1")
	got := entries()
	want := map[string]logged{"sadd": {"", addrOf["alpha"], "alpha"}}
	for i := range c.Shards {
		want["set "+keyOn(t, c, "a", i)] = logged{"", addrOf["alpha"], "alpha"}
		want["set "+keyOn(t, c, "b", i)] = logged{"", addrOf["beta"], "beta"}
	}
	seen := 0
	for _, e := range got {
		args := strings.Fields(e.args)
		key := args[0]
		if key == "set" {
			key += " " + args[1]
		}
		w, ok := want[key]
		if !ok {
			continue // SLOWLOG RESET, CONFIG SET: the test's own client
		}
		seen++
		if e.addr != w.addr || e.name != w.name {
			t.Errorf("entry %q names client %s %q, want %s %q", e.args, e.addr, e.name, w.addr, w.name)
		}
		switch {
		case key == "sadd" && !strings.HasSuffix(e.args, " 28 ... (11 more arguments)"):
			t.Errorf("entry %q: want its arguments trimmed to 32", e.args)
		case strings.HasPrefix(key, "set b") && !strings.HasSuffix(e.args, long[:128]+"... (1 more bytes)"):
			t.Errorf("entry %q: want its long argument trimmed to 128 bytes", e.args)
		}
	}
	if seen != len(want) {
		t.Errorf("SLOWLOG GET = %q: %d of the %d clients' commands", got, seen, len(want))
	}
}

// LATENCY through the proxy merges the shards' figures: LATEST per event
// (newest sample, highest maximum), HISTORY by time, HISTOGRAM per command
// (calls summed, cumulative counts added up), RESET summed; DOCTOR and
// GRAPH, about one server, stay refused.
func TestIntegrationLatency(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3, ShardArgs: []string{"--enable-debug-command", "yes"}})
	ctx := t.Context()
	cl := c.Client()
	if err := cl.ConfigSet(ctx, "latency-monitor-threshold", "1").Err(); err != nil {
		t.Fatal(err)
	}
	// a latency event on two shards: DEBUG SLEEP, sent to them directly
	for i, ms := range []string{"0.02", "0.05"} {
		if err := c.Shards[i].Client().Do(ctx, "DEBUG", "SLEEP", ms).Err(); err != nil {
			t.Fatal(err)
		}
	}
	fill(t, cl, "lat:", 60)

	t.Run("latest", func(t *testing.T) {
		got, err := cl.Do(ctx, "LATENCY", "LATEST").Slice()
		if err != nil || len(got) != 1 {
			t.Fatalf("LATENCY LATEST = %v, %v; want one event", got, err)
		}
		e := got[0].([]any)
		var newest, most int64
		latest := map[int64][]int64{} // time -> the shards' latest samples then
		for _, sh := range c.Shards {
			for _, se := range sh.Client().Do(ctx, "LATENCY", "LATEST").Val().([]any) {
				se := se.([]any)
				at, l, m := se[1].(int64), se[2].(int64), se[3].(int64)
				newest, most = max(newest, at), max(most, m)
				latest[at] = append(latest[at], l)
			}
		}
		if e[0] != "command" || e[1] != newest || !slices.Contains(latest[newest], e[2].(int64)) || e[3] != most || most < 50 {
			t.Errorf("LATENCY LATEST = %v; want command at %d, latest one of %v, max %d (at least 50)", e, newest, latest[newest], most)
		}
	})

	t.Run("history", func(t *testing.T) {
		want := map[int64]int64{}
		for _, sh := range c.Shards {
			for _, s := range sh.Client().Do(ctx, "LATENCY", "HISTORY", "command").Val().([]any) {
				s := s.([]any)
				want[s[0].(int64)] = max(want[s[0].(int64)], s[1].(int64))
			}
		}
		got := cl.Do(ctx, "LATENCY", "HISTORY", "command").Val().([]any)
		if len(got) != len(want) || len(got) == 0 {
			t.Fatalf("LATENCY HISTORY = %v, want the samples %v", got, want)
		}
		last := int64(0)
		for _, s := range got {
			s := s.([]any)
			if at := s[0].(int64); at < last || want[at] != s[1].(int64) {
				t.Errorf("LATENCY HISTORY = %v, want %v by time", got, want)
			} else {
				last = at
			}
		}
	})

	t.Run("histogram", func(t *testing.T) {
		type bucket struct{ usec, count int64 }
		parse := func(v any) (calls int64, h []bucket) {
			// RESP2: [set [calls n histogram_usec [b c ...]]]
			a := v.([]any)
			if len(a) != 2 || a[0] != "set" {
				t.Fatalf("LATENCY HISTOGRAM set = %v", v)
			}
			f := a[1].([]any)
			hs := f[3].([]any)
			for i := 0; i < len(hs); i += 2 {
				h = append(h, bucket{hs[i].(int64), hs[i+1].(int64)})
			}
			return f[1].(int64), h
		}
		var wantCalls int64
		var shards [][]bucket
		for _, sh := range c.Shards {
			calls, h := parse(sh.Client().Do(ctx, "LATENCY", "HISTOGRAM", "set").Val())
			wantCalls += calls
			shards = append(shards, h)
		}
		calls, got := parse(cl.Do(ctx, "LATENCY", "HISTOGRAM", "set").Val())
		if calls != wantCalls || calls < 60 {
			t.Errorf("calls = %d, want the shards' sum %d", calls, wantCalls)
		}
		// at each bucket, the sum of every shard's count at or below it
		for _, b := range got {
			var want int64
			for _, h := range shards {
				at := int64(0)
				for _, sb := range h {
					if sb.usec <= b.usec {
						at = sb.count
					}
				}
				want += at
			}
			if b.count != want {
				t.Errorf("bucket %d µs = %d, want %d (shards %v)", b.usec, b.count, want, shards)
			}
		}
		if len(got) == 0 || got[len(got)-1].count != calls {
			t.Errorf("histogram %v does not end at the %d calls", got, calls)
		}
		// RESP3: the same figures as maps
		r3 := redis.NewClient(&redis.Options{Addr: c.Addr, Protocol: 3})
		defer r3.Close()
		m, err := r3.Do(ctx, "LATENCY", "HISTOGRAM", "set").Result()
		if err != nil {
			t.Fatal(err)
		}
		set, ok := m.(map[any]any)["set"].(map[any]any)
		if !ok || set["calls"] != calls || len(set["histogram_usec"].(map[any]any)) != len(got) {
			t.Errorf("RESP3 LATENCY HISTOGRAM set = %v, want calls %d and %d buckets", m, calls, len(got))
		}
	})

	// A command sent to every shard is one call, as one server counts it;
	// one sent to one shard is counted where it ran.
	t.Run("histogram of every shard's commands", func(t *testing.T) {
		do := mustDo(t, cl)
		do("CONFIG", "RESETSTAT")
		do("SET", "a", "b")
		do("SET", "c", "d")
		do("DBSIZE")
		do("DBSIZE")
		do("CONFIG", "SET", "latency-monitor-threshold", "1")
		got := map[string]int64{}
		for _, name := range []string{"config|resetstat", "config|set", "dbsize", "set"} {
			h := cl.Do(ctx, "LATENCY", "HISTOGRAM", name).Val().([]any)
			if len(h) != 2 {
				t.Fatalf("LATENCY HISTOGRAM %s = %v", name, h)
			}
			f := h[1].([]any)
			got[name] = f[1].(int64)
			if hs := f[3].([]any); hs[len(hs)-1] != f[1] {
				t.Errorf("LATENCY HISTOGRAM %s = %v: its histogram does not end at its calls", name, h)
			}
		}
		want := map[string]int64{"config|resetstat": 1, "config|set": 1, "dbsize": 2, "set": 2}
		if !maps.Equal(got, want) {
			t.Errorf("LATENCY HISTOGRAM calls = %v, want %v", got, want)
		}
	})

	// The commands the proxy answers itself have its own figures.
	t.Run("histogram of the proxy's own commands", func(t *testing.T) {
		do := mustDo(t, cl)
		do("CONFIG", "RESETSTAT")
		do("CLIENT", "ID")
		do("CLIENT", "LIST")
		for range 3 {
			do("PING")
		}
		calls := func(args ...any) map[string]int64 {
			t.Helper()
			h := do(append([]any{"LATENCY", "HISTOGRAM"}, args...)...).([]any)
			got := map[string]int64{}
			for i := 0; i < len(h); i += 2 {
				f := h[i+1].([]any)
				got[h[i].(string)] = f[1].(int64)
				if hs := f[3].([]any); len(hs) == 0 || hs[len(hs)-1] != f[1] {
					t.Errorf("LATENCY HISTOGRAM %v: %s = %v, its histogram does not end at its calls", args, h[i], f)
				}
			}
			return got
		}
		for _, tc := range []struct {
			args []any
			want map[string]int64
		}{
			{[]any{"client"}, map[string]int64{"client|id": 1, "client|list": 1}},
			{[]any{"client|id"}, map[string]int64{"client|id": 1}},
			{[]any{"ping", "set"}, map[string]int64{"ping": 3}},
		} {
			if got := calls(tc.args...); !maps.Equal(got, tc.want) {
				t.Errorf("LATENCY HISTOGRAM %v calls = %v, want %v", tc.args, got, tc.want)
			}
		}
		do("CONFIG", "RESETSTAT")
		if got := calls("client", "ping"); len(got) != 0 {
			t.Errorf("LATENCY HISTOGRAM client ping after CONFIG RESETSTAT = %v, want none", got)
		}
	})

	if err := cl.Do(ctx, "LATENCY", "DOCTOR").Err(); err == nil {
		t.Error("LATENCY DOCTOR answered; it speaks of one server")
	}
	if n, err := cl.Do(ctx, "LATENCY", "RESET").Int64(); err != nil || n != 2 {
		t.Errorf("LATENCY RESET = %d, %v; want 2 (one event on each of two shards)", n, err)
	}
	for i, sh := range c.Shards {
		if v := sh.Client().Do(ctx, "LATENCY", "LATEST").Val().([]any); len(v) != 0 {
			t.Errorf("shard %d still has latency events after LATENCY RESET: %v", i, v)
		}
	}
}
