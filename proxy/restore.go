package proxy

import (
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/reshard/reshard/migrate"
	"github.com/reshard/reshard/router"
)

// PROXY RESTORE runs the restore of package migrate as a background job of
// the proxy: a snapshot (by id) or .rdb files into a new set of shards. It
// never changes the proxy's own routing table; moving traffic is the live
// reshard's job.

type restores struct {
	mu  sync.Mutex
	job *migrate.RestoreJob
}

// restoreAdmin serves PROXY RESTORE ID|PATH[,PATH...] TARGET... [REPLACE|FLUSH]
// [ALLOW-DUPLICATES] [AUTH password | AUTH2 username password] and PROXY
// RESTORE STATUS.
func (srv *Server) restoreAdmin(args [][]byte, proto int) []byte {
	if len(args) == 1 && equalFold(args[0], "status") {
		srv.rest.mu.Lock()
		job := srv.rest.job
		srv.rest.mu.Unlock()
		if job == nil {
			return appendVerbatim(nil, "state:none\r\n", proto)
		}
		var b strings.Builder
		job.Status().WriteInfo(&b)
		return appendVerbatim(nil, b.String(), proto)
	}
	if len(args) < 2 {
		return appendError(nil, "ERR wrong arguments for PROXY RESTORE. Try PROXY HELP.")
	}
	ta, err := parseTargetArgs(args[1:], "replace", "flush", "allow-duplicates")
	if err != nil {
		return appendError(nil, "ERR "+err.Error())
	}
	shards, err := router.ParseShardArgs(ta.targets)
	if err != nil {
		return appendError(nil, "ERR "+err.Error())
	}
	cfg := migrate.DefaultRestoreConfig()
	cfg.Logger = srv.log
	// Without AUTH or AUTH2 the targets take the credentials of the
	// current table's shards.
	auth := ta.authOr(srv.route.Load().auth)
	cfg.Username, cfg.Password = auth.username, auth.password
	cfg.Replace, cfg.Flush = ta.options["replace"], ta.options["flush"]
	cfg.AllowDuplicates = ta.options["allow-duplicates"]
	for _, src := range strings.Split(string(args[0]), ",") {
		cfg.Sources = append(cfg.Sources, srv.restoreSource(src))
	}
	cfg.Targets = shards
	srv.rest.mu.Lock()
	defer srv.rest.mu.Unlock()
	if srv.rest.job != nil && srv.rest.job.Status().State == migrate.JobRunning {
		return appendError(nil, "ERR a restore is already running; see PROXY RESTORE STATUS")
	}
	srv.rest.job = migrate.StartRestore(srv.ctx, cfg)
	return appendStatus(nil, "Restore started")
}

// restoreSource maps a snapshot id to its directory; anything else is a
// path as given.
func (srv *Server) restoreSource(src string) string {
	if srv.cfg.SnapshotDir != "" && !strings.ContainsAny(src, `/\`) {
		dir := filepath.Join(srv.cfg.SnapshotDir, src)
		if st, err := os.Stat(dir); err == nil && st.IsDir() {
			return dir
		}
	}
	return src
}
