package proxy_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/reshard/reshard/proxy"
	"github.com/reshard/reshard/proxy/control"

	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/internal/redistest"
)

const shardPassword = "shard-secret-4f1c"

// passwordShards are redis-server arguments for shards that need AUTH.
var passwordShards = []string{"--requirepass", shardPassword, "--repl-diskless-sync-delay", "0"}

// shardClient reads a password-protected shard directly.
func shardClient(t *testing.T, addr string) *redis.Client {
	cl := redis.NewClient(&redis.Options{Addr: addr, Password: shardPassword, Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { cl.Close() })
	return cl
}

// noSecret fails the test if the shard password shows in the proxy's log or
// in text it gave a client.
func noSecret(t *testing.T, logs *observer.ObservedLogs, texts ...string) {
	t.Helper()
	for _, e := range logs.All() {
		line := e.Message + fmt.Sprint(e.ContextMap())
		if strings.Contains(line, shardPassword) {
			t.Errorf("the shard password is in a log entry: %s", line)
		}
	}
	for _, s := range texts {
		if strings.Contains(s, shardPassword) {
			t.Errorf("the shard password is in a reply: %s", s)
		}
	}
}

// passwordCluster is a proxy with a state directory over shards that need
// shardPassword, logging to the returned logs.
func passwordCluster(t *testing.T, shards int) (*proxytest.Cluster, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	cfg := proxy.DefaultConfig()
	cfg.ShardPassword = shardPassword
	ccfg := control.Config{StateDir: t.TempDir(), SnapshotDir: t.TempDir()}
	return proxytest.Start(t, proxytest.Options{Shards: shards, Config: &cfg, Control: &ccfg, ShardArgs: passwordShards, Log: zap.New(core)}), logs
}

// subscribe subscribes cl to channel and waits for the confirmation.
func subscribe(t *testing.T, cl *redis.Client, channel string) *redis.PubSub {
	t.Helper()
	sub := cl.Subscribe(t.Context(), channel)
	t.Cleanup(func() { sub.Close() })
	if _, err := sub.Receive(t.Context()); err != nil {
		t.Fatalf("SUBSCRIBE: %v", err)
	}
	return sub
}

// Every path the proxy takes to a shard authenticates: the multiplexed
// connections (RESP2 and RESP3), the dedicated ones (blocking commands,
// transactions, pub/sub), the snapshot capture, a restore, and a reshard
// onto new shards that need the same password.
func TestIntegrationShardPassword(t *testing.T) {
	c, logs := passwordCluster(t, 3)
	ctx := t.Context()
	cl := c.Client()

	keys := setKeys(t, cl, 300)
	checkKeys(t, cl, keys)
	for _, k := range keys[:30] {
		if got, err := shardClient(t, c.ShardOf(k).Addr()).Get(ctx, k).Result(); err != nil || got == "" {
			t.Errorf("key %s on its shard: %q, %v", k, got, err)
		}
	}

	resp3 := redis.NewClient(&redis.Options{Addr: c.Addr, Protocol: 3})
	defer resp3.Close()
	if got, err := resp3.Get(ctx, keys[7]).Result(); err != nil || got != "7" {
		t.Errorf("RESP3 GET = %q, %v", got, err)
	}
	sub := subscribe(t, cl, "auth:news")
	useDedicated(t, cl, sub)

	id, err := cl.Do(ctx, "PROXY", "SNAPSHOT", "auth-test").Text()
	if err != nil {
		t.Fatal(err)
	}
	status := waitJob(t, c, "PROXY", "SNAPSHOT", "STATUS")
	if !strings.Contains(status, "state:done") {
		t.Fatalf("snapshot with shard passwords:\n%s", status)
	}
	restored := redistest.Start(t, passwordShards...)
	if err := cl.Do(ctx, "PROXY", "RESTORE", id, restored.Addr()).Err(); err != nil {
		t.Fatal(err)
	}
	if st := waitJob(t, c, "PROXY", "RESTORE", "STATUS"); !strings.Contains(st, "state:done") {
		t.Errorf("restore onto a shard with a password:\n%s", st)
	}
	if n, err := shardClient(t, restored.Addr()).DBSize(ctx).Result(); err != nil || n < int64(len(keys)) {
		t.Errorf("restored shard holds %d keys (%v), want at least %d", n, err, len(keys))
	}

	targets := redistest.StartN(t, 2, passwordShards...)
	if err := cl.Do(ctx, "PROXY", "RESHARD", targets[0].Addr(), targets[1].Addr()).Err(); err != nil {
		t.Fatal(err)
	}
	if st := waitReshard(t, cl, "done", "failed", "aborted"); !strings.Contains(st, "state:done") {
		t.Fatalf("reshard onto shards with passwords:\n%s", st)
	}
	if got, err := cl.Get(ctx, keys[42]).Result(); err != nil || got != "42" {
		t.Errorf("GET after the reshard = %q, %v", got, err)
	}
	onTargets := int64(0)
	for _, s := range targets {
		n, err := shardClient(t, s.Addr()).DBSize(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		onTargets += n
	}
	if onTargets < int64(len(keys)) {
		t.Errorf("the new shards hold %d keys, want at least %d", onTargets, len(keys))
	}

	info, err := cl.Info(ctx, "everything").Result()
	if err != nil {
		t.Fatal(err)
	}
	noSecret(t, logs, info, status)
}

// A wrong shard password, or none where the shards need one, gives clients
// a clear error naming the shard, and never shows the password.
func TestIntegrationShardPasswordWrong(t *testing.T) {
	table := evenTable(t, 1, redistest.StartN(t, 2, passwordShards...))
	for _, tc := range []struct {
		name, password, want string
	}{
		{"wrong", shardPassword + "-not", "refused AUTH: WRONGPASS"},
		{"missing", "", "needs a password (--shard-password): NOAUTH"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zap.DebugLevel)
			cfg := proxy.DefaultConfig()
			cfg.ShardPassword = tc.password
			addr, stop := serveTable(t, cfg, control.Config{}, table, zap.New(core))
			defer stop()
			cl := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true, MaxRetries: -1})
			defer cl.Close()
			err := cl.Get(t.Context(), "k").Err()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("GET = %v, want an error with %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), "shard 127.0.0.1:") {
				t.Errorf("error %q does not name the shard", err)
			}
			noSecret(t, logs, err.Error())
			if logs.FilterMessage("shard unreachable, retrying").Len() == 0 {
				t.Errorf("no log entry says the shard cannot be used")
			}
			if tc.password == "" {
				return
			}
			if strings.Contains(err.Error(), tc.password) {
				t.Errorf("error %q shows the configured password", err)
			}
			for _, e := range logs.All() {
				if strings.Contains(e.Message+fmt.Sprint(e.ContextMap()), tc.password) {
					t.Errorf("the configured password is in a log entry: %s", e.Message)
				}
			}
		})
	}
}

// newShardPassword is the password of the shards a reshard moves onto.
const newShardPassword = "new-shard-secret-b7e2"

// noSecrets is noSecret for both passwords.
func noSecrets(t *testing.T, logs *observer.ObservedLogs, texts ...string) {
	t.Helper()
	noSecret(t, logs, texts...)
	for _, e := range logs.All() {
		if line := e.Message + fmt.Sprint(e.ContextMap()); strings.Contains(line, newShardPassword) {
			t.Errorf("the new shards' password is in a log entry: %s", line)
		}
	}
	for _, s := range texts {
		if strings.Contains(s, newShardPassword) {
			t.Errorf("the new shards' password is in a reply: %s", s)
		}
	}
}

// A reshard onto shards with a password of their own (AUTH2 for an ACL
// user, AUTH for requirepass) completes under traffic, and afterwards
// every way the proxy reaches the new shards authenticates with theirs:
// the shared connections (RESP2 and RESP3), dedicated ones (a blocking
// command, MULTI/EXEC, a subscriber moved at the swap) and a snapshot.
func TestIntegrationReshardNewPassword(t *testing.T) {
	diskless := []string{"--repl-diskless-sync-delay", "0"}
	for _, tc := range []struct {
		name     string
		args     []string // of the new shards
		auth     []any    // the tail of PROXY RESHARD
		user     string   // for direct clients of the new shards
		snapshot []any
	}{
		{"AUTH2", append([]string{"--user", "default", "off", "--user", "mover", "on", ">" + newShardPassword, "~*", "&*", "+@all"}, diskless...),
			[]any{"AUTH2", "mover", newShardPassword}, "mover", []any{"BGSAVE"}},
		{"AUTH", append([]string{"--requirepass", newShardPassword}, diskless...),
			[]any{"AUTH", newShardPassword}, "", []any{"PROXY", "SNAPSHOT", "after"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, logs := passwordCluster(t, 3)
			ctx := t.Context()
			cl := c.Client()
			keys := setKeys(t, cl, 2000)
			sub := subscribe(t, cl, "auth:news")
			w := startWriters(t, c, 4)

			targets := redistest.StartN(t, 2, tc.args...)
			args := append([]any{"PROXY", "RESHARD", targets[0].Addr(), targets[1].Addr()}, tc.auth...)
			if err := cl.Do(ctx, args...).Err(); err != nil {
				t.Fatal(err)
			}
			st := waitReshard(t, cl, "done", "failed", "aborted")
			if !strings.Contains(st, "state:done") {
				t.Fatalf("reshard onto shards with another password:\n%s", st)
			}
			time.Sleep(100 * time.Millisecond) // writes on the new table
			w.halt()
			if n := w.errors.Load(); n > 0 {
				t.Errorf("%d writer pipelines failed, the first: %v", n, w.first.Load())
			}

			checkKeys(t, cl, keys)
			onTargets := int64(0)
			for _, s := range targets {
				direct := redis.NewClient(&redis.Options{Addr: s.Addr(), Username: tc.user, Password: newShardPassword, Protocol: 2, DisableIdentity: true})
				defer direct.Close()
				onTargets += direct.DBSize(ctx).Val()
			}
			if onTargets < int64(len(keys)) {
				t.Errorf("the new shards hold %d keys, want at least %d", onTargets, len(keys))
			}
			useDedicated(t, cl, sub)
			resp3 := redis.NewClient(&redis.Options{Addr: c.Addr, Protocol: 3})
			defer resp3.Close()
			if got, err := resp3.Get(ctx, keys[7]).Result(); err != nil || got != "7" {
				t.Errorf("RESP3 GET after the reshard = %q, %v", got, err)
			}
			if err := cl.Do(ctx, tc.snapshot...).Err(); err != nil {
				t.Fatal(err)
			}
			snap := waitJob(t, c, "PROXY", "SNAPSHOT", "STATUS")
			if !strings.Contains(snap, "state:done") || !strings.Contains(snap, "epoch:2\r\n") {
				t.Errorf("%v on the new shards:\n%s", tc.snapshot, snap)
			}
			info, err := cl.Info(ctx, "everything").Result()
			if err != nil {
				t.Fatal(err)
			}
			noSecrets(t, logs, info, st, snap, cl.ClientList(ctx).Val())
		})
	}
}

// setKeys writes n keys auth:I = I through cl and returns their names.
func setKeys(t *testing.T, cl *redis.Client, n int) []string {
	t.Helper()
	keys := make([]string, n)
	pipe := cl.Pipeline()
	for i := range keys {
		keys[i] = fmt.Sprint("auth:", i)
		pipe.Set(t.Context(), keys[i], i, 0)
	}
	if _, err := pipe.Exec(t.Context()); err != nil {
		t.Fatal(err)
	}
	return keys
}

// checkKeys reads back what setKeys wrote.
func checkKeys(t *testing.T, cl *redis.Client, keys []string) {
	t.Helper()
	vals, err := cl.MGet(t.Context(), keys...).Result()
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vals {
		if v != fmt.Sprint(i) {
			t.Fatalf("MGET %s = %v, want %d", keys[i], v, i)
		}
	}
}

// useDedicated runs what needs a dedicated shard connection: a blocking
// command, a transaction, and a message to sub, subscribed before.
func useDedicated(t *testing.T, cl *redis.Client, sub *redis.PubSub) {
	t.Helper()
	ctx := t.Context()
	cl.RPush(ctx, "auth:list", "x")
	if got, err := cl.BLPop(ctx, time.Second, "auth:list").Result(); err != nil || got[1] != "x" {
		t.Errorf("BLPOP = %v, %v", got, err)
	}
	if _, err := cl.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Incr(ctx, "auth:counter")
		p.Incr(ctx, "auth:counter")
		return nil
	}); err != nil {
		t.Errorf("MULTI/EXEC: %v", err)
	}
	if err := cl.Publish(ctx, "auth:news", "hi").Err(); err != nil {
		t.Fatal(err)
	}
	if m, err := sub.ReceiveMessage(ctx); err != nil || m.Payload != "hi" {
		t.Errorf("message = %v, %v", m, err)
	}
}

// A reshard whose AUTH the new shards refuse is refused before anything
// starts, with an error that names the refusal and not the password; the
// proxy stays on its shards and stops dialling the refused ones.
func TestIntegrationReshardWrongPassword(t *testing.T) {
	c, logs := passwordCluster(t, 2)
	ctx := t.Context()
	cl := c.Client()
	keys := setKeys(t, cl, 100)
	target := redistest.Start(t, "--requirepass", newShardPassword)

	const wrong = "not-the-new-password-3c"
	for _, tail := range [][]any{{"AUTH", wrong}, {}} { // without AUTH: the old shards' password, as wrong
		err := cl.Do(ctx, append([]any{"PROXY", "RESHARD", target.Addr()}, tail...)...).Err()
		if err == nil || !strings.HasPrefix(err.Error(), "ERR ") || !strings.Contains(err.Error(), target.Addr()+": refused AUTH: WRONGPASS") {
			t.Fatalf("PROXY RESHARD %v onto a shard that refuses it = %v, want ERR ... refused AUTH", tail, err)
		}
		if strings.Contains(err.Error(), wrong) {
			t.Errorf("the refusal shows the password: %v", err)
		}
		noSecrets(t, logs, err.Error())
	}
	checkKeys(t, cl, keys)
	if topo := cl.Do(ctx, "PROXY", "TOPOLOGY").String(); strings.Contains(topo, target.Addr()) {
		t.Errorf("topology after the refusal names the target: %s", topo)
	}
	// The connections prepared for the cutover are gone, not redialled.
	dials := func() int64 {
		info := redis.NewClient(&redis.Options{Addr: target.Addr(), Password: newShardPassword, Protocol: 2, DisableIdentity: true})
		defer info.Close()
		n, _ := strconv.ParseInt(infoField(info.Info(ctx, "stats").Val(), "total_connections_received"), 10, 64)
		return n
	}
	before := dials()
	time.Sleep(time.Second)
	if after := dials(); after > before+1 { // +1: the reading client itself
		t.Errorf("the proxy dialled the refused shard %d times in a second after the refusal", after-before-1)
	}
	for _, e := range logs.All() {
		if strings.Contains(e.Message+fmt.Sprint(e.ContextMap()), wrong) {
			t.Errorf("the wrong password is in a log entry: %s", e.Message)
		}
	}
}

// infoField is one field of an INFO reply.
func infoField(info, field string) string {
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return v
		}
	}
	return ""
}

// PROXY RESTORE gives the targets the credentials AUTH or AUTH2 names;
// without them, those of the proxy's shards, which these targets refuse.
func TestIntegrationRestoreNewPassword(t *testing.T) {
	c, logs := passwordCluster(t, 2)
	ctx := t.Context()
	cl := c.Client()
	keys := setKeys(t, cl, 500)
	id, err := cl.Do(ctx, "PROXY", "SNAPSHOT").Text()
	if err != nil {
		t.Fatal(err)
	}
	if st := waitJob(t, c, "PROXY", "SNAPSHOT", "STATUS"); !strings.Contains(st, "state:done") {
		t.Fatalf("snapshot:\n%s", st)
	}
	targets := redistest.StartN(t, 2, "--requirepass", newShardPassword)
	restore := func(tail ...any) string {
		t.Helper()
		args := append([]any{"PROXY", "RESTORE", id, targets[0].Addr(), targets[1].Addr(), "FLUSH"}, tail...)
		if err := cl.Do(ctx, args...).Err(); err != nil {
			t.Fatal(err)
		}
		return waitJob(t, c, "PROXY", "RESTORE", "STATUS")
	}
	if st := restore(); !strings.Contains(st, "state:failed") || !strings.Contains(st, "WRONGPASS") {
		t.Errorf("restore without AUTH onto targets with another password:\n%s", st)
	}
	st := restore("AUTH", newShardPassword)
	if !strings.Contains(st, "state:done") {
		t.Fatalf("restore with AUTH:\n%s", st)
	}
	n := int64(0)
	for _, s := range targets {
		direct := redis.NewClient(&redis.Options{Addr: s.Addr(), Password: newShardPassword, Protocol: 2, DisableIdentity: true})
		defer direct.Close()
		n += direct.DBSize(ctx).Val()
	}
	if n != int64(len(keys)) {
		t.Errorf("the targets hold %d keys, want %d", n, len(keys))
	}
	noSecrets(t, logs, st)
}

// AUTH and AUTH2 without their arguments are syntax errors, as in Redis's
// MIGRATE; and PROXY with a password is never shown to a monitor.
func TestIntegrationTargetAuthSyntax(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 1})
	m := dialRaw(t, c.Addr)
	if got := m.do("MONITOR"); got != "+OK" {
		t.Fatalf("MONITOR = %s", got)
	}
	rc := dialRaw(t, c.Addr)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"PROXY", "RESHARD", "127.0.0.1:1", "AUTH"}, "-ERR syntax error: AUTH needs a password"},
		{[]string{"PROXY", "RESHARD", "127.0.0.1:1", "AUTH2", "user"}, "-ERR syntax error: AUTH2 needs a username and a password"},
		{[]string{"PROXY", "RESHARD", "127.0.0.1:1", "AUTH", newShardPassword, "AUTH", "x"}, "-ERR syntax error: AUTH or AUTH2 given twice"},
		{[]string{"PROXY", "RESTORE", "some-id", "127.0.0.1:1", "AUTH"}, "-ERR syntax error: AUTH needs a password"},
		{[]string{"PROXY", "RESTORE", "some-id", "127.0.0.1:1", "FLUSH", "AUTH2", newShardPassword}, "-ERR syntax error: AUTH2 needs a username and a password"},
	} {
		if got := rc.do(tc.args...); got != tc.want {
			t.Errorf("%q = %s, want %s", tc.args, got, tc.want)
		}
	}
	rc.do("SET", "auth-marker", "1")
	for _, line := range watchMonitor(t, m, rc.nc.LocalAddr().String(), `"auth-marker" "1"`) {
		if strings.Contains(line, newShardPassword) || strings.Contains(line, "PROXY") {
			t.Errorf("MONITOR shows %s", line)
		}
	}
}

// CONFIG GET through the proxy never shows the password the proxy uses on
// the shards (requirepass reads as the proxy's own, as Redis shows a client
// its own), in RESP2 or RESP3; CONFIG SET cannot change how the proxy
// reaches the shards, and other parameters still reach every shard.
func TestIntegrationConfigSecrets(t *testing.T) {
	const clientPassword = "clients-pw-90e2"
	cfg := proxy.DefaultConfig()
	cfg.ShardPassword = shardPassword
	cfg.RequirePass = clientPassword
	c := proxytest.Start(t, proxytest.Options{Shards: 2, Config: &cfg, ShardArgs: passwordShards})
	ctx := t.Context()
	for _, proto := range []int{2, 3} {
		cl := redis.NewClient(&redis.Options{Addr: c.Addr, Protocol: proto, Password: clientPassword})
		defer cl.Close()
		all, err := cl.ConfigGet(ctx, "*").Result()
		if err != nil {
			t.Fatalf("RESP%d CONFIG GET *: %v", proto, err)
		}
		direct, err := shardClient(t, c.Shards[0].Addr()).ConfigGet(ctx, "*").Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != len(direct) || all["maxmemory-policy"] != direct["maxmemory-policy"] {
			t.Errorf("RESP%d CONFIG GET * has %d parameters (maxmemory-policy %q), a shard %d (%q)",
				proto, len(all), all["maxmemory-policy"], len(direct), direct["maxmemory-policy"])
		}
		if v, ok := all["requirepass"]; !ok || v != clientPassword {
			t.Errorf("RESP%d CONFIG GET requirepass = %q (present %v), want the proxy's own", proto, v, ok)
		}
		for name, v := range all {
			if strings.Contains(v, shardPassword) {
				t.Errorf("RESP%d CONFIG GET * shows the shard password as %s", proto, name)
			}
		}
	}

	cl := redis.NewClient(&redis.Options{Addr: c.Addr, Protocol: 2, Password: clientPassword})
	defer cl.Close()
	for _, args := range [][]any{
		{"requirepass", "x"},
		{"masterauth", "x"},
		{"port", "1"},
		{"maxmemory-policy", "allkeys-lru", "requirepass", "x"},
	} {
		err := cl.Do(ctx, append([]any{"CONFIG", "SET"}, args...)...).Err()
		if err == nil || !strings.HasPrefix(err.Error(), "ERR CONFIG SET failed (possibly related to argument '") {
			t.Errorf("CONFIG SET %v = %v, want it refused", args, err)
		}
	}
	if err := cl.ConfigSet(ctx, "maxmemory-policy", "allkeys-lfu").Err(); err != nil {
		t.Fatal(err)
	}
	for _, s := range c.Shards {
		got := shardClient(t, s.Addr()).ConfigGet(ctx, "maxmemory-policy").Val()["maxmemory-policy"]
		if got != "allkeys-lfu" {
			t.Errorf("maxmemory-policy on %s = %q, want allkeys-lfu from the CONFIG SET", s.Addr(), got)
		}
	}
	if err := cl.Set(ctx, "still", "reachable", 0).Err(); err != nil {
		t.Errorf("SET after the refused CONFIG SETs: %v", err)
	}
}
