package proxy_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/proxy"
	"github.com/reshard/reshard/router"

	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/internal/redisproc"
	"github.com/reshard/reshard/internal/redistest"
)

// startClusterRedis starts a cluster-enabled redis-server that owns every
// slot, the reference for the proxy's CLUSTER replies. Its bus port comes
// from the allocator too (port+10000 could be anyone's).
func startClusterRedis(t *testing.T, args ...string) *redistest.Server {
	t.Helper()
	bus, err := redisproc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	srv := redistest.Start(t, append([]string{
		"--cluster-enabled", "yes",
		"--cluster-config-file", "nodes.conf",
		"--cluster-port", strconv.Itoa(bus),
		"--cluster-announce-ip", "127.0.0.1",
	}, args...)...)
	cl := srv.Client()
	ctx := t.Context()
	if err := cl.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", "0", "16383").Err(); err != nil {
		t.Fatalf("CLUSTER ADDSLOTSRANGE: %v", err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		info, err := cl.ClusterInfo(ctx).Result()
		if err == nil && strings.Contains(info, "cluster_state:ok") {
			return srv
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster-enabled redis-server never reached cluster_state:ok: %q, %v", info, err)
		}
		redistest.Sleep(20)
	}
}

// shape renders a reply's structure without its values: the types, the
// nesting, and the field names of map-like arrays (RESP2 maps: even length,
// every even element a lowercase name), which are part of the format.
func shape(v any) string {
	switch v := v.(type) {
	case status:
		return "status"
	case respError:
		return "error"
	case int64:
		return "int"
	case []byte:
		if v == nil {
			return "null"
		}
		return "bulk"
	case []any:
		if isFieldMap(v) {
			parts := make([]string, 0, len(v)/2)
			for i := 0; i < len(v); i += 2 {
				parts = append(parts, string(v[i].([]byte))+":"+shape(v[i+1]))
			}
			return "{" + strings.Join(parts, " ") + "}"
		}
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = shape(e)
		}
		return "[" + strings.Join(parts, " ") + "]"
	}
	return fmt.Sprintf("%T", v)
}

var fieldName = regexp.MustCompile(`^[a-z][a-z-]*$`)

func isFieldMap(v []any) bool {
	if len(v) == 0 || len(v)%2 != 0 {
		return false
	}
	for i := 0; i < len(v); i += 2 {
		b, ok := v[i].([]byte)
		if !ok || !fieldName.Match(b) {
			return false
		}
	}
	return true
}

// field returns the value of name in a RESP2 map.
func field(m []any, name string) any {
	for i := 0; i+1 < len(m); i += 2 {
		if b, ok := m[i].([]byte); ok && string(b) == name {
			return m[i+1]
		}
	}
	return nil
}

func infoLines(text string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(text, "\r\n"), "\r\n") {
		k, v, _ := strings.Cut(line, ":")
		out[k] = v
	}
	return out
}

// nodesLine is CLUSTER NODES's line for a lone master owning every slot.
var nodesLine = regexp.MustCompile(`^([0-9a-f]{40}) (\S*):(\d+)@(\d+)(,\S+)? myself,master - 0 0 (\d+) connected 0-16383$`)

func TestIntegrationClusterReplies(t *testing.T) {
	ref := dialRaw(t, startClusterRedis(t).Addr())
	c := proxytest.Start(t, proxytest.Options{Shards: 3})
	rc := dialRaw(t, c.Addr)
	host, portText, _ := net.SplitHostPort(c.Addr)
	port, _ := strconv.ParseInt(portText, 10, 64)
	epoch := strconv.FormatUint(c.Table.Epoch(), 10)

	myid, ok := clusterDo(rc, "CLUSTER", "MYID").([]byte)
	if !ok || !regexp.MustCompile(`^[0-9a-f]{40}$`).Match(myid) {
		t.Fatalf("CLUSTER MYID = %s, want 40 hex digits", render(myid))
	}
	if again := rc.do("CLUSTER", "MYID"); again != strconv.Quote(string(myid)) {
		t.Errorf("CLUSTER MYID changed from %q to %s", myid, again)
	}
	if other := dialRaw(t, c.Addr).do("CLUSTER", "MYID"); other != strconv.Quote(string(myid)) {
		t.Errorf("CLUSTER MYID on another connection = %s, want %q", other, myid)
	}
	id := string(myid)

	// Same shape as Redis for every subcommand the proxy answers.
	for _, args := range [][]string{
		{"CLUSTER", "INFO"},
		{"CLUSTER", "SLOTS"},
		{"CLUSTER", "SHARDS"},
		{"CLUSTER", "NODES"},
		{"CLUSTER", "MYID"},
		{"CLUSTER", "KEYSLOT", "foo"},
		{"CLUSTER", "LINKS"},
	} {
		got, want := shape(clusterDo(rc, args...)), shape(clusterDo(ref, args...))
		if got != want {
			t.Errorf("%q: shape %s, want %s (as Redis)", args, got, want)
		}
	}

	// In RESP3 Redis sends CLUSTER SHARDS's shards and nodes as maps, and
	// CLUSTER INFO and NODES as verbatim strings: compared at the protocol's
	// level, type byte by type byte.
	t.Run("resp3", func(t *testing.T) {
		sameRESP3Shapes(t, c.Addr, ref.nc.RemoteAddr().String(), [][]string{
			{"CLUSTER", "INFO"}, {"CLUSTER", "SLOTS"}, {"CLUSTER", "SHARDS"}, {"CLUSTER", "NODES"},
			{"CLUSTER", "MYID"}, {"CLUSTER", "KEYSLOT", "foo"}, {"CLUSTER", "LINKS"},
		})
	})

	t.Run("info", func(t *testing.T) {
		got := infoLines(string(clusterDo(rc, "CLUSTER", "INFO").([]byte)))
		want := infoLines(string(clusterDo(ref, "CLUSTER", "INFO").([]byte)))
		if g, w := slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)); !slices.Equal(g, w) {
			t.Errorf("CLUSTER INFO fields %q, want %q", g, w)
		}
		for k, v := range map[string]string{
			"cluster_state": "ok", "cluster_slots_assigned": "16384", "cluster_slots_ok": "16384",
			"cluster_slots_pfail": "0", "cluster_slots_fail": "0", "cluster_known_nodes": "1",
			"cluster_size": "1", "cluster_current_epoch": epoch, "cluster_my_epoch": epoch,
		} {
			if got[k] != v {
				t.Errorf("CLUSTER INFO %s = %q, want %q", k, got[k], v)
			}
		}
	})

	t.Run("info cluster", func(t *testing.T) {
		// RedisCluster of redis-py 4 refuses a node whose INFO says
		// cluster_enabled:0, before it asks CLUSTER SLOTS.
		if got, want := rc.do("INFO", "cluster"), ref.do("INFO", "cluster"); got != want {
			t.Errorf("INFO cluster = %s, want %s (as Redis)", got, want)
		}
		// Clients and tools that read INFO server's redis_mode see the same.
		mode := regexp.MustCompile(`redis_mode:\w+`)
		if got, want := mode.FindString(rc.do("INFO", "server")), mode.FindString(ref.do("INFO", "server")); got != want {
			t.Errorf("INFO server %s, want %s (as Redis)", got, want)
		}
	})

	t.Run("slots", func(t *testing.T) {
		want := fmt.Sprintf(`[[:0, :16383, [%q, :%d, %q, []]]]`, host, port, id)
		if got := rc.do("CLUSTER", "SLOTS"); got != want {
			t.Errorf("CLUSTER SLOTS = %s, want %s", got, want)
		}
	})

	t.Run("shards", func(t *testing.T) {
		want := fmt.Sprintf(`[["slots", [:0, :16383], "nodes", [["id", %q, "port", :%d, "ip", %q, "endpoint", %q, `+
			`"role", "master", "replication-offset", :0, "health", "online"]]]]`, id, port, host, host)
		if got := rc.do("CLUSTER", "SHARDS"); got != want {
			t.Errorf("CLUSTER SHARDS = %s, want %s", got, want)
		}
	})

	t.Run("nodes", func(t *testing.T) {
		for name, conn := range map[string]*rawConn{"proxy": rc, "redis": ref} {
			text := string(clusterDo(conn, "CLUSTER", "NODES").([]byte))
			if !strings.HasSuffix(text, "\n") || strings.Count(text, "\n") != 1 {
				t.Errorf("%s: CLUSTER NODES = %q, want one line ending in \\n", name, text)
			}
			if !nodesLine.MatchString(strings.TrimSuffix(text, "\n")) {
				t.Errorf("%s: CLUSTER NODES = %q, does not match %s", name, text, nodesLine)
			}
		}
		text := string(clusterDo(rc, "CLUSTER", "NODES").([]byte))
		want := fmt.Sprintf("%s %s:%d@%d myself,master - 0 0 %s connected 0-16383\n", id, host, port, port+10000, epoch)
		if text != want {
			t.Errorf("CLUSTER NODES = %q, want %q", text, want)
		}
	})

	t.Run("help", func(t *testing.T) {
		// The proxy lists what it answers, each line as Redis words it.
		got, want := clusterDo(rc, "CLUSTER", "HELP").([]any), clusterDo(ref, "CLUSTER", "HELP").([]any)
		var redisLines []string
		for _, l := range want {
			redisLines = append(redisLines, string(l.(status)))
		}
		for _, l := range got {
			if !slices.Contains(redisLines, string(l.(status))) {
				t.Errorf("CLUSTER HELP line %q is not one of Redis's", l)
			}
		}
		for _, sub := range []string{"INFO", "SLOTS", "SHARDS", "NODES", "MYID", "KEYSLOT <key>", "HELP"} {
			if !slices.ContainsFunc(got, func(l any) bool { return string(l.(status)) == sub }) {
				t.Errorf("CLUSTER HELP does not list %s", sub)
			}
		}
	})

	t.Run("same as redis", func(t *testing.T) {
		// Replies (errors included) that must be Redis's, byte for byte.
		for _, args := range [][]string{
			{"CLUSTER", "KEYSLOT", "{user1000}.following"},
			{"CLUSTER", "KEYSLOT", ""},
			{"CLUSTER", "KEYSLOT"},
			{"CLUSTER", "KEYSLOT", "a", "b"},
			{"CLUSTER", "INFO", "x"},
			{"CLUSTER", "LINKS"},
			{"CLUSTER", "REPLICAS", "0123456789012345678901234567890123456789"},
			{"CLUSTER", "SLAVES", "nosuchnode"},
			{"CLUSTER", "COUNT-FAILURE-REPORTS", "nosuchnode"},
			{"CLUSTER", "COUNTKEYSINSLOT", "x"},
			{"CLUSTER", "COUNTKEYSINSLOT", "16384"},
			{"CLUSTER", "COUNTKEYSINSLOT", "-1"},
			{"CLUSTER", "COUNTKEYSINSLOT", "+1"},
			{"CLUSTER", "COUNTKEYSINSLOT", "01"},
			{"CLUSTER", "GETKEYSINSLOT", "1", "-1"},
			{"CLUSTER", "GETKEYSINSLOT", "16384", "1"},
			{"CLUSTER", "GETKEYSINSLOT", "x", "1"},
			{"CLUSTER", "GETKEYSINSLOT", "1", "x"},
			{"CLUSTER", "NOSUCH"},
			{"cluster", "nosuch", "a"},
			{"CLUSTER"},
		} {
			if got, want := rc.do(args...), ref.do(args...); got != want {
				t.Errorf("%q = %s, want %s (as Redis)", args, got, want)
			}
		}
	})

	t.Run("own node", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"CLUSTER", "REPLICAS", id}, "[]"},
			{[]string{"CLUSTER", "SLAVES", id}, "[]"},
			{[]string{"CLUSTER", "COUNT-FAILURE-REPORTS", id}, ":0"},
			{[]string{"cluster", "keyslot", "foo"}, ":12182"},
			{[]string{"READONLY"}, "+OK"},
			{[]string{"READWRITE"}, "+OK"},
		} {
			if got := rc.do(tc.args...); got != tc.want {
				t.Errorf("%q = %s, want %s", tc.args, got, tc.want)
			}
		}
	})

	t.Run("refused", func(t *testing.T) {
		for _, args := range [][]string{
			{"CLUSTER", "COUNTKEYSINSLOT", "5"},
			{"CLUSTER", "GETKEYSINSLOT", "5", "10"},
		} {
			got := rc.do(args...)
			if !strings.HasPrefix(got, "-ERR "+strings.Join(args[:2], " ")+" is not supported by the proxy") {
				t.Errorf("%q = %s, want an error saying it is not supported", args, got)
			}
		}
		for _, args := range [][]string{
			{"CLUSTER", "MEET", "127.0.0.1", "7000"},
			{"CLUSTER", "ADDSLOTS", "1"},
			{"CLUSTER", "ADDSLOTSRANGE", "1", "2"},
			{"CLUSTER", "DELSLOTS", "1"},
			{"CLUSTER", "DELSLOTSRANGE", "1", "2"},
			{"CLUSTER", "FLUSHSLOTS"},
			{"CLUSTER", "FAILOVER"},
			{"CLUSTER", "FORGET", id},
			{"CLUSTER", "REPLICATE", id},
			{"CLUSTER", "RESET", "HARD"},
			{"CLUSTER", "SAVECONFIG"},
			{"CLUSTER", "SET-CONFIG-EPOCH", "5"},
			{"CLUSTER", "SETSLOT", "1", "STABLE"},
			{"CLUSTER", "BUMPEPOCH"},
		} {
			want := "-ERR " + strings.ToUpper(args[0]+" "+args[1]) + " is not supported: the proxy manages its own topology (see PROXY HELP)"
			if got := rc.do(args...); got != want {
				t.Errorf("%q = %s, want %s", args, got, want)
			}
		}
		// Nothing reached a shard: they are plain Redis servers.
		if got := rc.do("CLUSTER", "INFO"); !strings.Contains(got, "cluster_state:ok") {
			t.Errorf("CLUSTER INFO after refusals = %s", got)
		}
	})
}

// clusterDo sends one command on c and returns its decoded reply.
func clusterDo(c *rawConn, args ...string) any {
	c.t.Helper()
	c.send(args...)
	return c.read()
}

// TestIntegrationClusterAnnounce checks the replies when the proxy announces
// a host name, or an unspecified address, against Redis with a host name
// announced and preferred.
func TestIntegrationClusterAnnounce(t *testing.T) {
	ref := dialRaw(t, startClusterRedis(t,
		"--cluster-announce-hostname", "redis.test", "--cluster-preferred-endpoint-type", "hostname").Addr())

	cfg := proxy.DefaultConfig()
	cfg.Announce = "proxy.test:7100"
	c := proxytest.Start(t, proxytest.Options{Shards: 1, Config: &cfg})
	rc := dialRaw(t, c.Addr)
	for _, args := range [][]string{{"CLUSTER", "SLOTS"}, {"CLUSTER", "SHARDS"}} {
		got, want := shape(clusterDo(rc, args...)), shape(clusterDo(ref, args...))
		if got != want {
			t.Errorf("announcing a host name, %q: shape %s, want %s (as Redis)", args, got, want)
		}
	}
	id := string(clusterDo(rc, "CLUSTER", "MYID").([]byte))
	if got, want := rc.do("CLUSTER", "SLOTS"), fmt.Sprintf(`[[:0, :16383, ["proxy.test", :7100, %q, ["ip", "127.0.0.1"]]]]`, id); got != want {
		t.Errorf("CLUSTER SLOTS = %s, want %s", got, want)
	}
	shards := clusterDo(rc, "CLUSTER", "SHARDS").([]any)
	node := field(shards[0].([]any), "nodes").([]any)[0].([]any)
	for k, want := range map[string]string{"ip": "127.0.0.1", "endpoint": "proxy.test", "hostname": "proxy.test"} {
		if got, _ := field(node, k).([]byte); string(got) != want {
			t.Errorf("CLUSTER SHARDS node %s = %q, want %q", k, got, want)
		}
	}
	nodes := string(clusterDo(rc, "CLUSTER", "NODES").([]byte))
	if want := id + " 127.0.0.1:7100@17100,proxy.test myself,master"; !strings.HasPrefix(nodes, want) {
		t.Errorf("CLUSTER NODES = %q, want it to start %q", nodes, want)
	}
	realNodes := string(clusterDo(ref, "CLUSTER", "NODES").([]byte))
	if !nodesLine.MatchString(strings.TrimSuffix(nodes, "\n")) || !nodesLine.MatchString(strings.TrimSuffix(realNodes, "\n")) {
		t.Errorf("CLUSTER NODES %q and Redis's %q should both match %s", nodes, realNodes, nodesLine)
	}

	// Listening everywhere without an announce address: the node is at the
	// address the client reached.
	cfg.Announce = "0.0.0.0:7200"
	c2 := proxytest.Start(t, proxytest.Options{Shards: 1, Config: &cfg})
	rc2 := dialRaw(t, c2.Addr)
	id2 := string(clusterDo(rc2, "CLUSTER", "MYID").([]byte))
	if got, want := rc2.do("CLUSTER", "SLOTS"), fmt.Sprintf(`[[:0, :16383, ["127.0.0.1", :7200, %q, []]]]`, id2); got != want {
		t.Errorf("announcing 0.0.0.0: CLUSTER SLOTS = %s, want %s", got, want)
	}
	if id2 == id {
		t.Errorf("proxies announcing %q and %q share the node id %s", "proxy.test:7100", cfg.Announce, id)
	}
}

// keyslotCorpus mixes plain keys, hash tags in every position, binary keys
// and brace-heavy keys; fixed seed so a failure reproduces.
func keyslotCorpus() []string {
	rng := rand.New(rand.NewPCG(7, 11))
	keys := []string{"", "foo", "bar", "123456789", "{user1000}.following", "{}", "{}x", "x{}y", "{{}}",
		"foo{}{bar}", "foo{{bar}}zap", "foo{bar}{zap}", "{a}{b}", "a{b{c}d}e", "}{a}", "{", "}", "\x00", "\xff{\xff}",
		"ключ{тег}", "😀{😀}", strings.Repeat("x", 10000)}
	for b := 0; b < 256; b++ {
		keys = append(keys, string([]byte{byte(b)}), "{"+string([]byte{byte(b)})+"}x")
	}
	const alphabet = "{}{}ab:_-\x00\xff01"
	for i := 0; i < 2000; i++ {
		b := make([]byte, rng.IntN(24))
		for j := range b {
			if i%2 == 0 {
				b[j] = alphabet[rng.IntN(len(alphabet))]
			} else {
				b[j] = byte(rng.UintN(256))
			}
		}
		keys = append(keys, string(b))
	}
	return keys
}

func TestIntegrationClusterKeySlot(t *testing.T) {
	ref := startClusterRedis(t).Client()
	c := proxytest.Start(t, proxytest.Options{Shards: 3})
	cl := c.Client()
	ctx := t.Context()
	keys := keyslotCorpus()
	pp, rp := cl.Pipeline(), ref.Pipeline()
	got, want := make([]*redis.IntCmd, len(keys)), make([]*redis.IntCmd, len(keys))
	for i, k := range keys {
		got[i], want[i] = pp.ClusterKeySlot(ctx, k), rp.ClusterKeySlot(ctx, k)
	}
	if _, err := pp.Exec(ctx); err != nil {
		t.Fatalf("proxy: %v", err)
	}
	if _, err := rp.Exec(ctx); err != nil {
		t.Fatalf("redis: %v", err)
	}
	for i, k := range keys {
		if got[i].Val() != want[i].Val() || got[i].Val() != int64(router.Slot([]byte(k))) {
			t.Errorf("CLUSTER KEYSLOT %q = %d, Redis says %d", k, got[i].Val(), want[i].Val())
		}
	}
}
