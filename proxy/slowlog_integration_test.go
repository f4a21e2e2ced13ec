package proxy_test

import (
	"cmp"
	"slices"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/internal/proxytest"
)

// SLOWLOG through the proxy is the shards' slow logs as one: GET merges
// their entries newest first, each id made unique as the shard's id times
// the number of shards plus the shard's index; LEN sums; RESET empties
// every shard's. ROLE answers as a master with no replicas.
func TestIntegrationSlowlog(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3})
	ctx := t.Context()
	cl := c.Client()
	do := func(args ...any) any {
		t.Helper()
		v, err := cl.Do(ctx, args...).Result()
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return v
	}
	do("CONFIG", "SET", "slowlog-log-slower-than", "0") // every command
	if v := do("SLOWLOG", "RESET"); v != "OK" {
		t.Fatalf("SLOWLOG RESET = %v", v)
	}
	fill(t, cl, "slow:", 40)
	do("CONFIG", "SET", "slowlog-log-slower-than", "-1") // none from here on

	// what the shards hold, read from them directly
	type entry struct {
		id, at int64
		args   []string
	}
	var want []entry
	var wantLen int64
	for i, sh := range c.Shards {
		logs, err := sh.Client().SlowLogGet(ctx, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(logs) == 0 {
			t.Fatalf("shard %d logged nothing", i)
		}
		for _, l := range logs {
			want = append(want, entry{id: l.ID*3 + int64(i), at: l.Time.Unix(), args: l.Args})
		}
		wantLen += int64(len(logs))
	}
	slices.SortFunc(want, func(a, b entry) int { return cmp.Or(cmp.Compare(b.at, a.at), cmp.Compare(b.id, a.id)) })

	if n := cl.SlowLogLen(ctx).Val(); n != wantLen {
		t.Errorf("SLOWLOG LEN = %d, want the shards' sum %d", n, wantLen)
	}
	check := func(count int64, want []entry) {
		t.Helper()
		got, err := cl.SlowLogGet(ctx, count).Result()
		if err != nil {
			t.Fatalf("SLOWLOG GET %d: %v", count, err)
		}
		if len(got) != len(want) {
			t.Fatalf("SLOWLOG GET %d: %d entries, want %d", count, len(got), len(want))
		}
		for i, g := range got {
			if g.ID != want[i].id || g.Time.Unix() != want[i].at || !slices.Equal(g.Args, want[i].args) {
				t.Errorf("SLOWLOG GET %d entry %d = id %d at %d %q, want id %d at %d %q", count, i, g.ID, g.Time.Unix(), g.Args, want[i].id, want[i].at, want[i].args)
			}
		}
	}
	check(-1, want)
	check(5, want[:5])
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
