package proxy_test

import (
	"strings"
	"testing"

	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/internal/redistest"
)

// TestIntegrationLookupCache sends the same commands, in several spellings
// and more distinct names than the session's lookup cache holds, to the
// proxy and to a plain redis-server, whole and as one pipeline, and expects
// the same replies: a cached name must never answer for another command,
// and containers (OBJECT ...) must still be told apart by subcommand.
func TestIntegrationLookupCache(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3})
	direct := redistest.Start(t)
	cmds := [][]string{
		{"SET", "k", "v"}, {"get", "k"}, {"GET", "k"}, {"gEt", "k"},
		{"OBJECT", "ENCODING", "k"}, {"OBJECT", "REFCOUNT", "k"}, {"OBJECT", "NOPE", "k"}, {"object", "encoding", "k"},
		{"CLIENT", "SETNAME", "n1"}, {"CLIENT", "GETNAME"}, {"CLIENT", "SETNAME", "n2"}, {"CLIENT", "GETNAME"},
		{"INCR", "n"}, {"incr", "n"}, {"STRLEN", "k"}, {"EXISTS", "k", "n"},
		{"APPEND", "k", "w"}, {"GETX", "k"}, {"get", "k"}, {"SET", "k"}, // arity error
		{"LPUSH", "l", "a"}, {"LLEN", "l"}, {"GET", "l"}, {"TYPE", "l"}, {"type", "k"},
		{strings.Repeat("G", 40), "k"}, {"GET", "k"}, {"SETNX", "k", "x"}, {"get", "k"},
	}
	for round := 0; round < 2; round++ {
		for _, pipelined := range []bool{false, true} {
			p, d := dialRaw(t, c.Addr), dialRaw(t, direct.Addr())
			var got, want []string
			if pipelined {
				for _, cmd := range cmds {
					p.send(cmd...)
					d.send(cmd...)
				}
				for range cmds {
					got = append(got, render(p.read()))
					want = append(want, render(d.read()))
				}
			} else {
				for _, cmd := range cmds {
					got = append(got, p.do(cmd...))
					want = append(want, d.do(cmd...))
				}
			}
			for i := range cmds {
				if got[i] != want[i] {
					t.Errorf("round %d pipelined=%v: %q: proxy %s, redis %s", round, pipelined, cmds[i], got[i], want[i])
				}
			}
		}
	}
}
