package migrate

import (
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/internal/redistest"
)

// TestRestoreBigKeys: values above BigKeyBytes (a 200k-field hash, a
// 500k-element list, a big sorted set and set, a stream with groups and
// pending entries, a 3 MB string) are written in chunks and end up equal
// to the source. No command sent to a target is big: each carries at most
// about ChunkElements elements and ChunkBytes bytes, so none can block a
// target for long. That is checked on the commands' sizes, as the targets'
// SLOWLOG records every command with its argument count and lengths, not on
// their durations, which a loaded machine stretches.
func TestRestoreBigKeys(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t, sourceArgs...)
	sc := src.Client()
	pipeFill(t, sc, 200000, 5000, func(p redis.Pipeliner, from, to int) {
		args := []any{"HSET", "big:hash"}
		for i := from; i < to; i++ {
			args = append(args, "field:"+strconv.Itoa(i), "value:"+strconv.Itoa(i*7))
		}
		p.Do(ctx, args...)
	})
	pipeFill(t, sc, 500000, 10000, func(p redis.Pipeliner, from, to int) {
		args := []any{"RPUSH", "big:list"}
		for i := from; i < to; i++ {
			args = append(args, "element-"+strconv.Itoa(i))
		}
		p.Do(ctx, args...)
	})
	pipeFill(t, sc, 100000, 5000, func(p redis.Pipeliner, from, to int) {
		zargs := []any{"ZADD", "big:zset"}
		sargs := []any{"SADD", "big:set"}
		for i := from; i < to; i++ {
			zargs = append(zargs, strconv.FormatFloat(float64(i)/3, 'g', -1, 64), "member-"+strconv.Itoa(i))
			sargs = append(sargs, "member-"+strconv.Itoa(i))
		}
		p.Do(ctx, zargs...)
		p.Do(ctx, sargs...)
	})
	pipeFill(t, sc, 20000, 1000, func(p redis.Pipeliner, from, to int) {
		for i := from; i < to; i++ {
			p.Do(ctx, "XADD", "big:stream", "*", "n", strconv.Itoa(i), "payload", strings.Repeat("s", 20))
		}
	})
	streamWithGroups(t, sc, "big:stream", 10)
	do(t, sc, "XGROUP", "CREATE", "big:stream", "g3", "0")
	do(t, sc, "XREADGROUP", "GROUP", "g3", "c3", "COUNT", "3000", "STREAMS", "big:stream", ">")
	do(t, sc, "XDEL", "big:stream", "0-1")
	rng := rand.New(rand.NewPCG(3, 4))
	noise := make([]byte, 3<<20) // incompressible: LZF would make a repeated text small
	for i := range noise {
		noise[i] = byte(rng.Uint32())
	}
	do(t, sc, "SET", "big:string", noise)
	do(t, sc, "PEXPIRE", "big:hash", 3600000)
	do(t, sc, "SET", "small", "v")
	path := saveRDB(t, src, "dump.rdb")

	targets := redistest.StartN(t, 3, "--slowlog-log-slower-than", "0", "--slowlog-max-len", "1000000")
	shards := evenShards(t, targets)
	cfg := testConfig([]string{path}, shards)
	cfg.BigKeyBytes = 64 << 10
	cfg.Verify = true
	cfg.VerifySample = -1
	rep, err := Restore(ctx, cfg)
	t.Log("\n" + rep.String())
	must(t, err)
	var big int64
	for _, tr := range rep.Targets {
		big += tr.BigKeys
	}
	if big != 6 {
		t.Errorf("%d keys written in chunks, want 6", big)
	}
	// What the restore (and its verification) sent the targets, before the
	// test's own whole-key reads below show up in the slow log.
	maxArgs := 2*cfg.ChunkElements + 16        // HSET key f v f v ..., ZADD key s m ...
	maxBytes := int64(cfg.ChunkBytes) + 64<<10 // a chunk goes over by at most an element
	for _, s := range targets {
		entries, err := s.Client().SlowLogGet(ctx, -1).Result()
		must(t, err)
		if len(entries) == 0 {
			t.Fatalf("%s: the slow log recorded no command", s.Addr())
		}
		for _, e := range entries {
			if argc, size := slowlogSize(t, e.Args); argc > maxArgs || size > maxBytes {
				t.Errorf("%s: %v has %d arguments, %d bytes: want at most %d and %d", s.Addr(), clipArgs(e.Args), argc, size, maxArgs, maxBytes)
			}
		}
		// No temporary key is left behind.
		keys, err := s.Client().Keys(ctx, "*reshard-restore-tmp*").Result()
		must(t, err)
		if len(keys) > 0 {
			t.Errorf("%s: temporary keys left: %q", s.Addr(), keys)
		}
	}
	compareServers(t, sc, targets, shards)
}

func pipeFill(t *testing.T, c *redis.Client, n, batch int, fill func(p redis.Pipeliner, from, to int)) {
	t.Helper()
	ctx := context.Background()
	p := c.Pipeline()
	for from := 0; from < n; from += batch {
		fill(p, from, min(from+batch, n))
		if p.Len() >= 20 {
			if _, err := p.Exec(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
}

// slowlogSize returns the argument count of a command as SLOWLOG records
// it, and the bytes of the arguments it shows: it keeps 32 arguments, the
// last one saying "... (N more arguments)", and cuts each to 128 bytes
// followed by "... (N more bytes)".
func slowlogSize(t *testing.T, args []string) (argc int, size int64) {
	t.Helper()
	argc = len(args)
	for i, a := range args {
		if m := moreArgs.FindStringSubmatch(a); m != nil && i == len(args)-1 {
			n, _ := strconv.Atoi(m[1])
			argc += n - 1
			continue
		}
		size += int64(len(a))
		if m := moreBytes.FindStringSubmatch(a); m != nil {
			n, _ := strconv.ParseInt(m[2], 10, 64)
			size += n - int64(len(a)) + int64(len(m[1]))
		}
	}
	return argc, size
}

var (
	moreArgs  = regexp.MustCompile(`^\.\.\. \((\d+) more arguments\)$`)
	moreBytes = regexp.MustCompile(`^(?s)(.*)\.\.\. \((\d+) more bytes\)$`)
)

func clipArgs(args []string) string {
	s := fmt.Sprint(args)
	if len(s) > 100 {
		s = s[:100] + "..."
	}
	return s
}
