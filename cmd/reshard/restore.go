package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/reshard/reshard/migrate"
	"github.com/reshard/reshard/router"
)

// runRestore is `reshard restore`: restore a snapshot directory or .rdb
// files into a target topology. The report goes to stdout; progress goes to
// stderr, as a bar on a terminal and as log lines otherwise.
func runRestore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := migrate.DefaultRestoreConfig()
	var to, logLevel, logFormat string
	fs := pflag.NewFlagSet("reshard restore", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringSliceVar(&cfg.Sources, "from", nil, "what to restore: a snapshot directory (STATE_DIR/snapshots/ID) or .rdb files, comma-separated; or the same in object storage, s3://BUCKET/PREFIX/ID or s3://BUCKET/KEY.rdb")
	var s3f s3Flags
	s3f.add(fs)
	var toCluster string
	fs.StringVar(&toCluster, "to-cluster", "", "restore into the Redis Cluster this node (HOST:PORT) belongs to: each key to the master owning its slot, by the cluster's slot map (instead of --to)")
	fs.StringVar(&to, "to", "", "target topology spec: HOST:PORT[=RANGES],... (RANGES: A-B or A, joined by /); without ranges the slots are split evenly; a shard that a reshard proxy serves is refused")
	fs.IntVar(&cfg.DB, "db", cfg.DB, "source database to restore (-1: the only one that holds keys)")
	fs.BoolVar(&cfg.Replace, "replace", cfg.Replace, "overwrite keys and function libraries that exist on the targets")
	fs.BoolVar(&cfg.Flush, "flush", cfg.Flush, "empty every target (FLUSHALL) once the checks pass, before writing")
	fs.BoolVar(&cfg.AllowDuplicates, "allow-duplicates", cfg.AllowDuplicates, "let a key be in more than one source, the last one's value winning (refused by default)")
	fs.BoolVar(&cfg.DryRun, "dry-run", cfg.DryRun, "run every check and print what each target would receive; write nothing")
	fs.BoolVar(&cfg.Verify, "verify", cfg.Verify, "afterwards compare key counts and a random sample of keys with the sources")
	fs.IntVar(&cfg.VerifySample, "verify-sample", cfg.VerifySample, "keys compared by --verify (-1: all)")
	sizeVar(fs, &cfg.BigKeyBytes, "big-key-bytes", cfg.BigKeyBytes, "values larger than this (bytes in the RDB) are written in chunks of commands, not one RESTORE")
	fs.IntVar(&cfg.Window, "window", cfg.Window, "commands in flight per connection")
	fs.IntVar(&cfg.ConnsPerTarget, "conns", cfg.ConnsPerTarget, "pipelined connections per target")
	fs.StringVar(&cfg.Username, "user", cfg.Username, "ACL user for AUTH on the targets")
	fs.StringVar(&cfg.Password, "password", cfg.Password, "AUTH password for the targets (visible in the process list: prefer "+envShardPassword+"); never logged")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "a target silent this long with commands unanswered has failed")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&logFormat, "log-format", "console", "log format: console or json (one JSON object per line)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: reshard restore --from PATH[,PATH...] (--to SPEC | --to-cluster HOST:PORT) [flags]\n\nFlags:\n%s", fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	secretFromEnv(fs, "password", envShardPassword, &cfg.Password)
	if len(cfg.Sources) == 0 {
		return fmt.Errorf("--from is required")
	}
	var err error
	switch {
	case to == "" && toCluster == "":
		return fmt.Errorf("--to or --to-cluster is required")
	case to != "" && toCluster != "":
		return fmt.Errorf("give --to or --to-cluster, not both")
	case toCluster != "":
		tctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
		cfg.Targets, err = migrate.ClusterTargets(tctx, cfg, toCluster)
		cancel()
		if err != nil {
			return fmt.Errorf("--to-cluster %s: %w", toCluster, err)
		}
		cfg.Cluster = true
	default:
		if cfg.Targets, err = router.ParseSpec(to); err != nil {
			return fmt.Errorf("--to: %w", err)
		}
	}
	if cfg.S3, err = s3f.client(ctx, cfg.Sources...); err != nil {
		return err
	}
	log, err := newLogger(logLevel, logFormat)
	if err != nil {
		return err
	}
	defer log.Sync()
	cfg.Logger = log
	// go-redis logs dial retries on its own; the restore reports what
	// failed, once, through its error.
	redis.SetLogger(quietRedisLog{})

	bar := isTerminal(stderr)
	var mu sync.Mutex
	drawn := false
	if bar {
		cfg.ProgressInterval = 200 * time.Millisecond
	} else {
		cfg.ProgressInterval = 5 * time.Second
	}
	cfg.Progress = func(p migrate.Progress) {
		mu.Lock()
		defer mu.Unlock()
		if bar {
			fmt.Fprintf(stderr, "\r%s", progressBar(p, 30))
			drawn = true
			return
		}
		log.Info("restore progress", zap.String("phase", p.Phase), zap.Int64("keys", p.Keys), zap.Int64("keys_total", p.KeysTotal),
			zap.Int64("bytes", p.Bytes), zap.Int64("bytes_total", p.BytesTotal),
			zap.Float64("keys_per_sec", p.KeysPerSec), zap.Duration("eta", p.ETA.Round(time.Second)))
	}
	rep, err := migrate.Restore(ctx, cfg)
	mu.Lock()
	if drawn {
		fmt.Fprintln(stderr)
	}
	mu.Unlock()
	var ce *migrate.ConfigError
	switch {
	case errors.As(err, &ce):
		return errors.New(ce.Text(restoreFlag))
	case errors.Is(err, migrate.ErrPreflight):
		// refused: nothing was written, and the plan is no plan
		return err
	}
	// the error goes out once, as every command's does (main), not also
	// as the report's last line
	rep.Err = ""
	if werr := rep.WriteText(stdout); werr != nil && err == nil {
		err = werr
	}
	return err
}

// restoreFlag is the flag of `reshard restore` that sets a RestoreConfig
// field, for messages.
func restoreFlag(field string) string {
	flags := map[string]string{
		"Sources": "--from", "Targets": "--to", "DB": "--db", "Replace": "--replace", "Flush": "--flush",
		"VerifySample": "--verify-sample", "BigKeyBytes": "--big-key-bytes", "Window": "--window",
		"ConnsPerTarget": "--conns", "Timeout": "--timeout",
	}
	if f, ok := flags[field]; ok {
		return f
	}
	return field
}

// isTerminal reports whether w is a character device (a terminal), without
// golang.org/x/term.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressBar renders one line: a bar by bytes, keys, rate and ETA.
func progressBar(p migrate.Progress, width int) string {
	frac := 0.0
	if p.BytesTotal > 0 {
		frac = min(1, float64(p.Bytes)/float64(p.BytesTotal))
	}
	fill := int(frac * float64(width))
	bar := strings.Repeat("=", fill)
	if fill < width {
		bar += ">" + strings.Repeat(" ", width-fill-1)
	}
	eta := "-"
	if p.ETA > 0 {
		eta = p.ETA.Round(time.Second).String()
	}
	return fmt.Sprintf("%-7s [%s] %3.0f%% %d/%d keys %s/%s %.0f keys/s ETA %s   ",
		p.Phase, bar, frac*100, p.Keys, p.KeysTotal, mb(p.Bytes), mb(p.BytesTotal), p.KeysPerSec, eta)
}

type quietRedisLog struct{}

func (quietRedisLog) Printf(context.Context, string, ...any) {}

func mb(n int64) string { return fmt.Sprintf("%.1fMB", float64(n)/(1<<20)) }
