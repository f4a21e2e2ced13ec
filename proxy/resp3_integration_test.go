package proxy_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/internal/redistest"
)

func TestIntegrationRESP3(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3})
	direct := redistest.Start(t)
	ctx := t.Context()
	open := func(addr string) *redis.Client {
		cl := redis.NewClient(&redis.Options{Addr: addr, Protocol: 3})
		t.Cleanup(func() { cl.Close() })
		return cl
	}
	p, d := open(c.Addr), open(direct.Addr())

	script := [][]any{
		{"HSET", "{h}h", "a", "1", "b", "2"},
		{"HGETALL", "{h}h"},
		{"SADD", "s", "x"},
		{"SMEMBERS", "s"},
		{"ZADD", "z", "1.5", "m"},
		{"ZSCORE", "z", "m"},
		{"ZRANGE", "z", "0", "-1", "WITHSCORES"},
		{"MSET", "a", "1", "b", "2", "c", "3"},
		{"MGET", "a", "b", "c", "nope"},
		{"GET", "nope"},
		{"DEL", "a", "b", "c"},
		{"XADD", "st", "1-1", "f", "v"},
		{"XRANGE", "st", "-", "+"},
		{"CONFIG", "GET", "maxmemory"},
		{"TYPE", "z"},
	}
	for _, args := range script {
		got, gerr := p.Do(ctx, args...).Result()
		want, werr := d.Do(ctx, args...).Result()
		if fmt.Sprint(gerr) != fmt.Sprint(werr) || !reflect.DeepEqual(got, want) {
			t.Errorf("%v: proxy %#v (%v), redis %#v (%v)", args, got, gerr, want, werr)
		}
	}

	// The admin replies take RESP3's types, as Redis's own: the topology a
	// map, a job's status text a verbatim string as INFO's.
	t.Run("admin", func(t *testing.T) {
		topo, err := p.Do(ctx, "PROXY", "TOPOLOGY").Result()
		m, ok := topo.(map[any]any)
		if err != nil || !ok || m["epoch"] != int64(1) {
			t.Fatalf("PROXY TOPOLOGY in RESP3 = %#v (%v), want a map with epoch 1", topo, err)
		}
		shards, _ := m["shards"].([]any)
		if len(shards) != 3 {
			t.Fatalf("PROXY TOPOLOGY shards = %#v, want 3", m["shards"])
		}
		if sh, ok := shards[0].(map[any]any); !ok || sh["status"] != "up" || sh["slots"] != "0-5460" {
			t.Errorf("PROXY TOPOLOGY's first shard = %#v, want a map with status up and slots 0-5460", shards[0])
		}
		rc := dialRaw(t, c.Addr)
		rc.send("HELLO", "3")
		readRESP3Item(rc)
		for _, job := range []string{"SNAPSHOT", "RESTORE", "RESHARD"} {
			rc.send("PROXY", job, "STATUS")
			if line, _ := rc.br.ReadString('\n'); !strings.HasPrefix(line, "=") {
				t.Errorf("PROXY %s STATUS in RESP3 starts %q, want a verbatim string", job, line)
			}
			rc.br.ReadString('\n')
			rc.br.ReadString('\n')
		}
	})

	t.Run("hello", func(t *testing.T) {
		rc := dialRaw(t, c.Addr)
		rc.send("HELLO", "3")
		line, err := rc.br.ReadString('\n')
		if err != nil || line != "%7\r\n" {
			t.Fatalf("HELLO 3 starts with %q (%v), want a 7-entry map", line, err)
		}
		for i := 0; i < 14; i++ {
			if _, err := readRESP3Item(rc); err != nil {
				t.Fatal(err)
			}
		}
		// A RESP3 null now comes as RESP3 from the shard's RESP3 connection.
		if got, _ := rc.br.Peek(0); len(got) != 0 {
			t.Fatalf("unexpected bytes after HELLO: %q", got)
		}
		rc.send("GET", "missing")
		line, _ = rc.br.ReadString('\n')
		if line != "_\r\n" {
			t.Errorf("GET missing in RESP3 = %q, want _", line)
		}
		rc.send("HELLO", "2")
		readRESP3Item(rc)
		rc.send("GET", "missing")
		if line, _ = rc.br.ReadString('\n'); line != "$-1\r\n" {
			t.Errorf("GET missing after HELLO 2 = %q, want $-1", line)
		}
		if got := rc.do("HELLO", "4"); got != "-NOPROTO unsupported protocol version" {
			t.Errorf("HELLO 4 = %s", got)
		}
	})

	t.Run("transactions and blocking", func(t *testing.T) {
		pipe := p.TxPipeline()
		incr := pipe.Incr(ctx, "{t}n")
		pipe.HSet(ctx, "{t}h", "f", "v")
		hgetall := pipe.HGetAll(ctx, "{t}h")
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		if incr.Val() != 1 || hgetall.Val()["f"] != "v" {
			t.Errorf("MULTI in RESP3: incr %d, hgetall %v", incr.Val(), hgetall.Val())
		}
		go func() {
			time.Sleep(100 * time.Millisecond)
			d := open(c.Addr)
			d.RPush(ctx, "{q}", "x")
		}()
		if got, err := p.BLPop(ctx, 2*time.Second, "{q}").Result(); err != nil || got[1] != "x" {
			t.Errorf("BLPOP in RESP3 = %v, %v", got, err)
		}
	})

	t.Run("pubsub with commands in between", func(t *testing.T) {
		sub := open(c.Addr)
		ps := sub.Subscribe(ctx, "r3")
		defer ps.Close()
		if _, err := ps.Receive(ctx); err != nil {
			t.Fatal(err)
		}
		if err := p.Publish(ctx, "r3", "hello").Err(); err != nil {
			t.Fatal(err)
		}
		msg, err := ps.ReceiveMessage(ctx)
		if err != nil || msg.Payload != "hello" {
			t.Fatalf("message = %+v, %v", msg, err)
		}
	})

	// As in Redis: the commands before HELLO 3 in a pipeline are answered in
	// RESP2, those after it in RESP3; RESET goes back to RESP2 and turns
	// replies back on.
	t.Run("hello and reset inside a pipeline", func(t *testing.T) {
		rc := dialRaw(t, c.Addr)
		rc.write(encode("GET", "nope") + encode("HELLO", "3") + encode("GET", "nope") +
			encode("CLIENT", "REPLY", "OFF") + encode("GET", "nope") + encode("RESET") +
			encode("GET", "nope") + encode("CLIENT", "INFO"))
		rc.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		line := func() string {
			l, err := rc.br.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			return l
		}
		if got := line(); got != "$-1\r\n" {
			t.Fatalf("GET before HELLO 3 = %q, want RESP2's null", got)
		}
		if got := line(); got != "%7\r\n" {
			t.Fatalf("HELLO 3 starts with %q, want a 7-entry map", got)
		}
		for range 14 {
			if _, err := readRESP3Item(rc); err != nil {
				t.Fatal(err)
			}
		}
		for _, want := range []string{"_\r\n", "+RESET\r\n", "$-1\r\n"} {
			if got := line(); got != want {
				t.Fatalf("reply = %q, want %q", got, want)
			}
		}
		line() // CLIENT INFO's length
		if info := line(); !strings.Contains(info, "resp=2") {
			t.Errorf("CLIENT INFO after RESET = %q, want resp=2", info)
		}
	})

	// WATCH outlives HELLO: EXEC answers in the protocol of the moment,
	// and the connection that held the WATCH serves later transactions,
	// of any client, in theirs.
	t.Run("watch across hello", func(t *testing.T) {
		steps := [][][]string{ // per connection, in turn; HELLO's reply is not compared (client ids differ)
			{{"HSET", "{t}wh", "f", "v"}, {"WATCH", "{t}wa"}, {"HELLO", "3"}, {"MULTI"}, {"HGETALL", "{t}wh"}, {"EXEC"}},
			{{"HELLO", "3"}, {"MULTI"}, {"HGETALL", "{t}wh"}, {"EXEC"}},
			{{"HELLO", "3"}, {"WATCH", "{t}wa"}, {"INCR", "{t}wa"}, {"HELLO", "2"}, {"MULTI"}, {"EXEC"}},
			{{"MULTI"}, {"HGETALL", "{t}wh"}, {"EXEC"}},
		}
		for i, conn := range steps {
			pc, dc := dialRaw(t, c.Addr), dialRaw(t, direct.Addr())
			for _, args := range conn {
				got, want := pc.do(args...), dc.do(args...)
				if args[0] != "HELLO" && got != want {
					t.Errorf("connection %d, %q = %s, redis-server %s", i, args, got, want)
				}
			}
		}
	})

	// What the proxy answers itself, or merges from the shards, has the
	// RESP3 shape Redis gives it (maps, verbatim strings, doubles).
	t.Run("own replies", func(t *testing.T) {
		sameRESP3Shapes(t, c.Addr, direct.Addr(), [][]string{
			{"PING"}, {"ECHO", "x"}, {"TIME"}, {"DBSIZE"}, {"INFO", "server"}, {"INFO", "keyspace"},
			{"CLIENT", "LIST"}, {"CLIENT", "INFO"}, {"CLIENT", "ID"}, {"CLIENT", "GETNAME"},
			{"COMMAND", "COUNT"}, {"COMMAND", "INFO", "get"}, {"COMMAND", "DOCS", "get"},
			{"COMMAND", "GETKEYS", "set", "a", "b"}, {"CONFIG", "GET", "maxmemory"},
			{"MGET", "a", "b"}, {"KEYS", "zz*"}, {"SCAN", "0", "MATCH", "zz*"}, {"RANDOMKEY"},
			{"MEMORY", "USAGE", "nope"}, {"LOLWUT"}, {"ACL", "WHOAMI"}, {"SELECT", "0"},
			{"UNSUBSCRIBE"}, {"PUNSUBSCRIBE", "a", "b"},
		})
	})

	t.Run("client list shows resp", func(t *testing.T) {
		if list := p.ClientList(ctx).Val(); !strings.Contains(list, "resp=3") {
			t.Errorf("CLIENT LIST = %s", list)
		}
	})
}

// readRESP3Item reads one RESP3 item, roughly (enough to skip HELLO's map).
func readRESP3Item(rc *rawConn) (string, error) {
	line, err := rc.br.ReadString('\n')
	if err != nil {
		return "", err
	}
	switch line[0] {
	case '$':
		var n int
		fmt.Sscanf(line[1:], "%d", &n)
		if n >= 0 {
			buf := make([]byte, n+2)
			if _, err := rc.br.Read(buf); err != nil {
				return "", err
			}
			return string(buf[:n]), nil
		}
	case '*', '%':
		var n int
		fmt.Sscanf(line[1:], "%d", &n)
		if line[0] == '%' {
			n *= 2
		}
		for i := 0; i < n; i++ {
			if _, err := readRESP3Item(rc); err != nil {
				return "", err
			}
		}
	}
	return line, nil
}

// TestIntegrationHelloVersion checks that HELLO reports the shards' Redis
// version from the first command on: the proxy used to answer 7.0.0 until a
// probe running in the background had heard from a shard (13 times in 20).
func TestIntegrationHelloVersion(t *testing.T) {
	want := ""
	for i := range 5 {
		c := proxytest.Start(t, proxytest.Options{Shards: 3})
		if i == 0 {
			info, err := c.Shards[0].Client().Info(t.Context(), "server").Result()
			if err != nil {
				t.Fatal(err)
			}
			_, rest, _ := strings.Cut(info, "redis_version:")
			want, _, _ = strings.Cut(rest, "\r\n")
		}
		cl := redis.NewClient(&redis.Options{Addr: c.Addr, Protocol: 3})
		hello, err := cl.Do(t.Context(), "HELLO", "3").Result()
		cl.Close()
		m, _ := hello.(map[any]any)
		if err != nil || m["version"] != want {
			t.Fatalf("start %d: HELLO 3 = %#v (%v), want version %q", i, hello, err, want)
		}
	}
}
