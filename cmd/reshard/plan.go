package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/pflag"

	"github.com/reshard/reshard/migrate"
	"github.com/reshard/reshard/router"
	"github.com/reshard/reshard/snapshot"
)

// plan is a slot layout for n shards and what each would hold.
type plan struct {
	by        string // "bytes", "keys" or "memory": the weight balanced
	ranges    []router.Range
	keys      []int64 // per range
	bytes     []int64
	memory    []int64 // estimated, when rep has it
	mean      float64 // of the weight balanced, per range
	largest   float64 // the heaviest range's weight over the mean
	evenRatio float64 // the same for the even split
}

// makePlan balances rep's slots over n contiguous ranges by bytes, keys
// or memory (rep.SlotWeights: the restore's estimate).
func makePlan(rep snapshot.Report, n int, by string) (plan, error) {
	weights := rep.SlotBytes
	switch by {
	case "bytes":
	case "keys":
		weights = rep.SlotKeys
	case "memory":
		if rep.SlotWeights == nil {
			return plan{}, errors.New("plan: no memory estimate in the report")
		}
		weights = rep.SlotWeights
	default:
		return plan{}, fmt.Errorf("--by must be bytes, keys or memory, not %q", by)
	}
	ranges, err := router.Balance(weights, n)
	if err != nil {
		return plan{}, err
	}
	even, err := router.Balance(make([]int64, router.NumSlots), n) // no weight: the even split
	if err != nil {
		return plan{}, err
	}
	sum := func(ws []int64, r router.Range) (s int64) {
		for slot := int(r.From); slot <= int(r.To); slot++ {
			s += ws[slot]
		}
		return s
	}
	p := plan{by: by, ranges: ranges}
	var total int64
	for _, r := range ranges {
		p.keys = append(p.keys, sum(rep.SlotKeys, r))
		p.bytes = append(p.bytes, sum(rep.SlotBytes, r))
		if rep.SlotWeights != nil {
			p.memory = append(p.memory, sum(rep.SlotWeights, r))
		}
		total += sum(weights, r)
	}
	p.mean = float64(total) / float64(n)
	ratio := func(rs []router.Range) float64 {
		if total == 0 {
			return 1
		}
		var most int64
		for _, r := range rs {
			most = max(most, sum(weights, r))
		}
		return float64(most) / p.mean
	}
	p.largest, p.evenRatio = ratio(ranges), ratio(even)
	return p, nil
}

// spec is the plan as a topology spec on targets, or with TARGETn
// placeholders when none are given (each with replicas REPLICAn.1 ...).
func (p plan) spec(targets []string, replicas int) string {
	parts := make([]string, len(p.ranges))
	for i, r := range p.ranges {
		addr := fmt.Sprintf("TARGET%d", i+1)
		for j := range replicas {
			addr += fmt.Sprintf("+REPLICA%d.%d", i+1, j+1)
		}
		if targets != nil {
			addr = targets[i]
		}
		parts[i] = router.FormatSpec([]router.Shard{{Addr: addr, Ranges: []router.Range{r}}})
	}
	return strings.Join(parts, ",")
}

func runPlan(ctx context.Context, args []string, stdout io.Writer) error {
	var n, top, replicas, prefixes int
	var by, targets string
	fs := pflag.NewFlagSet("reshard plan", pflag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.IntVar(&n, "shards", 0, "number of shards to plan for (or give --targets)")
	fs.StringVar(&targets, "targets", "", "the new shards' addresses (HOST:PORT[+REPLICA...],...): the plan is printed as a spec on them, ready for reshard restore --to or PROXY RESHARD")
	fs.StringVar(&by, "by", "bytes", "balance the shards' RDB bytes (bytes), their key counts (keys), or the memory Redis will use for their keys (memory: the restore's estimate, calibrated against Redis 7's own accounting)")
	fs.IntVar(&replicas, "replicas", 0, "replicas per shard: placeholders in the spec (TARGETn+REPLICAn.1...), or the number each of --targets must list; the memory figure is per node")
	fs.IntVar(&top, "top", 10, "list this many of the largest keys (0: none)")
	fs.IntVar(&prefixes, "prefixes", 10, "list this many of the key prefixes (up to the first ':') holding the most bytes (0: none)")
	var s3f s3Flags
	s3f.add(fs)
	var from string
	fs.StringVar(&from, "from", "", "the snapshot or RDB to plan from, instead of the PATH argument (as reshard restore --from)")
	fs.Usage = func() {
		fmt.Fprintf(stdout, "Usage: reshard plan PATH|--from PATH (--shards N | --targets SPEC) [flags]\n\nPATH is a snapshot directory (STATE_DIR/snapshots/ID) or an RDB file, or the same in\nobject storage (s3://BUCKET/PREFIX/ID, s3://BUCKET/KEY.rdb); it is read once, streaming.\n\nFlags:\n%s", fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	path := from
	switch {
	case from == "" && fs.NArg() == 1:
		path = fs.Arg(0)
	case from != "" && fs.NArg() == 0:
	default:
		fs.Usage()
		return errors.New("plan: give one PATH (or --from PATH)")
	}
	var addrs []string
	if targets != "" {
		for _, a := range strings.Split(targets, ",") {
			addrs = append(addrs, strings.TrimSpace(a))
		}
		if n != 0 && n != len(addrs) {
			return fmt.Errorf("--shards %d but --targets lists %d", n, len(addrs))
		}
		n = len(addrs)
		shards, err := router.ParseShardArgs(addrs) // checked now, not when pasted
		if err != nil {
			return fmt.Errorf("--targets: %w", err)
		}
		for _, sh := range shards {
			if fs.Changed("replicas") && len(sh.Replicas) != replicas {
				return fmt.Errorf("--replicas %d but target %s lists %d (give them as PRIMARY+REPLICA)", replicas, sh.Addr, len(sh.Replicas))
			}
		}
		if len(shards) > 0 {
			replicas = len(shards[0].Replicas)
		}
	}
	if n < 1 {
		return errors.New("plan: give --shards N (1 or more) or --targets")
	}
	if replicas < 0 {
		return errors.New("plan: --replicas must not be negative")
	}
	cfg := snapshot.DefaultInspectConfig()
	cfg.Top, cfg.Prefixes = top, prefixes
	cfg.Weigh = migrate.MemoryEstimate
	var err error
	if cfg.S3, err = s3f.client(ctx, path); err != nil {
		return err
	}
	rep, err := snapshot.Inspect(path, cfg)
	if err != nil {
		return err
	}
	p, err := makePlan(rep, n, by)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	defer tw.Flush()
	w := func(format string, a ...any) { fmt.Fprintf(tw, format, a...) }
	w("%s: %d keys, %d bytes of RDB; %d shards balanced by %s\n\n", rep.Path, rep.Total.Keys, rep.Total.Bytes, n, by)
	w("spec:\n  %s\n\n", p.spec(addrs, replicas))
	w("  SHARD\tSLOTS\tKEYS\tBYTES\tEST. MEMORY\tOF MEAN\n")
	var memory int64
	for i, r := range p.ranges {
		weight := float64(p.bytes[i])
		switch by {
		case "keys":
			weight = float64(p.keys[i])
		case "memory":
			weight = float64(p.memory[i])
		}
		of := 1.0
		if p.mean > 0 {
			of = weight / p.mean
		}
		memory += p.memory[i]
		w("  %d\t%s\t%d\t%d\t%s\t%.1f%%\n", i+1, router.Shard{Ranges: []router.Range{r}}.RangeSpec(), p.keys[i], p.bytes[i], humanSize(p.memory[i]), 100*of)
	}
	w("\nlargest shard: %.1f%% of the mean (an even split of the slots: %.1f%%)\n", 100*p.largest, 100*p.evenRatio)
	w("estimated memory: %s in all", humanSize(memory))
	if replicas > 0 {
		w(", %s with %d replica(s) per shard (%d nodes)", humanSize(memory*int64(1+replicas)), replicas, n*(1+replicas))
	}
	w("; each node also needs Redis's own baseline (a few MB) and room to grow\n")
	if len(rep.Prefixes) > 0 {
		w("\nkey prefixes with the most bytes:\n")
		snapshot.WritePrefixes(tw, rep.Prefixes, rep.Total.Bytes)
	}
	if len(rep.Largest) > 0 {
		w("\nlargest keys:\n  BYTES\tSLOT\tTYPE\tKEY\n")
		for _, k := range rep.Largest {
			w("  %d\t%d\t%s\t%q\n", k.Bytes, k.Slot, k.Type, k.Key)
		}
	}
	return nil
}

// humanSize prints a byte count with a binary unit.
func humanSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
