package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

const usage = `reshard: a Redis-protocol proxy with live resharding

Usage:
  reshard proxy [flags]   run the proxy (without --shards: on 3 local redis-server shards it starts)
  reshard bench [flags]   generate load against an address and report ops/s and latency
  reshard inspect PATH    what is inside a snapshot directory or an .rdb file
  reshard plan PATH       a slot layout of N shards that balances PATH's data (--shards or --targets)
  reshard restore [flags] a snapshot or .rdb files into a new set of shards (--from, --to or --to-cluster)
  reshard snapshot [flags] a consistent snapshot of a running Redis Cluster (--from-cluster, --to)
  reshard help            this text

Run "reshard COMMAND --help" for the flags of a command.
`

func main() {
	// SIGHUP too: a terminal closed under `make run` must stop the embedded
	// shards as Ctrl-C does, not leave them running without their proxy.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	os.Exit(exitCode(dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr), os.Stderr))
}

// exitCode prints err once and turns it into the process's exit status:
// 0 for success and for --help, which is an answer, not a failure.
func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, pflag.ErrHelp):
		return 0
	default:
		fmt.Fprintln(stderr, "reshard:", err)
		return 2
	}
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "proxy":
		return runProxy(ctx, args[1:], stderr)
	case "bench":
		return runBench(ctx, args[1:], stdout)
	case "inspect":
		return runInspect(ctx, args[1:], stdout)
	case "plan":
		return runPlan(ctx, args[1:], stdout)
	case "restore":
		return runRestore(ctx, args[1:], stdout, stderr)
	case "snapshot":
		return runSnapshot(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

// newLogger builds the process logger; level is debug, info, warn or error.
func newLogger(level, format string) (*zap.Logger, error) {
	cfg, err := loggerConfig(level, format)
	if err != nil {
		return nil, err
	}
	return cfg.Build()
}

// loggerConfig is the configuration of the logger of --log-level and
// --log-format, writing to standard error.
func loggerConfig(level, format string) (zap.Config, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return zap.Config{}, fmt.Errorf("--log-level: %w", err)
	}
	if format != "console" && format != "json" {
		return zap.Config{}, fmt.Errorf("--log-format must be console or json, not %q", format)
	}
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.Encoding = format
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	cfg.DisableStacktrace = true
	cfg.DisableCaller = true
	return cfg, nil
}
