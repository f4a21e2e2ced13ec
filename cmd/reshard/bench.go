package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/pflag"

	"github.com/reshard/reshard/bench"
)

// runBench is `reshard bench`: one load against --addr, or with --compare
// the same load against --addr and then ADDR, with the ratio of throughputs.
// A report measured before an interruption (Ctrl-C) is still printed.
func runBench(ctx context.Context, args []string, stdout io.Writer) error {
	cfg := bench.DefaultConfig()
	var compare, plot string
	var targets []string
	topt := bench.DefaultTimelineOptions()
	warmup := 2 * time.Second
	fs := pflag.NewFlagSet("reshard bench", pflag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.StringVar(&cfg.Addr, "addr", cfg.Addr, "address to load (host:port); with --compare, the proxy")
	fs.IntVar(&cfg.Conns, "conns", cfg.Conns, "TCP connections, one goroutine each")
	fs.IntVar(&cfg.Pipeline, "pipeline", cfg.Pipeline, "commands per batch on each connection (1: request/response)")
	fs.IntVar(&cfg.Keyspace, "keyspace", cfg.Keyspace, "number of distinct keys, picked uniformly")
	fs.Float64Var(&cfg.ReadRatio, "read-ratio", cfg.ReadRatio, "fraction of commands that are GET (0..1); the rest are SET")
	fs.IntVar(&cfg.ValueSize, "value-size", cfg.ValueSize, "SET value size in bytes")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "run time; also the limit of a run with --requests")
	fs.Int64Var(&cfg.Requests, "requests", cfg.Requests, "total commands (0: until --duration)")
	fs.StringVar(&cfg.KeyPrefix, "key-prefix", cfg.KeyPrefix, "prefix of every key written or read")
	fs.Int64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the key and command sequence")
	fs.StringVar(&cfg.Password, "password", cfg.Password, "AUTH password (visible in the process list)")
	fs.StringVar(&compare, "compare", "", "also run against this address (a direct redis-server) and print the ratio")
	fs.StringSliceVar(&targets, "reshard", nil, "run PROXY RESHARD onto these targets (addr or addr=ranges, comma-separated) under the load and report the cutover window")
	fs.DurationVar(&warmup, "warmup", warmup, "with --reshard: load time before the reshard starts")
	fs.DurationVar(&topt.Tail, "tail", topt.Tail, "with --reshard: load time after the reshard ends (--duration still bounds the run)")
	fs.DurationVar(&topt.Window, "window", topt.Window, "with --reshard: width of one point of the latency series")
	fs.Float64Var(&topt.Rate, "rate", topt.Rate, "with --reshard: total commands per second, paced per connection (0: flat out)")
	fs.DurationVar(&topt.Margin, "margin", topt.Margin, "with --reshard: widen the cutover window by this on both sides")
	fs.StringVar(&plot, "plot", "", "with --reshard: write the latency-over-time plot to this PNG file")
	fs.Usage = func() {
		fmt.Fprintf(stdout, "Usage: reshard bench [flags]\n\nFlags:\n%s", fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if len(targets) > 0 {
		if compare != "" {
			return fmt.Errorf("--reshard and --compare exclude each other")
		}
		return benchReshard(ctx, cfg, topt, targets, warmup, plot, stdout)
	}
	if compare == "" {
		res, err := bench.Run(ctx, cfg)
		if res.Latency != nil {
			fmt.Fprint(stdout, res)
		}
		return err
	}
	cmp, err := bench.Compare(ctx, cfg, cfg.Addr, compare)
	fmt.Fprint(stdout, cmp)
	return err
}

// benchReshard runs the load with a timeline, starts the reshard after
// warmup, and prints the whole-run and cutover-window figures.
func benchReshard(ctx context.Context, cfg bench.Config, topt bench.TimelineOptions, targets []string, warmup time.Duration, plot string, stdout io.Writer) error {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	phases := make(chan bench.Phase, 16)
	type outcome struct {
		status string
		err    error
	}
	done := make(chan outcome, 1)
	go func() { // owned here: ends with rctx at the latest
		t := time.NewTimer(warmup)
		defer t.Stop()
		select {
		case <-t.C:
		case <-rctx.Done():
			close(phases)
			done <- outcome{"", rctx.Err()}
			return
		}
		st, err := bench.Reshard(rctx, bench.ReshardOptions{Addr: cfg.Addr, Password: cfg.Password, Targets: targets}, phases)
		done <- outcome{st, err}
	}()
	res, err := bench.RunTimeline(rctx, cfg, topt, phases)
	cancel() // a reshard still polling past --duration is abandoned (the proxy goes on)
	o := <-done
	if res.Latency != nil {
		fmt.Fprint(stdout, res)
		if f := bench.ParseStatus(o.status); o.status != "" {
			fmt.Fprintf(stdout, "  reshard     state=%s elapsed_ms=%s pause_us=%s keys_copied=%s\n", f["state"], f["elapsed_ms"], f["pause_us"], f["keys_copied"])
		}
		if plot != "" {
			if perr := res.SavePlot(plot, bench.PlotOptions{}); perr != nil {
				return perr
			}
			fmt.Fprintf(stdout, "  plot        %s\n", plot)
		}
	}
	if err != nil {
		return err
	}
	if o.err != nil && !errors.Is(o.err, context.Canceled) {
		return o.err
	}
	return nil
}
