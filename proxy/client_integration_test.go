package proxy_test

import (
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reshard/reshard/internal/proxytest"
)

func TestIntegrationClientCommands(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 2})
	a, b := dialRaw(t, c.Addr), dialRaw(t, c.Addr)
	a.do("CLIENT", "SETNAME", "alpha")
	b.do("CLIENT", "SETNAME", "beta")
	bID := b.do("CLIENT", "ID")

	list := a.do("CLIENT", "LIST")
	for _, want := range []string{"name=alpha", "name=beta", "id=" + strings.TrimPrefix(bID, ":")} {
		if !strings.Contains(list, want) {
			t.Errorf("CLIENT LIST lacks %q: %s", want, list)
		}
	}
	if got := a.do("ACL", "WHOAMI"); got != `"default"` {
		t.Errorf("ACL WHOAMI = %s", got)
	}
	if info := a.do("CLIENT", "INFO"); !strings.Contains(info, "name=alpha") || strings.Contains(info, "name=beta") {
		t.Errorf("CLIENT INFO = %s", info)
	}
	if got := a.do("CLIENT", "LIST", "ID", strings.TrimPrefix(bID, ":")); !strings.Contains(got, "name=beta") || strings.Contains(got, "name=alpha") {
		t.Errorf("CLIENT LIST ID = %s", got)
	}

	t.Run("reply modes", func(t *testing.T) {
		rc := dialRaw(t, c.Addr)
		rc.write(encode("CLIENT", "REPLY", "OFF") + encode("SET", "r", "1") + encode("GET", "r") +
			encode("CLIENT", "REPLY", "ON") + encode("GET", "r") + encode("CLIENT", "REPLY", "SKIP") +
			encode("GET", "r") + encode("PING"))
		for _, want := range []string{"+OK", `"1"`, "+PONG"} {
			if got := render(rc.read()); got != want {
				t.Errorf("reply = %s, want %s", got, want)
			}
		}
	})

	t.Run("not honoured", func(t *testing.T) {
		for _, args := range [][]string{{"CLIENT", "UNBLOCK", "1"}} {
			if got := a.do(args...); !strings.HasPrefix(got, "-ERR") {
				t.Errorf("%q = %s, want an error", args, got)
			}
		}
	})

	t.Run("kill", func(t *testing.T) {
		if got := a.do("CLIENT", "KILL", "ID", strings.TrimPrefix(bID, ":")); got != ":1" {
			t.Fatalf("CLIENT KILL ID = %s", got)
		}
		b.expectClosed(2 * time.Second)
		if got := a.do("CLIENT", "KILL", "ID", "999999"); got != ":0" {
			t.Errorf("CLIENT KILL of no one = %s", got)
		}
		if got := a.do("CLIENT", "KILL", "127.0.0.1:1"); got != "-ERR No such client" {
			t.Errorf("CLIENT KILL addr = %s", got)
		}
		if got := a.do("PING"); got != "+PONG" {
			t.Errorf("killer's connection = %s", got)
		}
		if list := a.do("CLIENT", "LIST"); strings.Contains(list, "name=beta") {
			t.Errorf("killed client still listed: %s", list)
		}
		if got := a.do("CLIENT", "KILL", "USER", "bob"); got != "-ERR No such user 'bob'" {
			t.Errorf("CLIENT KILL USER bob = %s", got)
		}
		for _, id := range []string{"0", "-1", "x"} {
			if got, want := a.do("CLIENT", "KILL", "ID", id), "-ERR client-id should be greater than 0"; got != want {
				t.Errorf("CLIENT KILL ID %s = %s, want %s", id, got, want)
			}
		}
	})

	// Redis answers a CLIENT KILL that kills its caller, then closes it
	// without running what the caller sent after it.
	t.Run("kill self", func(t *testing.T) {
		for _, kill := range [][]string{{"SKIPME", "no"}, nil} {
			self := dialRaw(t, c.Addr)
			id := strings.TrimPrefix(self.do("CLIENT", "ID"), ":")
			cmd, want := []string{"CLIENT", "KILL", "ID", id, "SKIPME", "no"}, ":1"
			if kill == nil { // the old form, by address
				cmd, want = []string{"CLIENT", "KILL", self.nc.LocalAddr().String()}, "+OK"
			}
			self.write(encode(cmd...) + encode("SET", "after-kill", "1"))
			if got := render(self.read()); got != want {
				t.Errorf("%q = %s, want %s", cmd, got, want)
			}
			self.expectClosed(2 * time.Second)
			if got := a.do("EXISTS", "after-kill"); got != ":0" {
				t.Errorf("a command after %q ran: EXISTS = %s", cmd, got)
			}
		}
	})

	t.Run("type filter", func(t *testing.T) {
		sub := dialRaw(t, c.Addr)
		sub.do("CLIENT", "SETNAME", "listener")
		sub.send("SUBSCRIBE", "news")
		sub.read()
		only := func(list string, want, notWant string) {
			t.Helper()
			if !strings.Contains(list, want) || strings.Contains(list, notWant) {
				t.Errorf("list has %q: %v, has %q: %v:\n%s", want, strings.Contains(list, want), notWant, strings.Contains(list, notWant), list)
			}
		}
		only(a.do("CLIENT", "LIST", "TYPE", "pubsub"), "name=listener", "name=alpha")
		only(a.do("CLIENT", "LIST", "TYPE", "normal"), "name=alpha", "name=listener")
		if got := a.do("CLIENT", "LIST", "TYPE", "replica"); got != `""` {
			t.Errorf("CLIENT LIST TYPE replica = %s, want empty", got)
		}
		for _, cmd := range [][]string{{"CLIENT", "LIST", "TYPE", "bogus"}, {"CLIENT", "KILL", "TYPE", "bogus"}} {
			if got := a.do(cmd...); got != "-ERR Unknown client type 'bogus'" {
				t.Errorf("%q = %s", cmd, got)
			}
		}
		if got := a.do("CLIENT", "KILL", "TYPE", "master"); got != ":0" {
			t.Errorf("CLIENT KILL TYPE master = %s", got)
		}
		if got := a.do("CLIENT", "KILL", "TYPE", "pubsub"); got != ":1" {
			t.Errorf("CLIENT KILL TYPE pubsub = %s", got)
		}
		sub.expectClosed(2 * time.Second)
		if got := a.do("PING"); got != "+PONG" {
			t.Errorf("normal client after CLIENT KILL TYPE pubsub = %s", got)
		}
	})
}

// TestIntegrationClientListWhileSessionsChange lists clients, and filters
// them as CLIENT KILL does, while other sessions change what CLIENT LIST
// shows of them (name, protocol, transaction, pub/sub). Under -race (as
// make test runs it) it shows whether one session reads another's state
// safely. HELLO 2 keeps the replies RESP2, which is all this test's reader
// reads; it still writes the protocol field.
func TestIntegrationClientListWhileSessionsChange(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 2})
	lister := dialRaw(t, c.Addr)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 3 {
		rc := dialRaw(t, c.Addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				rc.write(encode("CLIENT", "SETNAME", strings.Repeat("n", 1+i%5)) + encode("MULTI") +
					encode("SET", "k", "v") + encode("EXEC") + encode("HELLO", "2"))
				for range 5 {
					rc.read()
				}
			}
		}()
	}
	sub := dialRaw(t, c.Addr)
	sub.send("SUBSCRIBE", "ch")
	sub.read()
	for range 300 {
		if list := lister.do("CLIENT", "LIST"); !strings.Contains(list, "flags=P") {
			t.Errorf("CLIENT LIST shows no pub/sub client: %s", list)
			break
		}
		if got := lister.do("CLIENT", "KILL", "USER", "default", "TYPE", "normal", "ID", "999999"); got != ":0" {
			t.Errorf("CLIENT KILL of no one = %s", got)
			break
		}
	}
	close(stop)
	wg.Wait()
}

// CLIENT KILL of a client blocked in BLPOP ends its blocked command on the
// shard at once: the proxy closes the dedicated connection the command
// holds, as Redis unblocks a killed client, instead of leaving it blocked
// until its timeout.
func TestIntegrationClientKillBlocked(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 1})
	a, b := dialRaw(t, c.Addr), dialRaw(t, c.Addr)
	aID := strings.TrimPrefix(a.do("CLIENT", "ID"), ":")
	a.send("BLPOP", "nothing", "30")
	shard := c.Shards[0].Client()
	blocked := func() int64 {
		info, err := shard.Info(t.Context(), "clients").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "blocked_clients:"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
		return -1
	}
	waitFor(5*time.Second, func() bool { return blocked() == 1 })
	if got := b.do("CLIENT", "KILL", "ID", aID); got != ":1" {
		t.Fatalf("CLIENT KILL ID %s = %s, want :1", aID, got)
	}
	if !waitFor(2*time.Second, func() bool { return blocked() == 0 }) {
		t.Errorf("the shard still has %d blocked clients 2s after the proxy's client was killed; want 0", blocked())
	}
}
