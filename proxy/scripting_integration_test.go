package proxy_test

import (
	"crypto/sha1"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/proxy"

	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/internal/redistest"
)

const libCode = "#!lua name=rslib\nredis.register_function('getset2', function(keys, args) " +
	"local old = redis.call('GET', keys[1]); redis.call('SET', keys[1], args[1]); return old end)"

// TestIntegrationScripting checks that scripts and functions loaded through
// the proxy exist on every shard, so EVALSHA and FCALL work wherever their
// keys live.
func TestIntegrationScripting(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3})
	ctx := t.Context()
	cl := c.Client()

	sha, err := cl.ScriptLoad(ctx, "return redis.call('INCR', KEYS[1])").Result()
	if err != nil {
		t.Fatal(err)
	}
	for i := range c.Shards {
		k := keyOn(t, c, "sk", i)
		if n, err := cl.EvalSha(ctx, sha, []string{k}).Int(); err != nil || n != 1 {
			t.Errorf("EVALSHA on shard %d = %d, %v", i, n, err)
		}
		if ok := c.Shards[i].Client().ScriptExists(ctx, sha).Val(); !ok[0] {
			t.Errorf("script not loaded on shard %d", i)
		}
	}
	if ok, err := cl.ScriptExists(ctx, sha, "0000000000000000000000000000000000000000").Result(); err != nil || !ok[0] || ok[1] {
		t.Errorf("SCRIPT EXISTS = %v, %v", ok, err)
	}
	if err := cl.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if ok := cl.ScriptExists(ctx, sha).Val(); ok[0] {
		t.Error("SCRIPT EXISTS true after SCRIPT FLUSH")
	}
	if err := cl.EvalSha(ctx, sha, []string{"x"}).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOSCRIPT") {
		t.Errorf("EVALSHA after flush = %v, want NOSCRIPT", err)
	}

	if err := cl.FunctionLoad(ctx, libCode).Err(); err != nil {
		t.Fatal(err)
	}
	for i := range c.Shards {
		k := keyOn(t, c, "fk", i)
		cl.Set(ctx, k, "old", 0)
		if v, err := cl.FCall(ctx, "getset2", []string{k}, "new").Text(); err != nil || v != "old" {
			t.Errorf("FCALL on shard %d = %q, %v", i, v, err)
		}
		if v := c.Shards[i].Client().Get(ctx, k).Val(); v != "new" {
			t.Errorf("FCALL on shard %d wrote %q", i, v)
		}
	}
	if libs, err := cl.FunctionList(ctx, redis.FunctionListQuery{}).Result(); err != nil || len(libs) != 1 || libs[0].Name != "rslib" {
		t.Errorf("FUNCTION LIST = %+v, %v", libs, err)
	}
	dump, err := cl.FunctionDump(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.FunctionFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	for i, s := range c.Shards {
		if libs := s.Client().FunctionList(ctx, redis.FunctionListQuery{}).Val(); len(libs) != 0 {
			t.Errorf("shard %d still has libraries after FUNCTION FLUSH", i)
		}
	}
	if err := cl.FunctionRestore(ctx, dump).Err(); err != nil {
		t.Fatal(err)
	}
	for i, s := range c.Shards {
		if libs := s.Client().FunctionList(ctx, redis.FunctionListQuery{}).Val(); len(libs) != 1 {
			t.Errorf("shard %d has %d libraries after FUNCTION RESTORE", i, len(libs))
		}
	}
	if err := cl.FunctionDelete(ctx, "rslib").Err(); err != nil {
		t.Fatal(err)
	}
	for i, s := range c.Shards {
		if libs := s.Client().FunctionList(ctx, redis.FunctionListQuery{}).Val(); len(libs) != 0 {
			t.Errorf("shard %d still has the library after FUNCTION DELETE", i)
		}
	}
}

// TestIntegrationBlockingVariants wakes each blocking command with a write
// from another client.
func TestIntegrationBlockingVariants(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3})
	ctx := t.Context()
	cl := c.Client()
	cl.XGroupCreateMkStream(ctx, "{v}stream", "g", "$")
	tests := []struct {
		name  string
		block []string
		wake  func()
		want  string
	}{
		{"BRPOPLPUSH", []string{"BRPOPLPUSH", "{v}a", "{v}b", "5"}, func() { cl.RPush(ctx, "{v}a", "x") }, `"x"`},
		{"BLMPOP", []string{"BLMPOP", "5", "2", "{v}l1", "{v}l2", "LEFT"}, func() { cl.RPush(ctx, "{v}l2", "y") }, `["{v}l2", ["y"]]`},
		{"BZPOPMAX", []string{"BZPOPMAX", "{v}z", "5"}, func() { cl.ZAdd(ctx, "{v}z", redis.Z{Score: 2, Member: "m"}) }, `["{v}z", "m", "2"]`},
		{"BZMPOP", []string{"BZMPOP", "5", "1", "{v}z2", "MIN"}, func() { cl.ZAdd(ctx, "{v}z2", redis.Z{Score: 1, Member: "n"}) }, `["{v}z2", [["n", "1"]]]`},
		{"XREADGROUP BLOCK", []string{"XREADGROUP", "GROUP", "g", "c", "BLOCK", "5000", "STREAMS", "{v}stream", ">"},
			func() { cl.XAdd(ctx, &redis.XAddArgs{Stream: "{v}stream", ID: "5-1", Values: []string{"f", "v"}}) },
			`[["{v}stream", [["5-1", ["f", "v"]]]]]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := dialRaw(t, c.Addr)
			rc.send(tt.block...)
			time.Sleep(150 * time.Millisecond)
			tt.wake()
			if got := render(rc.read()); got != tt.want {
				t.Errorf("%q = %s, want %s", tt.block, got, tt.want)
			}
		})
	}
}

// TestIntegrationScriptKill checks SCRIPT KILL and FUNCTION KILL: they go to
// every shard, and the one running the script kills it. They were refused
// as not supported, leaving a runaway script to hold its shard.
func TestIntegrationScriptKill(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3, ShardArgs: []string{"--busy-reply-threshold", "50"}})
	ctx := t.Context()
	admin := c.Client()
	lib := "#!lua name=spinlib\nredis.register_function{function_name='spin', callback=function() while true do end end, flags={'no-writes'}}"
	if err := admin.FunctionLoad(ctx, lib).Err(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ run, kill []string }{
		{[]string{"EVAL", "while true do end", "0"}, []string{"SCRIPT", "KILL"}},
		{[]string{"FCALL_RO", "spin", "0"}, []string{"FUNCTION", "KILL"}},
	} {
		if got := dialRaw(t, c.Addr).do(tc.kill...); !strings.HasPrefix(got, "-NOTBUSY") {
			t.Errorf("%q with nothing running = %s, want NOTBUSY", tc.kill, got)
		}
		spinner := dialRaw(t, c.Addr)
		spinner.send(tc.run...)
		time.Sleep(100 * time.Millisecond) // past the busy threshold
		killer := dialRaw(t, c.Addr)
		deadline := time.Now().Add(5 * time.Second)
		for {
			got := killer.do(tc.kill...)
			if got == "+OK" {
				break
			}
			if !strings.HasPrefix(got, "-NOTBUSY") || time.Now().After(deadline) {
				t.Fatalf("%q while %q runs = %s, want +OK", tc.kill, tc.run, got)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if got := render(spinner.read()); !strings.Contains(got, "killed by user") {
			t.Errorf("%q after %q = %s, want the killed error", tc.run, tc.kill, got)
		}
	}
}

// FUNCTION STATS answers as the shard running a function does, whichever
// shard that is, and as any shard with none running; in RESP2 and RESP3.
func TestIntegrationFunctionStats(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3, ShardArgs: []string{"--busy-reply-threshold", "50"}})
	lib := "#!lua name=spinlib\nredis.register_function{function_name='spin', callback=function() while true do end end, flags={'no-writes'}}"
	if err := c.Client().FunctionLoad(t.Context(), lib).Err(); err != nil {
		t.Fatal(err)
	}
	key := "k"
	for c.Table.ShardOf([]byte(key)) != 2 { // not the first shard
		key += "k"
	}
	for _, proto := range []string{"2", "3"} {
		rc := dialRaw(t, c.Addr)
		rc.do("HELLO", proto)
		idle := map[string]string{
			"2": `["running_script", (nil), "engines", ["LUA", ["libraries_count", :1, "functions_count", :1]]]`,
			"3": `%{"running_script": _, "engines": %{"LUA": %{"libraries_count": :1, "functions_count": :1}}}`,
		}[proto]
		if got := rc.do("FUNCTION", "STATS"); got != idle {
			t.Errorf("RESP%s FUNCTION STATS with nothing running = %s, want %s", proto, got, idle)
		}
		spinner := dialRaw(t, c.Addr)
		spinner.send("FCALL_RO", "spin", "1", key)
		time.Sleep(100 * time.Millisecond) // past the busy threshold
		got := rc.do("FUNCTION", "STATS")
		if !strings.Contains(got, `"name", "spin", "command", ["FCALL_RO", "spin", "1", "`+key+`"]`) &&
			!strings.Contains(got, `"name": "spin", "command": ["FCALL_RO", "spin", "1", "`+key+`"]`) {
			t.Errorf("RESP%s FUNCTION STATS while spin runs on shard 2 = %s", proto, got)
		}
		if got := rc.do("FUNCTION", "KILL"); got != "+OK" {
			t.Fatalf("FUNCTION KILL = %s", got)
		}
		spinner.read()
	}
}

// TestIntegrationScriptKillHeldConnection runs a script that never ends on the shard
// whose one shared connection (BackendConns 1) carries it: SCRIPT KILL and
// FUNCTION KILL reach the shard at once, the script's client gets Redis's
// error, other clients' commands for the shard get -BUSY meanwhile, as
// from Redis, and the proxy keeps the connection however long the script
// runs past --shard-timeout.
func TestIntegrationScriptKillHeldConnection(t *testing.T) {
	cfg := proxy.DefaultConfig()
	cfg.BackendConns = 1
	cfg.ShardTimeout = 400 * time.Millisecond
	c := proxytest.Start(t, proxytest.Options{Shards: 2, Config: &cfg})
	admin := dialRaw(t, c.Addr)
	for _, kill := range []string{"SCRIPT", "FUNCTION"} {
		if got, want := admin.do(kill, "KILL"), "-NOTBUSY No scripts in execution right now."; got != want {
			t.Errorf("%s KILL with no script running = %s, want %s", kill, got, want)
		}
	}
	admin.do("CONFIG", "SET", "busy-reply-threshold", "100")
	if got := admin.do("FUNCTION", "LOAD", "#!lua name=spinlib\nredis.register_function('spin', function() while true do end end)"); got != `"spinlib"` {
		t.Fatalf("FUNCTION LOAD = %s", got)
	}
	key := keyOn(t, c, "busy:", 0) // a keyless script runs on shard 0
	admin.do("SET", key, "v")
	status := regexp.MustCompile(`shard0:addr=[^,]*,status=(\w+),.*reconnects=(\d+)`)
	tests := []struct {
		run  []string
		kill string
		busy string // other clients' reply while it runs
	}{
		{[]string{"EVAL", "while true do end", "0"}, "SCRIPT",
			"-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."},
		{[]string{"FCALL", "spin", "0"}, "FUNCTION",
			"-BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE."},
	}
	for _, tt := range tests {
		t.Run(tt.run[0], func(t *testing.T) {
			runner := dialRaw(t, c.Addr)
			runner.send(tt.run...)
			shard := c.Shards[0].Client()
			if !waitFor(10*time.Second, func() bool {
				err := shard.Ping(t.Context()).Err()
				return err != nil && strings.HasPrefix(err.Error(), "BUSY")
			}) {
				t.Fatal("the shard does not run the script")
			}
			if !waitFor(10*time.Second, func() bool {
				m := status.FindStringSubmatch(admin.do("INFO", "proxy"))
				return m != nil && m[1] == "busy"
			}) {
				t.Fatalf("INFO proxy does not show shard 0 busy: %s", admin.do("INFO", "proxy"))
			}
			time.Sleep(2 * cfg.ShardTimeout) // the watchdog's chance to drop the connection
			for _, cmd := range [][]string{{"GET", key}, {"PING"}} {
				if got := dialRaw(t, c.Addr).do(cmd...); got != tt.busy {
					t.Errorf("%s while the script runs = %s, want %s", cmd[0], got, tt.busy)
				}
			}
			if got := admin.do("FUNCTION", "STATS"); tt.kill == "FUNCTION" && !strings.Contains(got, `"name", "spin"`) {
				t.Errorf("FUNCTION STATS while spin runs = %s", got)
			}
			if got := admin.do(tt.kill, "KILL"); got != "+OK" {
				t.Errorf("%s KILL = %s, want +OK", tt.kill, got)
			}
			if got, want := render(runner.read()), "-ERR Script killed by user with SCRIPT KILL..."; !strings.HasPrefix(got, want) {
				t.Errorf("the script's client got %s, want %s", got, want)
			}
			if got := admin.do("PING"); got != "+PONG" {
				t.Errorf("PING after the kill = %s", got)
			}
			if got := runner.do("GET", key); got != `"v"` {
				t.Errorf("GET after the kill = %s", got)
			}
			if m := status.FindStringSubmatch(admin.do("INFO", "proxy")); m == nil || m[1] != "up" || m[2] != "0" {
				t.Errorf("shard 0 after the kill: %q, want status up, no reconnect", m)
			}
		})
	}
}

// TestIntegrationScriptEverywhere checks that a script the proxy has seen
// in EVAL or SCRIPT LOAD runs by EVALSHA wherever its keys are: on the
// other shards, in the same pipeline as its EVAL, and on the shards of a
// reshard, which start with empty script caches. SCRIPT EXISTS agrees;
// SCRIPT FLUSH and a body that does not compile leave nothing known.
func TestIntegrationScriptEverywhere(t *testing.T) {
	c, _ := reshardCluster(t)
	rc := dialRaw(t, c.Addr)
	const body = "return redis.call('INCR', KEYS[1])"
	sha := fmt.Sprintf("%x", sha1.Sum([]byte(body)))
	if got := rc.do("EVAL", body, "1", keyOn(t, c, "ev:", 0)); got != ":1" {
		t.Fatalf("EVAL = %s", got)
	}
	if got := rc.do("SCRIPT", "EXISTS", sha, strings.ToUpper(sha)); got != "[:1, :1]" {
		t.Errorf("SCRIPT EXISTS after EVAL = %s, want [:1, :1]", got)
	}
	for i := range c.Shards {
		if got := rc.do("EVALSHA", sha, "1", keyOn(t, c, "sha:", i)); got != ":1" {
			t.Errorf("EVALSHA of a key on shard %d = %s, want :1", i, got)
		}
	}

	// a shard that restarts has lost its scripts; the proxy loads them again
	restarted := c.Shards[1]
	restarted.Kill()
	<-restarted.Done()
	restarted.Restart(debugArgs...)
	key1 := keyOn(t, c, "sha:", 1)
	if !waitFor(10*time.Second, func() bool { return c.Client().Get(t.Context(), key1).Err() == redis.Nil }) {
		t.Fatal("the proxy does not serve the restarted shard")
	}
	if got := rc.do("EVALSHA", sha, "1", key1); got != ":1" {
		t.Errorf("EVALSHA on a restarted shard = %s, want :1", got)
	}

	// an EVAL and an EVALSHA of the same script in one pipeline
	const body2 = "return redis.call('INCRBY', KEYS[1], 2)"
	sha2 := fmt.Sprintf("%x", sha1.Sum([]byte(body2)))
	rc.write(encode("EVAL", body2, "1", keyOn(t, c, "p:", 0)) + encode("EVALSHA", sha2, "1", keyOn(t, c, "p:", 1)))
	for _, want := range []string{":2", ":2"} {
		if got := render(rc.read()); got != want {
			t.Errorf("pipelined EVAL, EVALSHA: %s, want %s", got, want)
		}
	}

	// SCRIPT LOAD's scripts too go to shards the proxy gets later
	const body3 = "return redis.call('GET', KEYS[1])"
	sha3 := rc.do("SCRIPT", "LOAD", body3)
	const bad = "return +"
	if got := rc.do("EVAL", bad, "0"); !strings.HasPrefix(got, "-ERR Error compiling script") {
		t.Errorf("EVAL of a bad script = %s", got)
	}
	if got := rc.do("SCRIPT", "EXISTS", fmt.Sprintf("%x", sha1.Sum([]byte(bad)))); got != "[:0]" {
		t.Errorf("SCRIPT EXISTS of a script that does not compile = %s, want [:0]", got)
	}

	targets := redistest.StartN(t, 2, debugArgs...)
	if got := rc.do("PROXY", "RESHARD", targets[0].Addr(), targets[1].Addr()); strings.HasPrefix(got, "-") {
		t.Fatalf("PROXY RESHARD = %s", got)
	}
	if st := waitReshard(t, c.Client(), "done", "failed", "aborted"); !strings.Contains(st, "state:done") {
		t.Fatalf("reshard did not finish:\n%s", st)
	}
	for _, target := range targets {
		if ok := target.Client().ScriptExists(t.Context(), sha).Val(); len(ok) != 1 || ok[0] {
			t.Fatalf("a new shard has the script before any EVALSHA: %v", ok)
		}
	}
	for i := range targets {
		key := "after:"
		for c.Proxy.Table().ShardOf([]byte(key)) != i {
			key += "x"
		}
		if got := rc.do("EVALSHA", sha, "1", key); got != ":1" {
			t.Errorf("EVALSHA of a key on new shard %d = %s, want :1", i, got)
		}
		if got := rc.do("EVALSHA", strings.Trim(sha3, `"`), "1", key); got != `"1"` {
			t.Errorf("EVALSHA of a SCRIPT LOAD's script on new shard %d = %s, want \"1\"", i, got)
		}
	}

	if got := rc.do("SCRIPT", "FLUSH"); got != "+OK" {
		t.Fatalf("SCRIPT FLUSH = %s", got)
	}
	if got := rc.do("SCRIPT", "EXISTS", sha); got != "[:0]" {
		t.Errorf("SCRIPT EXISTS after SCRIPT FLUSH = %s, want [:0]", got)
	}
	if got := rc.do("EVALSHA", sha, "1", "after:"); !strings.HasPrefix(got, "-NOSCRIPT") {
		t.Errorf("EVALSHA after SCRIPT FLUSH = %s, want NOSCRIPT", got)
	}
}

// TestIntegrationInfoScriptsAndLazyfree: INFO memory counts the scripts the
// proxy runs anywhere (as Redis counts its cache; SCRIPT FLUSH empties it)
// and sums the shards' lazyfree_pending_objects, two fields Redis's own
// test suite reads; INFO server has redis_git_sha1, which it prints.
func TestIntegrationInfoScriptsAndLazyfree(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3})
	ctx := t.Context()
	cl := c.Client()
	memory := func() map[string]string {
		t.Helper()
		text, err := cl.Info(ctx, "memory").Result()
		if err != nil {
			t.Fatal(err)
		}
		return infoLines(text)
	}
	if got := memory()["number_of_cached_scripts"]; got != "0" {
		t.Errorf("number_of_cached_scripts before any script = %q, want 0", got)
	}
	for i := range c.Shards { // each EVAL loads its script on one shard only
		if err := cl.Eval(ctx, fmt.Sprintf("return redis.call('GET', KEYS[1]) or %d", i), []string{keyOn(t, c, "s:", i)}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := cl.ScriptLoad(ctx, "return 'loaded'").Err(); err != nil {
		t.Fatal(err)
	}
	m := memory()
	if got := m["number_of_cached_scripts"]; got != "4" {
		t.Errorf("number_of_cached_scripts after 3 EVALs on 3 shards and a SCRIPT LOAD = %q, want 4", got)
	}
	if got := m["lazyfree_pending_objects"]; got != "0" {
		t.Errorf("lazyfree_pending_objects = %q, want 0", got)
	}
	if err := cl.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if got := memory()["number_of_cached_scripts"]; got != "0" {
		t.Errorf("number_of_cached_scripts after SCRIPT FLUSH = %q, want 0", got)
	}
	text, err := cl.Info(ctx, "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	if got := infoLines(text)["redis_git_sha1"]; got == "" {
		t.Error("INFO server has no redis_git_sha1")
	}
}
