package migrate

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/internal/redistest"
	"github.com/reshard/reshard/router"
)

// sourceArgs: DEBUG for DEBUG POPULATE and the quicklist threshold; LZF
// compression and list compression so the RDB holds compressed strings.
var sourceArgs = []string{"--enable-debug-command", "yes", "--rdbcompression", "yes", "--list-compress-depth", "1"}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func clientDB(t testing.TB, s *redistest.Server, db int) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), DB: db, Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { c.Close() })
	return c
}

func do(t testing.TB, c *redis.Client, args ...any) any {
	t.Helper()
	v, err := c.Do(context.Background(), args...).Result()
	if err != nil {
		t.Fatalf("%.200v: %v", args, err)
	}
	return v
}

// saveRDB runs SAVE on s and copies its dump.rdb to a file of the test.
func saveRDB(t testing.TB, s *redistest.Server, name string) string {
	t.Helper()
	c := s.Client()
	must(t, c.Save(context.Background()).Err())
	dst := filepath.Join(t.TempDir(), name)
	copyFile(t, filepath.Join(s.Dir(), "dump.rdb"), dst)
	return dst
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	must(t, err)
	defer in.Close()
	out, err := os.Create(to)
	must(t, err)
	_, err = io.Copy(out, in)
	must(t, err)
	must(t, out.Close())
}

const testFunction = "#!lua name=restorelib\nredis.register_function('restore_echo', function(keys, args) return args[1] end)"

// populate writes every Redis 7 type in every encoding, with and without
// TTLs, into c, and loads a function library.
func populate(t *testing.T, c *redis.Client) {
	t.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	text := func(n int) string {
		const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(b)
	}
	far := time.Now().Add(48 * time.Hour).UnixMilli()
	do(t, c, "SET", "str:int", "12345")
	do(t, c, "SET", "str:negint", "-42")
	do(t, c, "SET", "str:embstr", "hello")
	do(t, c, "SET", "str:raw", text(300))
	do(t, c, "SET", "str:lzf", strings.Repeat("abcdefgh", 5000))
	do(t, c, "SET", "str:empty", "")
	do(t, c, "SET", "bin\x00\xff\r\nkey", "bin\x00\xffvalue")
	do(t, c, "SET", "{user1000}.name", "tagged")
	do(t, c, "SET", "{user1000}.mail", "tagged too")

	do(t, c, "RPUSH", "list:small", "a", "b", "c", "1", "-3", "70000", "")
	big := []any{"RPUSH", "list:quicklist"}
	for i := range 20000 {
		big = append(big, fmt.Sprintf("elem-%d", i))
	}
	do(t, c, big...)
	do(t, c, "DEBUG", "QUICKLIST-PACKED-THRESHOLD", "1000")
	do(t, c, "RPUSH", "list:plain", "a", strings.Repeat("p", 10000), "c")
	do(t, c, "DEBUG", "QUICKLIST-PACKED-THRESHOLD", "0")

	do(t, c, "HSET", "hash:listpack", "f1", "v1", "f2", "2", "f3", "")
	hash := []any{"HSET", "hash:hashtable"}
	for i := range 300 {
		hash = append(hash, fmt.Sprintf("field-%d", i), fmt.Sprintf("value-%d", i))
	}
	do(t, c, hash...)

	do(t, c, "SADD", "set:intset", "1", "2", "3", "-5", "70000", "5000000000")
	do(t, c, "SADD", "set:small", "a", "b", "c") // listpack on 7.2+, hashtable on 7.0
	set := []any{"SADD", "set:hashtable"}
	for i := range 1000 {
		set = append(set, fmt.Sprintf("member-%d", i))
	}
	do(t, c, set...)

	do(t, c, "ZADD", "zset:listpack", "1.5", "a", "2", "b", "-inf", "c", "+inf", "d", "0.1", "e")
	zset := []any{"ZADD", "zset:skiplist"}
	for i := range 200 {
		zset = append(zset, strconv.FormatFloat(rng.NormFloat64()*1e6, 'g', -1, 64), fmt.Sprintf("m-%d", i))
	}
	zset = append(zset, "1e300", "huge", "5e-324", "tiny", "0.1", "tenth")
	do(t, c, zset...)

	do(t, c, "XADD", "stream:basic", "1-1", "f1", "v1", "f2", "v2")
	do(t, c, "XADD", "stream:basic", "1-2", "f1", "x", "f2", "y")
	do(t, c, "XADD", "stream:basic", "3-0", "f1", "v1", "f1", "v2", "12", "-34")
	do(t, c, "XADD", "stream:basic", "4-0", "gone", "soon")
	do(t, c, "XDEL", "stream:basic", "4-0")
	streamWithGroups(t, c, "stream:groups", 250)
	do(t, c, "XGROUP", "CREATE", "stream:empty", "g", "$", "MKSTREAM")

	do(t, c, "SET", "ttl:str", "v", "PX", "3600000")
	do(t, c, "HSET", "ttl:hash", "f", "v")
	do(t, c, "PEXPIREAT", "ttl:hash", far)
	do(t, c, "RPUSH", "ttl:list", "a")
	do(t, c, "EXPIRE", "ttl:list", "100000")
	for i := range 500 {
		do(t, c, "SET", fmt.Sprintf("plain:%d", i), text(10+i%50))
	}
	do(t, c, "FUNCTION", "LOAD", "REPLACE", testFunction)
	_ = ctx
}

// streamWithGroups builds a stream of n entries with two groups, pending
// entries owned by two consumers, one acknowledged, one claimed, a pending
// entry whose message was deleted, and an idle consumer.
func streamWithGroups(t testing.TB, c *redis.Client, key string, n int) {
	t.Helper()
	ctx := context.Background()
	args := []any{"XADD", key, "*", "n", "", "payload", "p"}
	for i := range n {
		args[4] = strconv.Itoa(i)
		do(t, c, args...)
	}
	do(t, c, "XGROUP", "CREATE", key, "g1", "0")
	do(t, c, "XREADGROUP", "GROUP", "g1", "c1", "COUNT", "10", "STREAMS", key, ">")
	do(t, c, "XREADGROUP", "GROUP", "g1", "c2", "COUNT", "5", "STREAMS", key, ">")
	first, err := c.XRangeN(ctx, key, "-", "+", 12).Result()
	must(t, err)
	do(t, c, "XACK", key, "g1", first[0].ID)
	do(t, c, "XCLAIM", key, "g1", "c2", "0", first[1].ID)
	do(t, c, "XDEL", key, first[3].ID) // pending in g1, message deleted
	do(t, c, "XGROUP", "CREATE", key, "g2", "$")
	do(t, c, "XGROUP", "CREATECONSUMER", key, "g2", "idle-consumer")
}

// uneven5 is a layout of five targets with uneven, split ranges.
func uneven5(addrs []string) []router.Shard {
	r := func(a, b uint16) router.Range { return router.Range{From: a, To: b} }
	return []router.Shard{
		{Addr: addrs[0], Ranges: []router.Range{r(0, 99), r(12000, 16383)}},
		{Addr: addrs[1], Ranges: []router.Range{r(100, 5000)}},
		{Addr: addrs[2], Ranges: []router.Range{r(5001, 5001)}},
		{Addr: addrs[3], Ranges: []router.Range{r(5002, 9999)}},
		{Addr: addrs[4], Ranges: []router.Range{r(10000, 11999)}},
	}
}

func addrsOf(ss []*redistest.Server) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Addr()
	}
	return out
}

func evenShards(t testing.TB, ss []*redistest.Server) []router.Shard {
	t.Helper()
	shards, err := router.ParseSpec(strings.Join(addrsOf(ss), ","))
	must(t, err)
	return shards
}

// keysWritten is the keys the targets acknowledged, all of them.
func keysWritten(rep Report) int64 {
	var n int64
	for _, t := range rep.Targets {
		n += t.Written
	}
	return n
}

func testConfig(sources []string, targets []router.Shard) RestoreConfig {
	cfg := DefaultRestoreConfig()
	cfg.Sources = sources
	cfg.Targets = targets
	return cfg
}

// allKeys returns every key of db 0 of c.
func allKeys(t testing.TB, c *redis.Client) []string {
	t.Helper()
	var out []string
	iter := c.Scan(context.Background(), 0, "*", 1000).Iterator()
	for iter.Next(context.Background()) {
		out = append(out, iter.Val())
	}
	must(t, iter.Err())
	sort.Strings(out)
	return out
}

// compareServers checks that the targets hold exactly the source's keys,
// each on the target its slot says, with the same type, TTL (to the
// second) and content, read with ordinary commands on both sides; and the
// source's function libraries on every target.
func compareServers(t *testing.T, src *redis.Client, targets []*redistest.Server, shards []router.Shard) {
	t.Helper()
	compareUnion(t, []*redis.Client{src}, targets, shards)
}

// compareUnion is compareServers for several sources with distinct keys;
// function libraries are compared with the first source's.
func compareUnion(t *testing.T, srcs []*redis.Client, targets []*redistest.Server, shards []router.Shard) {
	t.Helper()
	ctx := context.Background()
	table, err := router.NewTable(0, shards)
	must(t, err)
	src := srcs[0]
	var want []string
	srcOf := map[string]*redis.Client{}
	for _, s := range srcs {
		for _, k := range allKeys(t, s) {
			want = append(want, k)
			srcOf[k] = s
		}
	}
	clients := map[string]*redis.Client{}
	total := 0
	for _, s := range targets {
		c := s.Client()
		clients[s.Addr()] = c
		keys := allKeys(t, c)
		total += len(keys)
		for _, k := range keys {
			if owner := table.Addr(table.ShardOf([]byte(k))); owner != s.Addr() {
				t.Errorf("key %q is on %s, its slot %d belongs to %s", k, s.Addr(), router.Slot([]byte(k)), owner)
			}
		}
	}
	if total != len(want) {
		t.Errorf("targets hold %d keys, the source %d", total, len(want))
	}
	for _, k := range want {
		dst := clients[table.Addr(table.ShardOf([]byte(k)))]
		if d := diffKey(ctx, srcOf[k], dst, k); d != "" {
			t.Errorf("key %q: %s", k, d)
		}
	}
	srcLibs, err := src.FunctionList(ctx, redis.FunctionListQuery{WithCode: true}).Result()
	must(t, err)
	for addr, c := range clients {
		libs, err := c.FunctionList(ctx, redis.FunctionListQuery{WithCode: true}).Result()
		must(t, err)
		if len(libs) != len(srcLibs) {
			t.Errorf("%s has %d function libraries, the source %d", addr, len(libs), len(srcLibs))
			continue
		}
		for i := range libs {
			if libs[i].Name != srcLibs[i].Name || libs[i].Code != srcLibs[i].Code {
				t.Errorf("%s: library %q differs from the source's %q", addr, libs[i].Name, srcLibs[i].Name)
			}
		}
	}
}

// diffKey compares one key on two servers with ordinary commands.
func diffKey(ctx context.Context, a, b *redis.Client, key string) string {
	ta, err1 := a.Type(ctx, key).Result()
	tb, err2 := b.Type(ctx, key).Result()
	if err1 != nil || err2 != nil {
		return fmt.Sprintf("TYPE: %v %v", err1, err2)
	}
	if ta != tb {
		return fmt.Sprintf("type %s, target %s", ta, tb)
	}
	pa, _ := a.PTTL(ctx, key).Result()
	pb, _ := b.PTTL(ctx, key).Result()
	if (pa < 0) != (pb < 0) || (pa >= 0 && (pa-pb > time.Second || pb-pa > time.Second)) {
		return fmt.Sprintf("PTTL %v, target %v", pa, pb)
	}
	render := func(c *redis.Client) string {
		switch ta {
		case "string":
			return c.Get(ctx, key).Val()
		case "list":
			return strings.Join(c.LRange(ctx, key, 0, -1).Val(), "\x00")
		case "hash":
			m := c.HGetAll(ctx, key).Val()
			var s []string
			for k, v := range m {
				s = append(s, k+"="+v)
			}
			slices.Sort(s)
			return strings.Join(s, "\x00")
		case "set":
			s := c.SMembers(ctx, key).Val()
			slices.Sort(s)
			return strings.Join(s, "\x00")
		case "zset":
			var s []string
			for _, z := range c.ZRangeWithScores(ctx, key, 0, -1).Val() {
				s = append(s, fmt.Sprintf("%v=%s", z.Member, strconv.FormatFloat(z.Score, 'g', -1, 64)))
			}
			return strings.Join(s, "\x00")
		case "stream":
			return fmt.Sprint(c.Do(ctx, "XRANGE", key, "-", "+").Val()) + "|" + streamMeta(ctx, c, key)
		}
		return "unknown type " + ta
	}
	if ra, rb := render(a), render(b); ra != rb {
		if len(ra) > 300 {
			ra, rb = ra[:300]+"...", rb[:min(300, len(rb))]+"..."
		}
		return fmt.Sprintf("content differs:\n source %s\n target %s", ra, rb)
	}
	return ""
}

// streamMeta renders what XINFO STREAM FULL says, without the times a
// restore cannot carry (consumers' seen and active times).
func streamMeta(ctx context.Context, c *redis.Client, key string) string {
	info, err := c.XInfoStreamFull(ctx, key, 1<<30).Result()
	if err != nil {
		return err.Error()
	}
	s := fmt.Sprintf("len=%d last=%s maxdel=%s added=%d first=%s", info.Length, info.LastGeneratedID, info.MaxDeletedEntryID, info.EntriesAdded, info.RecordedFirstEntryID)
	for _, g := range info.Groups {
		s += fmt.Sprintf(" group=%s last=%s read=%d lag=%d pel=%d", g.Name, g.LastDeliveredID, g.EntriesRead, g.Lag, g.PelCount)
		for _, p := range g.Pending {
			s += fmt.Sprintf(" [%s %s %d %d]", p.ID, p.Consumer, p.DeliveryCount, p.DeliveryTime.UnixMilli())
		}
		for _, cn := range g.Consumers {
			s += fmt.Sprintf(" consumer=%s pel=%d", cn.Name, cn.PelCount)
			for _, p := range cn.Pending {
				s += fmt.Sprintf(" (%s %d %d)", p.ID, p.DeliveryCount, p.DeliveryTime.UnixMilli())
			}
		}
	}
	return s
}

// dbsizes returns the key count of every server.
func dbsizes(t testing.TB, ss []*redistest.Server) []int64 {
	t.Helper()
	out := make([]int64, len(ss))
	for i, s := range ss {
		n, err := s.Client().DBSize(context.Background()).Result()
		must(t, err)
		out[i] = n
	}
	return out
}

func requireEmpty(t testing.TB, ss []*redistest.Server) {
	t.Helper()
	for i, n := range dbsizes(t, ss) {
		if n != 0 {
			t.Errorf("target %s holds %d keys; nothing should have been written", ss[i].Addr(), n)
		}
		libs, err := ss[i].Client().FunctionList(context.Background(), redis.FunctionListQuery{}).Result()
		must(t, err)
		if len(libs) != 0 {
			t.Errorf("target %s has %d function libraries; nothing should have been written", ss[i].Addr(), len(libs))
		}
	}
}

func slotOwner(shards []router.Shard, key string) int {
	table, err := router.NewTable(0, shards)
	if err != nil {
		panic(err)
	}
	return table.ShardOf([]byte(key))
}
