package proxy_test

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/router"

	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/internal/redistest"
)

// fill sets n keys named prefix0..prefix(n-1) through cl and returns them.
func fill(t *testing.T, cl *redis.Client, prefix string, n int) []string {
	t.Helper()
	ctx := t.Context()
	p := cl.Pipeline()
	var keys []string
	for i := 0; i < n; i++ {
		k := fmt.Sprintf("%s%d", prefix, i)
		keys = append(keys, k)
		p.Set(ctx, k, "v", 0)
	}
	if _, err := p.Exec(ctx); err != nil {
		t.Fatalf("fill %s*: %v", prefix, err)
	}
	return keys
}

func shardSizes(t *testing.T, shards []*redis.Client) []int64 {
	t.Helper()
	out := make([]int64, len(shards))
	for i, sh := range shards {
		n, err := sh.DBSize(t.Context()).Result()
		if err != nil {
			t.Fatalf("DBSIZE on shard %d: %v", i, err)
		}
		out[i] = n
	}
	return out
}

func TestIntegrationFanout(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3})
	ctx := t.Context()
	cl := c.Client()
	shards := directClients(c)

	t.Run("empty", func(t *testing.T) {
		if got, err := cl.DBSize(ctx).Result(); err != nil || got != 0 {
			t.Errorf("DBSIZE = %d, %v; want 0", got, err)
		}
		if got, err := cl.Keys(ctx, "*").Result(); err != nil || len(got) != 0 {
			t.Errorf("KEYS * = %q, %v; want []", got, err)
		}
		if got, err := cl.RandomKey(ctx).Result(); err != redis.Nil {
			t.Errorf("RANDOMKEY = %q, %v; want nil", got, err)
		}
	})

	t.Run("randomkey with one key", func(t *testing.T) {
		// Two shards answer nil; the proxy must never pass their nil on.
		only := keyOn(t, c, "lonely:", 2)
		cl.Set(ctx, only, "v", 0)
		for i := 0; i < 30; i++ {
			if got, err := cl.RandomKey(ctx).Result(); err != nil || got != only {
				t.Fatalf("RANDOMKEY = %q, %v; want %q", got, err, only)
			}
		}
		cl.Del(ctx, only)
	})

	keys := fill(t, cl, "fan:", 300)
	t.Run("dbsize", func(t *testing.T) {
		sizes := shardSizes(t, shards)
		var sum int64
		for i, n := range sizes {
			if n == 0 {
				t.Errorf("shard %d holds no key; the sum tests nothing", i)
			}
			sum += n
		}
		got, err := cl.DBSize(ctx).Result()
		if err != nil || got != 300 || got != sum {
			t.Errorf("DBSIZE = %d, %v; want 300 (shards hold %v)", got, err, sizes)
		}
	})

	t.Run("keys", func(t *testing.T) {
		tests := []struct {
			pattern string
			want    func(k string) bool
		}{
			{"*", func(string) bool { return true }},
			{"fan:1*", func(k string) bool { return strings.HasPrefix(k, "fan:1") }},
			{"fan:?", func(k string) bool { return len(k) == len("fan:0") }},
			{"nothing*", func(string) bool { return false }},
		}
		for _, tt := range tests {
			got, err := cl.Keys(ctx, tt.pattern).Result()
			if err != nil {
				t.Errorf("KEYS %s: %v", tt.pattern, err)
				continue
			}
			want := []string{}
			for _, k := range keys {
				if tt.want(k) {
					want = append(want, k)
				}
			}
			slices.Sort(got)
			slices.Sort(want)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("KEYS %s = %d keys %q..., want %d keys", tt.pattern, len(got), got[:min(5, len(got))], len(want))
			}
		}
	})

	// After a pipeline's replies pass 1 MB the session drops its reply
	// buffers; a fan-out step later in the same pipeline (KEYS, WAIT,
	// FLUSHDB) reserves its reply slots after that. It crashed the proxy.
	t.Run("after a pipeline of large replies", func(t *testing.T) {
		big := strings.Repeat("v", 1<<20)
		if err := cl.Set(ctx, "fan:big", big, 0).Err(); err != nil {
			t.Fatal(err)
		}
		defer cl.Del(ctx, "fan:big")
		pipe := cl.Pipeline()
		gets := []*redis.StringCmd{pipe.Get(ctx, "fan:big"), pipe.Get(ctx, "fan:big")}
		keysCmd := pipe.Keys(ctx, "fan:big")
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatalf("GET, GET, KEYS in one pipeline: %v", err)
		}
		for _, g := range gets {
			if g.Val() != big {
				t.Errorf("GET fan:big = %d bytes, want %d", len(g.Val()), len(big))
			}
		}
		if got := keysCmd.Val(); !slices.Equal(got, []string{"fan:big"}) {
			t.Errorf("KEYS fan:big = %q", got)
		}
	})

	t.Run("randomkey", func(t *testing.T) {
		seen := map[string]bool{}
		for i := 0; i < 50; i++ {
			got, err := cl.RandomKey(ctx).Result()
			if err != nil || !slices.Contains(keys, got) {
				t.Fatalf("RANDOMKEY = %q, %v; want one of the keys set", got, err)
			}
			seen[got] = true
		}
		if len(seen) < 2 {
			t.Errorf("50 RANDOMKEY calls returned only %v", seen)
		}
	})

	for _, cmd := range [][]any{{"FLUSHDB"}, {"FLUSHALL"}, {"FLUSHALL", "ASYNC"}, {"FLUSHDB", "SYNC"}} {
		name := fmt.Sprint(cmd...)
		t.Run(strings.ToLower(name), func(t *testing.T) {
			fill(t, cl, "flush:", 100)
			got, err := cl.Do(ctx, cmd...).Result()
			if err != nil || got != "OK" {
				t.Fatalf("%s = %v, %v; want OK", name, got, err)
			}
			// ASYNC frees memory in the background, but the keyspace is
			// empty at once.
			if got := shardSizes(t, shards); fmt.Sprint(got) != "[0 0 0]" {
				t.Errorf("after %s shards hold %v keys, want [0 0 0]", name, got)
			}
			if got := cl.DBSize(ctx).Val(); got != 0 {
				t.Errorf("after %s DBSIZE = %d, want 0", name, got)
			}
		})
	}
}

// infoFields parses INFO text into its sections' field maps, keyed by
// lowercase section name.
func infoFields(text string) map[string]map[string]string {
	out := map[string]map[string]string{}
	var cur map[string]string
	for _, line := range strings.Split(text, "\r\n") {
		if name, ok := strings.CutPrefix(line, "# "); ok {
			cur = map[string]string{}
			out[strings.ToLower(name)] = cur
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok && cur != nil {
			cur[k] = v
		}
	}
	return out
}

func TestIntegrationInfo(t *testing.T) {
	ranges := [][]router.Range{
		{{From: 0, To: 99}, {From: 16000, To: 16383}},
		{{From: 100, To: 8000}},
		{{From: 8001, To: 15999}},
	}
	c := proxytest.Start(t, proxytest.Options{Shards: 3, Ranges: ranges})
	ctx := t.Context()
	cl := c.Client()
	p := cl.Pipeline()
	for i := 0; i < 90; i++ {
		if i%3 == 0 {
			p.Set(ctx, fmt.Sprint("info:", i), "v", time.Hour)
		} else {
			p.Set(ctx, fmt.Sprint("info:", i), "v", 0)
		}
	}
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	shardVersion := infoFields(c.Shards[0].Client().Info(ctx, "server").Val())["server"]["redis_version"]
	if shardVersion == "" {
		t.Fatal("no redis_version in a shard's INFO")
	}

	text, err := cl.Info(ctx).Result()
	if err != nil {
		t.Fatalf("INFO: %v", err)
	}
	info := infoFields(text)
	for _, sec := range []string{"server", "clients", "memory", "stats", "proxy", "keyspace"} {
		if info[sec] == nil {
			t.Errorf("INFO has no # %s section:\n%s", strings.ToUpper(sec[:1])+sec[1:], text)
		}
	}
	wantFields := []struct{ section, field, want string }{
		{"server", "redis_version", shardVersion},
		{"proxy", "epoch", "1"},
		{"proxy", "shards", "3"},
		{"proxy", "shard0", "addr=" + c.Shards[0].Addr() + ",status=up,slots=0-99/16000-16383"},
		{"proxy", "shard1", "addr=" + c.Shards[1].Addr() + ",status=up,slots=100-8000"},
		{"proxy", "shard2", "addr=" + c.Shards[2].Addr() + ",status=up,slots=8001-15999"},
	}
	for _, f := range wantFields {
		got := info[f.section][f.field]
		if strings.HasPrefix(f.field, "shard") && f.field != "shards" {
			// counters such as reconnects=N may follow the fixed part
			if parts := strings.Split(got, ","); len(parts) > 3 {
				got = strings.Join(parts[:3], ",")
			}
		}
		if got != f.want {
			t.Errorf("INFO %s %s = %q, want %q", f.section, f.field, got, f.want)
		}
	}
	for _, f := range []string{"proxy_version", "uptime_in_seconds", "connected_clients", "total_commands_processed", "instantaneous_ops_per_sec"} {
		if _, ok := info["proxy"][f]; !ok {
			t.Errorf("INFO # Proxy has no %s", f)
		}
	}
	if got := info["keyspace"]["db0"]; !regexp.MustCompile(`^keys=90,expires=30,avg_ttl=\d+$`).MatchString(got) {
		t.Errorf("INFO db0 = %q, want keys=90,expires=30,avg_ttl=...", got)
	}

	// Figures one server would count over all its keys are the shards'
	// added up: forks (a BGSAVE on two shards), objects freed lazily (an
	// UNLINK of a big set on one).
	c.Shards[0].Client().BgSave(ctx)
	c.Shards[2].Client().BgSave(ctx)
	big := keyOn(t, c, "lazy:", 1)
	members := make([]any, 200)
	for i := range members {
		members[i] = i
	}
	cl.SAdd(ctx, big, members...)
	cl.Unlink(ctx, big)
	time.Sleep(300 * time.Millisecond) // the forks end, the lazy free runs
	summed := infoFields(cl.Info(ctx, "memory", "stats", "replication").Val())
	for _, f := range []struct{ section, field string }{
		{"stats", "total_forks"}, {"stats", "evicted_clients"}, {"memory", "lazyfreed_objects"},
		{"memory", "used_memory_lua"}, {"memory", "mem_not_counted_for_evict"},
		{"replication", "master_repl_offset"},
	} {
		var want int64
		for _, sh := range c.Shards {
			n, _ := strconv.ParseInt(infoFields(sh.Client().Info(ctx, f.section).Val())[f.section][f.field], 10, 64)
			want += n
		}
		if got := summed[f.section][f.field]; got != strconv.FormatInt(want, 10) {
			t.Errorf("INFO %s = %q, want the shards' sum %d", f.field, got, want)
		}
	}
	if got := summed["stats"]["total_forks"]; got != "2" {
		t.Errorf("INFO total_forks = %q after a BGSAVE on two shards, want 2", got)
	}
	if got := summed["memory"]["mem_allocator"]; got == "" {
		t.Error("INFO has no mem_allocator")
	}

	// A section asked for by name comes alone.
	only, err := cl.Info(ctx, "keyspace").Result()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(sectionNames(only), ","); got != "keyspace" {
		t.Errorf("INFO keyspace has sections %s, want keyspace only", got)
	}
	proxyOnly, err := cl.Info(ctx, "proxy").Result()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(sectionNames(proxyOnly), ","); got != "proxy" {
		t.Errorf("INFO proxy has sections %s, want proxy only", got)
	}
}

func sectionNames(text string) []string {
	var out []string
	for _, line := range strings.Split(text, "\r\n") {
		if name, ok := strings.CutPrefix(line, "# "); ok {
			out = append(out, strings.ToLower(name))
		}
	}
	return out
}

func TestIntegrationAdmin(t *testing.T) {
	ranges := [][]router.Range{
		{{From: 0, To: 99}, {From: 16000, To: 16383}},
		{{From: 100, To: 8000}},
		{{From: 8001, To: 15999}},
	}
	c := proxytest.Start(t, proxytest.Options{Shards: 3, Ranges: ranges})
	rc := dialRaw(t, c.Addr)
	a0, a1, a2 := c.Shards[0].Addr(), c.Shards[1].Addr(), c.Shards[2].Addr()

	wantTopology := fmt.Sprintf(`["epoch", :1, "spec", "%s=0-99/16000-16383,%s=100-8000,%s=8001-15999", "shards", [`+
		`["addr", "%s", "slots", "0-99/16000-16383", "status", "up"], `+
		`["addr", "%s", "slots", "100-8000", "status", "up"], `+
		`["addr", "%s", "slots", "8001-15999", "status", "up"]]]`, a0, a1, a2, a0, a1, a2)
	for _, args := range [][]string{{"PROXY", "TOPOLOGY"}, {"proxy", "topology"}} {
		if got := rc.do(args...); got != wantTopology {
			t.Errorf("%s =\n%s\nwant\n%s", strings.Join(args, " "), got, wantTopology)
		}
	}

	rc.send("PROXY", "HELP")
	reply := rc.read()
	lines, _ := reply.([]any)
	var text []string
	for _, l := range lines {
		if s, ok := l.(status); ok {
			text = append(text, string(s))
		}
	}
	if len(text) == 0 || len(text) != len(lines) || !strings.HasPrefix(text[0], "PROXY <subcommand>") ||
		!slices.Contains(text, "TOPOLOGY") || !slices.Contains(text, "HELP") {
		t.Errorf("PROXY HELP = %s, want status lines like CONFIG HELP's: a PROXY <subcommand> header, TOPOLOGY, HELP", render(reply))
	}
	help := render(reply)
	if got := rc.do("PROXY"); got != help {
		t.Errorf("PROXY = %s, want the same as PROXY HELP: %s", got, help)
	}
	if got := rc.do("PROXY", "NOSUCH"); !strings.HasPrefix(got, "-ERR unknown subcommand") || !strings.Contains(got, "PROXY HELP") {
		t.Errorf("PROXY NOSUCH = %s, want -ERR unknown subcommand ... PROXY HELP", got)
	}
	if got := rc.do("PROXY", "TOPOLOGY", "extra"); !strings.HasPrefix(got, "-ERR") {
		t.Errorf("PROXY TOPOLOGY extra = %s, want an error", got)
	}
}

// TestIntegrationLocalCommands checks commands the proxy answers itself (or
// from any one shard) against what one redis-server answers.
func TestIntegrationLocalCommands(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3})
	ref := redistest.Start(t)
	px, rf := dialRaw(t, c.Addr), dialRaw(t, ref.Addr())

	tests := []struct {
		args []string
		want string // empty: the same as redis-server
	}{
		{args: []string{"PING"}, want: "+PONG"},
		{args: []string{"ping"}, want: "+PONG"},
		{args: []string{"PING", "hello world"}, want: `"hello world"`},
		{args: []string{"ECHO", "a\r\nb\x00c"}, want: `"a\r\nb\x00c"`},
		{args: []string{"ECHO", ""}, want: `""`},
		{args: []string{"ECHO"}, want: "-ERR wrong number of arguments for 'echo' command"},
		{args: []string{"PING", "a", "b"}, want: "-ERR wrong number of arguments for 'ping' command"},
		{args: []string{"SELECT", "0"}, want: "+OK"},
		{args: []string{"COMMAND", "COUNT"}},
		{args: []string{"COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2"}, want: `["a", "b"]`},
		{args: []string{"COMMAND", "INFO", "get"}},
		{args: []string{"CLIENT", "SETNAME", "tester"}, want: "+OK"},
		{args: []string{"CLIENT", "GETNAME"}, want: `"tester"`},
	}
	for _, tt := range tests {
		got, want := px.do(tt.args...), rf.do(tt.args...)
		if tt.want != "" && want != tt.want {
			t.Errorf("redis-server %q = %s, want %s (the test's expectation is wrong)", tt.args, want, tt.want)
		}
		if got != want {
			t.Errorf("%q = %s, want %s", tt.args, got, want)
		}
	}

	// Redis Cluster refuses every database but 0; a plain redis-server
	// would switch, which the proxy cannot do over shared connections.
	for _, db := range []string{"1", "15"} {
		if got := px.do("SELECT", db); !strings.HasPrefix(got, "-ERR") {
			t.Errorf("SELECT %s = %s, want an error", db, got)
		}
	}
	if got := px.do("SET", "after-select", "v"); got != "+OK" {
		t.Errorf("SET after a refused SELECT = %s, want +OK", got)
	}
	if got := c.ShardOf("after-select").Client().Get(t.Context(), "after-select").Val(); got != "v" {
		t.Errorf("after a refused SELECT the key went elsewhere than db 0 of its shard (GET = %q)", got)
	}
	if got := px.do("TIME"); !regexp.MustCompile(`^\["\d+", "\d+"\]$`).MatchString(got) {
		t.Errorf("TIME = %s, want two numbers", got)
	}

	px.send("QUIT")
	if got := render(px.read()); got != "+OK" {
		t.Errorf("QUIT = %s, want +OK", got)
	}
	px.expectClosed(2 * time.Second)
}

// TestIntegrationErrorReplies compares the proxy's errors for unknown
// commands and wrong arity with a shard's own, byte for byte.
func TestIntegrationErrorReplies(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3})
	ref := redistest.Start(t)
	px, rf := dialRaw(t, c.Addr), dialRaw(t, ref.Addr())
	long := strings.Repeat("x", 300)

	tests := []struct {
		args []string
		want string // empty: the same as redis-server
	}{
		{args: []string{"foo", "bar"}, want: "-ERR unknown command 'foo', with args beginning with: 'bar' "},
		{args: []string{"foo"}, want: "-ERR unknown command 'foo', with args beginning with: "},
		{args: []string{"FOO", "a", "b", "c"}, want: "-ERR unknown command 'FOO', with args beginning with: 'a' 'b' 'c' "},
		{args: []string{"GET"}, want: "-ERR wrong number of arguments for 'get' command"},
		{args: []string{"GET", "a", "b"}, want: "-ERR wrong number of arguments for 'get' command"},
		{args: []string{"SET", "k"}, want: "-ERR wrong number of arguments for 'set' command"},
		{args: []string{"HSET", "h", "f"}, want: "-ERR wrong number of arguments for 'hset' command"},
		{args: []string{"OBJECT", "ENCODING"}, want: "-ERR wrong number of arguments for 'object|encoding' command"},
		{args: []string{"CONFIG"}, want: "-ERR wrong number of arguments for 'config' command"},
		{args: []string{"CONFIG", "NOSUCH"}},
		{args: []string{"OBJECT", "nosuch", "k"}},
		// Redis cuts long arguments and replaces newlines in the message.
		{args: []string{"foo", long}},
		{args: []string{long, "a"}},
		{args: []string{"foo", "a\nb"}},
		{args: []string{"foo", strings.Repeat("y", 100), strings.Repeat("z", 100), "tail"}},
		{args: append([]string{"foo"}, strings.Split(strings.Repeat("arg ", 100), " ")...)},
		// Errors the shard gives for a routed command come back unchanged.
		{args: []string{"SET", "k", "v", "EX", "-1"}},
		{args: []string{"INCR", "k"}},
		{args: []string{"LPUSH", "k", "x"}},
	}
	for _, tt := range tests {
		got, want := px.do(tt.args...), rf.do(tt.args...)
		if tt.want != "" && want != tt.want {
			t.Errorf("redis-server %q = %s, want %s (the test's expectation is wrong)", tt.args, want, tt.want)
		}
		if got != want {
			t.Errorf("%q = %q, want %q", tt.args, got, want)
		}
	}
}

// TestIntegrationUnsupported sends commands the proxy does not serve
// (transactions, blocking commands and WAIT have their own tests in
// stateful_integration_test.go): each must get an -ERR naming the command, and the
// connection must stay usable (not subscribed, not in a transaction, not
// blocked). Commands that would stop or reconfigure a shard must not reach
// one.
func TestIntegrationUnsupported(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3})
	rc := dialRaw(t, c.Addr)
	tests := [][]string{
		{"CLIENT", "UNBLOCK", "1"},
		{"SWAPDB", "0", "1"},
		{"MOVE", "k", "1"},
		{"MIGRATE", "127.0.0.1", "1", "k", "0", "100"},
		{"SHUTDOWN", "NOSAVE"},
		{"REPLICAOF", "127.0.0.1", "1"},
		{"DEBUG", "RELOAD"},
		{"FAILOVER"},
	}
	for _, args := range tests {
		rc.send(args...)
		v, err := rc.tryRead()
		if err != nil {
			t.Fatalf("%q: no reply: %v", args, err)
		}
		got := render(v)
		lower := strings.ToLower(got)
		named := strings.Contains(lower, strings.ToLower(args[0]))
		if args[0] == "CLIENT" { // a container: the subcommand too
			named = named && strings.Contains(lower, strings.ToLower(args[1]))
		}
		if !strings.HasPrefix(got, "-ERR") || !named {
			t.Errorf("%q = %s, want -ERR naming the command", args, got)
		}
		if got := rc.do("PING"); got != "+PONG" {
			t.Fatalf("PING after %q = %s, want +PONG", args, got)
		}
	}
	// Nothing above reached a shard: they all still run and serve.
	for i, sh := range c.Shards {
		if err := sh.Client().Ping(t.Context()).Err(); err != nil {
			t.Errorf("shard %d after the refused commands: %v", i, err)
		}
	}
	if got := rc.do("SET", "k", "v"); got != "+OK" {
		t.Errorf("SET after the refused commands = %s, want +OK", got)
	}
}

// TestIntegrationHelp: the HELP of a command family the proxy serves (some
// of) answers as Redis does, where redis-cli users look first.
func TestIntegrationHelp(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3})
	ref := redistest.Start(t)
	rc, want := dialRaw(t, c.Addr), dialRaw(t, ref.Addr())
	for _, family := range []string{"CONFIG", "OBJECT", "MEMORY", "XINFO", "XGROUP", "PUBSUB", "SCRIPT", "FUNCTION", "COMMAND"} {
		if got, want := rc.do(family, "HELP"), want.do(family, "HELP"); got != want {
			t.Errorf("%s HELP = %.200s, want %.200s", family, got, want)
		}
	}
}
