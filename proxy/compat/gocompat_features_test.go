package compat

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// go-redis scenarios beyond the data types: transactions and WATCH,
// scripts, blocking commands, pipelines, server commands, pub/sub and SCAN.
// TestGoRedis and the recording are in gocompat_test.go.

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
