package proxy_test

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/internal/proxytest"
)

// clientFields parses one CLIENT LIST line into its field names, in order,
// and their values.
func clientFields(t *testing.T, line string) (names []string, vals map[string]string) {
	t.Helper()
	vals = map[string]string{}
	for _, f := range strings.Fields(line) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			t.Fatalf("CLIENT LIST field %q has no '=': %s", f, line)
		}
		names = append(names, k)
		vals[k] = v
	}
	return names, vals
}

// clientLine is CLIENT LIST ID id, asked by c.
func clientLine(t *testing.T, c *redis.Client, id int64) map[string]string {
	t.Helper()
	out, err := c.Do(t.Context(), "CLIENT", "LIST", "ID", strconv.FormatInt(id, 10)).Text()
	if err != nil {
		t.Fatal(err)
	}
	_, vals := clientFields(t, strings.TrimSpace(out))
	return vals
}

// infoLine is CLIENT INFO, asked by c.
func infoLine(t *testing.T, c *redis.Client) string {
	t.Helper()
	out, err := c.Do(t.Context(), "CLIENT", "INFO").Text()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// ownInfo is the fields of CLIENT INFO, asked on rc.
func ownInfo(t *testing.T, rc *rawConn) map[string]string {
	t.Helper()
	rc.send("CLIENT", "INFO")
	line, ok := rc.read().([]byte)
	if !ok {
		t.Fatal("CLIENT INFO did not answer a bulk string")
	}
	_, vals := clientFields(t, strings.TrimSpace(string(line)))
	return vals
}

// CLIENT LIST and CLIENT INFO show the fields an operator reads in Redis's:
// the subscription counts by kind and the last command, in Redis's order, so that parsers of Redis's lines read
// the proxy's too.
func TestIntegrationClientListFields(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 2})
	ctx := t.Context()

	t.Run("order as in redis", func(t *testing.T) {
		got, _ := clientFields(t, infoLine(t, c.Client()))
		want, _ := clientFields(t, infoLine(t, c.Shards[0].Client()))
		i := 0
		for _, k := range got {
			for i < len(want) && want[i] != k {
				i++
			}
			if i == len(want) {
				t.Fatalf("field %q is not in Redis's fields or out of their order:\nproxy: %v\nredis: %v", k, got, want)
			}
		}
		// every field of Redis 7.0's, in its order
		if !slices.Equal(got, want) {
			t.Errorf("CLIENT INFO fields:\nproxy: %v\nredis: %v", got, want)
		}
	})

	t.Run("tracking flags and redirect", func(t *testing.T) {
		target := dialRaw(t, c.Addr)
		tid := strings.TrimPrefix(target.do("CLIENT", "ID"), ":")
		tr := dialRaw(t, c.Addr)
		id, _ := strconv.ParseInt(strings.TrimPrefix(tr.do("CLIENT", "ID"), ":"), 10, 64)
		if vals := clientLine(t, c.Client(), id); vals["flags"] != "N" || vals["redir"] != "-1" {
			t.Errorf("before tracking: flags=%s redir=%s, want N -1", vals["flags"], vals["redir"])
		}
		tr.do("CLIENT", "TRACKING", "ON", "BCAST", "REDIRECT", tid)
		if vals := clientLine(t, c.Client(), id); vals["flags"] != "tB" || vals["redir"] != tid {
			t.Errorf("tracking BCAST to %s: flags=%s redir=%s, want tB %s", tid, vals["flags"], vals["redir"], tid)
		}
		tr.do("CLIENT", "TRACKING", "OFF")
		if vals := clientLine(t, c.Client(), id); vals["flags"] != "N" || vals["redir"] != "-1" {
			t.Errorf("tracking off: flags=%s redir=%s, want N -1", vals["flags"], vals["redir"])
		}
	})

	t.Run("subscriptions by kind", func(t *testing.T) {
		sub := dialRaw(t, c.Addr)
		id, _ := strconv.ParseInt(strings.TrimPrefix(sub.do("CLIENT", "ID"), ":"), 10, 64)
		sub.send("SUBSCRIBE", "a", "b", "c")
		sub.send("PSUBSCRIBE", "p*")
		sub.send("SSUBSCRIBE", "{x}1")
		sub.send("SSUBSCRIBE", "{y}2", "{y}3") // another slot, maybe another shard
		sub.send("SUBSCRIBE", "a")             // again: still one
		for range 8 {
			sub.read()
		}
		sub.do("PING") // the loop has written every confirmation
		want := func(subs, psubs, ssubs string) {
			t.Helper()
			vals := clientLine(t, c.Client(), id)
			if vals["sub"] != subs || vals["psub"] != psubs || vals["ssub"] != ssubs || vals["flags"] != "P" {
				t.Errorf("sub=%s psub=%s ssub=%s flags=%s, want %s %s %s P", vals["sub"], vals["psub"], vals["ssub"], vals["flags"], subs, psubs, ssubs)
			}
		}
		want("3", "1", "3")
		sub.send("UNSUBSCRIBE", "a", "nothing")
		sub.send("SUNSUBSCRIBE", "{y}2")
		for range 3 {
			sub.read()
		}
		sub.do("PING")
		want("2", "1", "2")
		if vals := clientLine(t, c.Client(), id); vals["cmd"] != "ping" {
			t.Errorf("subscriber's cmd = %s, want ping", vals["cmd"])
		}
		sub.send("RESET")
		sub.read()
		vals := clientLine(t, c.Client(), id)
		if vals["sub"] != "0" || vals["psub"] != "0" || vals["ssub"] != "0" || vals["flags"] != "N" {
			t.Errorf("after RESET: sub=%s psub=%s ssub=%s flags=%s, want 0 0 0 N", vals["sub"], vals["psub"], vals["ssub"], vals["flags"])
		}
	})

	t.Run("last command", func(t *testing.T) {
		other := dialRaw(t, c.Addr)
		id, _ := strconv.ParseInt(strings.TrimPrefix(other.do("CLIENT", "ID"), ":"), 10, 64)
		for _, st := range []struct {
			args []string
			want string
		}{
			{[]string{"GET", "k"}, "get"},
			{[]string{"OBJECT", "ENCODING", "k"}, "object|encoding"},
			{[]string{"NOSUCHCOMMAND"}, "NULL"},
			{[]string{"PROXY", "TOPOLOGY"}, "proxy"},
			{[]string{"SET", "k", "v"}, "set"},
		} {
			other.do(st.args...)
			if got := clientLine(t, c.Client(), id)["cmd"]; got != st.want {
				t.Errorf("after %q: cmd=%s, want %s", st.args, got, st.want)
			}
		}
		// a pipeline: the last of its commands
		other.write(encode("GET", "k") + encode("INCR", "n") + encode("STRLEN", "k"))
		for range 3 {
			other.read()
		}
		if got := clientLine(t, c.Client(), id)["cmd"]; got != "strlen" {
			t.Errorf("after a pipeline: cmd=%s, want strlen", got)
		}
		if vals := ownInfo(t, other); vals["cmd"] != "client|info" {
			t.Errorf("CLIENT INFO of itself: cmd=%s, want client|info", vals["cmd"])
		}
	})

	t.Run("go-redis", func(t *testing.T) {
		// go-redis parses CLIENT INFO field by field.
		info, err := c.Client().ClientInfo(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		if info.LastCmd != "client|info" || info.Flags != 0 || info.Resp != 2 || info.User != "default" || info.Multi != -1 {
			t.Errorf("go-redis read cmd %q, flags %v, resp %d, user %q, multi %d", info.LastCmd, info.Flags, info.Resp, info.User, info.Multi)
		}
	})
}
