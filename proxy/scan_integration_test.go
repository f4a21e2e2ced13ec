package proxy_test

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/router"

	"github.com/reshard/reshard/internal/proxytest"
)

// The proxy cursor's low 14 bits name the shard (proxy/scan.go); the tests
// read them to check that each page came from the shard its cursor named.
const scanShardBits = 14

// scanPage is one SCAN call: the cursor sent, the cursor and keys received.
type scanPage struct {
	sent, next uint64
	keys       []string
}

// scanThrough iterates SCAN through cl until cursor 0 and returns the pages;
// between pages it calls between (if not nil). It fails the test after far
// more calls than the keyspace can need.
func scanThrough(t *testing.T, cl *redis.Client, match string, count int64, typ string, between func()) []scanPage {
	t.Helper()
	ctx := t.Context()
	var pages []scanPage
	var cursor uint64
	for {
		keys, next, err := cl.ScanType(ctx, cursor, match, count, typ).Result()
		if err != nil {
			t.Fatalf("SCAN %d MATCH %q COUNT %d TYPE %q: %v", cursor, match, count, typ, err)
		}
		pages = append(pages, scanPage{sent: cursor, next: next, keys: keys})
		if next == 0 {
			return pages
		}
		if len(pages) > 200_000 {
			t.Fatalf("SCAN did not end after %d calls", len(pages))
		}
		if between != nil {
			between()
		}
		cursor = next
	}
}

// scannedKeys is the set of keys of pages, with how often each came.
func scannedKeys(pages []scanPage) map[string]int {
	out := map[string]int{}
	for _, p := range pages {
		for _, k := range p.keys {
			out[k]++
		}
	}
	return out
}

// checkScanPages checks the cursor discipline: every cursor below 2^63,
// shards visited in table order, and every key of a page living on the
// shard the page's cursor named.
func checkScanPages(t *testing.T, c *proxytest.Cluster, pages []scanPage) {
	t.Helper()
	last := 0
	for i, p := range pages {
		shard := int(p.sent & (1<<scanShardBits - 1))
		if p.next >= 1<<63 {
			t.Errorf("page %d: cursor %d is not below 2^63", i, p.next)
		}
		if shard < last || shard >= len(c.Shards) {
			t.Errorf("page %d: cursor %d names shard %d after shard %d (of %d)", i, p.sent, shard, last, len(c.Shards))
		}
		last = shard
		for _, k := range p.keys {
			if got := c.Table.ShardOf([]byte(k)); got != shard {
				t.Errorf("page %d (cursor %d, shard %d) returned %q, which lives on shard %d", i, p.sent, shard, k, got)
			}
		}
	}
}

// shardKeys is what the shards hold, read directly: KEYS pattern on each,
// or only keys of type typ when typ is set.
func shardKeys(t *testing.T, c *proxytest.Cluster, pattern, typ string) map[string]bool {
	t.Helper()
	ctx := t.Context()
	out := map[string]bool{}
	for i, sh := range directClients(c) {
		keys, err := sh.Keys(ctx, pattern).Result()
		if err != nil {
			t.Fatalf("KEYS on shard %d: %v", i, err)
		}
		types := make([]*redis.StatusCmd, len(keys))
		if typ != "" {
			p := sh.Pipeline()
			for j, k := range keys {
				types[j] = p.Type(ctx, k)
			}
			if _, err := p.Exec(ctx); err != nil {
				t.Fatalf("TYPE on shard %d: %v", i, err)
			}
		}
		for j, k := range keys {
			if typ == "" || types[j].Val() == typ {
				out[k] = true
			}
		}
	}
	return out
}

// checkSameKeys fails unless got holds exactly the keys of want.
func checkSameKeys(t *testing.T, what string, got map[string]int, want map[string]bool) {
	t.Helper()
	var missing, extra []string
	for k := range want {
		if got[k] == 0 {
			missing = append(missing, k)
		}
	}
	for k := range got {
		if !want[k] {
			extra = append(extra, k)
		}
	}
	if len(missing) > 0 || len(extra) > 0 {
		slices.Sort(missing)
		slices.Sort(extra)
		t.Errorf("%s: %d keys, want %d; missing %d %.20q, unexpected %d %.20q",
			what, len(got), len(want), len(missing), missing, len(extra), extra)
	}
}

// fillTyped writes n strings k:N, n/20 hashes h:N, n/20 lists l:N and
// n/20 sets s:N through cl.
func fillTyped(t *testing.T, cl *redis.Client, n int) {
	t.Helper()
	ctx := t.Context()
	p := cl.Pipeline()
	for i := 0; i < n; i++ {
		p.Set(ctx, "k:"+strconv.Itoa(i), "v", 0)
		if i%20 == 0 {
			p.HSet(ctx, "h:"+strconv.Itoa(i), "f", "v")
			p.RPush(ctx, "l:"+strconv.Itoa(i), "a")
			p.SAdd(ctx, "s:"+strconv.Itoa(i), "m")
		}
	}
	if _, err := p.Exec(ctx); err != nil {
		t.Fatalf("fill: %v", err)
	}
}

func TestIntegrationScan(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3})
	cl := c.Client()
	fillTyped(t, cl, 10000)
	for i, n := range shardSizes(t, directClients(c)) {
		if n < 1000 {
			t.Fatalf("shard %d holds %d keys; the test wants keys on every shard", i, n)
		}
	}

	for _, tc := range []struct {
		match string
		count int64
		typ   string
	}{
		{"", 0, ""},
		{"", 10, ""},
		{"", 1000, ""},
		{"", 100000, ""},
		{"k:1*", 0, ""},
		{"k:1*", 500, ""},
		{"h:*", 100, ""},
		{"*:1?0", 50, ""},
		{"nothing-matches-*", 100, ""},
		{"", 200, "hash"},
		{"", 200, "list"},
		{"*1*", 200, "set"},
		{"", 1000, "string"},
		{"", 100, "zset"},
	} {
		name := fmt.Sprintf("match=%q,count=%d,type=%q", tc.match, tc.count, tc.typ)
		t.Run(name, func(t *testing.T) {
			pages := scanThrough(t, cl, tc.match, tc.count, tc.typ, nil)
			checkScanPages(t, c, pages)
			pattern := tc.match
			if pattern == "" {
				pattern = "*"
			}
			checkSameKeys(t, name, scannedKeys(pages), shardKeys(t, c, pattern, tc.typ))
			if tc.count >= 100000 && len(pages) != len(c.Shards) {
				// COUNT above every shard's size: one page per shard.
				t.Errorf("SCAN COUNT %d took %d calls, want %d (one per shard)", tc.count, len(pages), len(c.Shards))
			}
		})
	}

	t.Run("options reach the shard", func(t *testing.T) {
		// The proxy forwards the options; a shard's answer to a bad one is
		// Redis's own.
		rc := dialRaw(t, c.Addr)
		direct := dialRaw(t, c.Shards[0].Addr())
		for _, args := range [][]string{
			{"SCAN", "0", "COUNT", "0"},
			{"SCAN", "0", "COUNT", "x"},
			{"SCAN", "0", "MATCH"},
			{"SCAN", "0", "FOO", "bar"},
			{"SCAN", "0", "TYPE"},
		} {
			if got, want := rc.do(args...), direct.do(args...); got != want {
				t.Errorf("%q = %s, want %s (as the shard)", args, got, want)
			}
		}
	})

	t.Run("pipelined", func(t *testing.T) {
		// SCAN pages merged among forwarded replies of one pipeline.
		ctx := t.Context()
		p := cl.Pipeline()
		get := p.Get(ctx, "k:1")
		s0 := p.Scan(ctx, 0, "", 100)
		set := p.Set(ctx, "k:1", "w", 0)
		s1 := p.Scan(ctx, 1, "", 100)
		if _, err := p.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		if get.Val() != "v" || set.Val() != "OK" {
			t.Errorf("GET, SET around SCAN = %q, %q", get.Val(), set.Val())
		}
		k0, _ := s0.Val()
		k1, _ := s1.Val()
		if len(k0) == 0 || len(k1) == 0 {
			t.Errorf("pipelined SCAN pages: %d and %d keys, want some", len(k0), len(k1))
		}
		for _, k := range k1 {
			if c.Table.ShardOf([]byte(k)) != 1 {
				t.Errorf("SCAN 1 returned %q, not on shard 1", k)
			}
		}
	})
}

// TestIntegrationScanUneven scans 4 shards of very different sizes, one of
// them owning a few slots only.
func TestIntegrationScanUneven(t *testing.T) {
	ranges := [][]router.Range{
		{{From: 0, To: 9}},
		{{From: 10, To: 8000}},
		{{From: 8001, To: 8100}, {From: 16000, To: 16383}},
		{{From: 8101, To: 15999}},
	}
	c := proxytest.Start(t, proxytest.Options{Shards: 4, Ranges: ranges})
	cl := c.Client()
	fillTyped(t, cl, 10000)
	t.Logf("shard sizes %v", shardSizes(t, directClients(c)))
	for _, count := range []int64{0, 7, 1000} {
		pages := scanThrough(t, cl, "", count, "", nil)
		checkScanPages(t, c, pages)
		checkSameKeys(t, fmt.Sprintf("COUNT %d", count), scannedKeys(pages), shardKeys(t, c, "*", ""))
	}
	pages := scanThrough(t, cl, "k:*", 100, "", nil)
	checkSameKeys(t, "MATCH k:*", scannedKeys(pages), shardKeys(t, c, "k:*", ""))
}

// TestIntegrationScanWhileWriting changes the keyspace between pages:
// deletes, and enough new keys to make the shards' tables grow (rehash)
// mid-scan. Every key present for the whole scan must come back.
func TestIntegrationScanWhileWriting(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3})
	cl := c.Client()
	ctx := t.Context()
	stable := fill(t, cl, "stable:", 5000)
	volatile := fill(t, cl, "vol:", 2000)
	next := 0
	between := func() {
		p := cl.Pipeline()
		for i := 0; i < 40; i++ {
			p.Set(ctx, "new:"+strconv.Itoa(next), "v", 0)
			next++
		}
		for i := 0; i < 5 && len(volatile) > 0; i++ {
			p.Del(ctx, volatile[len(volatile)-1])
			volatile = volatile[:len(volatile)-1]
		}
		if _, err := p.Exec(ctx); err != nil {
			t.Fatalf("writes between pages: %v", err)
		}
	}
	pages := scanThrough(t, cl, "", 20, "", between)
	checkScanPages(t, c, pages)
	got := scannedKeys(pages)
	var missing []string
	for _, k := range stable {
		if got[k] == 0 {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d keys present for the whole scan were not returned: %.20q", len(missing), missing)
	}
	for k := range got {
		if !strings.HasPrefix(k, "stable:") && !strings.HasPrefix(k, "vol:") && !strings.HasPrefix(k, "new:") {
			t.Errorf("SCAN returned %q, never written", k)
		}
	}
	t.Logf("%d pages, %d distinct keys, %d added and %d deleted during the scan", len(pages), len(got), next, 2000-len(volatile))
}

func TestIntegrationScanCursor(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3})
	fill(t, c.Client(), "k", 100)
	rc := dialRaw(t, c.Addr)
	direct := dialRaw(t, c.Shards[0].Addr())

	// Cursors Redis refuses are refused with Redis's words.
	for _, cur := range []string{"abc", " 1", "1 ", "0x10", "1.5", "+", "-", "18446744073709551616", "99999999999999999999999"} {
		got, want := rc.do("SCAN", cur), direct.do("SCAN", cur)
		if got != want || got != "-ERR invalid cursor" {
			t.Errorf("SCAN %q = %s, want %s (as Redis)", cur, got, want)
		}
	}
	// Cursors that name a shard the table does not have: never given out
	// by the proxy, and it cannot tell what such a cursor has covered.
	for _, cur := range []string{"3", "16383", "-1", strconv.FormatUint(5<<scanShardBits|3, 10)} {
		if got := rc.do("SCAN", cur); got != "-ERR invalid cursor" {
			t.Errorf("SCAN %q = %s, want -ERR invalid cursor", cur, got)
		}
	}
	// Cursors Redis reads as numbers are read the same way: "" and "+0"
	// are 0, "007" is 7, "+2" and "2" start shard 2.
	for _, tc := range []struct{ cur, same string }{{"", "0"}, {"+0", "0"}, {"-0", "0"}, {"+2", "2"}, {"002", "2"}} {
		if got, want := rc.do("SCAN", tc.cur, "COUNT", "1000"), rc.do("SCAN", tc.same, "COUNT", "1000"); got != want {
			t.Errorf("SCAN %q = %s, want as SCAN %s: %s", tc.cur, got, tc.same, want)
		}
	}
	if got := rc.do("SCAN"); got != "-ERR wrong number of arguments for 'scan' command" {
		t.Errorf("SCAN without cursor = %s", got)
	}
	// The last shard's end is the scan's end; earlier shards' ends move on.
	for _, tc := range []struct{ cur, next string }{{"0", "1"}, {"1", "2"}, {"2", "0"}} {
		rc.send("SCAN", tc.cur, "COUNT", "1000")
		reply, ok := rc.read().([]any)
		if !ok || len(reply) != 2 {
			t.Fatalf("SCAN %s = %s", tc.cur, render(reply))
		}
		if got := string(reply[0].([]byte)); got != tc.next {
			t.Errorf("SCAN %s COUNT 1000 (whole shard) gave cursor %s, want %s", tc.cur, got, tc.next)
		}
	}
}

// TestIntegrationScanCollections checks HSCAN, SSCAN and ZSCAN, routed by
// key, over collections big enough to be hash tables (so the cursor is a
// real one), on every shard.
func TestIntegrationScanCollections(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3})
	cl := c.Client()
	ctx := t.Context()
	const n = 5000
	for shard := range c.Shards {
		hkey, skey, zkey := keyOn(t, c, "hash", shard), keyOn(t, c, "set", shard), keyOn(t, c, "zset", shard)
		p := cl.Pipeline()
		fields := map[string]bool{}
		for i := 0; i < n; i++ {
			f := "f:" + strconv.Itoa(i)
			fields[f] = true
			p.HSet(ctx, hkey, f, "v"+strconv.Itoa(i))
			p.SAdd(ctx, skey, f)
			p.ZAdd(ctx, zkey, redis.Z{Score: float64(i), Member: f})
		}
		if _, err := p.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		matching := map[string]bool{}
		for f := range fields {
			if ok, _ := path.Match("f:1*", f); ok {
				matching[f] = true
			}
		}
		direct := c.Shards[shard].Client()

		type scanFn func(cl *redis.Client, cursor uint64, match string, count int64) *redis.ScanCmd
		for _, tc := range []struct {
			cmd, key string
			scan     scanFn
			pairs    bool // replies alternate member and value
		}{
			{"HSCAN", hkey, func(cl *redis.Client, cur uint64, m string, n int64) *redis.ScanCmd {
				return cl.HScan(ctx, hkey, cur, m, n)
			}, true},
			{"SSCAN", skey, func(cl *redis.Client, cur uint64, m string, n int64) *redis.ScanCmd {
				return cl.SScan(ctx, skey, cur, m, n)
			}, false},
			{"ZSCAN", zkey, func(cl *redis.Client, cur uint64, m string, n int64) *redis.ScanCmd {
				return cl.ZScan(ctx, zkey, cur, m, n)
			}, true},
		} {
			for _, opt := range []struct {
				match string
				count int64
				want  map[string]bool
			}{{"", 0, fields}, {"", 100, fields}, {"f:1*", 300, matching}} {
				what := fmt.Sprintf("%s %s MATCH %q COUNT %d", tc.cmd, tc.key, opt.match, opt.count)
				got := map[string]int{}
				var cursor uint64
				for calls := 0; ; calls++ {
					page, next, err := tc.scan(cl, cursor, opt.match, opt.count).Result()
					if err != nil {
						t.Fatalf("%s: %v", what, err)
					}
					if cursor == 0 {
						// Routed unchanged: the same page as on the shard.
						dpage, dnext, _ := tc.scan(direct, 0, opt.match, opt.count).Result()
						if next != dnext || !slices.Equal(page, dpage) {
							t.Errorf("%s: first page differs from the shard's (cursor %d vs %d)", what, next, dnext)
						}
					}
					for i := 0; i < len(page); i++ {
						got[page[i]]++
						if tc.pairs {
							i++
						}
					}
					if next == 0 {
						break
					}
					if calls > 100_000 {
						t.Fatalf("%s did not end", what)
					}
					cursor = next
				}
				checkSameKeys(t, what, got, opt.want)
			}
		}
		if t.Failed() {
			t.Logf("keys %q, %q, %q on shard %d", hkey, skey, zkey, shard)
		}
	}
}
