package migrate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/reshard/reshard/snapshot/objstore"
)

// source is one RDB file to restore and the tail file, if any, applied
// after it. A name is a local path or an s3:// URL.
type source struct {
	files *files
	RDB   string
	Tail  string // "" when there is none
	// Snapshot is the snapshot id from manifest.json, when the file came
	// from a snapshot directory that has one.
	Snapshot string
	// Shard is N of shard-N.rdb in a snapshot directory, -1 otherwise.
	Shard int
}

var shardFile = regexp.MustCompile(`^shard-([0-9]+)\.rdb$`)

// resolveSources turns the configured paths into the files to restore, in
// order. A directory is a snapshot: its shard-N.rdb files in shard order,
// each with shard-N.tail.aof when present. Anything else must be a readable
// RDB file. The snapshot format is read here directly rather than through
// package snapshot's manifest types, so a restore depends only on the
// files: manifest.json is optional metadata.
func resolveSources(fs *files, paths []string) ([]source, error) {
	var out []source
	seen := map[string]bool{}
	for _, p := range paths {
		if p == "" {
			return nil, fmt.Errorf("%w: empty source path", ErrBadSource)
		}
		if objstore.IsURL(p) {
			add, err := fs.objectSources(p)
			if err != nil {
				return nil, err
			}
			for _, s := range add {
				if seen[s.RDB] {
					return nil, fmt.Errorf("%w: %s is given twice", ErrBadSource, s.RDB)
				}
				seen[s.RDB] = true
				out = append(out, s)
			}
			continue
		}
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadSource, err)
		}
		var add []source
		if st.IsDir() {
			if add, err = snapshotSources(fs, p); err != nil {
				return nil, err
			}
		} else {
			add = []source{{files: fs, RDB: p, Shard: -1}}
		}
		for _, s := range add {
			abs, _ := filepath.Abs(s.RDB)
			if seen[abs] {
				return nil, fmt.Errorf("%w: %s is given twice", ErrBadSource, s.RDB)
			}
			seen[abs] = true
			out = append(out, s)
		}
	}
	return out, nil
}

func snapshotSources(fs *files, dir string) ([]source, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSource, err)
	}
	id := manifestID(dir)
	var out []source
	for _, e := range ents {
		m := shardFile.FindStringSubmatch(e.Name())
		if m == nil || e.IsDir() {
			continue
		}
		n, err := strconv.Atoi(m[1])
		if err != nil {
			continue
		}
		s := source{files: fs, RDB: filepath.Join(dir, e.Name()), Snapshot: id, Shard: n}
		tail := filepath.Join(dir, fmt.Sprintf("shard-%d.tail.aof", n))
		switch _, err := os.Stat(tail); {
		case err == nil:
			s.Tail = tail
		case !errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("%w: %v", ErrBadSource, err)
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: directory %s holds no shard-N.rdb files (is it a snapshot?)", ErrBadSource, dir)
	}
	slices.SortFunc(out, func(a, b source) int { return a.Shard - b.Shard })
	return out, nil
}

// manifestID reads the snapshot id from dir/manifest.json, if there is one
// that says; the restore needs nothing else from it.
func manifestID(dir string) string {
	data, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return ""
	}
	return idOf(data)
}

func idOf(data []byte) string {
	var m struct {
		ID any `json:"id"`
	}
	if json.Unmarshal(data, &m) != nil || m.ID == nil {
		return ""
	}
	return fmt.Sprint(m.ID)
}

// files opens sources: local paths, and s3:// URLs through an object
// store client.
type files struct {
	ctx context.Context
	s3  *objstore.Client
}

// open starts reading a source file front to back.
func (f *files) open(name string) (io.ReadCloser, error) {
	return objstore.OpenFile(f.ctx, f.s3, name)
}

func (f *files) url(name string) (objstore.URL, error) {
	u, err := objstore.ParseURL(name)
	if err != nil {
		return u, fmt.Errorf("%w: %v", ErrBadSource, err)
	}
	if f.s3 == nil {
		return u, fmt.Errorf("%w: %s: %w", ErrBadSource, name, objstore.ErrNoClient)
	}
	return u, nil
}

// objectSources is resolveSources for an s3:// URL: an object whose name
// ends in .rdb, or else a snapshot's prefix (shard-N.rdb objects, each
// with shard-N.tail.aof when there is one).
func (f *files) objectSources(name string) ([]source, error) {
	u, err := f.url(name)
	if err != nil {
		return nil, err
	}
	if strings.HasSuffix(u.Key, ".rdb") {
		if _, err := f.s3.Stat(f.ctx, u); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadSource, err)
		}
		return []source{{files: f, RDB: u.String(), Shard: -1}}, nil
	}
	l, err := f.s3.List(f.ctx, u)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSource, err)
	}
	has := map[string]bool{}
	for _, k := range l.Keys {
		has[k] = true
	}
	id := ""
	if has["manifest.json"] {
		if data, err := f.s3.ReadAll(f.ctx, u.Join("manifest.json")); err == nil {
			id = idOf(data)
		}
	}
	var out []source
	for _, k := range l.Keys {
		m := shardFile.FindStringSubmatch(k)
		if m == nil {
			continue
		}
		n, err := strconv.Atoi(m[1])
		if err != nil {
			continue
		}
		s := source{files: f, RDB: u.Join(k).String(), Snapshot: id, Shard: n}
		if tail := fmt.Sprintf("shard-%d.tail.aof", n); has[tail] {
			s.Tail = u.Join(tail).String()
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %s holds no shard-N.rdb objects (is it a snapshot?)", ErrBadSource, u)
	}
	slices.SortFunc(out, func(a, b source) int { return a.Shard - b.Shard })
	return out, nil
}
