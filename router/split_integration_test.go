package router

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reshard/reshard/internal/redisproc"
	"github.com/reshard/reshard/internal/redistest"
)

// updateSplit regenerates testdata/redis-cli-create-split.txt from the
// installed redis-cli (64 cluster-enabled servers; takes a few seconds):
//
//	go test ./router -run TestEvenSplitMatchesRedisCli -update-split
var updateSplit = flag.Bool("update-split", false, "regenerate "+splitGolden+" from redis-cli")

const splitGolden = "testdata/redis-cli-create-split.txt"

// startClusterNode starts an empty cluster-enabled redis-server. The bus
// port is chosen explicitly: by default it is port+10000, which is past
// 65535 for ports above 55535 and may be taken by someone else.
func startClusterNode(t *testing.T) *redistest.Server {
	t.Helper()
	redistest.Require(t)
	busPort, err := redisproc.FreePort()
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	return redistest.Start(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
		"--cluster-port", strconv.Itoa(busPort))
}

var masterLine = regexp.MustCompile(`Master\[(\d+)\] -> Slots (\d+) - (\d+)`)

// redisCliSplit runs `redis-cli --cluster create` on the given nodes,
// answers "no" to its confirmation and returns the slot ranges it proposed.
// Nothing is written to the nodes.
func redisCliSplit(t *testing.T, bin string, addrs []string) []Range {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--cluster", "create"}, addrs...)...)
	cmd.Stdin = strings.NewReader("no\n")
	out, _ := cmd.CombinedOutput() // the exit status of a declined create varies by version
	var got []Range
	for _, m := range masterLine.FindAllStringSubmatch(string(out), -1) {
		from, _ := strconv.Atoi(m[2])
		to, _ := strconv.Atoi(m[3])
		got = append(got, Range{uint16(from), uint16(to)})
	}
	if len(got) != len(addrs) {
		t.Fatalf("redis-cli --cluster create with %d nodes: got %d master lines, output:\n%s", len(addrs), len(got), out)
	}
	return got
}

// readSplitGolden returns, per shard count, the last slot of every shard.
func readSplitGolden(t *testing.T) map[int][]int {
	t.Helper()
	f, err := os.Open(splitGolden)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	golden := map[int][]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		nText, lastsText, ok := strings.Cut(line, ":")
		n, err := strconv.Atoi(nText)
		if !ok || err != nil {
			t.Fatalf("%s: bad line %q", splitGolden, line)
		}
		for _, f := range strings.Fields(lastsText) {
			v, err := strconv.Atoi(f)
			if err != nil {
				t.Fatalf("%s: bad line %q", splitGolden, line)
			}
			golden[n] = append(golden[n], v)
		}
		if len(golden[n]) != n {
			t.Fatalf("%s: line for %d shards has %d values", splitGolden, n, len(golden[n]))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return golden
}

func formatSplitGolden(splits map[int][]Range, maxN int) string {
	var b strings.Builder
	b.WriteString("# Last slot of each master proposed by `redis-cli --cluster create` with N\n")
	b.WriteString("# masters (redis-cli refuses fewer than 3). Format: N: last0 last1 ...\n")
	b.WriteString("# Regenerate: go test ./router -run TestEvenSplitMatchesRedisCli -update-split\n")
	for n := 3; n <= maxN; n++ {
		fmt.Fprintf(&b, "%d:", n)
		for _, r := range splits[n] {
			fmt.Fprintf(&b, " %d", r.To)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// TestEvenSplitMatchesRedisCli asks the real redis-cli for its split and
// compares it with evenRanges (and so checks that the golden file the unit
// tests rely on still describes redis-cli). By default it covers 3 to 8
// shards; -update-split covers 3 to 64 and rewrites the golden file.
func TestEvenSplitMatchesRedisCli(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server processes")
	}
	bin, err := exec.LookPath("redis-cli")
	if err != nil {
		if os.Getenv("REQUIRE_REDIS") == "1" {
			t.Fatalf("REQUIRE_REDIS=1 but redis-cli is missing: %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
	maxN := 8
	if *updateSplit {
		maxN = 64
	}
	addrs := make([]string, maxN)
	for i := range addrs {
		addrs[i] = startClusterNode(t).Addr()
	}
	golden := readSplitGolden(t)
	splits := map[int][]Range{}
	for n := 3; n <= maxN; n++ {
		cli := redisCliSplit(t, bin, addrs[:n])
		splits[n] = cli
		if got := evenRanges(n); !equalRanges(got, cli) {
			t.Errorf("%d shards: evenRanges = %v, redis-cli = %v", n, got, cli)
		}
		if *updateSplit {
			continue
		}
		if want := golden[n]; !equalLasts(cli, want) {
			t.Errorf("%d shards: redis-cli = %v, %s says last slots %v", n, cli, splitGolden, want)
		}
	}
	if *updateSplit {
		path := filepath.FromSlash(splitGolden)
		if err := os.WriteFile(path, []byte(formatSplitGolden(splits, maxN)), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", path)
	}
}

func equalRanges(a, b []Range) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func equalLasts(rs []Range, lasts []int) bool {
	if len(rs) != len(lasts) {
		return false
	}
	for i, r := range rs {
		if int(r.To) != lasts[i] {
			return false
		}
	}
	return true
}
