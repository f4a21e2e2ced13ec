package rdb

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/internal/redistest"
)

// Integration tests: every value type and encoding Redis writes, saved by a
// real redis-server, read back with Reader and checked against the live
// server (DUMP, TTLs, values) and a second server (RESTORE).

// serverArgs: DEBUG is needed for DEBUG POPULATE and the quicklist packed
// threshold; list-compress-depth 1 makes Redis keep inner quicklist nodes
// LZF-compressed, which it then saves as LZF strings inside the value.
var serverArgs = []string{"--enable-debug-command", "yes", "--rdbcompression", "yes", "--list-compress-depth", "1"}

func clientDB(t testing.TB, s *redistest.Server, db int) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), DB: db, Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { c.Close() })
	return c
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

const testFunction = "#!lua name=rdbtestlib\nredis.register_function('rdbtest_echo', function(keys, args) return args[1] end)"

// populate writes one key per type and encoding into db 0 and db 3 and
// loads a function library. It returns the keys per db.
func populate(ctx context.Context, t *testing.T, c0, c3 *redis.Client) map[int][]string {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 8))
	randText := func(n int) string {
		const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(b)
	}
	do := func(c *redis.Client, args ...any) {
		t.Helper()
		if err := c.Do(ctx, args...).Err(); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	far := time.Now().Add(24 * time.Hour).UnixMilli()

	do(c0, "SET", "str:int", "12345")
	do(c0, "SET", "str:negint", "-42")
	do(c0, "SET", "str:bigint", "123456789012345")
	do(c0, "SET", "str:embstr", "hello")
	do(c0, "SET", "str:raw", randText(200))
	do(c0, "SET", "str:lzf", strings.Repeat("abcdefgh", 12500))
	do(c0, "SET", "str:empty", "")
	do(c0, "SET", "12345", "an integer-encoded key name")
	do(c0, "SET", strings.Repeat("longkey-", 30), "an LZF-compressed key name")
	do(c0, "SET", "bin\x00\xff\r\nkey", "bin\x00\xffvalue")

	do(c0, "RPUSH", "list:small", "a", "b", "c", "1", "-3", "70000", "")
	big := []any{"RPUSH", "list:big"}
	for i := range 20000 {
		big = append(big, fmt.Sprintf("elem-%d", i))
	}
	do(c0, big...)
	do(c0, "RPUSH", "list:10k", "head", strings.Repeat("y", 10000), "tail")
	// Redis 7.0 makes a plain node only above quicklist-packed-threshold
	// (1 GB unless DEBUG lowers it); 7.2+ also for anything larger than a
	// node's size limit.
	do(c0, "DEBUG", "QUICKLIST-PACKED-THRESHOLD", "1000")
	do(c0, "RPUSH", "list:plain", "a", "b", strings.Repeat("p", 10000), "c", randText(5000), "d")
	do(c0, "DEBUG", "QUICKLIST-PACKED-THRESHOLD", "0")

	do(c0, "HSET", "hash:lp", "f1", "v1", "f2", "2", "f3", "")
	hash := []any{"HSET", "hash:ht"}
	for i := range 300 {
		hash = append(hash, fmt.Sprintf("field-%d", i), fmt.Sprintf("value-%d", i))
	}
	do(c0, hash...)
	do(c0, "HSET", "hash:bigval", "f", randText(100))

	do(c0, "SADD", "set:intset", "1", "2", "3", "-5", "70000")
	do(c0, "SADD", "set:intset64", "1", "5000000000", "-5000000000")
	do(c0, "SADD", "set:small", "a", "b", "c")
	set := []any{"SADD", "set:big"}
	for i := range 1000 {
		set = append(set, fmt.Sprintf("member-%d", i))
	}
	do(c0, set...)

	do(c0, "ZADD", "zset:lp", "1.5", "a", "2", "b", "-inf", "c", "+inf", "d", "0.1", "e", "-7", "f")
	zset := []any{"ZADD", "zset:sl"}
	for i := range 200 {
		zset = append(zset, strconv.FormatFloat(rng.NormFloat64()*1e6, 'g', -1, 64), fmt.Sprintf("m-%d", i))
	}
	zset = append(zset, "1e300", "huge", "5e-324", "tiny", "0.1", "tenth")
	do(c0, zset...)

	do(c0, "XADD", "stream:basic", "1-1", "f1", "v1", "f2", "v2")
	do(c0, "XADD", "stream:basic", "1-2", "f1", "x", "f2", "y")
	do(c0, "XADD", "stream:basic", "2-0", "other", "1")
	do(c0, "XADD", "stream:basic", "3-0", "f1", "v1", "f1", "v2", "12", "-34")
	do(c0, "XADD", "stream:basic", "4-0", "f1", "deleted", "f2", "soon")
	do(c0, "XDEL", "stream:basic", "4-0")
	for i := range 250 {
		do(c0, "XADD", "stream:groups", "*", "n", strconv.Itoa(i), "payload", randText(20))
	}
	do(c0, "XGROUP", "CREATE", "stream:groups", "g1", "0")
	do(c0, "XREADGROUP", "GROUP", "g1", "c1", "COUNT", "10", "STREAMS", "stream:groups", ">")
	do(c0, "XREADGROUP", "GROUP", "g1", "c2", "COUNT", "5", "STREAMS", "stream:groups", ">")
	first, err := c0.XRange(ctx, "stream:groups", "-", "+").Result()
	must(t, err)
	do(c0, "XACK", "stream:groups", "g1", first[0].ID, first[2].ID)
	do(c0, "XCLAIM", "stream:groups", "g1", "c2", "0", first[1].ID)
	do(c0, "XGROUP", "CREATE", "stream:groups", "g2", "$")
	do(c0, "XGROUP", "CREATECONSUMER", "stream:groups", "g2", "idle-consumer")
	do(c0, "XDEL", "stream:groups", first[100].ID)
	do(c0, "XGROUP", "CREATE", "stream:empty", "g", "$", "MKSTREAM")

	do(c0, "SET", "ttl:str", "v", "PX", "3600000")
	do(c0, "HSET", "ttl:hash", "f", "v")
	do(c0, "PEXPIREAT", "ttl:hash", far)
	do(c0, "RPUSH", "ttl:list", "a")
	do(c0, "EXPIRE", "ttl:list", "100000")

	do(c3, "SET", "db3:str", "in db 3")
	do(c3, "ZADD", "db3:zset", "1", "x")
	do(c3, "SET", "db3:ttl", "v", "PXAT", far+1)

	do(c0, "FUNCTION", "LOAD", testFunction)

	keys := map[int][]string{}
	for db, c := range map[int]*redis.Client{0: c0, 3: c3} {
		ks, err := c.Keys(ctx, "*").Result()
		must(t, err)
		keys[db] = ks
	}
	return keys
}

// expectedType maps what the live server reports to the RDB type it
// writes.
func expectedType(ctx context.Context, t *testing.T, c *redis.Client, key string, version uint16) byte {
	t.Helper()
	typ, err := c.Type(ctx, key).Result()
	must(t, err)
	enc, err := c.ObjectEncoding(ctx, key).Result()
	must(t, err)
	switch typ + "/" + enc {
	case "string/int", "string/embstr", "string/raw":
		return TypeString
	case "list/quicklist", "list/listpack":
		return TypeListQuicklist2
	case "hash/listpack":
		return TypeHashListpack
	case "hash/hashtable":
		return TypeHash
	case "set/intset":
		return TypeSetIntset
	case "set/listpack":
		return TypeSetListpack
	case "set/hashtable":
		return TypeSet
	case "zset/listpack":
		return TypeZSetListpack
	case "zset/skiplist":
		return TypeZSet2
	case "stream/stream":
		if version >= 11 {
			return TypeStreamListpacks3
		}
		return TypeStreamListpacks2
	}
	t.Fatalf("key %q: unexpected type/encoding %s/%s", key, typ, enc)
	return 0
}

// live renders a key from the live server the way render does from the RDB.
func live(ctx context.Context, t *testing.T, c *redis.Client, key string) []string {
	t.Helper()
	typ, err := c.Type(ctx, key).Result()
	must(t, err)
	var out []string
	switch typ {
	case "string":
		s, err := c.Get(ctx, key).Result()
		must(t, err)
		out = []string{s}
	case "list":
		out, err = c.LRange(ctx, key, 0, -1).Result()
		must(t, err)
	case "set":
		out, err = c.SMembers(ctx, key).Result()
		must(t, err)
		slices.Sort(out)
	case "hash":
		m, err := c.HGetAll(ctx, key).Result()
		must(t, err)
		for f, v := range m {
			out = append(out, f+"="+v)
		}
		slices.Sort(out)
	case "zset":
		zs, err := c.ZRangeWithScores(ctx, key, 0, -1).Result()
		must(t, err)
		for _, z := range zs {
			out = append(out, z.Member.(string)+"="+formatScore(z.Score))
		}
	case "stream":
		out = liveStream(ctx, t, c, key)
	default:
		t.Fatalf("key %q: type %s", key, typ)
	}
	return out
}

func liveStream(ctx context.Context, t *testing.T, c *redis.Client, key string) []string {
	t.Helper()
	var out []string
	entries, err := c.Do(ctx, "XRANGE", key, "-", "+").Slice()
	must(t, err)
	for _, e := range entries {
		e := e.([]any)
		line := e[0].(string)
		for _, f := range e[1].([]any) {
			line += " " + f.(string)
		}
		out = append(out, line)
	}
	info, err := c.Do(ctx, "XINFO", "STREAM", key, "FULL", "COUNT", "0").Slice()
	must(t, err)
	m := asMap(info)
	out = append(out, fmt.Sprintf("length=%d last=%s", m["length"], m["last-generated-id"]))
	for _, g := range m["groups"].([]any) {
		g := asMap(g.([]any))
		read := int64(-1)
		if r, ok := g["entries-read"].(int64); ok {
			read = r
		}
		out = append(out, fmt.Sprintf("group %s last=%s read=%d", g["name"], g["last-delivered-id"], read))
		for _, p := range g["pending"].([]any) {
			p := p.([]any) // id, consumer, delivery time, delivery count
			out = append(out, fmt.Sprintf("  pending %s %s count=%d", p[0], p[1], p[3]))
		}
		for _, cn := range g["consumers"].([]any) {
			cn := asMap(cn.([]any))
			var ids []string
			for _, p := range cn["pending"].([]any) {
				ids = append(ids, p.([]any)[0].(string))
			}
			out = append(out, fmt.Sprintf("  consumer %s pending=[%s]", cn["name"], strings.Join(ids, " ")))
		}
	}
	return out
}

func asMap(flat []any) map[string]any {
	m := map[string]any{}
	for i := 0; i+1 < len(flat); i += 2 {
		m[flat[i].(string)] = flat[i+1]
	}
	return m
}

// saveAndRead runs SAVE and reads the dump with Reader.
func saveAndRead(ctx context.Context, t *testing.T, s *redistest.Server, c *redis.Client) ([]byte, []*Entry, *Reader) {
	t.Helper()
	must(t, c.Save(ctx).Err())
	file, err := os.ReadFile(filepath.Join(s.Dir(), "dump.rdb"))
	must(t, err)
	entries, r, err := readAll(t, file, false)
	if err != nil {
		t.Fatalf("read dump.rdb: %v", err)
	}
	return file, entries, r
}

func TestRedisEveryTypeAndEncoding(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t, serverArgs...)
	dst := redistest.Start(t, serverArgs...)
	clients := map[int]*redis.Client{0: clientDB(t, src, 0), 3: clientDB(t, src, 3)}
	targets := map[int]*redis.Client{0: clientDB(t, dst, 0), 3: clientDB(t, dst, 3)}
	keys := populate(ctx, t, clients[0], clients[3])
	file, entries, r := saveAndRead(ctx, t, src, clients[0])

	if r.Version() != 10 {
		t.Errorf("Version() = %d, want 10 (Redis 7.0)", r.Version())
	}
	if stored, computed, ok := r.Checksum(); !ok || stored != computed || stored == 0 {
		t.Errorf("Checksum() = %x, %x, %v; want a matching non-zero checksum", stored, computed, ok)
	}

	byDBKey := map[string]*Entry{}
	aux := map[string]string{}
	resize := map[int]uint64{}
	var functions []string
	for _, e := range entries {
		switch e.Kind {
		case KindKey:
			id := fmt.Sprintf("%d/%s", e.DB, e.Key)
			if byDBKey[id] != nil {
				t.Errorf("key %s read twice", id)
			}
			byDBKey[id] = e
		case KindAux:
			aux[string(e.Key)] = string(e.Value)
		case KindResizeDB:
			resize[e.DB] = e.DBSize
		case KindFunction:
			functions = append(functions, string(e.Value))
		}
	}
	info, err := clients[0].Info(ctx, "server").Result()
	must(t, err)
	if !strings.Contains(info, "redis_version:"+aux["redis-ver"]+"\r") || aux["redis-bits"] != "64" || aux["ctime"] == "" {
		t.Errorf("aux fields %q do not match INFO server", aux)
	}
	if !slices.Equal(functions, []string{testFunction}) {
		t.Errorf("functions = %q, want the loaded library", functions)
	}

	total := 0
	for db, ks := range keys {
		total += len(ks)
		if resize[db] != uint64(len(ks)) {
			t.Errorf("RESIZEDB for db %d says %d keys, the db has %d", db, resize[db], len(ks))
		}
	}
	if len(byDBKey) != total {
		t.Errorf("read %d keys, the server has %d", len(byDBKey), total)
	}

	sawPlain, sawLZFNode := false, false
	identical, rebuilt := 0, 0
	for db, ks := range keys {
		c, tc := clients[db], targets[db]
		for _, key := range ks {
			t.Run(fmt.Sprintf("db%d/%q", db, key), func(t *testing.T) {
				e := byDBKey[fmt.Sprintf("%d/%s", db, key)]
				if e == nil {
					t.Fatalf("not in the RDB")
				}
				if want := expectedType(ctx, t, c, key, r.Version()); e.Type != want {
					t.Errorf("type %d (%s), want %d (%s)", e.Type, TypeName(e.Type), want, TypeName(want))
				}
				pexp, err := c.Do(ctx, "PEXPIRETIME", key).Int64()
				must(t, err)
				if e.ExpireMs != pexp {
					t.Errorf("ExpireMs = %d, PEXPIRETIME = %d", e.ExpireMs, pexp)
				}

				dump, err := c.Dump(ctx, key).Result()
				must(t, err)
				payload := DumpPayload(e, r.Version())
				if !bytes.Equal(payload, []byte(dump)) {
					t.Errorf("DumpPayload differs from DUMP:\n got %x\nwant %x", head(payload), head([]byte(dump)))
				}

				got, err := render(e)
				if err != nil {
					t.Fatalf("decode: %v", err)
				}
				if want := live(ctx, t, c, key); !slices.Equal(got, want) {
					t.Errorf("decoded value differs from the live one:\n got %q\nwant %q", trim(got), trim(want))
				}

				ttl := int64(0)
				if e.ExpireMs >= 0 {
					ttl = e.ExpireMs
				}
				if err := tc.Do(ctx, "RESTORE", key, ttl, string(payload), "ABSTTL", "REPLACE").Err(); err != nil {
					t.Fatalf("RESTORE on a second server: %v", err)
				}
				redump, err := tc.Dump(ctx, key).Result()
				must(t, err)
				if redump == dump {
					identical++
				} else {
					// Hashtable-encoded values can come back in another
					// iteration order; the content must still be equal.
					rebuilt++
					re, _, err := ParseDumpPayload([]byte(redump))
					if err != nil {
						t.Fatalf("parse the target's DUMP: %v", err)
					}
					if regot, err := render(re); err != nil || !slices.Equal(regot, got) {
						t.Errorf("restored value differs: %q (%v), want %q", trim(regot), err, trim(got))
					}
				}
				if texp, err := tc.Do(ctx, "PEXPIRETIME", key).Int64(); err != nil || texp != pexp {
					t.Errorf("restored PEXPIRETIME = %d (%v), want %d", texp, err, pexp)
				}

				if e.Type == TypeListQuicklist2 {
					plain, lzf := quicklistNodes(t, e)
					sawPlain = sawPlain || plain
					sawLZFNode = sawLZFNode || lzf
				}
			})
		}
	}
	t.Logf("%d keys, %d bytes; after RESTORE into a fresh server %d DUMP identically, %d with the same content in another order", total, len(file), identical, rebuilt)
	if !sawPlain || !sawLZFNode {
		t.Errorf("test data did not produce a plain quicklist node (%v) and an LZF-compressed node (%v)", sawPlain, sawLZFNode)
	}
	if e := byDBKey["0/str:lzf"]; e == nil || e.Value[0] != 0xc0|encLZF {
		t.Errorf("str:lzf is not LZF-compressed in the RDB")
	}

	// Functions restore through FUNCTION LOAD.
	must(t, targets[0].Do(ctx, "FUNCTION", "LOAD", functions[0]).Err())
	if got, err := targets[0].Do(ctx, "FCALL", "rdbtest_echo", 0, "hi").Text(); err != nil || got != "hi" {
		t.Errorf("FCALL on the restored library = %q, %v", got, err)
	}

	// A counting pass sees the same keys at the same offsets and sizes.
	skipped, _, err := readAll(t, file, true)
	must(t, err)
	if len(skipped) != len(entries) {
		t.Fatalf("SkipValues pass: %d entries, want %d", len(skipped), len(entries))
	}
	for i, e := range skipped {
		if e.Offset != entries[i].Offset || e.Size != entries[i].Size || !bytes.Equal(e.Key, entries[i].Key) || (e.Kind == KindKey && e.Value != nil) {
			t.Errorf("SkipValues entry %d = %s %q at %d+%d, want %s %q at %d+%d", i, e.Kind, e.Key, e.Offset, e.Size, entries[i].Kind, entries[i].Key, entries[i].Offset, entries[i].Size)
		}
	}

	// A whole-file Digest agrees with the trailer.
	d := NewCRC64()
	d.Write(file[:len(file)-8])
	if d.Sum64() != leUint64(file[len(file)-8:]) {
		t.Errorf("Digest over the file = %x, trailer %x", d.Sum64(), file[len(file)-8:])
	}
}

func leUint64(b []byte) uint64 {
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

// quicklistNodes reports whether a quicklist2 value has a plain node and
// an LZF-compressed node.
func quicklistNodes(t *testing.T, e *Entry) (plain, lzf bool) {
	t.Helper()
	c := cursor{b: e.Value}
	n, err := c.count()
	must(t, err)
	for ; n > 0; n-- {
		container, err := c.count()
		must(t, err)
		plain = plain || container == quicklistPlain
		lzf = lzf || c.b[c.p] == 0xc0|encLZF
		var buf []byte
		_, err = c.str(&buf)
		must(t, err)
	}
	return plain, lzf
}

func head(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

func trim(s []string) []string {
	if len(s) > 8 {
		return append(s[:8:8], fmt.Sprintf("... %d more", len(s)-8))
	}
	return s
}
