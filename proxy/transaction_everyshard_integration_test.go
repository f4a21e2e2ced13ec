package proxy_test

import (
	"strings"
	"testing"

	"github.com/reshard/reshard/internal/proxytest"
)

// CONFIG SET, FLUSHALL, FLUSHDB and SLOWLOG RESET queued in a transaction
// run at EXEC on every shard, with the replies a cluster-enabled
// redis-server gives (the CONFIG SET error inside EXEC's reply), and the
// proxy's own refusals (a CONFIG SET of how it reaches the shards) land in
// EXEC's reply too.
func TestIntegrationTransactionEveryShard(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3})
	ref := startClusterRedis(t)
	proxy, single := dialRaw(t, c.Addr), dialRaw(t, ref.Addr())
	var keys []string
	for i := range c.Shards {
		keys = append(keys, keyOn(t, c, "k", i))
	}
	fillBoth := func() {
		t.Helper()
		for _, k := range keys {
			proxy.do("SET", k, "v")
			single.do("SET", k, "v")
		}
	}
	same := func(cmds ...[]string) {
		t.Helper()
		var raw string
		for _, cmd := range cmds {
			raw += encode(cmd...)
		}
		proxy.write(raw)
		single.write(raw)
		for _, cmd := range cmds {
			got, want := render(proxy.read()), render(single.read())
			if got != want {
				t.Errorf("%q = %s, want %s as one cluster node answers", cmd, got, want)
			}
		}
	}

	fillBoth()
	same([]string{"MULTI"}, []string{"SET", "foo", "bar"}, []string{"CONFIG", "SET", "maxmemory", "bla"},
		[]string{"FLUSHALL"}, []string{"SLOWLOG", "RESET"}, []string{"CONFIG", "SET", "slowlog-max-len", "5"},
		[]string{"FLUSHDB"}, []string{"GET", "foo"}, []string{"EXEC"}, []string{"DBSIZE"})
	for i, sh := range c.Shards {
		cl := sh.Client()
		if n := cl.DBSize(t.Context()).Val(); n != 0 {
			t.Errorf("shard %d holds %d keys after FLUSHALL in a transaction", i, n)
		}
		if v := cl.ConfigGet(t.Context(), "slowlog-max-len").Val()["slowlog-max-len"]; v != "5" {
			t.Errorf("shard %d: slowlog-max-len %q after CONFIG SET in a transaction, want 5", i, v)
		}
	}

	// the transaction's shard flushes inside it: its GET finds nothing
	fillBoth()
	same([]string{"MULTI"}, []string{"SET", keys[1], "1"}, []string{"FLUSHDB"}, []string{"GET", keys[1]},
		[]string{"EXEC"}, []string{"DBSIZE"})

	// a transaction WATCH aborts runs nothing anywhere
	fillBoth()
	for _, rc := range []*rawConn{proxy, single} {
		rc.do("WATCH", keys[2])
		rc.do("SET", keys[2], "changed")
	}
	same([]string{"MULTI"}, []string{"FLUSHALL"}, []string{"EXEC"}, []string{"DBSIZE"})

	proxy.write(encode("MULTI") + encode("SET", keys[0], "1") + encode("CONFIG", "SET", "masterauth", "x") + encode("EXEC"))
	for i, want := range []string{"+OK", "+QUEUED", "+QUEUED", "[+OK, -ERR CONFIG SET failed (possibly related to argument 'masterauth')"} {
		if got := render(proxy.read()); !strings.HasPrefix(got, want) {
			t.Errorf("MULTI, SET, CONFIG SET masterauth, EXEC: reply %d = %s, want %s...", i, got, want)
		}
	}
}
