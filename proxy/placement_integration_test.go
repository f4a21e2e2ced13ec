package proxy_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/router"

	"github.com/reshard/reshard/internal/proxytest"
)

// placementCorpus returns distinct keys that exercise the slot function:
// random binary keys (braces made common so tags appear by chance), hash
// tags shared by many keys, empty tags "{}" (which Redis hashes as the
// whole key), nested and unbalanced braces. The seed is fixed so a failure
// can be replayed.
func placementCorpus() []string {
	rng := rand.New(rand.NewPCG(20240601, 7))
	seen := map[string]bool{}
	var out []string
	add := func(k string) {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	for i := 0; i < 3500; i++ {
		b := make([]byte, rng.IntN(48)) // the empty key is a key too
		for j := range b {
			switch rng.IntN(10) {
			case 0:
				b[j] = '{'
			case 1:
				b[j] = '}'
			default:
				b[j] = byte(rng.IntN(256))
			}
		}
		add(string(b))
	}
	for i := 0; i < 800; i++ {
		add(fmt.Sprintf("{user:%d}:field:%d", i%40, i))
	}
	for i := 0; i < 400; i++ {
		add(fmt.Sprintf("{}key:%d", i))
		add(fmt.Sprintf("{}{tag%d}", i))
	}
	for i := 0; i < 200; i++ {
		add(fmt.Sprintf("{{tag%d}}", i))
		add(fmt.Sprintf("a{b%d}{c}", i))
		add(fmt.Sprintf("{unbalanced%d", i))
		add(fmt.Sprintf("unbalanced%d}", i))
		add(fmt.Sprintf("}{x%d}", i))
	}
	return out
}

func TestIntegrationPlacement(t *testing.T) {
	corpus := placementCorpus()
	if len(corpus) < 5000 {
		t.Fatalf("corpus has %d keys, want at least 5000", len(corpus))
	}
	tests := []struct {
		name   string
		shards int
		ranges [][]router.Range
	}{
		{name: "even split", shards: 3},
		{name: "uneven split", shards: 3, ranges: [][]router.Range{
			{{From: 0, To: 99}},
			{{From: 100, To: 16000}, {From: 16300, To: 16383}},
			{{From: 16001, To: 16299}},
		}},
		{name: "interleaved ranges", shards: 4, ranges: [][]router.Range{
			{{From: 0, To: 1}, {From: 8000, To: 8191}},
			{{From: 2, To: 4095}},
			{{From: 4096, To: 7999}, {From: 12000, To: 16383}},
			{{From: 8192, To: 11999}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := proxytest.Start(t, proxytest.Options{Shards: tt.shards, Ranges: tt.ranges})
			ctx := t.Context()
			p := c.Client().Pipeline()
			for _, k := range corpus {
				p.Set(ctx, k, k, 0)
			}
			cmds, err := p.Exec(ctx)
			if err != nil {
				t.Fatalf("SET through the proxy: %v", err)
			}
			for i, cmd := range cmds {
				if err := cmd.Err(); err != nil {
					t.Fatalf("SET %q: %v", corpus[i], err)
				}
			}

			owned := make([]int, tt.shards)
			for _, k := range corpus {
				owned[c.Table.ShardOf([]byte(k))]++
			}
			for i, sh := range directClients(c) {
				if owned[i] == 0 {
					t.Errorf("shard %d owns no key of the corpus; the corpus does not test it", i)
				}
				n, err := sh.DBSize(ctx).Result()
				if err != nil {
					t.Fatal(err)
				}
				if got, want := n, int64(owned[i]); got != want {
					t.Errorf("shard %d DBSIZE = %d, want %d", i, got, want)
				}
				p := sh.Pipeline()
				gets := make([]*redis.StringCmd, len(corpus))
				for j, k := range corpus {
					gets[j] = p.Get(ctx, k)
				}
				p.Exec(ctx) // per-key errors (redis.Nil) are checked below
				wrong := 0
				for j, k := range corpus {
					mine := c.Table.ShardOf([]byte(k)) == i
					got, err := gets[j].Result()
					switch {
					case mine && (err != nil || got != k):
						wrong++
						if wrong <= 5 {
							t.Errorf("shard %d (owner of slot %d): GET %q = %q, %v; want the key's value", i, router.Slot([]byte(k)), k, got, err)
						}
					case !mine && err != redis.Nil:
						wrong++
						if wrong <= 5 {
							t.Errorf("shard %d holds %q (slot %d, owner shard %d)", i, k, router.Slot([]byte(k)), c.Table.ShardOf([]byte(k)))
						}
					}
				}
				if wrong > 5 {
					t.Errorf("shard %d: %d misplaced keys in all", i, wrong)
				}
			}
		})
	}
}
