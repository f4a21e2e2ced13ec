package proxy_test

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reshard/reshard/proxy"
	"github.com/reshard/reshard/proxy/control"

	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/internal/redistest"
)

// isShardDown reports whether a rendered reply is an -ERR naming addr.
func isShardDown(reply, addr string) bool {
	return strings.HasPrefix(reply, "-ERR") && strings.Contains(reply, addr)
}

// shardStatus returns shard i's status=... in INFO proxy, read on rc.
func shardStatus(t *testing.T, rc *rawConn, i int) string {
	t.Helper()
	rc.send("INFO", "proxy")
	text, ok := rc.read().([]byte)
	if !ok {
		t.Fatal("INFO proxy did not return a bulk string")
	}
	line := infoFields(string(text))["proxy"][fmt.Sprint("shard", i)]
	for _, f := range strings.Split(line, ",") {
		if v, ok := strings.CutPrefix(f, "status="); ok {
			return v
		}
	}
	return ""
}

// waitFor polls cond every 50 ms for up to limit.
func waitFor(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestIntegrationShardDown kills one shard: its commands fail with an error
// naming it while the other shards keep serving on the same client
// connection; once the shard is back on its port the proxy reconnects.
func TestIntegrationShardDown(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3})
	rc := dialRaw(t, c.Addr)
	k := [3]string{keyOn(t, c, "k", 0), keyOn(t, c, "k", 1), keyOn(t, c, "k", 2)}
	for i, key := range k {
		if got := rc.do("SET", key, fmt.Sprint("v", i)); got != "+OK" {
			t.Fatalf("SET %s = %s", key, got)
		}
	}
	down := c.Shards[1]
	addr := down.Addr()
	down.Kill()

	// The first command after the kill already fails: the process is gone.
	if got := rc.do("GET", k[1]); !isShardDown(got, addr) {
		t.Errorf("GET on the killed shard = %s, want -ERR naming %s", got, addr)
	}

	t.Run("other shards serve", func(t *testing.T) {
		// One pipeline across all shards: the down shard's replies are
		// errors in their place, the others' are real.
		rc.write(encode("GET", k[0]) + encode("GET", k[1]) + encode("SET", k[2], "new") + encode("GET", k[2]) + encode("PING"))
		want := []string{`"v0"`, "down", "+OK", `"new"`, "+PONG"}
		for i, w := range want {
			got := render(rc.read())
			if w == "down" {
				if !isShardDown(got, addr) {
					t.Errorf("reply %d = %s, want -ERR naming %s", i, got, addr)
				}
			} else if got != w {
				t.Errorf("reply %d = %s, want %s", i, got, w)
			}
		}
	})

	t.Run("split and fan-out name the shard", func(t *testing.T) {
		for _, args := range [][]string{
			{"MGET", k[0], k[1], k[2]},
			{"EXISTS", k[0], k[1], k[2]},
			{"TOUCH", k[2], k[1]},
			{"MSET", k[0], "a", k[1], "b"},
			{"DBSIZE"},
			{"KEYS", "*"},
			{"FLUSHALL"},
		} {
			if got := rc.do(args...); !isShardDown(got, addr) {
				t.Errorf("%q = %s, want -ERR naming %s", args, got, addr)
			}
		}
		// Split commands whose keys avoid the down shard still work.
		if got := rc.do("MGET", k[0], k[2]); !strings.HasPrefix(got, "[") {
			t.Errorf("MGET without the down shard's keys = %s, want values", got)
		}
	})

	t.Run("status", func(t *testing.T) {
		if !waitFor(5*time.Second, func() bool { return shardStatus(t, rc, 1) == "down" }) {
			t.Errorf("INFO proxy shard1 status = %q, want down", shardStatus(t, rc, 1))
		}
		if got := shardStatus(t, rc, 0); got != "up" {
			t.Errorf("INFO proxy shard0 status = %q, want up", got)
		}
		if got := rc.do("PROXY", "TOPOLOGY"); !strings.Contains(got, `["addr", "`+addr+`", "slots", "5461-10922", "status", "down"]`) {
			t.Errorf("PROXY TOPOLOGY = %s, want shard %s down", got, addr)
		}
	})

	down.Restart()
	start := time.Now()
	var last string
	back := waitFor(10*time.Second, func() bool {
		last = rc.do("SET", k[1], "again")
		return last == "+OK"
	})
	if !back {
		t.Fatalf("10 s after the shard came back, SET on it = %s", last)
	}
	t.Logf("proxy served the restarted shard after %s", time.Since(start).Round(time.Millisecond))
	if got := down.Client().Get(t.Context(), k[1]).Val(); got != "again" {
		t.Errorf("restarted shard holds %s = %q, want %q", k[1], got, "again")
	}
	if got := rc.do("MGET", k[0], k[1], k[2]); !strings.HasPrefix(got, `[`) || !strings.Contains(got, `"again"`) {
		t.Errorf("MGET after the restart = %s", got)
	}
	// Every backend connection of the shard reconnects, not only the one
	// this client uses.
	if !waitFor(10*time.Second, func() bool { return shardStatus(t, rc, 1) == "up" }) {
		t.Errorf("INFO proxy shard1 status = %q, want up", shardStatus(t, rc, 1))
	}
	for i := 0; i < 20; i++ {
		other := dialRaw(t, c.Addr)
		if got := other.do("GET", k[1]); got != `"again"` {
			t.Errorf("client %d: GET %s after the restart = %s", i, k[1], got)
		}
		other.nc.Close()
	}
}

// TestIntegrationAbandonedPipeline has clients write long pipelines and
// close their sockets without reading, while other clients check every
// reply against the value they wrote. A backend connection that fell out
// of step would hand someone a reply meant for another request.
func TestIntegrationAbandonedPipeline(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3})
	ctx := t.Context()

	// Large values on every shard, so the abandoned replies are many MB and
	// still streaming from the shards when the client is gone.
	cl := c.Client()
	big := strings.Repeat("B", 4096)
	var bigKeys []string
	for i := 0; i < 64; i++ {
		k := fmt.Sprintf("big:%d", i)
		bigKeys = append(bigKeys, k)
		if err := cl.Set(ctx, k, big, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	var gets strings.Builder
	for i := 0; i < 10000; i++ {
		k := bigKeys[i%len(bigKeys)]
		if i%3 == 0 {
			gets.WriteString(encode("MGET", k, bigKeys[(i+1)%len(bigKeys)], bigKeys[(i+2)%len(bigKeys)]))
		} else {
			gets.WriteString(encode("GET", k))
		}
	}
	abusive := gets.String()
	rc := dialRaw(t, c.Addr)
	before, cmdsBefore := connectedClients(t, rc), commandsProcessed(t, rc)

	stop := make(chan struct{})
	var keepers []*keeper
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := 0; w < 16; w++ {
		conn, err := dialPipe(c.Addr)
		if err != nil {
			t.Fatal(err)
		}
		kp := newKeeper(conn, fmt.Sprintf("keeper%d", w), 8)
		keepers = append(keepers, kp)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := kp.step(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}

	for round := 0; round < 20; round++ {
		var abusers sync.WaitGroup
		for a := 0; a < 4; a++ {
			abusers.Add(1)
			go func(a int) {
				defer abusers.Done()
				conn, err := dialPipe(c.Addr)
				if err != nil {
					errs <- err
					return
				}
				payload := abusive
				if a%2 == 1 {
					payload = abusive[:len(abusive)-7] // end inside a command
				}
				conn.nc.Write([]byte(payload))
				if a < 2 {
					// wait until the proxy is answering, then go
					conn.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
					conn.br.Peek(1)
				}
				conn.Close()
			}(a)
		}
		abusers.Wait()
	}
	time.Sleep(500 * time.Millisecond) // let the last abandoned replies drain
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// Fresh clients after the storm see their own replies too.
	for i := 0; i < 10; i++ {
		conn, err := dialPipe(c.Addr)
		if err != nil {
			t.Fatal(err)
		}
		kp := newKeeper(conn, fmt.Sprintf("after%d", i), 32)
		for r := 0; r < 3; r++ {
			if err := kp.step(); err != nil {
				t.Errorf("client after the abandoned pipelines: %v", err)
			}
		}
		conn.Close()
	}
	if !waitFor(5*time.Second, func() bool { return connectedClients(t, rc) <= before }) {
		t.Errorf("connected_clients = %d after every abusive client left, want %d as before", connectedClients(t, rc), before)
	}
	// Sanity: the abandoned pipelines did reach the proxy. Two abusers a
	// round waited for the first reply, so at least one read of theirs
	// (dozens of commands) was served.
	abandoned := commandsProcessed(t, rc) - cmdsBefore
	for _, kp := range keepers {
		abandoned -= int64(kp.round * 2 * len(kp.keys))
	}
	t.Logf("about %d commands of abandoned pipelines processed", abandoned)
	if abandoned < 20*2*10 {
		t.Errorf("only about %d commands of the abandoned pipelines reached the proxy; the test proves nothing", abandoned)
	}
}

// connectedClients reads connected_clients from INFO on rc.
func connectedClients(t *testing.T, rc *rawConn) int64 {
	t.Helper()
	return infoInt(t, rc, "clients", "connected_clients")
}

func commandsProcessed(t *testing.T, rc *rawConn) int64 {
	t.Helper()
	return infoInt(t, rc, "stats", "total_commands_processed")
}

func infoInt(t *testing.T, rc *rawConn, section, field string) int64 {
	t.Helper()
	v := infoSection(t, rc, section)[field]
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatalf("INFO %s %s = %q", section, field, v)
	}
	return n
}

// TestIntegrationShardKilledUnderLoad kills a shard while clients have
// pipelines in flight to every shard. Clients of the other shards see no
// error at all; clients of the killed shard see only errors naming it (or
// correct replies) and are served again once it is back.
func TestIntegrationShardKilledUnderLoad(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3})
	down := c.Shards[1]
	addr := down.Addr()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	var victimOK, victimDown [4]atomic.Int64
	for w := 0; w < 12; w++ {
		conn, err := dialPipe(c.Addr)
		if err != nil {
			t.Fatal(err)
		}
		shard := w % 3
		keys := make([]string, 8)
		for i := range keys {
			keys[i] = keyOn(t, c, fmt.Sprintf("w%d:%d:", w, i), shard)
		}
		wg.Add(1)
		if shard != 1 {
			kp := &keeper{conn: conn, keys: keys, last: make([]string, len(keys))}
			for i := range kp.last {
				kp.last[i] = "(nil)"
			}
			go func() {
				defer wg.Done()
				defer conn.Close()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if err := kp.step(); err != nil {
						errs <- fmt.Errorf("client of a healthy shard: %w", err)
						return
					}
				}
			}()
			continue
		}
		go func(w int) {
			defer wg.Done()
			defer conn.Close()
			var cmds [][]string
			for round := 0; ; round++ {
				select {
				case <-stop:
					return
				default:
				}
				cmds = cmds[:0]
				for _, k := range keys {
					v := fmt.Sprintf("%s=%d", k, round)
					cmds = append(cmds, []string{"SET", k, v}, []string{"GET", k})
				}
				got, err := conn.exchange(cmds)
				if err != nil {
					errs <- fmt.Errorf("client of the killed shard: %w", err)
					return
				}
				for i, k := range keys {
					set, get := got[2*i], got[2*i+1]
					want := strconv.Quote(fmt.Sprintf("%s=%d", k, round))
					switch {
					case set == "+OK" && get == want:
						victimOK[w/3].Add(1)
					case isShardDown(set, addr) && (isShardDown(get, addr) || get == "(nil)"):
						// nil: the shard came back between the two
						victimDown[w/3].Add(1)
					case set == "+OK" && isShardDown(get, addr):
						victimDown[w/3].Add(1)
					default:
						errs <- fmt.Errorf("client of the killed shard, round %d: SET %s = %s, GET = %s, want %s or errors naming %s", round, k, set, get, want, addr)
						return
					}
				}
			}
		}(w)
	}

	time.Sleep(500 * time.Millisecond)
	down.Kill()
	time.Sleep(time.Second)
	var downSeen int64
	for i := range victimDown {
		downSeen += victimDown[i].Load()
	}
	down.Restart()
	okAt := make([]int64, len(victimOK))
	for i := range victimOK {
		okAt[i] = victimOK[i].Load()
	}
	// Every client of the restarted shard is served again.
	if !waitFor(10*time.Second, func() bool {
		for i := range victimOK {
			if victimOK[i].Load() <= okAt[i] {
				return false
			}
		}
		return true
	}) {
		t.Errorf("clients of the restarted shard not served again within 10 s")
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if downSeen == 0 {
		t.Errorf("no client saw the shard down; the kill did not take effect during the load")
	}
}

// TestIntegrationFirstCommandAfterStart sends a command the moment a new
// proxy serves: healthy shards must not look "unavailable: connecting"
// because a backend's first dial has not finished yet. redis-server answers
// as soon as it listens; a proxy that accepts a client must too.
func TestIntegrationFirstCommandAfterStart(t *testing.T) {
	shards := redistest.StartN(t, 3)
	table := evenTable(t, 1, shards)
	// one key on each shard
	var keys []string
	for n := 0; len(keys) < len(shards); n++ {
		if k := fmt.Sprint("first:", n); table.ShardOf([]byte(k)) == len(keys) {
			keys = append(keys, k)
		}
	}
	failed := 0
	for i := 0; i < 50; i++ {
		addr, stop := serveTable(t, proxy.DefaultConfig(), control.Config{}, table, nil)
		rc := dialRaw(t, addr)
		for _, k := range keys {
			if got := rc.do("SET", k, "v"); got != "+OK" {
				failed++
				if failed == 1 {
					t.Errorf("SET %s right after start = %s, want +OK", k, got)
				}
				break
			}
		}
		rc.nc.Close()
		stop()
	}
	if failed > 0 {
		t.Errorf("%d of 50 fresh proxies failed their first command", failed)
	}
}
