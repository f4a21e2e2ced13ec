package compat

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The go-redis suite: its clients, the scenario list, TestGoRedis and the
// recording of steps; the scenarios are in gocompat_types_test.go and
// gocompat_features_test.go.

// goScenario is one use of go-redis that an application could make. run
// records every reply it reads in steps; it returns an error only when the
// scenario itself cannot go on (a timeout, a broken connection), not for
// error replies, which are recorded and compared like any value.
type goScenario struct {
	name string
	run  func(ctx context.Context, c redis.UniversalClient, s *steps) error
}

// goTarget is a go-redis client as an application would create it: default
// options but the address (and the protocol, for the RESP2 target).
type goTarget struct {
	name    string
	cluster bool // a cluster-mode client; its reference is a one-node Redis Cluster
	connect func(addr string) redis.UniversalClient
}

var goScenarios = []goScenario{
	{"strings", goStrings},
	{"hashes", goHashes},
	{"lists", goLists},
	{"sets", goSets},
	{"sorted-sets", goSortedSets},
	{"streams", goStreams},
	{"transactions", goTransactions},
	{"watch", goWatch},
	{"scripts", goScripts},
	{"blocking", goBlocking},
	{"pipelines", goPipelines},
	{"server", goServer},
	{"pubsub", goPubSub},
	{"scan", goScan},
}

// goTargets: the standalone client as applications create it (RESP3 where
// the server accepts HELLO 3), the same with RESP2, and the cluster client
// given the proxy as its only seed node.
var goTargets = []goTarget{
	{name: "client", connect: func(addr string) redis.UniversalClient {
		return redis.NewClient(&redis.Options{Addr: addr})
	}},
	{name: "client-resp2", connect: func(addr string) redis.UniversalClient {
		return redis.NewClient(&redis.Options{Addr: addr, Protocol: 2})
	}},
	{name: "cluster-client", cluster: true, connect: func(addr string) redis.UniversalClient {
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{addr}})
	}},
}

// TestGoRedis runs every scenario with each go-redis client against its
// reference server, then against the proxy, and requires the same steps.
func TestGoRedis(t *testing.T) {
	r := startRig(t)
	var standalone map[string][]byte // the reference of the standalone client
	for _, tg := range goTargets {
		want := runGoTarget(t, r, tg, r.reference(tg.cluster), false)
		if !tg.cluster && standalone == nil {
			standalone = want
		}
		got := runGoTarget(t, r, tg, r.proxy.Addr, true)
		for _, sc := range goScenarios {
			w := want[sc.name]
			if got[sc.name] == nil || w == nil {
				continue // the scenario failed to run; reported already
			}
			if tg.cluster && standalone[sc.name] != nil {
				var err error
				if w, err = crossSlotFallback(w, standalone[sc.name]); err != nil {
					t.Fatalf("%s/%s: %v", tg.name, sc.name, err)
				}
			}
			if d := diffJSON(w, got[sc.name]); d != "" {
				t.Errorf("%s/%s: the proxy differs from the reference at %s", tg.name, sc.name, d)
			}
		}
	}
}

// runGoTarget runs the scenarios with one client of addr, each on an empty
// keyspace, and returns each scenario's steps as JSON.
func runGoTarget(t *testing.T, r *rig, tg goTarget, addr string, onProxy bool) map[string][]byte {
	t.Helper()
	where := "reference"
	if onProxy {
		where = "proxy"
	}
	c := tg.connect(addr)
	defer c.Close()
	out := map[string][]byte{}
	var perShard spread
	for _, sc := range goScenarios {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		if err := r.flush(ctx, addr); err != nil {
			cancel()
			t.Fatalf("%s on %s: %v", tg.name, where, err)
		}
		var s steps
		start := time.Now()
		err := sc.run(ctx, c, &s)
		if err == nil && onProxy {
			var n []int64
			if n, err = r.shardKeys(ctx); err == nil {
				perShard.add(n)
			}
		}
		cancel()
		if err != nil {
			t.Errorf("%s/%s on %s: %v (after %d steps)", tg.name, sc.name, where, err, len(s.list))
			continue
		}
		b, err := json.Marshal(s.list)
		if err != nil {
			t.Fatalf("%s/%s on %s: %v", tg.name, sc.name, where, err)
		}
		if testing.Verbose() {
			t.Logf("%s/%s on %s: %d steps in %v", tg.name, sc.name, where, len(s.list), time.Since(start).Round(time.Millisecond))
		}
		out[sc.name] = b
	}
	if onProxy {
		perShard.check(t, tg.name)
	}
	return out
}

// steps records what a scenario read: one step per command, or a named
// observation.
type steps struct{ list []step }

type step struct {
	Cmd string `json:"cmd"`
	Val any    `json:"val"`
	Err string `json:"err,omitempty"`
}

// add records commands that have run: their arguments and value, or error.
func (s *steps) add(cmds ...redis.Cmder) {
	for _, c := range cmds {
		s.list = append(s.list, step{Cmd: argText(c), Val: cmdVal(c), Err: errText(c.Err())})
	}
}

// sorted records a command whose reply is an unordered collection (SMEMBERS,
// SINTER, HKEYS): its strings sorted.
func (s *steps) sorted(c redis.Cmder) {
	v, _ := cmdVal(c).([]string)
	v = slices.Clone(v)
	slices.Sort(v)
	s.list = append(s.list, step{Cmd: argText(c), Val: v, Err: errText(c.Err())})
}

// note records an observation that is not one command's reply.
func (s *steps) note(what string, v any) {
	s.list = append(s.list, step{Cmd: what, Val: v})
}

// noteErr records the outcome of a call that returns only an error (a
// transaction, a pipeline, WATCH).
func (s *steps) noteErr(what string, err error) {
	s.list = append(s.list, step{Cmd: what, Val: err == nil, Err: errText(err)})
}

// cmdVal is the command's Val(): every go-redis command type has one, with
// its own result type, and Cmder does not declare it.
func cmdVal(c redis.Cmder) any {
	if c.Err() != nil {
		return nil
	}
	m := reflect.ValueOf(c).MethodByName("Val")
	if !m.IsValid() {
		return nil
	}
	return m.Call(nil)[0].Interface()
}

// argText is the command as redis-cli would show it.
func argText(c redis.Cmder) string {
	return strings.TrimSuffix(fmt.Sprintln(c.Args()...), "\n")
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// keys returns prefix0 .. prefix(n-1); with 3 shards, 12 such keys almost
// surely cover every shard, which the spread check confirms.
func keys(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}
