package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/pflag"

	"github.com/reshard/reshard/bench"
)

// runBench is `reshard bench`: one load against --addr, or with --compare
// the same load against --addr and then ADDR, with the ratio of throughputs.
// A report measured before an interruption (Ctrl-C) is still printed.
func runBench(ctx context.Context, args []string, stdout io.Writer) error {
	cfg := bench.DefaultConfig()
	var compare string
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
	fs.Usage = func() {
		fmt.Fprintf(stdout, "Usage: reshard bench [flags]\n\nFlags:\n%s", fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
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
