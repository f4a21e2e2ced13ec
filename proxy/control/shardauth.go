package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/reshard/reshard/proxy"
	"github.com/reshard/reshard/router"

	"github.com/reshard/reshard/internal/atomicfile"
)

// The credentials of the shards belong to the routing table, not to the
// proxy: the table it starts on takes --shard-user/--shard-password, and a
// table it cuts over to takes what PROXY RESHARD ... AUTH or AUTH2 gave for
// its shards (the usual case when they are a new managed cluster with its
// own AUTH token), or the current table's without either.
//
// They must survive a restart as the table does, or a proxy restarted
// unattended with its old flags could not reach the shards it cut over to.
// So at the commit of a cutover, credentials that differ from the flags'
// are written to STATE_DIR/shard-auth-EPOCH.json (mode 0600) before the
// table itself; on start, the file of the persisted table's epoch (and
// shards) wins over the flags, as the persisted table wins over --shards.
// When a new table takes the flags' credentials, the files go. Naming the
// file by epoch keeps the old table's credentials intact until the new
// table is persisted: a crash in between comes back on the old table with
// its own credentials, and the new epoch's file is ignored.

// flagAuth is the credentials of the proxy's configuration.
func (c Config) flagAuth() proxy.Auth {
	return proxy.Auth{Username: c.ShardUsername, Password: c.ShardPassword}
}

// authFile is the on-disk form of a table's credentials. Shards is the
// table's spec, so that a file left from an earlier life of the state
// directory never applies to another table that reached the same epoch.
type authFile struct {
	Epoch    uint64 `json:"epoch"`
	Shards   string `json:"shards"`
	Username string `json:"username,omitempty"`
	Password string `json:"password"`
}

const authFilePrefix = "shard-auth-"

func authFileName(epoch uint64) string {
	return authFilePrefix + strconv.FormatUint(epoch, 10) + ".json"
}

// TableAuth is the credentials of table's shards at start, for the data
// plane's Config: those persisted at the cutover that made table, if the
// state directory holds them, else the flags' (cfg.ShardUsername and
// ShardPassword). Files for any other table are ignored with a warning; a
// file for this table that cannot be read stops the start, as a damaged
// table does.
func TableAuth(cfg Config, table *router.Table, log *zap.Logger) (proxy.Auth, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if cfg.StateDir == "" {
		return cfg.flagAuth(), nil
	}
	names, err := authFiles(cfg.StateDir)
	if err != nil {
		return proxy.Auth{}, err
	}
	auth, found := cfg.flagAuth(), false
	for _, name := range names {
		if name != authFileName(table.Epoch()) {
			log.Warn("shard credentials file ignored: it is not for the persisted routing table",
				zap.String("file", name), zap.Uint64("epoch", table.Epoch()))
			continue
		}
		f, err := readAuthFile(filepath.Join(cfg.StateDir, name))
		if err != nil {
			return proxy.Auth{}, err
		}
		if f.Epoch != table.Epoch() || f.Shards != router.FormatSpec(table.Shards()) {
			log.Warn("shard credentials file ignored: it is for other shards than the persisted routing table's",
				zap.String("file", name), zap.Uint64("epoch", table.Epoch()))
			continue
		}
		auth, found = proxy.Auth{Username: f.Username, Password: f.Password}, true
	}
	if found {
		log.Info("shard credentials persisted at the cutover are used for the routing table's shards, not --shard-user/--shard-password",
			zap.String("file", authFileName(table.Epoch())), zap.Uint64("epoch", table.Epoch()))
	}
	return auth, nil
}

// authFiles lists the credentials files in dir; a dir not made yet has
// none.
func authFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("proxy: shard credentials: %w", err)
	}
	var names []string
	for _, e := range entries {
		if name := e.Name(); strings.HasPrefix(name, authFilePrefix) && strings.HasSuffix(name, ".json") {
			names = append(names, name)
		}
	}
	return names, nil
}

// readAuthFile reads one credentials file. Its errors never quote the
// content: JSON syntax errors would show a piece of the password.
func readAuthFile(path string) (authFile, error) {
	var f authFile
	data, err := os.ReadFile(path)
	if err != nil {
		return f, fmt.Errorf("proxy: shard credentials: %w", err)
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return f, fmt.Errorf("proxy: shard credentials %s are not valid JSON; delete the file and give the shards' password with --shard-password", path)
	}
	return f, nil
}

// persistAuth is the cutover's first step, before the new table t is
// saved: it writes the credentials of t's shards when they are not the
// flags', and otherwise removes a file for t's epoch left from an earlier
// life. The current table's file is left alone: until t is saved, a
// restart comes back on the current table and needs it.
func (p *Plane) persistAuth(t *router.Table, auth proxy.Auth) error {
	name := authFileName(t.Epoch())
	if auth == p.cfg.flagAuth() {
		err := os.Remove(filepath.Join(p.cfg.StateDir, name))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("proxy: shard credentials: %w", err)
		}
		return nil
	}
	data, err := json.Marshal(authFile{Epoch: t.Epoch(), Shards: router.FormatSpec(t.Shards()), Username: auth.Username, Password: auth.Password})
	if err != nil {
		return fmt.Errorf("proxy: shard credentials: %w", err)
	}
	// 0600: it holds a password. The error names the file, never the data.
	if err := atomicfile.Write(p.cfg.StateDir, name, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("proxy: save shard credentials of epoch %d: %w", t.Epoch(), err)
	}
	return nil
}

// dropStaleAuth runs once t is persisted and in use: the credentials files
// of other tables are of no use any more. It is past the point of no
// return, so a failure is logged, not returned; a file left behind is
// ignored at the next start anyway.
func (p *Plane) dropStaleAuth(t *router.Table) {
	dir := p.cfg.StateDir
	names, err := authFiles(dir)
	if err == nil {
		for _, name := range names {
			if name == authFileName(t.Epoch()) {
				continue
			}
			if e := os.Remove(filepath.Join(dir, name)); e != nil && !errors.Is(e, fs.ErrNotExist) {
				err = e
			}
		}
	}
	if err == nil {
		err = atomicfile.SyncDir(dir)
	}
	if err != nil {
		p.log.Warn("old shard credentials files not removed", zap.String("state_dir", dir), zap.Error(err))
	}
}
