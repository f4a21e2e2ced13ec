package control

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/reshard/reshard/migrate"
	"github.com/reshard/reshard/router"
	"github.com/reshard/reshard/snapshot"

	"github.com/reshard/reshard/internal/resp"
	"github.com/reshard/reshard/proxy/internal/wire"
)

// PROXY RESTORE runs the restore of package migrate as a background job of
// the proxy: a snapshot (by id or name) or .rdb files into a new set of
// shards. It never changes the proxy's own routing table; moving traffic
// is the live reshard's job. A target that is one of the proxy's shards,
// or that any reshard proxy is connected to, is refused before the job
// starts (migrate.CheckTargets), so the reply says so; every other check
// runs in the job's pre-flight, whose outcome PROXY RESTORE STATUS shows.

type restores struct {
	mu  sync.Mutex
	job *migrate.RestoreJob
}

// restoreAdmin serves PROXY RESTORE ID|NAME|PATH[,PATH...] TARGET...
// [REPLACE|FLUSH] [ALLOW-DUPLICATES] [DB n] [AUTH password | AUTH2 username
// password] and PROXY RESTORE STATUS.
func (p *Plane) restoreAdmin(args [][]byte, proto int) []byte {
	if len(args) == 1 && wire.EqualFold(args[0], "status") {
		p.rest.mu.Lock()
		job := p.rest.job
		p.rest.mu.Unlock()
		if job == nil {
			return wire.AppendVerbatim(nil, "state:none\r\n", proto)
		}
		var b strings.Builder
		job.Status().WriteInfo(&b)
		return wire.AppendVerbatim(nil, b.String(), proto)
	}
	if len(args) < 2 {
		return wire.AppendError(nil, "ERR wrong arguments for PROXY RESTORE. Try PROXY HELP.")
	}
	return jobReply(p.startRestore(args))
}

func (p *Plane) startRestore(args [][]byte) (*migrate.RestoreJob, error) {
	ta, err := parseTargetArgs(args[1:], "replace", "flush", "allow-duplicates", "db")
	if err != nil {
		return nil, err
	}
	if len(ta.targets) == 0 {
		return nil, errors.New("give at least one target (HOST:PORT[=RANGES])")
	}
	shards, err := router.ParseShardArgs(ta.targets)
	if err != nil {
		return nil, err
	}
	// the job dials addresses: sentinel:NAME targets are their primaries now
	if t, err := router.NewTable(0, shards); err != nil {
		return nil, err
	} else if t, err = p.srv.ResolveTable(p.ctx, t); err != nil {
		return nil, err
	} else {
		shards = t.Shards()
	}
	cfg := migrate.DefaultRestoreConfig()
	cfg.Logger = p.log
	r := p.srv.Route()
	// Without AUTH or AUTH2 the targets take the credentials of the
	// current table's shards.
	auth := ta.authOr(r.Auth())
	cfg.Username, cfg.Password = auth.Username, auth.Password
	cfg.Replace, cfg.Flush, cfg.DB = ta.options["replace"], ta.options["flush"], ta.db
	cfg.AllowDuplicates = ta.options["allow-duplicates"]
	cfg.S3 = p.cfg.S3
	for _, src := range strings.Split(string(args[0]), ",") {
		dir, err := p.restoreSource(src)
		if err != nil {
			return nil, err
		}
		cfg.Sources = append(cfg.Sources, dir)
	}
	cfg.Targets = shards
	live, err := p.srv.ResolveTable(p.ctx, r.Table()) // the live shards, by address
	if err != nil {
		return nil, err
	}
	cfg.Proxy = migrate.ProxyInfo{RunID: p.srv.RunID(), Shards: live.Addrs(), Epoch: r.Table().Epoch()}
	// outside the lock: STATUS must not wait for the targets
	ctx, cancel := context.WithTimeout(p.ctx, p.srv.DialTimeout())
	defer cancel()
	if err := migrate.CheckTargets(ctx, cfg); err != nil {
		var ce *migrate.ConfigError
		if errors.As(err, &ce) {
			return nil, errors.New(ce.Text(restoreWord))
		}
		return nil, err
	}
	p.rest.mu.Lock()
	defer p.rest.mu.Unlock()
	if p.rest.job != nil && p.rest.job.Status().State == migrate.JobRunning {
		return nil, errors.New("a restore is already running; see PROXY RESTORE STATUS")
	}
	p.rest.job = migrate.StartRestore(p.ctx, cfg)
	return p.rest.job, nil
}

// restoreSource maps a snapshot id or name (the newest snapshot of that
// name) to where it is; anything else is a path or URL as given.
func (p *Plane) restoreSource(src string) (string, error) {
	if p.store() == nil || strings.ContainsAny(src, `/\`) {
		return src, nil
	}
	found, err := p.store().Find(p.ctx, src)
	if err != nil {
		if errors.Is(err, snapshot.ErrNotSnapshot) {
			// a file in the proxy's working directory, if there is one:
			// a mistyped id is said at once, not as a failed job
			if _, statErr := os.Stat(src); statErr != nil {
				return "", fmt.Errorf("no snapshot and no file named %q (PROXY SNAPSHOT LIST lists the snapshots): %w", src, err)
			}
			return src, nil
		}
		return "", err
	}
	return p.store().Location(found[len(found)-1].ID), nil
}

// jobReply answers a PROXY RESTORE or RESHARD: the id of the job it
// started, or why it did not start.
func jobReply(job interface{ ID() string }, err error) []byte {
	if err != nil {
		return appendJobError(err)
	}
	return resp.AppendBulkString(nil, job.ID())
}

// appendJobError answers a refused PROXY RESTORE or RESHARD on one line, the
// pre-flight's problems joined by semicolons (a RESP error has no lines).
func appendJobError(err error) []byte {
	msg := strings.Replace(err.Error(), " problems\n  - ", " problems: ", 1)
	msg = strings.ReplaceAll(msg, "\n  - ", "; ")
	return wire.AppendError(nil, "ERR "+strings.ReplaceAll(msg, "\n", " "))
}

// restoreWord is the word of PROXY RESTORE that sets a RestoreConfig
// field, for messages.
func restoreWord(field string) string {
	switch field {
	case "Sources":
		return "the source"
	case "Targets":
		return "the targets"
	}
	return strings.ToUpper(field)
}
