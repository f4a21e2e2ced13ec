package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"

	"github.com/reshard/reshard/router"
	"github.com/reshard/reshard/snapshot"
)

// plan is a slot layout for n shards and what each would hold.
type plan struct {
	by        string // "bytes" or "keys": the weight balanced
	ranges    []router.Range
	keys      []int64 // per range
	bytes     []int64
	mean      float64 // of the weight balanced, per range
	largest   float64 // the heaviest range's weight over the mean
	evenRatio float64 // the same for the even split
}

// makePlan balances rep's slots over n contiguous ranges by bytes or keys.
func makePlan(rep snapshot.Report, n int, by string) (plan, error) {
	weights := rep.SlotBytes
	switch by {
	case "bytes":
	case "keys":
		weights = rep.SlotKeys
	default:
		return plan{}, fmt.Errorf("--by must be bytes or keys, not %q", by)
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
// placeholders when none are given.
func (p plan) spec(targets []string) string {
	parts := make([]string, len(p.ranges))
	for i, r := range p.ranges {
		addr := fmt.Sprintf("TARGET%d", i+1)
		if targets != nil {
			addr = targets[i]
		}
		parts[i] = router.FormatSpec([]router.Shard{{Addr: addr, Ranges: []router.Range{r}}})
	}
	return strings.Join(parts, ",")
}

func runPlan(ctx context.Context, args []string, stdout io.Writer) error {
	var n, top int
	var by, targets string
	fs := pflag.NewFlagSet("reshard plan", pflag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.IntVar(&n, "shards", 0, "number of shards to plan for (or give --targets)")
	fs.StringVar(&targets, "targets", "", "the new shards' addresses (HOST:PORT[+REPLICA...],...): the plan is printed as a spec on them, ready for reshard restore --to or PROXY RESHARD")
	fs.StringVar(&by, "by", "bytes", "balance the shards' RDB bytes (bytes) or their key counts (keys)")
	fs.IntVar(&top, "top", 10, "list this many of the largest keys (0: none)")
	var s3f s3Flags
	s3f.add(fs)
	fs.Usage = func() {
		fmt.Fprintf(stdout, "Usage: reshard plan PATH (--shards N | --targets SPEC) [flags]\n\nPATH is a snapshot directory (STATE_DIR/snapshots/ID) or an RDB file, or the same in\nobject storage (s3://BUCKET/PREFIX/ID, s3://BUCKET/KEY.rdb); it is read once, streaming.\n\nFlags:\n%s", fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("plan: give one PATH")
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
		if _, err := router.ParseShardArgs(addrs); err != nil { // checked now, not when pasted
			return fmt.Errorf("--targets: %w", err)
		}
	}
	if n < 1 {
		return errors.New("plan: give --shards N (1 or more) or --targets")
	}
	cfg := snapshot.DefaultInspectConfig()
	cfg.Top = top
	var err error
	if cfg.S3, err = s3f.client(ctx, fs.Arg(0)); err != nil {
		return err
	}
	rep, err := snapshot.Inspect(fs.Arg(0), cfg)
	if err != nil {
		return err
	}
	p, err := makePlan(rep, n, by)
	if err != nil {
		return err
	}
	w := func(format string, a ...any) { fmt.Fprintf(stdout, format, a...) }
	w("%s: %d keys, %d bytes of RDB; %d shards balanced by %s\n\n", rep.Path, rep.Total.Keys, rep.Total.Bytes, n, by)
	w("spec:\n  %s\n\n", p.spec(addrs))
	w("  SHARD\tSLOTS\tKEYS\tBYTES\tOF MEAN\n")
	for i, r := range p.ranges {
		weight := float64(p.bytes[i])
		if by == "keys" {
			weight = float64(p.keys[i])
		}
		of := 1.0
		if p.mean > 0 {
			of = weight / p.mean
		}
		w("  %d\t%s\t%d\t%d\t%.1f%%\n", i+1, router.Shard{Ranges: []router.Range{r}}.RangeSpec(), p.keys[i], p.bytes[i], 100*of)
	}
	w("\nlargest shard: %.1f%% of the mean (an even split of the slots: %.1f%%)\n", 100*p.largest, 100*p.evenRatio)
	if len(rep.Largest) > 0 {
		w("\nlargest keys:\n  BYTES\tSLOT\tTYPE\tKEY\n")
		for _, k := range rep.Largest {
			w("  %d\t%d\t%s\t%q\n", k.Bytes, k.Slot, k.Type, k.Key)
		}
	}
	return nil
}
