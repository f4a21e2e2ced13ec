package proxy_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/internal/redistest"
)

// pushesUntil sends PING on rc and returns the pushes that come before its
// PONG, rendered. The proxy answers a write only once the shards have
// reported it, so after a write through the proxy is acknowledged every
// invalidation it causes is already on its way, before this PONG.
func pushesUntil(rc *rawConn) []string {
	rc.t.Helper()
	rc.send("PING")
	var got []string
	for {
		v := render(rc.read())
		if v == `+PONG` || v == `"PONG"` {
			return got
		}
		got = append(got, v)
	}
}

// awaitPush reads from rc until a push arrives, for invalidations of
// writes made around the proxy (directly on a shard, expiry), which come
// when the shard reports them.
func awaitPush(rc *rawConn, want string) {
	rc.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, p := range pushesUntil(rc) {
			if p == want {
				return
			}
			rc.t.Fatalf("got %s, want %s", p, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	rc.t.Fatalf("no %s within 5 s", want)
}

func invalidation(keys ...string) string {
	q := make([]string, len(keys))
	for i, k := range keys {
		q[i] = fmt.Sprintf("%q", k)
	}
	return `>["invalidate", [` + strings.Join(q, ", ") + `]]`
}

func expectNoPush(t *testing.T, rc *rawConn, what string) {
	t.Helper()
	if got := pushesUntil(rc); len(got) > 0 {
		t.Errorf("%s: got %v, want no message", what, got)
	}
}

// CLIENT TRACKING through the proxy, as one Redis gives it, over keys on
// every shard: default mode in RESP3 (the keys read, and only those, are
// invalidated, whoever writes them: a client of the proxy, a client of a
// shard, expiry), a client's own write answered before its invalidation,
// REDIRECT to a RESP2 subscriber, BCAST with prefixes, OPTIN and CACHING,
// NOLOOP, FLUSHALL's one message, a redirect whose target left, the
// bookkeeping (TRACKINGINFO, GETREDIR, INFO), and a shard's reports lost
// and back (every client told to drop its cache, twice).
func TestIntegrationTracking(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3})
	ctx := t.Context()
	w := c.Client()
	keys := []string{keyOn(t, c, "tk:", 0), keyOn(t, c, "tk:", 1), keyOn(t, c, "tk:", 2)}
	unread := keyOn(t, c, "other:", 1)
	for _, k := range append(keys, unread) {
		w.Set(ctx, k, "v1", 0)
	}

	a := dialRaw(t, c.Addr)
	a.do("HELLO", "3")
	if got := a.do("CLIENT", "TRACKING", "ON"); got != "+OK" {
		t.Fatalf("CLIENT TRACKING ON = %s", got)
	}
	for _, k := range keys {
		if got := a.do("GET", k); got != `"v1"` {
			t.Fatalf("GET %s = %s", k, got)
		}
	}
	// a client of the proxy writes: one invalidation per key read
	for _, k := range append(keys, unread) {
		w.Set(ctx, k, "v2", 0)
	}
	var got []string
	for range keys {
		got = append(got, pushesUntil(a)...)
	}
	if len(got) != len(keys) {
		t.Fatalf("after writes of %d keys read and 1 not: %v", len(keys), got)
	}
	for i, k := range keys {
		if got[i] != invalidation(k) {
			t.Errorf("message %d = %s, want %s", i, got[i], invalidation(k))
		}
	}
	// invalidated keys are no longer tracked until read again
	w.Set(ctx, keys[0], "v3", 0)
	expectNoPush(t, a, "a write to a key invalidated and not read since")

	// a client of a shard writes, and a key expires: the shard reports them
	a.do("GET", keys[1])
	c.ShardOf(keys[1]).Client().Set(ctx, keys[1], "direct", 0)
	awaitPush(a, invalidation(keys[1]))
	w.Set(ctx, keys[2], "soon", 100*time.Millisecond)
	a.do("GET", keys[2])
	awaitPush(a, invalidation(keys[2]))

	// the client's own write: its reply first, then the invalidation
	a.do("GET", keys[0])
	a.send("SET", keys[0], "mine")
	if got := render(a.read()); got != "+OK" {
		t.Fatalf("own SET = %s, want +OK before its invalidation", got)
	}
	if got := render(a.read()); got != invalidation(keys[0]) {
		t.Fatalf("after own SET: %s", got)
	}

	// INFO and TRACKINGINFO
	a.do("GET", keys[1])
	info := w.Info(ctx, "clients", "stats").Val()
	for _, f := range []string{"tracking_clients:1\r\n", "tracking_total_keys:1\r\n", "tracking_total_items:1\r\n"} {
		if !strings.Contains(info, f) {
			t.Errorf("INFO has no %q", strings.TrimSpace(f))
		}
	}
	if got := a.do("CLIENT", "TRACKINGINFO"); got != `%{"flags": ~["on"], "redirect": :0, "prefixes": []}` {
		t.Errorf("TRACKINGINFO = %s", got)
	}

	// REDIRECT to a RESP2 subscriber of __redis__:invalidate
	sub := dialRaw(t, c.Addr)
	subID := strings.TrimPrefix(sub.do("CLIENT", "ID"), ":")
	sub.do("SUBSCRIBE", "__redis__:invalidate")
	d := dialRaw(t, c.Addr)
	if got := d.do("CLIENT", "TRACKING", "ON", "REDIRECT", "999999"); !strings.Contains(got, "does not exist") {
		t.Errorf("REDIRECT to no client = %s", got)
	}
	d.do("CLIENT", "TRACKING", "ON", "REDIRECT", subID)
	if got := d.do("CLIENT", "GETREDIR"); got != ":"+subID {
		t.Errorf("GETREDIR = %s, want %s", got, subID)
	}
	d.do("GET", keys[2])
	w.Set(ctx, keys[2], "v4", 0)
	if got, want := render(sub.read()), fmt.Sprintf(`["message", "__redis__:invalidate", [%q]]`, keys[2]); got != want {
		t.Errorf("redirected message = %s, want %s", got, want)
	}

	// BCAST with prefixes, over every shard
	b := dialRaw(t, c.Addr)
	b.do("HELLO", "3")
	b.do("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "tk:", "PREFIX", "zz:")
	if got := b.do("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "tk:1"); !strings.Contains(got, "overlaps with an existing prefix") {
		t.Errorf("overlapping prefix = %s", got)
	}
	for _, k := range keys {
		w.Set(ctx, k, "v5", 0)
		if got := pushesUntil(b); len(got) != 1 || got[0] != invalidation(k) {
			t.Errorf("BCAST after SET %s: %v", k, got)
		}
	}
	w.Set(ctx, unread, "v5", 0)
	expectNoPush(t, b, "BCAST, a key of no prefix")

	// OPTIN: only what follows CLIENT CACHING yes is tracked
	o := dialRaw(t, c.Addr)
	o.do("HELLO", "3")
	o.do("CLIENT", "TRACKING", "ON", "OPTIN")
	o.do("GET", keys[0])
	o.do("CLIENT", "CACHING", "yes")
	if got := o.do("CLIENT", "TRACKINGINFO"); !strings.Contains(got, `"caching-yes"`) {
		t.Errorf("TRACKINGINFO after CACHING yes = %s", got)
	}
	o.do("GET", keys[2]) // TRACKINGINFO took the CACHING: not tracked
	o.do("CLIENT", "CACHING", "yes")
	o.do("GET", keys[1])
	w.Set(ctx, keys[0], "v6", 0)
	w.Set(ctx, keys[1], "v6", 0)
	w.Set(ctx, keys[2], "v6", 0)
	if got := append(pushesUntil(o), pushesUntil(o)...); len(got) != 1 || got[0] != invalidation(keys[1]) {
		t.Errorf("OPTIN: %v, want only %s", got, invalidation(keys[1]))
	}

	// NOLOOP: the client's own writes are not reported to it, others' are
	n := dialRaw(t, c.Addr)
	n.do("HELLO", "3")
	n.do("CLIENT", "TRACKING", "ON", "NOLOOP")
	n.do("MGET", keys[0])
	n.do("GET", keys[1])
	n.do("SET", keys[0], "own")
	expectNoPush(t, n, "NOLOOP, own write")
	w.Set(ctx, keys[1], "theirs", 0)
	if got := pushesUntil(n); len(got) != 1 || got[0] != invalidation(keys[1]) {
		t.Errorf("NOLOOP, another's write: %v", got)
	}

	// FLUSHALL: one message for all the shards, and nothing tracked after
	pushesUntil(a) // keys[1]'s invalidation, written by w above
	a.do("GET", keys[0])
	w.FlushAll(ctx)
	if got := pushesUntil(a); len(got) != 1 || got[0] != `>["invalidate", _]` {
		t.Errorf("after FLUSHALL: %v, want one null invalidation", got)
	}
	if info := w.Info(ctx, "stats").Val(); !strings.Contains(info, "tracking_total_keys:0\r\n") {
		t.Error("keys still tracked after FLUSHALL")
	}

	// the redirect target leaves: RESP3 clients are told
	r3 := dialRaw(t, c.Addr)
	r3.do("HELLO", "3")
	target := dialRaw(t, c.Addr)
	targetID := strings.TrimPrefix(target.do("CLIENT", "ID"), ":")
	r3.do("CLIENT", "TRACKING", "ON", "REDIRECT", targetID)
	r3.do("GET", keys[2])
	target.do("QUIT")
	time.Sleep(100 * time.Millisecond)
	w.Set(ctx, keys[2], "v7", 0)
	if got := pushesUntil(r3); len(got) != 1 || got[0] != `>["tracking-redir-broken", :`+targetID+`]` {
		t.Errorf("redirect target gone: %v", got)
	}
	if got := r3.do("CLIENT", "TRACKINGINFO"); !strings.Contains(got, `"broken_redirect"`) {
		t.Errorf("TRACKINGINFO after the target left = %s", got)
	}

	// a shard's reports lost: every tracking client drops its cache when
	// they stop and again when they are back
	a.do("GET", keys[0])
	killTrackingSource(t, c.ShardOf(keys[0]))
	awaitPush(a, `>["invalidate", _]`)
	awaitPush(a, `>["invalidate", _]`)
	a.do("GET", keys[0])
	w.Set(ctx, keys[0], "after", 0)
	if got := pushesUntil(a); len(got) != 1 || got[0] != invalidation(keys[0]) {
		t.Errorf("after the source came back: %v", got)
	}

	// tracking off: nothing more
	a.do("CLIENT", "TRACKING", "OFF")
	a.do("GET", keys[1])
	w.Set(ctx, keys[1], "off", 0)
	expectNoPush(t, a, "tracking off")
	if got := a.do("CLIENT", "GETREDIR"); got != ":-1" {
		t.Errorf("GETREDIR with tracking off = %s", got)
	}

	// with no client tracking, the proxy stops listening to the shards
	for _, rc := range []*rawConn{b, d, o, n, r3} {
		rc.nc.Close()
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		left := 0
		for _, sh := range c.Shards {
			left += trackingConns(t, sh)
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d tracking connections on the shards 5 s after the last tracking client left", left)
		}
	}
}

// trackingConns counts the connections in tracking mode (flag t) on a shard.
func trackingConns(t *testing.T, sh *redistest.Server) int {
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(sh.Client().ClientList(t.Context()).Val()), "\n") {
		if _, vals := clientFields(t, line); strings.Contains(vals["flags"], "t") {
			n++
		}
	}
	return n
}

// killTrackingSource closes the proxy's tracking connection on a shard
// (the one in tracking mode, flag t).
func killTrackingSource(t *testing.T, sh *redistest.Server) {
	t.Helper()
	list := sh.Client().ClientList(t.Context()).Val()
	for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
		if _, vals := clientFields(t, line); strings.Contains(vals["flags"], "t") {
			if err := sh.Client().Do(t.Context(), "CLIENT", "KILL", "ID", vals["id"]).Err(); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("no tracking connection on %s:\n%s", sh.Addr(), list)
}

// Invalidations across a live reshard: a client tracks keys of every
// shard, the table moves to five new shards, and writes before the
// cutover (to the old shards) and after it (to the new ones) each reach
// the client, which never reconnects.
func TestIntegrationTrackingReshard(t *testing.T) {
	c, _ := reshardCluster(t)
	ctx := t.Context()
	w := c.Client()
	var keys []string
	for i := range 200 {
		k := fmt.Sprint("rk:", i)
		keys = append(keys, k)
		w.Set(ctx, k, "v1", 0)
	}
	a := dialRaw(t, c.Addr)
	a.do("HELLO", "3")
	a.do("CLIENT", "TRACKING", "ON")
	read := func() {
		for _, k := range keys {
			a.do("GET", k)
		}
	}
	expectAll := func(when string) {
		t.Helper()
		seen := map[string]bool{}
		for _, p := range pushesUntil(a) {
			for _, k := range keys {
				if p == invalidation(k) {
					seen[k] = true
				}
			}
		}
		if len(seen) != len(keys) {
			t.Errorf("%s: invalidations for %d of %d keys", when, len(seen), len(keys))
		}
	}
	read()
	for _, k := range keys {
		w.Set(ctx, k, "v2", 0)
	}
	expectAll("before the reshard")

	read()
	targets := redistest.StartN(t, 5, debugArgs...)
	args := []any{"PROXY", "RESHARD"}
	ranges := []string{"0-3000", "3001-6000", "6001-9000", "9001-12000", "12001-16383"}
	for i, s := range targets {
		args = append(args, s.Addr()+"="+ranges[i])
	}
	if err := w.Do(ctx, args...).Err(); err != nil {
		t.Fatal(err)
	}
	if st := waitReshard(t, w, "done", "failed", "aborted"); !strings.Contains(st, "state:done") {
		t.Fatalf("reshard: %s", st)
	}
	// The cutover may drop every cache once (a source that was not up in
	// time); the keys read before it are either invalidated by name or by
	// that message.
	var dropped bool
	for _, p := range pushesUntil(a) {
		dropped = dropped || p == `>["invalidate", _]`
	}
	if !dropped {
		for _, k := range keys {
			w.Set(ctx, k, "v3", 0)
		}
		expectAll("keys read before the cutover, written after it")
	}
	read()
	for _, k := range keys {
		w.Set(ctx, k, "v4", 0)
	}
	expectAll("keys read and written after the cutover")
	for _, s := range targets {
		if n := s.Client().DBSize(ctx).Val(); n == 0 {
			t.Errorf("target %s holds no key: the writes did not reach the new shards", s.Addr())
		}
	}
}
