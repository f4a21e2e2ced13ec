package proxy_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/proxy"

	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/internal/redistest"
)

// sameAsRedis runs each script of commands on a fresh connection to the proxy
// and to a plain redis-server and requires identical replies.
func sameAsRedis(t *testing.T, c *proxytest.Cluster, direct *redistest.Server, scripts map[string][][]string) {
	t.Helper()
	for name, script := range scripts {
		p, d := dialRaw(t, c.Addr), dialRaw(t, direct.Addr())
		for _, args := range script {
			got, want := p.do(args...), d.do(args...)
			if got != want {
				t.Errorf("%s: %q: proxy %s, redis %s", name, args, got, want)
			}
		}
	}
}

func TestIntegrationTransactions(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3})
	direct := redistest.Start(t)
	sameAsRedis(t, c, direct, map[string][][]string{
		"exec":                 {{"MULTI"}, {"SET", "{t}a", "1"}, {"INCR", "{t}a"}, {"LPUSH", "{t}l", "x"}, {"GET", "{t}a"}, {"EXEC"}, {"GET", "{t}a"}},
		"runtime error inside": {{"MULTI"}, {"SET", "{r}s", "x"}, {"INCR", "{r}s"}, {"GET", "{r}s"}, {"EXEC"}},
		"discard":              {{"MULTI"}, {"SET", "{d}a", "1"}, {"DISCARD"}, {"GET", "{d}a"}},
		"errors":               {{"EXEC"}, {"DISCARD"}, {"MULTI"}, {"MULTI"}, {"DISCARD"}},
		"queued unknown":       {{"MULTI"}, {"SET", "{q}a", "1"}, {"NOSUCHCMD"}, {"EXEC"}, {"GET", "{q}a"}},
		"queued arity":         {{"MULTI"}, {"SET", "{q2}a"}, {"EXEC"}},
		"watch ok":             {{"WATCH", "{w}k"}, {"MULTI"}, {"SET", "{w}k", "1"}, {"EXEC"}, {"GET", "{w}k"}},
		"watch in multi":       {{"MULTI"}, {"WATCH", "{w2}k"}, {"EXEC"}},
		"unwatch":              {{"WATCH", "{w3}k"}, {"UNWATCH"}, {"MULTI"}, {"PING"}, {"EXEC"}},
		"empty":                {{"MULTI"}, {"EXEC"}},
	})

	t.Run("crossslot aborts", func(t *testing.T) {
		rc := dialRaw(t, c.Addr)
		for _, step := range []struct {
			args []string
			want string
		}{
			{[]string{"MULTI"}, "+OK"},
			{[]string{"SET", "a", "1"}, "+QUEUED"},
			{[]string{"SET", "b", "2"}, "-CROSSSLOT Keys in request don't hash to the same slot"},
			{[]string{"EXEC"}, "-EXECABORT Transaction discarded because of previous errors."},
			{[]string{"GET", "a"}, "(nil)"},
			{[]string{"PING"}, "+PONG"},
		} {
			if got := rc.do(step.args...); got != step.want {
				t.Errorf("%q = %s, want %s", step.args, got, step.want)
			}
		}
	})

	t.Run("watch conflict", func(t *testing.T) {
		rc, other := dialRaw(t, c.Addr), dialRaw(t, c.Addr)
		steps := []struct {
			conn *rawConn
			args []string
			want string
		}{
			{rc, []string{"SET", "{x}k", "1"}, "+OK"},
			{rc, []string{"WATCH", "{x}k"}, "+OK"},
			{other, []string{"SET", "{x}k", "2"}, "+OK"},
			{rc, []string{"MULTI"}, "+OK"},
			{rc, []string{"SET", "{x}k", "3"}, "+QUEUED"},
			{rc, []string{"EXEC"}, "(nil array)"},
			{rc, []string{"GET", "{x}k"}, `"2"`},
			{rc, []string{"WATCH", "{x}k"}, "+OK"},
			{rc, []string{"WATCH", "{y}k"}, "-CROSSSLOT Keys in request don't hash to the same slot"},
			{rc, []string{"MULTI"}, "+OK"},
			{rc, []string{"SET", "{x}k", "4"}, "+QUEUED"},
			{rc, []string{"EXEC"}, "[+OK]"},
		}
		for _, st := range steps {
			if got := st.conn.do(st.args...); got != st.want {
				t.Errorf("%q = %s, want %s", st.args, got, st.want)
			}
		}
		if got := c.ShardOf("{x}k").Client().Get(t.Context(), "{x}k").Val(); got != "4" {
			t.Errorf("{x}k on its shard = %q, want 4", got)
		}
	})

	t.Run("keyless fan-out refused inside", func(t *testing.T) {
		rc := dialRaw(t, c.Addr)
		rc.do("MULTI")
		if got := rc.do("DBSIZE"); !strings.HasPrefix(got, "-ERR") || !strings.Contains(got, "dbsize") {
			t.Errorf("DBSIZE in MULTI = %s", got)
		}
		if got := rc.do("EXEC"); !strings.HasPrefix(got, "-EXECABORT") {
			t.Errorf("EXEC = %s, want EXECABORT", got)
		}
	})

	t.Run("pipelined with other commands", func(t *testing.T) {
		rc := dialRaw(t, c.Addr)
		rc.write(encode("SET", "{p}a", "1") + encode("MULTI") + encode("INCR", "{p}a") + encode("EXEC") + encode("GET", "{p}a") + encode("GET", "zz"))
		want := []string{"+OK", "+OK", "+QUEUED", "[:2]", `"2"`, "(nil)"}
		for i, w := range want {
			if got := render(rc.read()); got != w {
				t.Errorf("reply %d = %s, want %s", i, got, w)
			}
		}
	})
}

func TestIntegrationBlocking(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3})
	ctx := t.Context()
	cl := c.Client()

	t.Run("woken by a push", func(t *testing.T) {
		rc := dialRaw(t, c.Addr)
		rc.send("BLPOP", "bq", "5")
		time.Sleep(200 * time.Millisecond)
		if err := cl.RPush(ctx, "bq", "v").Err(); err != nil {
			t.Fatal(err)
		}
		if got := render(rc.read()); got != `["bq", "v"]` {
			t.Errorf("BLPOP = %s", got)
		}
		if got := rc.do("PING"); got != "+PONG" {
			t.Errorf("PING after BLPOP = %s", got)
		}
	})

	t.Run("timeout", func(t *testing.T) {
		rc := dialRaw(t, c.Addr)
		start := time.Now()
		if got := rc.do("BRPOP", "empty", "0.3"); got != "(nil array)" {
			t.Errorf("BRPOP = %s", got)
		}
		if d := time.Since(start); d < 250*time.Millisecond {
			t.Errorf("BRPOP returned after %s, before its timeout", d)
		}
	})

	t.Run("other shards keep serving", func(t *testing.T) {
		rc := dialRaw(t, c.Addr)
		rc.send("BLPOP", keyOn(t, c, "blk", 0), "2")
		for i := 0; i < 3; i++ { // every shard, including the blocked one's
			k := keyOn(t, c, "free", i)
			if err := cl.Set(ctx, k, "1", 0).Err(); err != nil {
				t.Fatalf("SET on shard %d while another client blocks: %v", i, err)
			}
		}
		rc.read()
	})

	t.Run("stream read with BLOCK", func(t *testing.T) {
		rc := dialRaw(t, c.Addr)
		rc.send("XREAD", "BLOCK", "5000", "STREAMS", "bs", "$")
		time.Sleep(200 * time.Millisecond)
		cl.XAdd(ctx, &redis.XAddArgs{Stream: "bs", Values: []string{"f", "v"}})
		if got := render(rc.read()); !strings.Contains(got, `"bs"`) || !strings.Contains(got, `"f"`) {
			t.Errorf("XREAD BLOCK = %s", got)
		}
	})

	t.Run("crossslot", func(t *testing.T) {
		rc := dialRaw(t, c.Addr)
		if got := rc.do("BLPOP", "a", "b", "1"); got != "-CROSSSLOT Keys in request don't hash to the same slot" {
			t.Errorf("BLPOP a b = %s", got)
		}
	})

	t.Run("client disconnect releases the shard", func(t *testing.T) {
		key := keyOn(t, c, "gone", 1)
		shard := c.ShardOf(key).Client()
		rc := dialRaw(t, c.Addr)
		rc.send("BLPOP", key, "0")
		if !waitFor(5*time.Second, func() bool { return blockedClients(t, shard) == 1 }) {
			t.Fatal("the shard never saw the blocked client")
		}
		rc.nc.Close()
		if !waitFor(5*time.Second, func() bool { return blockedClients(t, shard) == 0 }) {
			t.Fatal("the shard still has a blocked client after the client left")
		}
		// Nothing was popped by the vanished client.
		cl.RPush(ctx, key, "kept")
		time.Sleep(100 * time.Millisecond)
		if got := cl.LRange(ctx, key, 0, -1).Val(); len(got) != 1 || got[0] != "kept" {
			t.Errorf("list after the blocked client left = %q, want [kept]", got)
		}
	})

	// INFO counts the proxy's own clients as Redis counts its own:
	// redis-cli --stat and monitoring read these fields.
	t.Run("INFO counts blocked and subscribed clients", func(t *testing.T) {
		key := keyOn(t, c, "counted", 2)
		rc := dialRaw(t, c.Addr)
		rc.send("BLPOP", key, "0")
		if !waitFor(5*time.Second, func() bool { return blockedClients(t, cl) == 1 }) {
			t.Fatal("INFO never showed the client blocked")
		}
		cl.RPush(ctx, key, "x")
		if got := render(rc.read()); !strings.Contains(got, `"x"`) {
			t.Errorf("BLPOP = %s", got)
		}
		if n := blockedClients(t, cl); n != 0 {
			t.Errorf("blocked_clients after the pop = %d", n)
		}
		sub := dialRaw(t, c.Addr)
		sub.send("SUBSCRIBE", "counted")
		sub.read()
		if n := clientsField(t, cl, "pubsub_clients"); n != 1 {
			t.Errorf("pubsub_clients while one client subscribes = %d", n)
		}
		sub.nc.Close()
		if !waitFor(5*time.Second, func() bool { return clientsField(t, cl, "pubsub_clients") == 0 }) {
			t.Error("pubsub_clients stays above 0 after the subscriber left")
		}
	})

	t.Run("wait", func(t *testing.T) {
		rc := dialRaw(t, c.Addr)
		if got := rc.do("WAIT", "0", "0"); got != ":0" {
			t.Errorf("WAIT 0 0 = %s", got)
		}
		if got := rc.do("WAIT", "1", "100"); got != ":0" {
			t.Errorf("WAIT 1 100 (no replicas) = %s", got)
		}
	})
}

// blockedClients reads blocked_clients from the INFO of a shard or the proxy.
func blockedClients(t *testing.T, cl *redis.Client) int {
	return clientsField(t, cl, "blocked_clients")
}

// clientsField reads a number of INFO's clients section.
func clientsField(t *testing.T, cl *redis.Client, name string) int {
	t.Helper()
	info, err := cl.Info(t.Context(), "clients").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	t.Fatalf("no %s in INFO", name)
	return 0
}

func TestIntegrationAuth(t *testing.T) {
	cfg := proxy.DefaultConfig()
	cfg.RequirePass = "s3cret"
	cfg.AdminPassword = "adm1n"
	c := proxytest.Start(t, proxytest.Options{Shards: 2, Config: &cfg})
	rc := dialRaw(t, c.Addr)
	for _, st := range []struct {
		args []string
		want string
	}{
		{[]string{"GET", "a"}, "-NOAUTH Authentication required."},
		{[]string{"PROXY", "TOPOLOGY"}, "-NOAUTH Authentication required."},
		{[]string{"AUTH", "wrong"}, "-WRONGPASS invalid username-password pair or user is disabled."},
		{[]string{"AUTH", "default", "wrong"}, "-WRONGPASS invalid username-password pair or user is disabled."},
		{[]string{"AUTH", "nobody", "s3cret"}, "-WRONGPASS invalid username-password pair or user is disabled."},
		{[]string{"AUTH", "s3cret"}, "+OK"},
		{[]string{"SET", "a", "1"}, "+OK"},
		{[]string{"PROXY", "TOPOLOGY"}, "-NOPERM User default has no permissions to run the 'proxy' command"},
		{[]string{"CONFIG", "SET", "maxmemory", "0"}, "-NOPERM User default has no permissions to run the 'config|set' command"},
		{[]string{"AUTH", "admin", "adm1n"}, "+OK"},
		{[]string{"GET", "a"}, `"1"`},
		{[]string{"RESET"}, "+RESET"},
		{[]string{"GET", "a"}, "-NOAUTH Authentication required."},
	} {
		if got := rc.do(st.args...); got != st.want {
			t.Errorf("%q = %s, want %s", st.args, got, st.want)
		}
	}
	if got := rc.do("CONFIG", "GET", "maxmemory"); got != "-NOAUTH Authentication required." {
		t.Errorf("CONFIG GET before AUTH = %s", got)
	}
	hello := dialRaw(t, c.Addr)
	if got := hello.do("HELLO", "2", "AUTH", "default", "nope"); !strings.HasPrefix(got, "-WRONGPASS") {
		t.Errorf("HELLO with a wrong password = %s", got)
	}
	if got := hello.do("HELLO", "2", "AUTH", "default", "s3cret"); !strings.Contains(got, `"proto", :2`) {
		t.Errorf("HELLO 2 AUTH = %s", got)
	}
	if got := hello.do("GET", "a"); got != `"1"` {
		t.Errorf("GET after HELLO AUTH = %s", got)
	}
	info := hello.do("INFO")
	if strings.Contains(info, "s3cret") || strings.Contains(info, "adm1n") {
		t.Error("INFO shows a password")
	}
}

// A command queued in a transaction gets the shard's own answer, as from
// Redis: -OOM or -NOREPLICAS at queue time (and EXECABORT at EXEC), and at
// EXEC the cause Redis 7 gives when EXEC itself is refused. Another
// connection changes the shards' state meanwhile (CONFIG SET goes to every
// shard through the proxy). The proxy once queued everything itself and
// ran the transaction at EXEC whatever the shard's state had been.
func TestIntegrationTransactionQueueErrors(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3})
	direct := redistest.Start(t)
	key := keyOn(t, c, "{q}", 2) // not the first shard, where keyless commands open the transaction
	type step struct {
		admin bool // on the second connection
		args  []string
	}
	set := func(name, value string) step { return step{true, []string{"CONFIG", "SET", name, value}} }
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"oom when queued", []step{
			set("maxmemory", "1"), {false, []string{"MULTI"}}, {false, []string{"SET", key, "1"}},
			set("maxmemory", "0"), {false, []string{"EXEC"}}, {false, []string{"GET", key}},
		}},
		{"oom at exec", []step{
			{false, []string{"MULTI"}}, {false, []string{"SET", key, "2"}}, set("maxmemory", "1"),
			{false, []string{"EXEC"}}, set("maxmemory", "0"), {false, []string{"GET", key}},
		}},
		{"noreplicas when queued", []step{
			set("min-replicas-to-write", "1"), {false, []string{"MULTI"}}, {false, []string{"GET", key}},
			{false, []string{"INCR", key}}, set("min-replicas-to-write", "0"), {false, []string{"EXEC"}},
			{false, []string{"GET", key}},
		}},
		{"noreplicas at exec", []step{
			{false, []string{"MULTI"}}, {false, []string{"SET", key, "3"}}, set("min-replicas-to-write", "1"),
			{false, []string{"EXEC"}}, set("min-replicas-to-write", "0"), {false, []string{"GET", key}},
		}},
		{"keyless first, oom when queued", []step{
			set("maxmemory", "1"), {false, []string{"MULTI"}}, {false, []string{"PING"}},
			{false, []string{"SET", key, "4"}}, set("maxmemory", "0"), {false, []string{"EXEC"}},
		}},
		{"keyless first, then a key on another shard", []step{
			{false, []string{"MULTI"}}, {false, []string{"ECHO", "e"}}, {false, []string{"SET", key, "5"}},
			{false, []string{"INCR", key}}, {false, []string{"EXEC"}},
		}},
		{"arity and unknown", []step{
			{false, []string{"MULTI"}}, {false, []string{"SET", key}}, {false, []string{"NOSUCH", key}},
			{false, []string{"SET", key, "6"}}, {false, []string{"EXEC"}}, {false, []string{"GET", key}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, pa := dialRaw(t, c.Addr), dialRaw(t, c.Addr)
			d, da := dialRaw(t, direct.Addr()), dialRaw(t, direct.Addr())
			p.do("DEL", key)
			d.do("DEL", key)
			for _, st := range tc.steps {
				pc, dc := p, d
				if st.admin {
					pc, dc = pa, da
				}
				if got, want := pc.do(st.args...), dc.do(st.args...); got != want {
					t.Errorf("%q: proxy %s, redis %s", st.args, got, want)
				}
			}
		})
	}

	// A shard busy with a script answers -BUSY to a command queued for
	// it. The script is killed on the shard itself.
	t.Run("busy when queued", func(t *testing.T) {
		type side struct {
			addr  string
			shard *redistest.Server
		}
		var got [2][]string
		for i, sd := range []side{{c.Addr, c.ShardOf(key)}, {direct.Addr(), direct}} {
			a, runner := dialRaw(t, sd.addr), dialRaw(t, sd.addr)
			a.do("CONFIG", "SET", "busy-reply-threshold", "20")
			runner.send("EVAL", "while true do end", "1", key)
			shard := sd.shard.Client() // asked directly: a shared connection of the proxy's may be the script's
			busy := func() bool {
				err := shard.Ping(t.Context()).Err()
				return err != nil && strings.HasPrefix(err.Error(), "BUSY")
			}
			for n := 0; !busy(); n++ {
				if n == 500 {
					t.Fatal("the script did not make the shard busy")
				}
				redistest.Sleep(10)
			}
			got[i] = append(got[i], a.do("MULTI"), a.do("SET", key, "7"))
			if err := shard.ScriptKill(t.Context()).Err(); err != nil {
				t.Fatal(err)
			}
			runner.read()
			got[i] = append(got[i], a.do("EXEC"), a.do("GET", key))
			a.do("CONFIG", "SET", "busy-reply-threshold", "5000")
		}
		if strings.Join(got[0], "\n") != strings.Join(got[1], "\n") {
			t.Errorf("MULTI, SET, EXEC, GET: proxy %q, redis %q", got[0], got[1])
		}
	})
}

// A blocking XREADGROUP sent just before another client's FLUSHALL is
// unblocked by the flush, as by Redis, which reads its sockets in arrival
// order: the flush lets every command that had reached the proxy go first.
// The proxy once ran the flush first in about half the runs, as Go's
// scheduler woke the two clients' goroutines (XREADGROUP then answered
// NOGROUP). Redis 7.0.15's stream-cgroups.tcl "Blocking XREADGROUP: flushed
// DB", with a new connection for the reader each run as there, which has
// been answered once (SELECT 9 there), as redis-server too may read a
// connection it has not accepted yet after another's command.
func TestIntegrationBlockingBeforeFlush(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3})
	direct := redistest.Start(t)
	run := func(addr string) string {
		r := dialRaw(t, addr)
		r.do("XADD", "mystream", "666", "f", "v")
		r.do("XGROUP", "CREATE", "mystream", "mygroup", "$")
		rd := dialRaw(t, addr)
		defer rd.nc.Close()
		rd.do("PING")
		rd.send("XREADGROUP", "GROUP", "mygroup", "Alice", "BLOCK", "0", "STREAMS", "mystream", ">")
		r.do("FLUSHALL")
		return render(rd.read())
	}
	want := run(direct.Addr())
	if !strings.Contains(want, "no longer exists") {
		t.Fatalf("redis-server answered %s", want)
	}
	for i := range 30 {
		if got := run(c.Addr); got != want {
			t.Fatalf("run %d: XREADGROUP BLOCK before another client's FLUSHALL = %s, want %s", i, got, want)
		}
	}
}
