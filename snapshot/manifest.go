package snapshot

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/reshard/reshard/router"
)

// ManifestFile is the name of the manifest inside a snapshot directory. A
// directory without it is not a snapshot: it is written last, into the
// temporary directory, before the rename that makes the snapshot visible.
const ManifestFile = "manifest.json"

// manifestVersion is the format of manifest.json; Load refuses others.
const manifestVersion = 1

// Manifest describes a complete snapshot: the table it was taken under and,
// per shard, the files that rebuild it and what they hold.
type Manifest struct {
	Version int    `json:"version"`
	ID      string `json:"id"`
	Name    string `json:"name,omitempty"`
	// Created is when the job started; CutTime when the barrier was
	// lifted, the moment the snapshot stands for; Completed when it was
	// renamed into place.
	Created   time.Time `json:"created"`
	CutTime   time.Time `json:"cut_time"`
	Completed time.Time `json:"completed"`
	// Epoch is the epoch of the proxy's table at the cut.
	Epoch uint64        `json:"epoch"`
	Table ManifestTable `json:"table"`
	// PauseUS is how long the proxy's barrier held client commands.
	PauseUS int64 `json:"pause_us"`
	// Warning is JobConfig.Warning: what the cut does not hold.
	Warning string `json:"warning,omitempty"`
	// Keys is the sum of the shards' KeysAtCut; Bytes of their files.
	Keys   int64           `json:"keys"`
	Bytes  int64           `json:"bytes"`
	Shards []ShardManifest `json:"shards"`
}

// ManifestTable is the slot table at the cut, in the canonical spec form
// (router.ParseSpec reads it back) and per shard.
type ManifestTable struct {
	Spec   string               `json:"spec"`
	Shards []ManifestTableShard `json:"shards"`
}

// ManifestTableShard is one shard of the table: its address and slot
// ranges ("0-5460").
type ManifestTableShard struct {
	Addr   string   `json:"addr"`
	Ranges []string `json:"ranges"`
}

// ShardManifest describes one shard's part of a snapshot: RDBFile stands at
// ForkOffset, and replaying TailFile on it brings it to CutOffset.
type ShardManifest struct {
	Index int    `json:"index"`
	Addr  string `json:"addr"`
	// From is the replica of the shard the RDB and the tail came from;
	// empty when they came from the shard's primary, Addr.
	From         string `json:"from,omitempty"`
	RedisVersion string `json:"redis_version"`
	RDBVersion   int    `json:"rdb_version"`
	ReplID       string `json:"replid"`
	ForkOffset   int64  `json:"fork_offset"`
	CutOffset    int64  `json:"cut_offset"`
	// Transfer is how the shard sent the RDB: "disk" or "diskless".
	Transfer string `json:"transfer"`

	RDBFile string `json:"rdb_file"`
	RDBSize int64  `json:"rdb_size"`
	// RDBCRC64 is the RDB's own checksum (CRC-64/Jones over every byte
	// but the last 8, which hold it), as 16 hex digits; redis-check-rdb
	// verifies the same value.
	RDBCRC64 string `json:"rdb_crc64"`
	TailFile string `json:"tail_file"`
	TailSize int64  `json:"tail_size"`
	// TailCRC64 is CRC-64/Jones over the whole tail file, 16 hex digits.
	TailCRC64    string `json:"tail_crc64"`
	TailCommands int64  `json:"tail_commands"`

	// Keys, Expires and DBKeys count the RDB's keys (at the fork); the
	// tail may add and remove some. KeysAtCut is the shard's key count
	// (INFO keyspace, all databases) read during the barrier: what RDB
	// plus tail hold, give or take keys that had expired but were not yet
	// deleted.
	Keys      int64         `json:"keys"`
	Expires   int64         `json:"expires"`
	DBKeys    map[int]int64 `json:"db_keys"`
	KeysAtCut int64         `json:"keys_at_cut"`
}

// RouterTable rebuilds the snapshot's slot table from its spec.
func (m Manifest) RouterTable() (*router.Table, error) {
	shards, err := router.ParseSpec(m.Table.Spec)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: table: %w", m.ID, err)
	}
	return router.NewTable(m.Epoch, shards)
}

// Status renders a completed snapshot the way Job.Status renders a job,
// for PROXY SNAPSHOT STATUS ID of one that is no longer running; location
// is where it is (Store.Location).
func (m Manifest) Status(location string) Status {
	return Status{
		State:    StateDone,
		Phase:    PhaseComplete,
		ID:       m.ID,
		Name:     m.Name,
		Dir:      location,
		Epoch:    m.Epoch,
		Shards:   len(m.Shards),
		Keys:     m.Keys,
		Bytes:    m.Bytes,
		PauseUS:  m.PauseUS,
		Warning:  m.Warning,
		Started:  m.Created,
		Finished: m.Completed,
	}
}

func (m Manifest) validate() error {
	switch {
	case m.Version != manifestVersion:
		return fmt.Errorf("%w: manifest version %d, want %d", ErrBadManifest, m.Version, manifestVersion)
	case !isID(m.ID):
		return fmt.Errorf("%w: id %q is not a snapshot id", ErrBadManifest, m.ID)
	case len(m.Shards) == 0 || len(m.Shards) != len(m.Table.Shards):
		return fmt.Errorf("%w: %d shards for a table of %d", ErrBadManifest, len(m.Shards), len(m.Table.Shards))
	}
	for i, sh := range m.Shards {
		if sh.Index != i {
			return fmt.Errorf("%w: shard %d has index %d", ErrBadManifest, i, sh.Index)
		}
		for _, name := range []string{sh.RDBFile, sh.TailFile} {
			if name == "" || name != filepath.Base(name) || strings.HasPrefix(name, ".") {
				return fmt.Errorf("%w: shard %d: bad file name %q", ErrBadManifest, i, name)
			}
		}
	}
	return nil
}

// idLayout is the time part of an id: UTC to the second, so ids sort by
// creation time as strings do.
const idLayout = "20060102T150405Z"

var idPattern = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{4}$`)

// newID returns an id for a snapshot started at t: the time, then 4 random
// hex digits so that two snapshots in one second do not collide.
func newID(t time.Time) string {
	var b [2]byte
	rand.Read(b[:])
	return t.UTC().Format(idLayout) + "-" + hex.EncodeToString(b[:])
}

func isID(s string) bool { return idPattern.MatchString(s) }

// maxSnapshotNameLen bounds a snapshot's name.
const maxSnapshotNameLen = 64

// validateName accepts an empty name or one of letters, digits, '.', '_'
// and '-' not starting with '.': it goes into a manifest, INFO-style output
// and log lines, never into a path, but a name that could be a path is
// refused all the same so no caller is tempted.
func validateName(name string) error {
	if name == "" {
		return nil
	}
	if len(name) > maxSnapshotNameLen {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrBadName, len(name), maxSnapshotNameLen)
	}
	if name[0] == '.' {
		return fmt.Errorf("%w: %q starts with '.'", ErrBadName, name)
	}
	for _, c := range []byte(name) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return fmt.Errorf("%w: %q has %q; use letters, digits, '.', '_' and '-'", ErrBadName, name, c)
		}
	}
	return nil
}

// Load reads the manifest of snapshot id in dir (STATE_DIR/snapshots). It
// fails with ErrNotSnapshot when id is not a snapshot id or there is no
// such snapshot, and with ErrBadManifest when its manifest is unreadable.
// It does not read the RDB and tail files; Inspect does.
func Load(dir, id string) (Manifest, error) {
	if !isID(id) {
		return Manifest{}, fmt.Errorf("%w: %q is not a snapshot id", ErrNotSnapshot, id)
	}
	return loadManifest(filepath.Join(dir, id), id)
}

// loadManifest reads path/manifest.json; wantID, when set, must match.
func loadManifest(path, wantID string) (Manifest, error) {
	b, err := os.ReadFile(filepath.Join(path, ManifestFile))
	if errors.Is(err, fs.ErrNotExist) {
		return Manifest{}, fmt.Errorf("%w: %s has no %s", ErrNotSnapshot, path, ManifestFile)
	}
	if err != nil {
		return Manifest{}, err
	}
	return parseManifest(b, path, wantID)
}

// List returns the snapshots in dir, oldest first (by Created, then id). A
// missing dir holds none. Entries whose name is not a snapshot id (the
// temporary directories of running or crashed jobs among them) are not
// snapshots and are skipped; a snapshot directory whose manifest cannot be
// read is an error, returned together with every manifest that could be.
func List(dir string) ([]Manifest, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range entries {
		if e.IsDir() {
			ids = append(ids, e.Name())
		}
	}
	return loadAll(ids, func(id string) (Manifest, error) { return Load(dir, id) }, false)
}

// loadAll loads the manifests of the names that are snapshot ids, oldest
// first, and the errors of those that cannot be loaded. With
// skipIncomplete, one without a manifest (ErrNotSnapshot) is left out
// instead: in a bucket, a running job's work looks so.
func loadAll(names []string, load func(id string) (Manifest, error), skipIncomplete bool) ([]Manifest, error) {
	var out []Manifest
	var errs []error
	for _, id := range names {
		if !isID(id) {
			continue
		}
		m, err := load(id)
		switch {
		case err != nil && skipIncomplete && errors.Is(err, ErrNotSnapshot):
		case err != nil:
			errs = append(errs, err)
		default:
			out = append(out, m)
		}
	}
	sortManifests(out)
	return out, errors.Join(errs...)
}

// Find returns the snapshots in dir that ref names, oldest first: the one
// whose id ref is, or else every one named ref (names need not be
// unique: a nightly job may give the same one every night). None is an
// error wrapping ErrNotSnapshot.
func Find(dir, ref string) ([]Manifest, error) {
	return find(ref, func(id string) (Manifest, error) { return Load(dir, id) },
		func() ([]Manifest, error) { return List(dir) })
}

// find is Find over any store's load and list.
func find(ref string, load func(id string) (Manifest, error), list func() ([]Manifest, error)) ([]Manifest, error) {
	if isID(ref) {
		m, err := load(ref)
		if err != nil {
			return nil, err
		}
		return []Manifest{m}, nil
	}
	if validateName(ref) != nil || ref == "" {
		return nil, fmt.Errorf("%w: %q is neither a snapshot id nor a snapshot name", ErrNotSnapshot, ref)
	}
	all, err := list()
	var out []Manifest
	for _, m := range all {
		if m.Name == ref {
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		if err != nil {
			// a damaged snapshot elsewhere must not stop ref from being a
			// path, say; it may be the one named, so it is told
			return nil, fmt.Errorf("%w: no snapshot with id or name %q among those readable (%v)", ErrNotSnapshot, ref, err)
		}
		return nil, fmt.Errorf("%w: no snapshot with id or name %q", ErrNotSnapshot, ref)
	}
	return out, nil
}

// Delete removes snapshot id from dir. It refuses anything that is not a
// snapshot directory, with ErrNotSnapshot: a name that is not an id (so no
// path can escape dir) or a directory without a manifest. A damaged
// manifest does not stop it: a broken snapshot must be deletable. The
// directory is first renamed to a temporary name, so a crash halfway
// through never leaves a snapshot that looks complete but lacks files.
func Delete(dir, id string) error {
	if !isID(id) {
		return fmt.Errorf("delete snapshot: %w: %q is not a snapshot id", ErrNotSnapshot, id)
	}
	if fi, err := os.Stat(filepath.Join(dir, id, ManifestFile)); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("delete snapshot: %w: no snapshot %s in %s", ErrNotSnapshot, id, dir)
	}
	doomed := filepath.Join(dir, deletingPrefix+id)
	if err := os.Rename(filepath.Join(dir, id), doomed); err != nil {
		return fmt.Errorf("delete snapshot %s: %w", id, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("delete snapshot %s: %w", id, err)
	}
	if err := os.RemoveAll(doomed); err != nil {
		return fmt.Errorf("delete snapshot %s: %w", id, err)
	}
	return nil
}

// Prefixes of directories that are not snapshots: a job's work in progress
// and a snapshot being deleted. The leading dot keeps them out of the way
// of ls and of List.
const (
	tempPrefix     = ".tmp-"
	deletingPrefix = ".deleting-"
)

// RemoveStale removes what crashed jobs and deletes left in dir (temporary
// directories) and returns their names. Call it at startup, before any job
// runs: it would remove a running job's work too.
func RemoveStale(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || !(strings.HasPrefix(name, tempPrefix) || strings.HasPrefix(name, deletingPrefix)) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			return removed, err
		}
		removed = append(removed, name)
	}
	return removed, nil
}

// tableOf renders t for a manifest.
func tableOf(t *router.Table) ManifestTable {
	shards := t.Shards()
	mt := ManifestTable{Spec: router.FormatSpec(shards), Shards: make([]ManifestTableShard, len(shards))}
	for i, sh := range shards {
		mt.Shards[i] = ManifestTableShard{Addr: sh.Addr, Ranges: make([]string, len(sh.Ranges))}
		for j, r := range sh.Ranges {
			mt.Shards[i].Ranges[j] = formatRange(r)
		}
	}
	return mt
}

func formatRange(r router.Range) string {
	if r.From == r.To {
		return strconv.Itoa(int(r.From))
	}
	return strconv.Itoa(int(r.From)) + "-" + strconv.Itoa(int(r.To))
}

func formatCRC(c uint64) string { return fmt.Sprintf("%016x", c) }

// writeFileSync writes b to a new file at path and fsyncs it.
func writeFileSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// syncFile fsyncs an existing file.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir fsyncs a directory, making renames and creations in it durable.
func syncDir(dir string) error { return syncFile(dir) }
