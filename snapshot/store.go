package snapshot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/reshard/reshard/snapshot/objstore"
)

// Store is where snapshots live: a local directory (DirStore) or a prefix
// in an S3-compatible bucket (BucketStore). Both hold the same layout, one
// directory (or key prefix) per snapshot id with manifest.json, shard-N.rdb
// and shard-N.tail.aof, and the same rule: a snapshot is complete, and
// listed, only once its manifest exists, which is written last.
//
// In a directory, a job works in Dir/.tmp-<id> and renames it into place.
// In a bucket, a job sends each RDB as it arrives (a multipart upload; no
// copy on local disk), then each tail, then the manifest; a failed job
// deletes what it sent. A tail is spooled to a local file first: the
// capture may have to find its cut behind the reader and truncate there
// (stream.go), which an upload cannot undo. A tail holds only the writes
// between the shard's fork and the cut.
//
// A Store is safe for concurrent use.
type Store struct {
	dir   string
	s3    *objstore.Client
	url   objstore.URL
	spool string
}

// DirStore is the store in a local directory (STATE_DIR/snapshots).
func DirStore(dir string) *Store { return &Store{dir: dir} }

// BucketStore is the store under url (s3://BUCKET/PREFIX) through c;
// spool is the local directory for tails of running jobs ("" is the
// system's temporary directory).
func BucketStore(c *objstore.Client, url objstore.URL, spool string) *Store {
	return &Store{s3: c, url: url, spool: spool}
}

// OpenStore returns the store a --snapshot-store value names: an s3:// URL
// (reached through c, which must then be set) or a directory.
func OpenStore(location string, c *objstore.Client, spool string) (*Store, error) {
	if !objstore.IsURL(location) {
		return DirStore(location), nil
	}
	u, err := objstore.ParseURL(location)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, fmt.Errorf("snapshot: store %s needs an S3 client", location)
	}
	return BucketStore(c, u, spool), nil
}

// String names the store for logs: its directory or URL.
func (s *Store) String() string {
	if s.s3 != nil {
		return s.url.String()
	}
	return s.dir
}

// Local reports whether the store is a local directory.
func (s *Store) Local() bool { return s.s3 == nil }

// Location is where snapshot id is, as `reshard restore --from` takes it.
func (s *Store) Location(id string) string {
	if s.s3 != nil {
		return s.url.Join(id).String()
	}
	return filepath.Join(s.dir, id)
}

// Load reads the manifest of snapshot id (see the package function Load).
func (s *Store) Load(ctx context.Context, id string) (Manifest, error) {
	if s.s3 == nil {
		return Load(s.dir, id)
	}
	if !isID(id) {
		return Manifest{}, fmt.Errorf("%w: %q is not a snapshot id", ErrNotSnapshot, id)
	}
	u := s.url.Join(id).Join(ManifestFile)
	b, err := s.s3.ReadAll(ctx, u)
	if errors.Is(err, fs.ErrNotExist) {
		return Manifest{}, fmt.Errorf("%w: %s has no %s", ErrNotSnapshot, s.url.Join(id), ManifestFile)
	}
	if err != nil {
		return Manifest{}, err
	}
	return parseManifest(b, s.url.Join(id).String(), id)
}

// List returns the complete snapshots, oldest first (see the package
// function List).
func (s *Store) List(ctx context.Context) ([]Manifest, error) {
	if s.s3 == nil {
		return List(s.dir)
	}
	l, err := s.s3.List(ctx, s.url)
	if err != nil {
		return nil, err
	}
	// a prefix without a manifest is a job's work in progress, or what a
	// crashed one left
	return loadAll(l.Dirs, func(id string) (Manifest, error) { return s.Load(ctx, id) }, true)
}

// Find returns the snapshots ref names, oldest first (see the package
// function Find).
func (s *Store) Find(ctx context.Context, ref string) ([]Manifest, error) {
	if s.s3 == nil {
		return Find(s.dir, ref)
	}
	return find(ref, func(id string) (Manifest, error) { return s.Load(ctx, id) },
		func() ([]Manifest, error) { return s.List(ctx) })
}

// Delete removes snapshot id (see the package function Delete). In a
// bucket the manifest goes first, so a delete cut short never leaves a
// snapshot that looks complete but lacks files.
func (s *Store) Delete(ctx context.Context, id string) error {
	if s.s3 == nil {
		return Delete(s.dir, id)
	}
	if !isID(id) {
		return fmt.Errorf("delete snapshot: %w: %q is not a snapshot id", ErrNotSnapshot, id)
	}
	base := s.url.Join(id)
	if _, err := s.s3.Stat(ctx, base.Join(ManifestFile)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete snapshot: %w: no snapshot %s in %s", ErrNotSnapshot, id, s.url)
		}
		return fmt.Errorf("delete snapshot %s: %w", id, err)
	}
	if err := s.s3.Delete(ctx, base.Join(ManifestFile)); err != nil {
		return fmt.Errorf("delete snapshot %s: %w", id, err)
	}
	if err := s.deleteAll(ctx, base); err != nil {
		return fmt.Errorf("delete snapshot %s: %w", id, err)
	}
	return nil
}

// deleteAll deletes every object directly under base.
func (s *Store) deleteAll(ctx context.Context, base objstore.URL) error {
	l, err := s.s3.List(ctx, base)
	if err != nil {
		return err
	}
	us := make([]objstore.URL, len(l.Keys))
	for i, k := range l.Keys {
		us[i] = base.Join(k)
	}
	return s.s3.Delete(ctx, us...)
}

// staleAfter is how old (by the time in its id) a snapshot without a
// manifest in a bucket must be before RemoveStale takes it: in a bucket
// another proxy's job may be running, so only what no job can still be
// writing is removed (a job is bounded by its capture timeout, 1 h).
const staleAfter = 24 * time.Hour

// RemoveStale removes what crashed jobs and deletes left (see the package
// function RemoveStale). In a bucket it removes snapshots without a
// manifest started more than a day ago; parts of uploads that were never
// completed are not objects, and a bucket lifecycle rule
// (AbortIncompleteMultipartUpload) is what removes them.
func (s *Store) RemoveStale(ctx context.Context) ([]string, error) {
	if s.s3 == nil {
		return RemoveStale(s.dir)
	}
	l, err := s.s3.List(ctx, s.url)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, id := range l.Dirs {
		if !isID(id) {
			continue
		}
		started, err := time.Parse(idLayout, id[:len(idLayout)])
		if err != nil || time.Since(started) < staleAfter {
			continue
		}
		if _, err := s.s3.Stat(ctx, s.url.Join(id).Join(ManifestFile)); !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := s.deleteAll(ctx, s.url.Join(id)); err != nil {
			return removed, err
		}
		removed = append(removed, id)
	}
	return removed, nil
}

// staging is where a job writes a snapshot until it is complete.
type staging interface {
	// rdb returns the sink for an RDB file.
	rdb(ctx context.Context, name string) (Sink, error)
	// tailPath is the local file a capture writes a tail to.
	tailPath(name string) string
	// rdbPath is the local path of an RDB file, "" when it is not local.
	rdbPath(name string) string
	// tailDone stores a tail file once it is cut and checked.
	tailDone(ctx context.Context, name string) error
	// publish writes the manifest and makes the snapshot complete.
	publish(ctx context.Context, manifest []byte, files []string) error
	// abort removes everything the job wrote.
	abort()
	// location is where the snapshot will be (Store.Location).
	location() string
}

// begin reserves an id for a snapshot started at t and returns where the
// job writes it.
func (s *Store) begin(ctx context.Context, t time.Time) (string, staging, error) {
	if s.s3 == nil {
		return s.beginDir(t)
	}
	for attempt := 0; ; attempt++ {
		id := newID(t)
		base := s.url.Join(id)
		l, err := s.s3.List(ctx, base)
		if err != nil {
			return "", nil, fmt.Errorf("snapshot: %w", err)
		}
		if len(l.Keys) > 0 || len(l.Dirs) > 0 {
			if attempt == 9 {
				return "", nil, fmt.Errorf("snapshot: %s already exists", base)
			}
			continue
		}
		spool, err := os.MkdirTemp(s.spool, tempPrefix+id+"-")
		if err != nil {
			return "", nil, fmt.Errorf("snapshot: spool for tails: %w", err)
		}
		return id, &bucketStaging{c: s.s3, base: base, spool: spool}, nil
	}
}

func (s *Store) beginDir(t time.Time) (string, staging, error) {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return "", nil, fmt.Errorf("snapshot: %w", err)
	}
	for attempt := 0; ; attempt++ {
		id := newID(t)
		st := &dirStaging{dir: s.dir, tmp: filepath.Join(s.dir, tempPrefix+id), final: filepath.Join(s.dir, id)}
		_, err := os.Lstat(st.final)
		if err == nil {
			err = fs.ErrExist
		} else if errors.Is(err, fs.ErrNotExist) {
			err = os.Mkdir(st.tmp, 0o700)
		}
		if err == nil {
			return id, st, nil
		}
		if !errors.Is(err, fs.ErrExist) || attempt == 9 {
			return "", nil, fmt.Errorf("snapshot: create %s: %w", st.tmp, err)
		}
	}
}

// dirStaging is a job's temporary directory, renamed into place.
type dirStaging struct{ dir, tmp, final string }

func (d *dirStaging) rdb(_ context.Context, name string) (Sink, error) {
	return createFileSink(filepath.Join(d.tmp, name))
}
func (d *dirStaging) tailPath(name string) string            { return filepath.Join(d.tmp, name) }
func (d *dirStaging) rdbPath(name string) string             { return filepath.Join(d.tmp, name) }
func (d *dirStaging) tailDone(context.Context, string) error { return nil }
func (d *dirStaging) abort()                                 { os.RemoveAll(d.tmp) }
func (d *dirStaging) location() string                       { return d.final }
func (d *dirStaging) publish(ctx context.Context, manifest []byte, files []string) error {
	if err := writeFileSync(filepath.Join(d.tmp, ManifestFile), manifest); err != nil {
		return fmt.Errorf("snapshot: write manifest: %w", err)
	}
	// The captures fsynced their files; again here, so the rule "every
	// file fsynced before the rename" does not rest on another package.
	for _, name := range files {
		if err := syncFile(filepath.Join(d.tmp, name)); err != nil {
			return fmt.Errorf("snapshot: fsync %s: %w", name, err)
		}
	}
	if err := syncDir(d.tmp); err != nil {
		return fmt.Errorf("snapshot: fsync %s: %w", d.tmp, err)
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if _, err := os.Lstat(d.final); err == nil {
		return fmt.Errorf("snapshot: %s already exists", d.final)
	}
	if err := os.Rename(d.tmp, d.final); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	if err := syncDir(d.dir); err != nil {
		// Complete but perhaps not durable: a failed job leaves nothing.
		os.RemoveAll(d.final)
		return fmt.Errorf("snapshot: fsync %s: %w", d.dir, err)
	}
	return nil
}

// bucketStaging sends a job's files under base as they come.
type bucketStaging struct {
	c     *objstore.Client
	base  objstore.URL
	spool string

	mu   sync.Mutex
	sent []objstore.URL // every object started, to delete on abort
}

func (b *bucketStaging) started(u objstore.URL) {
	b.mu.Lock()
	b.sent = append(b.sent, u)
	b.mu.Unlock()
}

func (b *bucketStaging) rdb(ctx context.Context, name string) (Sink, error) {
	u := b.base.Join(name)
	b.started(u)
	return b.c.Create(ctx, u), nil
}

func (b *bucketStaging) tailPath(name string) string { return filepath.Join(b.spool, name) }
func (b *bucketStaging) rdbPath(string) string       { return "" }
func (b *bucketStaging) location() string            { return b.base.String() }

func (b *bucketStaging) tailDone(ctx context.Context, name string) error {
	path := b.tailPath(name)
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	defer f.Close()
	u := b.base.Join(name)
	b.started(u)
	up := b.c.Create(ctx, u)
	if _, err := io.Copy(up, f); err != nil {
		up.Abort()
		return fmt.Errorf("snapshot: send %s: %w", name, err)
	}
	if err := up.Commit(); err != nil {
		return fmt.Errorf("snapshot: send %s: %w", name, err)
	}
	f.Close()
	os.Remove(path)
	return nil
}

func (b *bucketStaging) publish(ctx context.Context, manifest []byte, _ []string) error {
	u := b.base.Join(ManifestFile)
	b.started(u)
	if err := b.c.Put(ctx, u, manifest); err != nil {
		return fmt.Errorf("snapshot: write manifest: %w", err)
	}
	os.RemoveAll(b.spool)
	return nil
}

func (b *bucketStaging) abort() {
	os.RemoveAll(b.spool)
	b.mu.Lock()
	sent := slices.Clone(b.sent)
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// In reverse, so the manifest, if it was written, goes first: the
	// snapshot stops being complete before its files go.
	slices.Reverse(sent)
	b.c.Delete(ctx, sent...)
}

// parseManifest reads a manifest's bytes; where names it in errors;
// wantID, when set, must match.
func parseManifest(b []byte, where, wantID string) (Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return Manifest{}, fmt.Errorf("%w: %s: %v", ErrBadManifest, where, err)
	}
	if err := m.validate(); err != nil {
		return Manifest{}, fmt.Errorf("%s: %w", where, err)
	}
	if wantID != "" && m.ID != wantID {
		return Manifest{}, fmt.Errorf("%w: %s holds snapshot %s", ErrBadManifest, where, m.ID)
	}
	return m, nil
}

func sortManifests(ms []Manifest) {
	slices.SortFunc(ms, func(a, b Manifest) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}
