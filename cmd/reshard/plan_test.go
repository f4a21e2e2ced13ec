package main

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math/rand"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/reshard/reshard/internal/redistest"
	"github.com/reshard/reshard/router"
)

// reshard plan on an RDB whose first quarter of slots holds values ten
// times larger: the even split leaves the first shard far above the mean;
// the plan's largest shard is within 5% of it, and with --targets the spec
// parses and covers every slot.
func TestPlanSkewed(t *testing.T) {
	s := redistest.Start(t)
	cl := s.Client()
	pipe := cl.Pipeline()
	rng := rand.New(rand.NewSource(1))
	value := func(n int) string { // random: the RDB cannot compress it
		b := make([]byte, n/2)
		rng.Read(b)
		return hex.EncodeToString(b)
	}
	for tag := range 4000 {
		for j := range 5 {
			k := fmt.Sprintf("{t%d}:%d", tag, j)
			n := 100
			if router.Slot([]byte(k)) < router.NumSlots/4 {
				n = 1000
			}
			pipe.Set(t.Context(), k, value(n), 0)
		}
	}
	if _, err := pipe.Exec(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := cl.Save(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	rdb := filepath.Join(s.Dir(), "dump.rdb")
	targets := redistest.StartN(t, 5)
	var addrs []string
	for _, x := range targets {
		addrs = append(addrs, x.Addr())
	}
	var out bytes.Buffer
	if err := runPlan(t.Context(), []string{rdb, "--targets", strings.Join(addrs, ","), "--top", "3"}, &out); err != nil {
		t.Fatal(err)
	}
	t.Log(out.String())
	m := regexp.MustCompile(`largest shard: ([0-9.]+)% of the mean \(an even split of the slots: ([0-9.]+)%\)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no verdict in:\n%s", out.String())
	}
	planned, _ := strconv.ParseFloat(m[1], 64)
	even, _ := strconv.ParseFloat(m[2], 64)
	if planned > 105 {
		t.Errorf("largest planned shard is %.1f%% of the mean, want at most 105%%", planned)
	}
	if even < 150 {
		t.Errorf("the even split's largest shard is %.1f%% of the mean: the data is not skewed enough to test the plan", even)
	}
	lines := strings.Split(out.String(), "\n")
	var spec string
	for i, l := range lines {
		if l == "spec:" {
			spec = strings.TrimSpace(lines[i+1])
		}
	}
	shards, err := router.ParseSpec(spec)
	if err != nil {
		t.Fatalf("the plan's spec %q: %v", spec, err)
	}
	if _, err := router.NewTable(1, shards); err != nil || len(shards) != 5 {
		t.Fatalf("the plan's spec %q: %d shards, %v", spec, len(shards), err)
	}
	if err := runPlan(t.Context(), []string{rdb, "--shards", "2", "--targets", addrs[0]}, &out); err == nil {
		t.Error("--shards 2 with one target succeeded")
	}
	if err := runPlan(t.Context(), []string{rdb, "--targets", addrs[0], "--replicas", "1"}, &out); err == nil {
		t.Error("--replicas 1 with a target that lists none succeeded")
	}

	// By the memory Redis will use, with a replica each: balanced as well,
	// the spec has the replicas' places, the memory is counted per node.
	out.Reset()
	if err := runPlan(t.Context(), []string{"--from", rdb, "--shards", "5", "--by", "memory", "--replicas", "1"}, &out); err != nil {
		t.Fatal(err)
	}
	t.Log(out.String())
	m = regexp.MustCompile(`largest shard: ([0-9.]+)% of the mean`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no verdict in:\n%s", out.String())
	}
	if planned, _ := strconv.ParseFloat(m[1], 64); planned > 105 {
		t.Errorf("by memory, the largest planned shard is %.1f%% of the mean, want at most 105%%", planned)
	}
	for _, want := range []string{"TARGET1+REPLICA1.1=0-", "+REPLICA5.1=", "with 1 replica(s) per shard (10 nodes)", "key prefixes with the most bytes"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("plan --by memory --replicas 1 lacks %q", want)
		}
	}
}
