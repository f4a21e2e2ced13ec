package proxy_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/internal/redistest"
)

// keyNames picks, for each shard i, a present key $ki, a missing key $mi
// and a list $li that the table places on shard i, so every split below
// reaches every shard. expand replaces the $names in args.
type keyNames map[string]string

func pickKeys(t *testing.T, c *proxytest.Cluster) keyNames {
	t.Helper()
	names := keyNames{}
	for i := range c.Shards {
		names["$k"+strconv.Itoa(i)] = keyOn(t, c, "key:", i)
		names["$m"+strconv.Itoa(i)] = keyOn(t, c, "missing:", i)
		names["$l"+strconv.Itoa(i)] = keyOn(t, c, "list:", i)
	}
	return names
}

func (n keyNames) expand(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if k, ok := n[a]; ok {
			a = k
		}
		out[i] = a
	}
	return out
}

// TestIntegrationSplitMerge runs the split commands through the proxy and
// the same commands against one plain redis-server, in the same order: both
// must give the reply written in the table.
func TestIntegrationSplitMerge(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3})
	ref := redistest.Start(t)
	names := pickKeys(t, c)
	px, rf := dialRaw(t, c.Addr), dialRaw(t, ref.Addr())

	steps := []struct {
		args []string
		want string
	}{
		{[]string{"MSET", "$k0", "v0", "$k1", "v1", "$k2", "v2"}, `+OK`},
		{[]string{"MGET", "$k0", "$m1", "$k1", "$m0", "$k2", "$m2", "$k0"}, `["v0", (nil), "v1", (nil), "v2", (nil), "v0"]`},
		{[]string{"MGET", "$m0", "$m1", "$m2"}, `[(nil), (nil), (nil)]`},
		{[]string{"MGET", "$k2", "$k1", "$k0"}, `["v2", "v1", "v0"]`},
		{[]string{"MGET", "$k1"}, `["v1"]`},
		// a key of another type reads as nil in MGET
		{[]string{"RPUSH", "$l1", "x"}, `:1`},
		{[]string{"MGET", "$l1", "$k0", "$k1"}, `[(nil), "v0", "v1"]`},
		// a key repeated in one MSET: the last value wins
		{[]string{"MSET", "$k0", "first", "$k1", "w1", "$k0", "last"}, `+OK`},
		{[]string{"MGET", "$k0", "$k1"}, `["last", "w1"]`},
		{[]string{"MSET", "$k0", "v0", "$k1", "v1"}, `+OK`},
		// EXISTS and TOUCH count a repeated key each time it is named
		{[]string{"EXISTS", "$k0", "$k0", "$k1", "$m2", "$k2"}, `:4`},
		{[]string{"EXISTS", "$m0", "$m1", "$m2"}, `:0`},
		{[]string{"EXISTS", "$k2"}, `:1`},
		{[]string{"TOUCH", "$k0", "$k1", "$k2", "$m0", "$k1"}, `:4`},
		// DEL and UNLINK delete a repeated key once
		{[]string{"DEL", "$k0", "$k0", "$k1", "$m2"}, `:2`},
		{[]string{"EXISTS", "$k0", "$k1", "$k2"}, `:1`},
		{[]string{"UNLINK", "$k2", "$m0", "$m1", "$l1"}, `:2`},
		{[]string{"DEL", "$m0", "$m1", "$m2"}, `:0`},
		// argument errors, worded as Redis words them
		{[]string{"MSET", "$k0", "v0", "$k1", "v1", "$k2"}, `-ERR wrong number of arguments for 'mset' command`},
		{[]string{"MSET", "$k0", "v0", "$k1"}, `-ERR wrong number of arguments for 'mset' command`},
		{[]string{"MSET", "$k0"}, `-ERR wrong number of arguments for 'mset' command`},
		{[]string{"MGET"}, `-ERR wrong number of arguments for 'mget' command`},
		{[]string{"DEL"}, `-ERR wrong number of arguments for 'del' command`},
		{[]string{"EXISTS"}, `-ERR wrong number of arguments for 'exists' command`},
		{[]string{"EXISTS", "$k0", "$k1", "$k2"}, `:0`},
	}
	for _, st := range steps {
		args := names.expand(st.args)
		if got := px.do(args...); got != st.want {
			t.Errorf("proxy %s = %s, want %s", strings.Join(st.args, " "), got, st.want)
		}
		if got := rf.do(args...); got != st.want {
			t.Errorf("redis-server %s = %s, want %s (the test's expectation is wrong)", strings.Join(st.args, " "), got, st.want)
		}
	}
}

// TestIntegrationSplitLarge checks MSET and MGET of many keys over every
// shard in one command, and where MSET put each key.
func TestIntegrationSplitLarge(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3})
	ctx := t.Context()
	cl := c.Client()
	shards := directClients(c)

	const n = 1000
	var pairs []any
	var keys []string
	for i := 0; i < n; i++ {
		k := fmt.Sprintf("bulk:%d", i)
		keys = append(keys, k)
		pairs = append(pairs, k, "value-"+k)
	}
	if err := cl.MSet(ctx, pairs...).Err(); err != nil {
		t.Fatalf("MSET %d keys: %v", n, err)
	}
	for _, k := range keys {
		owner := shards[c.Table.ShardOf([]byte(k))]
		got, err := owner.Get(ctx, k).Result()
		if err != nil || got != "value-"+k {
			t.Errorf("owner shard GET %q = %q, %v; want %q", k, got, err, "value-"+k)
		}
	}
	for i := 0; i < len(keys); i += 97 {
		checkOnlyOn(t, c, shards, keys[i])
	}

	// Interleave missing keys so each shard's part of the reply has holes.
	var query []string
	var want []any
	for i, k := range keys {
		query = append(query, k)
		want = append(want, []byte("value-"+k))
		if i%3 == 0 {
			query = append(query, "nothing:"+k)
			want = append(want, []byte(nil))
		}
	}
	got, err := cl.MGet(ctx, query...).Result()
	if err != nil {
		t.Fatalf("MGET %d keys: %v", len(query), err)
	}
	if len(got) != len(want) {
		t.Fatalf("MGET returned %d values, want %d", len(got), len(want))
	}
	bad := 0
	for i := range got {
		var g string
		switch v := got[i].(type) {
		case nil:
			g = "(nil)"
		case string:
			g = strconv.Quote(v)
		}
		if w := render(want[i]); g != w {
			bad++
			if bad <= 5 {
				t.Errorf("MGET value %d (%q) = %s, want %s", i, query[i], g, w)
			}
		}
	}

	if got, want := cl.Exists(ctx, query...).Val(), int64(n); got != want {
		t.Errorf("EXISTS of %d keys (%d present) = %d, want %d", len(query), n, got, want)
	}
	if got, want := cl.Del(ctx, query...).Val(), int64(n); got != want {
		t.Errorf("DEL of %d keys (%d present) = %d, want %d", len(query), n, got, want)
	}
	for i, sh := range shards {
		if got := sh.DBSize(ctx).Val(); got != 0 {
			t.Errorf("shard %d holds %d keys after DEL of all, want 0", i, got)
		}
	}
}
