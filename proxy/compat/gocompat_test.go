package compat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// goScenario is one use of go-redis that an application could make. run
// records every reply it reads in steps; it returns an error only when the
// scenario itself cannot go on (a timeout, a broken connection), not for
// error replies, which are recorded and compared like any value.
type goScenario struct {
	name string
	run  func(ctx context.Context, c redis.UniversalClient, s *steps) error
}

// goTarget is a go-redis client as an application would create it: default
// options but the address (and the protocol, for the RESP2 target).
type goTarget struct {
	name    string
	cluster bool // a cluster-mode client; its reference is a one-node Redis Cluster
	connect func(addr string) redis.UniversalClient
}

var goScenarios = []goScenario{
	{"strings", goStrings},
	{"hashes", goHashes},
	{"lists", goLists},
	{"sets", goSets},
	{"sorted-sets", goSortedSets},
	{"streams", goStreams},
	{"transactions", goTransactions},
	{"watch", goWatch},
	{"scripts", goScripts},
	{"blocking", goBlocking},
	{"pipelines", goPipelines},
	{"server", goServer},
	{"pubsub", goPubSub},
	{"scan", goScan},
}

// goTargets: the standalone client as applications create it (RESP3 where
// the server accepts HELLO 3), the same with RESP2, and the cluster client
// given the proxy as its only seed node.
var goTargets = []goTarget{
	{name: "client", connect: func(addr string) redis.UniversalClient {
		return redis.NewClient(&redis.Options{Addr: addr})
	}},
	{name: "client-resp2", connect: func(addr string) redis.UniversalClient {
		return redis.NewClient(&redis.Options{Addr: addr, Protocol: 2})
	}},
	{name: "cluster-client", cluster: true, connect: func(addr string) redis.UniversalClient {
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{addr}})
	}},
}

// TestGoRedis runs every scenario with each go-redis client against its
// reference server, then against the proxy, and requires the same steps.
func TestGoRedis(t *testing.T) {
	r := startRig(t)
	var standalone map[string][]byte // the reference of the standalone client
	for _, tg := range goTargets {
		want := runGoTarget(t, r, tg, r.reference(tg.cluster), false)
		if !tg.cluster && standalone == nil {
			standalone = want
		}
		got := runGoTarget(t, r, tg, r.proxy.Addr, true)
		for _, sc := range goScenarios {
			w := want[sc.name]
			if got[sc.name] == nil || w == nil {
				continue // the scenario failed to run; reported already
			}
			if tg.cluster && standalone[sc.name] != nil {
				var err error
				if w, err = crossSlotFallback(w, standalone[sc.name]); err != nil {
					t.Fatalf("%s/%s: %v", tg.name, sc.name, err)
				}
			}
			if d := diffJSON(w, got[sc.name]); d != "" {
				t.Errorf("%s/%s: the proxy differs from the reference at %s", tg.name, sc.name, d)
			}
		}
	}
}

// runGoTarget runs the scenarios with one client of addr, each on an empty
// keyspace, and returns each scenario's steps as JSON.
func runGoTarget(t *testing.T, r *rig, tg goTarget, addr string, onProxy bool) map[string][]byte {
	t.Helper()
	where := "reference"
	if onProxy {
		where = "proxy"
	}
	c := tg.connect(addr)
	defer c.Close()
	out := map[string][]byte{}
	var perShard spread
	for _, sc := range goScenarios {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		if err := r.flush(ctx, addr); err != nil {
			cancel()
			t.Fatalf("%s on %s: %v", tg.name, where, err)
		}
		var s steps
		start := time.Now()
		err := sc.run(ctx, c, &s)
		if err == nil && onProxy {
			var n []int64
			if n, err = r.shardKeys(ctx); err == nil {
				perShard.add(n)
			}
		}
		cancel()
		if err != nil {
			t.Errorf("%s/%s on %s: %v (after %d steps)", tg.name, sc.name, where, err, len(s.list))
			continue
		}
		b, err := json.Marshal(s.list)
		if err != nil {
			t.Fatalf("%s/%s on %s: %v", tg.name, sc.name, where, err)
		}
		if testing.Verbose() {
			t.Logf("%s/%s on %s: %d steps in %v", tg.name, sc.name, where, len(s.list), time.Since(start).Round(time.Millisecond))
		}
		out[sc.name] = b
	}
	if onProxy {
		perShard.check(t, tg.name)
	}
	return out
}

// steps records what a scenario read: one step per command, or a named
// observation.
type steps struct{ list []step }

type step struct {
	Cmd string `json:"cmd"`
	Val any    `json:"val"`
	Err string `json:"err,omitempty"`
}

// add records commands that have run: their arguments and value, or error.
func (s *steps) add(cmds ...redis.Cmder) {
	for _, c := range cmds {
		s.list = append(s.list, step{Cmd: argText(c), Val: cmdVal(c), Err: errText(c.Err())})
	}
}

// sorted records a command whose reply is an unordered collection (SMEMBERS,
// SINTER, HKEYS): its strings sorted.
func (s *steps) sorted(c redis.Cmder) {
	v, _ := cmdVal(c).([]string)
	v = slices.Clone(v)
	slices.Sort(v)
	s.list = append(s.list, step{Cmd: argText(c), Val: v, Err: errText(c.Err())})
}

// note records an observation that is not one command's reply.
func (s *steps) note(what string, v any) {
	s.list = append(s.list, step{Cmd: what, Val: v})
}

// noteErr records the outcome of a call that returns only an error (a
// transaction, a pipeline, WATCH).
func (s *steps) noteErr(what string, err error) {
	s.list = append(s.list, step{Cmd: what, Val: err == nil, Err: errText(err)})
}

// cmdVal is the command's Val(): every go-redis command type has one, with
// its own result type, and Cmder does not declare it.
func cmdVal(c redis.Cmder) any {
	if c.Err() != nil {
		return nil
	}
	m := reflect.ValueOf(c).MethodByName("Val")
	if !m.IsValid() {
		return nil
	}
	return m.Call(nil)[0].Interface()
}

// argText is the command as redis-cli would show it.
func argText(c redis.Cmder) string {
	return strings.TrimSuffix(fmt.Sprintln(c.Args()...), "\n")
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// keys returns prefix0 .. prefix(n-1); with 3 shards, 12 such keys almost
// surely cover every shard, which the spread check confirms.
func keys(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}

func goStrings(ctx context.Context, c redis.UniversalClient, s *steps) error {
	s.add(
		c.Set(ctx, "str:a", "hello", 0),
		c.Get(ctx, "str:a"),
		c.Append(ctx, "str:a", " world"),
		c.StrLen(ctx, "str:a"),
		c.GetRange(ctx, "str:a", 0, 4),
		c.SetRange(ctx, "str:a", 6, "WORLD"),
		c.Get(ctx, "str:a"),
		c.Get(ctx, "str:missing"),
		c.SetNX(ctx, "str:a", "x", 0),
		c.SetNX(ctx, "str:n", "10", 0),
		c.Incr(ctx, "str:n"),
		c.IncrBy(ctx, "str:n", 5),
		c.DecrBy(ctx, "str:n", 3),
		c.IncrByFloat(ctx, "str:f", 1.5),
		c.IncrByFloat(ctx, "str:f", 0.25),
		c.Incr(ctx, "str:a"),
		c.GetSet(ctx, "str:n", "0"),
		c.GetDel(ctx, "str:n"),
		c.Exists(ctx, "str:n"),
		c.Type(ctx, "str:a"),
		c.RPush(ctx, "str:list", "x"),
		c.Get(ctx, "str:list"),
	)
	ks := keys("str:m", 12)
	var kv []any
	for i, k := range ks {
		kv = append(kv, k, i)
	}
	s.add(
		c.MSet(ctx, kv...),
		c.MGet(ctx, append(slices.Clone(ks), "str:missing")...),
		c.MSetNX(ctx, "{str}x", "1", "{str}y", "2"),
		c.MSetNX(ctx, "{str}x", "3", "{str}z", "4"),
		c.MGet(ctx, "{str}x", "{str}y", "{str}z"),
		c.Exists(ctx, ks[0], ks[1], "str:missing", ks[0]),
		c.Del(ctx, ks[0], ks[1], ks[2], "str:missing"),
		c.MGet(ctx, ks[:4]...),
		c.Set(ctx, "str:ttl", "v", 100*time.Second),
	)
	ttl := c.TTL(ctx, "str:ttl")
	s.note("0 < ttl <= 100s", ttl.Err() == nil && ttl.Val() > 0 && ttl.Val() <= 100*time.Second)
	s.add(
		c.Persist(ctx, "str:ttl"),
		c.TTL(ctx, "str:ttl"),
		c.SetArgs(ctx, "str:args", "v1", redis.SetArgs{Mode: "NX", Get: false}),
		c.SetArgs(ctx, "str:args", "v2", redis.SetArgs{Get: true}),
		c.Get(ctx, "str:args"),
		c.Rename(ctx, "{str}x", "{str}renamed"),
		c.Get(ctx, "{str}renamed"),
	)
	return ctx.Err()
}

func goHashes(ctx context.Context, c redis.UniversalClient, s *steps) error {
	s.add(
		c.HSet(ctx, "h:1", "name", "ann", "age", "30", "city", "oslo"),
		c.HGet(ctx, "h:1", "name"),
		c.HGet(ctx, "h:1", "nope"),
		c.HGetAll(ctx, "h:1"),
		c.HMGet(ctx, "h:1", "name", "nope", "age"),
		c.HIncrBy(ctx, "h:1", "age", 2),
		c.HIncrByFloat(ctx, "h:1", "score", 0.5),
		c.HSetNX(ctx, "h:1", "name", "bob"),
		c.HSetNX(ctx, "h:1", "nick", "a"),
		c.HExists(ctx, "h:1", "nick"),
		c.HDel(ctx, "h:1", "nick", "nope"),
		c.HLen(ctx, "h:1"),
		c.HStrLen(ctx, "h:1", "city"),
		c.HIncrBy(ctx, "h:1", "name", 1),
		c.HGetAll(ctx, "h:missing"),
	)
	s.sorted(c.HKeys(ctx, "h:1"))
	s.sorted(c.HVals(ctx, "h:1"))

	// Large enough to leave the listpack encoding, so HSCAN takes several
	// cursor steps.
	var fv []any
	for i := 0; i < 300; i++ {
		fv = append(fv, "f"+strconv.Itoa(i), i)
	}
	s.add(c.HSet(ctx, "h:big", fv...))
	var got []string
	it := c.HScan(ctx, "h:big", 0, "", 25).Iterator()
	for it.Next(ctx) {
		got = append(got, it.Val())
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("hscan: %w", err)
	}
	pairs := make([]string, 0, len(got)/2)
	for i := 0; i+1 < len(got); i += 2 {
		pairs = append(pairs, got[i]+"="+got[i+1])
	}
	slices.Sort(pairs)
	pairs = slices.Compact(pairs)
	s.note("hscan iterator: distinct field=value pairs", len(pairs))
	s.note("hscan iterator: pairs", pairs)
	return ctx.Err()
}

func goLists(ctx context.Context, c redis.UniversalClient, s *steps) error {
	s.add(
		c.RPush(ctx, "l:1", "a", "b", "c", "d"),
		c.LPush(ctx, "l:1", "z"),
		c.LRange(ctx, "l:1", 0, -1),
		c.LIndex(ctx, "l:1", 2),
		c.LInsertBefore(ctx, "l:1", "c", "bb"),
		c.LLen(ctx, "l:1"),
		c.LSet(ctx, "l:1", 0, "Z"),
		c.LSet(ctx, "l:1", 99, "x"),
		c.RPush(ctx, "l:1", "a", "a"),
		c.LPos(ctx, "l:1", "a", redis.LPosArgs{}),
		c.LPosCount(ctx, "l:1", "a", 0, redis.LPosArgs{}),
		c.LRem(ctx, "l:1", -1, "a"),
		c.LPop(ctx, "l:1"),
		c.RPop(ctx, "l:1"),
		c.LPopCount(ctx, "l:1", 2),
		c.LRange(ctx, "l:1", 0, -1),
		c.LTrim(ctx, "l:1", 0, 1),
		c.LRange(ctx, "l:1", 0, -1),
		c.RPush(ctx, "{l}src", "1", "2", "3"),
		c.LMove(ctx, "{l}src", "{l}dst", "LEFT", "RIGHT"),
		c.RPopLPush(ctx, "{l}src", "{l}dst"),
		c.LRange(ctx, "{l}src", 0, -1),
		c.LRange(ctx, "{l}dst", 0, -1),
		c.LMPop(ctx, "left", 2, "{l}empty", "{l}dst"),
		c.LPop(ctx, "l:missing"),
	)
	return ctx.Err()
}

func goSets(ctx context.Context, c redis.UniversalClient, s *steps) error {
	s.add(
		c.SAdd(ctx, "s:1", "a", "b", "c", "d"),
		c.SAdd(ctx, "s:1", "a", "e"),
		c.SCard(ctx, "s:1"),
		c.SIsMember(ctx, "s:1", "c"),
		c.SMIsMember(ctx, "s:1", "a", "x", "e"),
		c.SRem(ctx, "s:1", "d", "x"),
		c.SAdd(ctx, "{s}a", "1", "2", "3", "4"),
		c.SAdd(ctx, "{s}b", "3", "4", "5"),
		c.SInterStore(ctx, "{s}i", "{s}a", "{s}b"),
		c.SUnionStore(ctx, "{s}u", "{s}a", "{s}b"),
		c.SDiffStore(ctx, "{s}d", "{s}a", "{s}b"),
		c.SInterCard(ctx, 0, "{s}a", "{s}b"),
		c.SMove(ctx, "{s}a", "{s}b", "1"),
	)
	for _, cmd := range []redis.Cmder{
		c.SMembers(ctx, "s:1"),
		c.SInter(ctx, "{s}a", "{s}b"),
		c.SUnion(ctx, "{s}a", "{s}b"),
		c.SDiff(ctx, "{s}a", "{s}b"),
		c.SMembers(ctx, "{s}i"),
		c.SMembers(ctx, "{s}u"),
		c.SMembers(ctx, "{s}d"),
	} {
		s.sorted(cmd)
	}

	members := make([]any, 400)
	for i := range members {
		members[i] = "m" + strconv.Itoa(i)
	}
	s.add(c.SAdd(ctx, "s:big", members...))
	var got []string
	it := c.SScan(ctx, "s:big", 0, "m1*", 30).Iterator()
	for it.Next(ctx) {
		got = append(got, it.Val())
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("sscan: %w", err)
	}
	slices.Sort(got)
	s.note("sscan iterator MATCH m1*: distinct members", slices.Compact(got))
	return ctx.Err()
}

func goSortedSets(ctx context.Context, c redis.UniversalClient, s *steps) error {
	s.add(
		c.ZAdd(ctx, "z:1", redis.Z{Score: 1, Member: "a"}, redis.Z{Score: 2, Member: "b"}, redis.Z{Score: 3, Member: "c"}, redis.Z{Score: 2.5, Member: "d"}),
		c.ZScore(ctx, "z:1", "b"),
		c.ZMScore(ctx, "z:1", "a", "nope", "c"),
		c.ZIncrBy(ctx, "z:1", 10, "a"),
		c.ZRangeWithScores(ctx, "z:1", 0, -1),
		c.ZRevRange(ctx, "z:1", 0, 1),
		c.ZRangeByScore(ctx, "z:1", &redis.ZRangeBy{Min: "(2", Max: "3"}),
		c.ZRank(ctx, "z:1", "c"),
		c.ZRevRank(ctx, "z:1", "c"),
		c.ZCount(ctx, "z:1", "-inf", "+inf"),
		c.ZCard(ctx, "z:1"),
		c.ZRem(ctx, "z:1", "d", "nope"),
		c.ZPopMin(ctx, "z:1"),
		c.ZPopMax(ctx, "z:1"),
		c.ZAdd(ctx, "{z}a", redis.Z{Score: 1, Member: "x"}, redis.Z{Score: 2, Member: "y"}),
		c.ZAdd(ctx, "{z}b", redis.Z{Score: 10, Member: "y"}, redis.Z{Score: 20, Member: "w"}),
		c.ZUnionStore(ctx, "{z}u", &redis.ZStore{Keys: []string{"{z}a", "{z}b"}, Weights: []float64{1, 2}}),
		c.ZInterStore(ctx, "{z}i", &redis.ZStore{Keys: []string{"{z}a", "{z}b"}, Aggregate: "MAX"}),
		c.ZRangeWithScores(ctx, "{z}u", 0, -1),
		c.ZRangeWithScores(ctx, "{z}i", 0, -1),
		c.ZAdd(ctx, "z:lex", redis.Z{Member: "alpha"}, redis.Z{Member: "beta"}, redis.Z{Member: "gamma"}),
		c.ZLexCount(ctx, "z:lex", "[b", "+"),
		c.ZRangeByLex(ctx, "z:lex", &redis.ZRangeBy{Min: "-", Max: "(gamma"}),
	)
	zs := make([]redis.Z, 300)
	for i := range zs {
		zs[i] = redis.Z{Score: float64(i), Member: "m" + strconv.Itoa(i)}
	}
	s.add(c.ZAdd(ctx, "z:big", zs...))
	var got []string
	it := c.ZScan(ctx, "z:big", 0, "", 40).Iterator()
	for it.Next(ctx) {
		got = append(got, it.Val())
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("zscan: %w", err)
	}
	pairs := make([]string, 0, len(got)/2)
	for i := 0; i+1 < len(got); i += 2 {
		pairs = append(pairs, got[i]+"="+got[i+1])
	}
	slices.Sort(pairs)
	s.note("zscan iterator: distinct member=score pairs", slices.Compact(pairs))
	return ctx.Err()
}

func goStreams(ctx context.Context, c redis.UniversalClient, s *steps) error {
	for i := 1; i <= 5; i++ {
		s.add(c.XAdd(ctx, &redis.XAddArgs{Stream: "st:1", ID: "1-" + strconv.Itoa(i), Values: []any{"n", i, "f", "v" + strconv.Itoa(i)}}))
	}
	s.add(
		c.XAdd(ctx, &redis.XAddArgs{Stream: "st:1", ID: "1-1", Values: []any{"f", "late"}}),
		c.XLen(ctx, "st:1"),
		c.XRange(ctx, "st:1", "-", "+"),
		c.XRevRangeN(ctx, "st:1", "+", "-", 2),
		c.XRead(ctx, &redis.XReadArgs{Streams: []string{"st:1", "1-3"}, Count: 10}),
		c.XGroupCreate(ctx, "st:1", "g", "0"),
		c.XGroupCreate(ctx, "st:1", "g", "0"),
		c.XGroupCreateMkStream(ctx, "st:2", "g2", "$"),
		c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "c1", Streams: []string{"st:1", ">"}, Count: 2}),
		c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "c2", Streams: []string{"st:1", ">"}, Count: 10}),
		c.XAck(ctx, "st:1", "g", "1-1", "1-3", "9-9"),
		c.XPending(ctx, "st:1", "g"),
		c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "c1", Streams: []string{"st:1", "0"}}),
		c.XClaimJustID(ctx, &redis.XClaimArgs{Stream: "st:1", Group: "g", Consumer: "c1", MinIdle: 0, Messages: []string{"1-4", "1-5"}}),
		c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "c1", Streams: []string{"st:1", "0"}}),
		c.XAck(ctx, "st:1", "g", "1-2", "1-4", "1-5"),
		c.XPending(ctx, "st:1", "g"),
		c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "nope", Consumer: "c1", Streams: []string{"st:1", ">"}}),
		c.XDel(ctx, "st:1", "1-2"),
		c.XTrimMaxLen(ctx, "st:1", 2),
		c.XRange(ctx, "st:1", "-", "+"),
	)
	return ctx.Err()
}

func goTransactions(ctx context.Context, c redis.UniversalClient, s *steps) error {
	cmds, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "{tx}a", "1", 0)
		p.Incr(ctx, "{tx}a")
		p.RPush(ctx, "{tx}l", "x", "y")
		p.LRange(ctx, "{tx}l", 0, -1)
		p.HSet(ctx, "{tx}h", "f", "v")
		p.Get(ctx, "{tx}a")
		return nil
	})
	s.add(cmds...)
	s.noteErr("exec", err)

	// A command that fails when EXEC runs it: the others still apply.
	cmds, err = c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "{tx}s", "abc", 0)
		p.Incr(ctx, "{tx}s")
		p.Append(ctx, "{tx}s", "d")
		return nil
	})
	s.add(cmds...)
	s.noteErr("exec with a failing command", err)

	// A command refused while queued: EXECABORT, nothing applies.
	cmds, err = c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "{tx}q", "1", 0)
		p.Do(ctx, "set", "{tx}q")
		return nil
	})
	s.add(cmds...)
	s.noteErr("exec after a queuing error", err)
	s.add(c.Exists(ctx, "{tx}q"), c.Get(ctx, "{tx}s"))
	return ctx.Err()
}

func goWatch(ctx context.Context, c redis.UniversalClient, s *steps) error {
	s.add(c.Set(ctx, "{w}k", "v0", 0))

	// Unchanged watched key: the transaction applies.
	err := c.Watch(ctx, func(tx *redis.Tx) error {
		v, err := tx.Get(ctx, "{w}k").Result()
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, "{w}k", v+"+1", 0)
			return nil
		})
		return err
	}, "{w}k")
	s.noteErr("watch, no conflict", err)
	s.add(c.Get(ctx, "{w}k"))

	// Another connection changes the watched key before EXEC.
	err = c.Watch(ctx, func(tx *redis.Tx) error {
		v, err := tx.Get(ctx, "{w}k").Result()
		if err != nil {
			return err
		}
		if err := c.Set(ctx, "{w}k", "changed", 0).Err(); err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, "{w}k", v+"+2", 0)
			return nil
		})
		return err
	}, "{w}k")
	s.note("watch, conflict: transaction failed", errors.Is(err, redis.TxFailedErr))
	s.add(c.Get(ctx, "{w}k"))

	// Optimistic increments from several clients, retried on conflict, as
	// go-redis's documentation shows: none may be lost.
	const workers, each, maxTries = 4, 10, 200
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < each; n++ {
				if err := incrWatched(ctx, c, "{w}counter", maxTries); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	s.add(c.Get(ctx, "{w}counter"))
	return ctx.Err()
}

func incrWatched(ctx context.Context, c redis.UniversalClient, key string, maxTries int) error {
	for try := 0; try < maxTries; try++ {
		err := c.Watch(ctx, func(tx *redis.Tx) error {
			n, err := tx.Get(ctx, key).Int()
			if err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, key, n+1, 0)
				return nil
			})
			return err
		}, key)
		if !errors.Is(err, redis.TxFailedErr) {
			return err
		}
	}
	return fmt.Errorf("increment of %s: still conflicting after %d tries", key, maxTries)
}

func goScripts(ctx context.Context, c redis.UniversalClient, s *steps) error {
	const src = `local v = redis.call('INCRBY', KEYS[1], ARGV[1]); return {KEYS[1], v}`
	load := c.ScriptLoad(ctx, src)
	s.add(load)
	sha := load.Val()
	s.add(c.ScriptExists(ctx, sha, "0000000000000000000000000000000000000000"))
	// Keys on every shard: the script must be loaded wherever keys live.
	for _, k := range keys("sc:", 9) {
		s.add(c.EvalSha(ctx, sha, []string{k}, 5), c.EvalSha(ctx, sha, []string{k}, 1))
	}
	s.add(
		c.EvalShaRO(ctx, sha, []string{"sc:0"}, 1),
		c.EvalSha(ctx, "0000000000000000000000000000000000000000", []string{"sc:0"}),
		c.Set(ctx, "{sc}a", "1", 0),
		c.Set(ctx, "{sc}b", "2", 0),
		c.Eval(ctx, `return redis.call('MGET', KEYS[1], KEYS[2])`, []string{"{sc}a", "{sc}b"}),
		c.Eval(ctx, `return ARGV[1]`, nil, "keyless"),
		c.Eval(ctx, `return redis.call('INCR', KEYS[1])`, []string{"{sc}s"}),
		c.Set(ctx, "sc:str", "abc", 0),
		c.Eval(ctx, `return redis.call('INCR', KEYS[1])`, []string{"sc:str"}),
		c.Eval(ctx, `return redis.status_reply('FINE')`, []string{"sc:x"}),
		c.Eval(ctx, `return redis.error_reply('MYERR custom')`, []string{"sc:x"}),
	)
	// Script.Run: EVALSHA first, EVAL on NOSCRIPT, as applications use it.
	s.add(redis.NewScript(`return redis.call('GET', KEYS[1])`).Run(ctx, c, []string{"{sc}a"}))
	return ctx.Err()
}

func goBlocking(ctx context.Context, c redis.UniversalClient, s *steps) error {
	const wait = 150 * time.Millisecond
	// wake runs fn after wait on another connection of the client's pool,
	// and returns a function that waits for it.
	wake := func(fn func() error) func() error {
		done := make(chan error, 1)
		go func() {
			select {
			case <-time.After(wait):
				done <- fn()
			case <-ctx.Done():
				done <- ctx.Err()
			}
		}()
		return func() error { return <-done }
	}
	blocked := func(what string, start time.Time) {
		s.note(what+" waited for the push", time.Since(start) >= wait*3/4)
	}

	start := time.Now()
	pushed := wake(func() error { return c.RPush(ctx, "bl:q", "job1").Err() })
	s.add(c.BLPop(ctx, 3*time.Second, "bl:q"))
	blocked("blpop", start)
	if err := pushed(); err != nil {
		return err
	}

	s.add(
		c.RPush(ctx, "{bl}b", "ready"),
		c.BLPop(ctx, time.Second, "{bl}a", "{bl}b"),
		c.BRPop(ctx, time.Second, "bl:empty"),
	)

	start = time.Now()
	pushed = wake(func() error { return c.LPush(ctx, "{bl}src", "moved").Err() })
	s.add(c.BLMove(ctx, "{bl}src", "{bl}dst", "RIGHT", "LEFT", 3*time.Second))
	blocked("blmove", start)
	if err := pushed(); err != nil {
		return err
	}
	s.add(c.LRange(ctx, "{bl}dst", 0, -1))

	start = time.Now()
	pushed = wake(func() error { return c.ZAdd(ctx, "bl:z", redis.Z{Score: 7, Member: "seven"}).Err() })
	s.add(c.BZPopMin(ctx, 3*time.Second, "bl:z"))
	blocked("bzpopmin", start)
	if err := pushed(); err != nil {
		return err
	}

	start = time.Now()
	pushed = wake(func() error {
		return c.XAdd(ctx, &redis.XAddArgs{Stream: "bl:st", ID: "7-1", Values: []any{"f", "v"}}).Err()
	})
	s.add(c.XRead(ctx, &redis.XReadArgs{Streams: []string{"bl:st", "$"}, Count: 1, Block: 3 * time.Second}))
	blocked("xread block", start)
	if err := pushed(); err != nil {
		return err
	}
	s.add(c.XRead(ctx, &redis.XReadArgs{Streams: []string{"bl:st", "$"}, Count: 1, Block: 100 * time.Millisecond}))

	// A client blocked in BLPOP must not hold up the others.
	popped := make(chan *redis.StringSliceCmd, 1)
	go func() { popped <- c.BLPop(ctx, 3*time.Second, "bl:late") }()
	time.Sleep(wait)
	s.add(c.Set(ctx, "bl:other", "1", 0), c.Get(ctx, "bl:other"))
	select {
	case <-popped:
		s.note("blpop still blocked after other commands were answered", false)
		return nil
	default:
		s.note("blpop still blocked after other commands were answered", true)
	}
	s.add(c.RPush(ctx, "bl:late", "x"))
	s.add(<-popped)
	return ctx.Err()
}

func goPipelines(ctx context.Context, c redis.UniversalClient, s *steps) error {
	ks := keys("pl:", 40)
	cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range ks {
			p.Set(ctx, k, i, 0)
		}
		for _, k := range ks {
			p.Incr(ctx, k)
		}
		p.MGet(ctx, append(slices.Clone(ks), "pl:missing")...)
		p.HSet(ctx, "pl:h", "f", "v")
		p.Get(ctx, "pl:h")
		p.Del(ctx, ks[:20]...)
		p.Exists(ctx, ks...)
		p.DBSize(ctx)
		return nil
	})
	s.add(cmds...)
	s.noteErr("pipeline", err)

	// Many pipelines at once, each on its own connection.
	var wg sync.WaitGroup
	results := make([][]string, 8)
	errs := make([]error, 8)
	for w := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
				for i := 0; i < 50; i++ {
					p.IncrBy(ctx, "pl:c"+strconv.Itoa(i%10), 1)
				}
				return nil
			})
			errs[w] = err
			for _, cmd := range cmds {
				if cmd.Err() != nil {
					results[w] = append(results[w], cmd.Err().Error())
				}
			}
		}()
	}
	wg.Wait()
	s.note("concurrent pipelines: errors", results)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	s.add(c.MGet(ctx, keys("pl:c", 10)...))
	return ctx.Err()
}

func goServer(ctx context.Context, c redis.UniversalClient, s *steps) error {
	s.add(
		c.Ping(ctx),
		c.Echo(ctx, "hi"),
		c.MSet(ctx, "sv:a", 1, "sv:b", 2, "sv:c", 3),
		c.DBSize(ctx),
		c.Do(ctx, "nosuchcommand", "x"),
		c.Do(ctx, "get"),
		c.Do(ctx, "get", "sv:a", "extra"),
		c.Do(ctx, "set", "sv:a"),
		c.Expire(ctx, "sv:a", time.Hour),
		c.ExpireTime(ctx, "sv:missing"),
		c.Unlink(ctx, "sv:a", "sv:b"),
		c.Touch(ctx, "sv:c", "sv:a"),
		c.Copy(ctx, "{sv}1", "{sv}2", 0, false),
		c.Set(ctx, "{sv}1", "x", 0),
		c.Copy(ctx, "{sv}1", "{sv}2", 0, false),
		c.Get(ctx, "{sv}2"),
		c.Dump(ctx, "sv:missing"),
	)
	s.sorted(c.Keys(ctx, "sv:*"))
	s.sorted(c.Keys(ctx, "{sv}*"))
	return ctx.Err()
}

func goPubSub(ctx context.Context, c redis.UniversalClient, s *steps) error {
	// confirm reads the subscription confirmations, so that a PUBLISH
	// that follows finds the subscriber.
	confirm := func(ps *redis.PubSub, n int) error {
		for i := 0; i < n; i++ {
			m, err := ps.ReceiveTimeout(ctx, 5*time.Second)
			if err != nil {
				return fmt.Errorf("subscription confirmation: %w", err)
			}
			sub, ok := m.(*redis.Subscription)
			if !ok {
				return fmt.Errorf("subscription confirmation: got %T %v", m, m)
			}
			s.note("confirmation", sub)
		}
		return nil
	}
	receive := func(ps *redis.PubSub) error {
		m, err := ps.ReceiveTimeout(ctx, 5*time.Second)
		if err != nil {
			return fmt.Errorf("receive: %w", err)
		}
		s.note("received", m)
		return nil
	}

	ps := c.Subscribe(ctx, "news", "ps:other")
	defer ps.Close()
	if err := confirm(ps, 2); err != nil {
		return err
	}
	s.add(c.Publish(ctx, "news", "hello"))
	if err := receive(ps); err != nil {
		return err
	}
	s.add(c.Publish(ctx, "ps:other", "x"))
	if err := receive(ps); err != nil {
		return err
	}
	s.add(c.Publish(ctx, "nobody", "x"), c.PubSubNumSub(ctx, "news", "nobody"))
	s.sorted(c.PubSubChannels(ctx, "*"))
	if err := ps.Unsubscribe(ctx, "ps:other"); err != nil {
		return err
	}
	if err := confirm(ps, 1); err != nil {
		return err
	}
	s.add(c.Publish(ctx, "ps:other", "after unsubscribe"), c.Publish(ctx, "news", "still"))
	if err := receive(ps); err != nil {
		return err
	}

	pps := c.PSubscribe(ctx, "ev.*")
	defer pps.Close()
	if err := confirm(pps, 1); err != nil {
		return err
	}
	s.add(c.Publish(ctx, "ev.a", "payload"))
	if err := receive(pps); err != nil {
		return err
	}
	s.add(c.PubSubNumPat(ctx))

	sps := c.SSubscribe(ctx, "sh{1}")
	defer sps.Close()
	if err := confirm(sps, 1); err != nil {
		return err
	}
	s.add(c.SPublish(ctx, "sh{1}", "m"))
	if err := receive(sps); err != nil {
		return err
	}
	s.add(c.PubSubShardNumSub(ctx, "sh{1}"))

	// Channels of every slot range, one subscriber: every message arrives.
	chans := keys("chan:", 12)
	many := c.Subscribe(ctx, chans...)
	defer many.Close()
	if _, err := many.ReceiveTimeout(ctx, 5*time.Second); err != nil {
		return err
	}
	for range chans[1:] {
		if _, err := many.ReceiveTimeout(ctx, 5*time.Second); err != nil {
			return err
		}
	}
	var counts []int64
	for _, ch := range chans {
		n, err := c.Publish(ctx, ch, "p").Result()
		if err != nil {
			return err
		}
		counts = append(counts, n)
	}
	s.note("publish chan:0..11 receivers", counts)
	var got []string
	for range chans {
		m, err := many.ReceiveMessage(ctx)
		if err != nil {
			return err
		}
		got = append(got, m.Channel+"="+m.Payload)
	}
	slices.Sort(got)
	s.note("messages on chan:0..11", got)
	return ctx.Err()
}

func goScan(ctx context.Context, c redis.UniversalClient, s *steps) error {
	cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := 0; i < 150; i++ {
			p.Set(ctx, fmt.Sprintf("sk:str:%d", i), i, 0)
		}
		for i := 0; i < 20; i++ {
			p.HSet(ctx, fmt.Sprintf("sk:h:%d", i), "f", "v")
		}
		for i := 0; i < 10; i++ {
			p.RPush(ctx, fmt.Sprintf("sk:l:%d", i), "x")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create keys: %w (%d commands)", err, len(cmds))
	}
	scan := func(what string, it *redis.ScanIterator) error {
		var got []string
		for it.Next(ctx) {
			got = append(got, it.Val())
		}
		if err := it.Err(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		n := len(got)
		slices.Sort(got)
		got = slices.Compact(got)
		s.note(what+": keys", got)
		s.note(what+": every key once", n == len(got))
		return nil
	}
	if err := scan("scan iterator COUNT 20", c.Scan(ctx, 0, "", 20).Iterator()); err != nil {
		return err
	}
	if err := scan("scan iterator MATCH sk:h:*", c.Scan(ctx, 0, "sk:h:*", 10).Iterator()); err != nil {
		return err
	}
	if err := scan("scan iterator TYPE list", c.ScanType(ctx, 0, "", 25, "list").Iterator()); err != nil {
		return err
	}
	s.add(c.Scan(ctx, 0, "nomatch:*", 1000))
	return ctx.Err()
}
