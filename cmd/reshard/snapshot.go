package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/reshard/reshard/migrate"
	"github.com/reshard/reshard/router"
	"github.com/reshard/reshard/snapshot"
)

// runSnapshot is `reshard snapshot --from-cluster HOST:PORT --to DIR`: a
// consistent snapshot of a running Redis Cluster, every master captured
// as the proxy captures its shards, the cut taken by CLIENT PAUSE WRITE on
// every master at once (snapshot.NoBarrier, RequireShardPause), in the
// proxy's snapshot format, so it restores with resize anywhere.
func runSnapshot(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var from, to, name, username, password, logLevel, logFormat string
	var s3f s3Flags
	fs := pflag.NewFlagSet("reshard snapshot", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&from, "from-cluster", "", "a node (HOST:PORT) of the Redis Cluster to snapshot: every master is captured")
	fs.StringVar(&to, "to", "", "where the snapshot goes: a directory (the snapshot is DIR/ID), or s3://BUCKET/PREFIX")
	fs.StringVar(&name, "name", "", "a name recorded in the manifest (letters, digits, '.', '_', '-')")
	fs.StringVar(&username, "user", "", "ACL user for AUTH on the cluster's nodes")
	fs.StringVar(&password, "password", "", "AUTH password for the cluster's nodes (visible in the process list: prefer "+envShardPassword+"); never logged")
	s3f.add(fs)
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&logFormat, "log-format", "console", "log format: console or json (one JSON object per line)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: reshard snapshot --from-cluster HOST:PORT --to DIR|s3://BUCKET/PREFIX [flags]\n\nFlags:\n%s", fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	secretFromEnv(fs, "password", envShardPassword, &password)
	if from == "" || to == "" {
		fs.Usage()
		return errors.New("snapshot: --from-cluster and --to are required")
	}
	log, err := newLogger(logLevel, logFormat)
	if err != nil {
		return err
	}
	defer log.Sync()

	rc := migrate.DefaultRestoreConfig()
	rc.Username, rc.Password = username, password
	shards, err := migrate.ClusterTargets(ctx, rc, from)
	if err != nil {
		return fmt.Errorf("--from-cluster %s: %w", from, err)
	}
	table, err := router.NewTable(0, shards)
	if err != nil {
		return err
	}
	c, err := s3f.client(ctx, to)
	if err != nil {
		return err
	}
	store, err := snapshot.OpenStore(to, c, os.TempDir())
	if err != nil {
		return fmt.Errorf("--to: %w", err)
	}
	cfg := snapshot.DefaultJobConfig()
	cfg.Store, cfg.Table, cfg.Name = store, table, name
	cfg.Barrier, cfg.RequireShardPause = snapshot.NoBarrier{}, true
	cfg.Username, cfg.Password = username, password
	cfg.Logger = log
	job, err := snapshot.StartJob(ctx, cfg)
	if err != nil {
		return err
	}
	if err := job.Wait(ctx); err != nil {
		return err
	}
	st := job.Status()
	log.Info("cluster snapshot done", zap.String("id", st.ID), zap.String("dir", st.Dir))
	fmt.Fprintf(stdout, "%s\n  %d masters, %d keys at the cut, %d bytes; writes paused %d µs\n", st.Dir, st.Shards, st.Keys, st.Bytes, st.PauseUS)
	return nil
}
