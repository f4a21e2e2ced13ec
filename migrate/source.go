package migrate

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
)

// source is one RDB file to restore and the tail file, if any, applied
// after it.
type source struct {
	RDB  string
	Tail string // "" when there is none
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
func resolveSources(paths []string) ([]source, error) {
	var out []source
	seen := map[string]bool{}
	for _, p := range paths {
		if p == "" {
			return nil, fmt.Errorf("%w: empty source path", ErrBadSource)
		}
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadSource, err)
		}
		var add []source
		if st.IsDir() {
			if add, err = snapshotSources(p); err != nil {
				return nil, err
			}
		} else {
			add = []source{{RDB: p, Shard: -1}}
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

func snapshotSources(dir string) ([]source, error) {
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
		s := source{RDB: filepath.Join(dir, e.Name()), Snapshot: id, Shard: n}
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
	var m struct {
		ID any `json:"id"`
	}
	if json.Unmarshal(data, &m) != nil || m.ID == nil {
		return ""
	}
	return fmt.Sprint(m.ID)
}
