package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/pflag"

	"github.com/reshard/reshard/router"
	"github.com/reshard/reshard/snapshot"
)

// runInspect is `reshard inspect PATH`: what a snapshot directory or an RDB
// file holds, as text or JSON.
func runInspect(ctx context.Context, args []string, stdout io.Writer) error {
	cfg := snapshot.DefaultInspectConfig()
	var asJSON bool
	var target string
	fs := pflag.NewFlagSet("reshard inspect", pflag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.IntVar(&cfg.Top, "top", cfg.Top, "list this many of the largest keys (0: none)")
	fs.IntVar(&cfg.Prefixes, "prefixes", cfg.Prefixes, "list this many of the key prefixes (up to the first ':') holding the most bytes (0: none)")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	var s3f s3Flags
	s3f.add(fs)
	fs.StringVar(&target, "target", "", "count keys per slot range of this topology (HOST:PORT[=RANGES],...) instead of the snapshot's own")
	fs.Usage = func() {
		fmt.Fprintf(stdout, "Usage: reshard inspect PATH [flags]\n\nPATH is a snapshot directory (STATE_DIR/snapshots/ID) or an RDB file,\nor the same in object storage (s3://BUCKET/PREFIX/ID, s3://BUCKET/KEY.rdb).\n\nFlags:\n%s", fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch fs.NArg() {
	case 0:
		fs.Usage()
		return errors.New("inspect: no PATH given")
	case 1:
	default:
		return fmt.Errorf("inspect: unexpected argument %q", fs.Arg(1))
	}
	if target != "" {
		shards, err := router.ParseSpec(target)
		if err != nil {
			return fmt.Errorf("--target: %w", err)
		}
		cfg.Target = shards
	}
	var err error
	if cfg.S3, err = s3f.client(ctx, fs.Arg(0)); err != nil {
		return err
	}
	rep, err := snapshot.Inspect(fs.Arg(0), cfg)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return rep.WriteText(stdout)
}
