package proxy_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/internal/redistest"
)

func TestIntegrationPubSub(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3})
	ctx := t.Context()

	t.Run("every subscriber gets every message", func(t *testing.T) {
		var subs []*redis.PubSub
		for i := 0; i < 3; i++ {
			ps := c.Client().Subscribe(ctx, "news", "sport")
			if _, err := ps.Receive(ctx); err != nil {
				t.Fatal(err)
			}
			subs = append(subs, ps)
		}
		pat := c.Client().PSubscribe(ctx, "n*")
		if _, err := pat.Receive(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // the second subscription confirmations
		pub := c.Client()
		for i := 0; i < 10; i++ {
			n, err := pub.Publish(ctx, "news", fmt.Sprint("m", i)).Result()
			if err != nil || n != 4 {
				t.Fatalf("PUBLISH news = %d, %v; want 4 receivers", n, err)
			}
		}
		for i, ps := range subs {
			for j := 0; j < 10; j++ {
				msg, err := ps.ReceiveMessage(ctx)
				if err != nil || msg.Channel != "news" || msg.Payload != fmt.Sprint("m", j) {
					t.Fatalf("subscriber %d message %d = %+v, %v", i, j, msg, err)
				}
			}
			ps.Close()
		}
		msg, err := pat.ReceiveMessage(ctx)
		if err != nil || msg.Pattern != "n*" || msg.Channel != "news" || msg.Payload != "m0" {
			t.Fatalf("pattern subscriber got %+v, %v", msg, err)
		}
		pat.Close()
	})

	t.Run("unsubscribed, a client is served as any other again", func(t *testing.T) {
		rc := dialRaw(t, c.Addr)
		for range 2 { // and it can subscribe again
			if got := rc.do("SUBSCRIBE", "again"); got != `["subscribe", "again", :1]` {
				t.Fatalf("SUBSCRIBE = %s", got)
			}
			if n, err := c.Client().Publish(ctx, "again", "hi").Result(); err != nil || n != 1 {
				t.Fatalf("PUBLISH = %d, %v", n, err)
			}
			if got := render(rc.read()); got != `["message", "again", "hi"]` {
				t.Fatalf("message = %s", got)
			}
			if got := rc.do("UNSUBSCRIBE"); got != `["unsubscribe", "again", :0]` {
				t.Fatalf("UNSUBSCRIBE = %s", got)
			}
			// as soon as it has no subscription, not at its next command
			if got := c.Client().ClientList(ctx).Val(); strings.Contains(got, "flags=P") {
				t.Errorf("CLIENT LIST after UNSUBSCRIBE = %s, want no flags=P", got)
			}
			// Redis flags a client P only while it has subscriptions
			if got := rc.do("CLIENT", "INFO"); !strings.Contains(got, "flags=N") {
				t.Errorf("CLIENT INFO after UNSUBSCRIBE = %s, want flags=N", got)
			}
			rc.write(encode("MULTI") + encode("GET") + encode("SET", "again:k", "v") + encode("EXEC"))
			for i, want := range []string{"+OK", "-ERR wrong number of arguments for 'get' command", "+QUEUED",
				"-EXECABORT Transaction discarded because of previous errors."} {
				if got := render(rc.read()); got != want {
					t.Errorf("reply %d of a pipelined transaction after UNSUBSCRIBE = %s, want %s", i, got, want)
				}
			}
		}
	})

	t.Run("PUBLISH in a transaction on any shard", func(t *testing.T) {
		sub := dialRaw(t, c.Addr)
		if got := sub.do("SUBSCRIBE", "tx"); got != `["subscribe", "tx", :1]` {
			t.Fatalf("SUBSCRIBE = %s", got)
		}
		// keys away from the pub/sub home shard (the first), so the
		// transaction runs on another
		key := keyOn(t, c, "txpub-", 2)
		rc := dialRaw(t, c.Addr)
		rc.write(encode("MULTI") + encode("SET", key, "v") + encode("PUBLISH", "tx", "one") +
			encode("GET", key) + encode("PUBLISH", "tx", "two") + encode("EXEC"))
		for i, want := range []string{"+OK", "+QUEUED", "+QUEUED", "+QUEUED", "+QUEUED", `[+OK, :1, "v", :1]`} {
			if got := render(rc.read()); got != want {
				t.Fatalf("reply %d of MULTI SET PUBLISH GET PUBLISH EXEC = %s, want %s", i, got, want)
			}
		}
		for _, want := range []string{`["message", "tx", "one"]`, `["message", "tx", "two"]`} {
			if got := render(sub.read()); got != want {
				t.Fatalf("subscriber got %s, want %s", got, want)
			}
		}
		// A transaction WATCH aborts publishes nothing.
		rc.write(encode("WATCH", key) + encode("MULTI") + encode("PUBLISH", "tx", "aborted"))
		for _, want := range []string{"+OK", "+OK", "+QUEUED"} {
			if got := render(rc.read()); got != want {
				t.Fatalf("WATCH MULTI PUBLISH = %s, want %s", got, want)
			}
		}
		if err := c.Client().Set(ctx, key, "changed", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if got := rc.do("EXEC"); got != "(nil array)" {
			t.Fatalf("EXEC after the watched key changed = %s, want a null", got)
		}
		if n := c.Client().Publish(ctx, "tx", "after").Val(); n != 1 {
			t.Fatalf("PUBLISH after = %d, want 1", n)
		}
		if got := render(sub.read()); got != `["message", "tx", "after"]` {
			t.Fatalf("subscriber got %s after an aborted transaction, want the next message", got)
		}
	})

	t.Run("shard channels of several slots are refused", func(t *testing.T) {
		rc := dialRaw(t, c.Addr)
		const want = "-CROSSSLOT Keys in request don't hash to the same slot"
		for _, cmd := range [][]string{
			{"SUNSUBSCRIBE", "{a}x", "{b}y"}, // not subscribed
			{"SSUBSCRIBE", "{a}x", "{b}y"},
			{"SSUBSCRIBE", "{a}x"},
			{"SUNSUBSCRIBE", "{a}x", "{b}y"}, // subscribed
			{"SUNSUBSCRIBE", "{a}x"},
		} {
			got := rc.do(cmd...)
			if cmd[1] == "{a}x" && len(cmd) == 2 {
				if !strings.Contains(got, "{a}x") {
					t.Errorf("%q = %s, want its confirmation", cmd, got)
				}
			} else if got != want {
				t.Errorf("%q = %s, want %s", cmd, got, want)
			}
		}
	})

	t.Run("pubsub introspection", func(t *testing.T) {
		ps := c.Client().Subscribe(ctx, "intro")
		if _, err := ps.Receive(ctx); err != nil {
			t.Fatal(err)
		}
		defer ps.Close()
		got, err := c.Client().PubSubNumSub(ctx, "intro", "none").Result()
		if err != nil || got["intro"] != 1 || got["none"] != 0 {
			t.Errorf("PUBSUB NUMSUB = %v, %v", got, err)
		}
		chans, err := c.Client().PubSubChannels(ctx, "in*").Result()
		if err != nil || len(chans) != 1 || chans[0] != "intro" {
			t.Errorf("PUBSUB CHANNELS = %v, %v", chans, err)
		}
	})

	t.Run("shard channels by slot", func(t *testing.T) {
		ps := c.Client().SSubscribe(ctx, "{orders}new", "{orders}paid")
		if _, err := ps.Receive(ctx); err != nil {
			t.Fatal(err)
		}
		defer ps.Close()
		time.Sleep(50 * time.Millisecond)
		if n, err := c.Client().SPublish(ctx, "{orders}paid", "42").Result(); err != nil || n != 1 {
			t.Fatalf("SPUBLISH = %d, %v", n, err)
		}
		msg, err := ps.ReceiveMessage(ctx)
		if err != nil || msg.Channel != "{orders}paid" || msg.Payload != "42" {
			t.Fatalf("shard message = %+v, %v", msg, err)
		}
		// The subscription lives on the shard owning the channel's slot.
		owner := c.ShardOf("{orders}paid").Client()
		if got := owner.PubSubShardNumSub(ctx, "{orders}paid").Val(); got["{orders}paid"] != 1 {
			t.Errorf("owner shard SHARDNUMSUB = %v", got)
		}
		if got := c.Client().PubSubShardNumSub(ctx, "{orders}paid").Val(); got["{orders}paid"] != 1 {
			t.Errorf("proxy SHARDNUMSUB = %v", got)
		}

		// In a transaction, SPUBLISH runs on its channel's slot, as in
		// Redis Cluster, beside keys of that slot and no other.
		cmds, err := c.Client().TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, "{orders}last", "43", 0)
			p.SPublish(ctx, "{orders}paid", "43")
			return nil
		})
		if err != nil || len(cmds) != 2 || cmds[1].(*redis.IntCmd).Val() != 1 {
			t.Fatalf("MULTI SET SPUBLISH EXEC = %v, %v", cmds, err)
		}
		if msg, err := ps.ReceiveMessage(ctx); err != nil || msg.Payload != "43" {
			t.Fatalf("message published in a transaction = %+v, %v", msg, err)
		}
		_, err = c.Client().TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, "{elsewhere}last", "44", 0)
			p.SPublish(ctx, "{orders}paid", "44")
			return nil
		})
		if err == nil || !strings.HasPrefix(err.Error(), "EXECABORT") {
			t.Fatalf("SPUBLISH to another slot in a transaction: %v, want EXECABORT", err)
		}
	})

	t.Run("subscribed mode rules and back", func(t *testing.T) {
		direct := redistest.Start(t)
		script := [][]string{
			{"SUBSCRIBE", "a"}, {"GET", "x"}, {"PING"}, {"PING", "hi"}, {"UNSUBSCRIBE", "a"},
			{"GET", "x"}, {"SET", "x", "1"}, {"GET", "x"}, {"UNSUBSCRIBE"}, {"PUNSUBSCRIBE", "p"},
		}
		p, d := dialRaw(t, c.Addr), dialRaw(t, direct.Addr())
		for _, args := range script {
			if got, want := p.do(args...), d.do(args...); got != want {
				t.Errorf("%q: proxy %s, redis %s", args, got, want)
			}
		}
		if got := p.do("SSUBSCRIBE", "a", "b"); got != "-CROSSSLOT Keys in request don't hash to the same slot" {
			t.Errorf("SSUBSCRIBE across slots = %s", got)
		}
		p.send("SUBSCRIBE", "z")
		p.read()
		if got := p.do("RESET"); got != "+RESET" {
			t.Errorf("RESET = %s", got)
		}
		if got := p.do("SET", "y", "2"); got != "+OK" {
			t.Errorf("SET after RESET = %s", got)
		}
	})

	t.Run("subscriber disconnect frees the shard", func(t *testing.T) {
		p := dialRaw(t, c.Addr)
		p.send("SUBSCRIBE", "bye")
		p.read()
		home := c.Shards[0].Client() // classic pub/sub lives on the first shard
		if got := home.PubSubNumSub(ctx, "bye").Val()["bye"]; got != 1 {
			t.Fatalf("home shard NUMSUB bye = %d, want 1", got)
		}
		p.nc.Close()
		if !waitFor(5*time.Second, func() bool { return home.PubSubNumSub(ctx, "bye").Val()["bye"] == 0 }) {
			t.Fatal("the shard still has the subscription after the client left")
		}
	})

	t.Run("many messages in order", func(t *testing.T) {
		ps := c.Client().Subscribe(ctx, "flood")
		if _, err := ps.Receive(ctx); err != nil {
			t.Fatal(err)
		}
		defer ps.Close()
		pipe := c.Client().Pipeline()
		for i := 0; i < 5000; i++ {
			pipe.Publish(ctx, "flood", fmt.Sprint(i))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 5000; i++ {
			msg, err := ps.ReceiveMessage(ctx)
			if err != nil || msg.Payload != fmt.Sprint(i) {
				t.Fatalf("message %d = %+v, %v", i, msg, err)
			}
		}
	})

	t.Run("info counts detached clients", func(t *testing.T) {
		// A proxy of its own: subscribers of the subtests before may still
		// be closing, which would move the count under this test.
		c := proxytest.Start(t, proxytest.Options{Shards: 2})
		rc := dialRaw(t, c.Addr)
		before := connectedClients(t, rc)
		p := dialRaw(t, c.Addr)
		p.send("SUBSCRIBE", "cnt")
		p.read()
		if got := connectedClients(t, rc); got != before+1 {
			t.Errorf("connected_clients while subscribed = %d, want %d", got, before+1)
		}
		p.nc.Close()
		if !waitFor(5*time.Second, func() bool { return connectedClients(t, rc) == before }) {
			t.Errorf("connected_clients after the subscriber left = %d, want %d", connectedClients(t, rc), before)
		}
	})
}

// Keyspace notifications come from every shard, each once, with the
// confirmations and counts of one Redis, in RESP2 and RESP3, and keep
// coming after a table swap. The same script runs against a plain
// redis-server and the replies and messages must be the same. The proxy
// once subscribed on its first shard only: nothing came for the keys of
// the others.
func TestIntegrationKeyspaceNotifications(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3})
	direct := redistest.Start(t)
	var keys []string
	for i := range c.Shards {
		keys = append(keys, keyOn(t, c, "ks", i))
	}
	for _, proto := range []string{"2", "3"} {
		t.Run("RESP"+proto, func(t *testing.T) {
			sameNotifications(t, c.Addr, direct.Addr(), proto, keys)
		})
	}

	t.Run("after a table swap", func(t *testing.T) {
		sub, pub := dialRaw(t, c.Addr), dialRaw(t, c.Addr)
		sub.do("PSUBSCRIBE", "__keyevent@0__:*")
		newShards := redistest.StartN(t, 4)
		table := swapTo(t, c, newShards)
		pub.do("CONFIG", "SET", "notify-keyspace-events", "KEA")
		for i := range newShards {
			key := ""
			for n := 0; key == ""; n++ {
				if k := "moved" + fmt.Sprint(n); table.ShardOf([]byte(k)) == i {
					key = k
				}
			}
			pub.do("SET", key, "v")
			want := fmt.Sprintf(`["pmessage", "__keyevent@0__:*", "__keyevent@0__:set", %q]`, key)
			if got := render(sub.read()); got != want {
				t.Errorf("SET %s on new shard %d: subscriber got %s, want %s", key, i, got, want)
			}
		}
		// The old shards hold no subscription of the client any more.
		for i, s := range c.Shards {
			if n := s.Client().PubSubNumPat(t.Context()).Val(); n != 0 {
				t.Errorf("old shard %d still has %d pattern subscriptions", i, n)
			}
		}
	})
}

// sameNotifications runs one subscriber and one writer on the proxy (addr)
// and on a redis-server (ref), and compares what each connection gets.
func sameNotifications(t *testing.T, addr, ref, proto string, keys []string) {
	t.Helper()
	type side struct{ sub, pub *rawConn }
	sides := []side{{dialRaw(t, addr), dialRaw(t, addr)}, {dialRaw(t, ref), dialRaw(t, ref)}}
	// a step: the command, on the subscriber or the writer, and how many
	// replies and messages the subscriber then reads
	type step struct {
		onSub bool
		args  []string
		reads int
	}
	for _, s := range sides {
		s.sub.do("HELLO", proto)
	}
	steps := []step{
		{false, []string{"CONFIG", "SET", "notify-keyspace-events", "KEA"}, 0},
		{true, []string{"PSUBSCRIBE", "__key*__:*", "*"}, 2},
		{true, []string{"SUBSCRIBE", "__keyevent@0__:set", "news"}, 2},
	}
	for _, k := range keys {
		// keyspace then keyevent; each to the channel, then the patterns
		steps = append(steps, step{false, []string{"SET", k, "v"}, 5})
	}
	steps = append(steps,
		step{false, []string{"PUBLISH", "news", "m"}, 2}, // once to the channel, once to "*"
		step{true, []string{"PUNSUBSCRIBE", "__key*__:*"}, 1},
		step{true, []string{"UNSUBSCRIBE", "__keyevent@0__:set"}, 1},
	)
	for _, k := range keys {
		steps = append(steps, step{false, []string{"DEL", k}, 2}) // "*" only
	}
	steps = append(steps,
		step{true, []string{"PUNSUBSCRIBE"}, 1},
		step{false, []string{"SET", keys[len(keys)-1], "v"}, 0},
		step{true, []string{"UNSUBSCRIBE"}, 1},
		step{true, []string{"PING", "end"}, 1}, // nothing else came before it
	)
	for _, st := range steps {
		var got [2][]string
		for i, s := range sides {
			c := s.pub
			if st.onSub {
				c = s.sub
			}
			c.send(st.args...)
			if !st.onSub {
				c.read()
			}
			for range st.reads {
				got[i] = append(got[i], render(s.sub.read()))
			}
			// Redis matches a message against its patterns in the order
			// of a hash table with a random seed: one server's order is
			// not another's.
			sort.Strings(got[i])
		}
		if fmt.Sprint(got[0]) != fmt.Sprint(got[1]) {
			t.Errorf("%q: proxy's subscriber got\n%s\nredis's\n%s", st.args, strings.Join(got[0], "\n"), strings.Join(got[1], "\n"))
		}
	}
}
