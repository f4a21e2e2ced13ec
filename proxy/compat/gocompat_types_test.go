package compat

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// go-redis scenarios of the data types: strings, hashes, lists, sets,
// sorted sets and streams. TestGoRedis and the recording are in
// gocompat_test.go.

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
