package snapshot

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/reshard/reshard/router"
)

func TestNewID(t *testing.T) {
	at := time.Date(2026, 11, 21, 20, 30, 0, 0, time.FixedZone("CET", 3600))
	id := newID(at)
	if !strings.HasPrefix(id, "20261121T193000Z-") || !isID(id) {
		t.Fatalf("newID = %q", id)
	}
	ids := []string{newID(at.Add(time.Hour)), newID(at), newID(at.Add(-time.Second))}
	sorted := append([]string(nil), ids...)
	sort.Strings(sorted)
	if sorted[0] != ids[2] || sorted[2] != ids[0] {
		t.Errorf("ids do not sort by time: %v", sorted)
	}
	for _, bad := range []string{"", "x", "../20261121T193000Z-abcd", "20261121T193000Z-ABCD", "20261121T193000Z-abcde",
		".tmp-20261121T193000Z-abcd", "20261121T193000Z-abcd/"} {
		if isID(bad) {
			t.Errorf("isID(%q) = true", bad)
		}
	}
}

func TestValidateName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"", true},
		{"nightly", true},
		{"before-reshard_2026.11.21", true},
		{strings.Repeat("n", 64), true},
		{strings.Repeat("n", 65), false},
		{"a/b", false},
		{`a\b`, false},
		{"..", false},
		{".hidden", false},
		{"with space", false},
		{"nl\n", false},
		{"é", false},
	}
	for _, tt := range tests {
		err := validateName(tt.name)
		if got := err == nil; got != tt.ok {
			t.Errorf("validateName(%q) = %v, want ok %v", tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrBadName) {
			t.Errorf("validateName(%q) = %v, not ErrBadName", tt.name, err)
		}
	}
}

func TestJobConfigValidate(t *testing.T) {
	shards, _ := router.ParseSpec("127.0.0.1:1")
	table, _ := router.NewTable(1, shards)
	good := DefaultJobConfig()
	good.Dir, good.Table, good.Barrier = t.TempDir(), table, &testBarrier{}
	if err := good.validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mutate func(*JobConfig)
		want   string
	}{
		{"no dir", func(c *JobConfig) { c.Dir = "" }, "Dir"},
		{"no table", func(c *JobConfig) { c.Table = nil }, "Table"},
		{"no barrier", func(c *JobConfig) { c.Barrier = nil }, "Barrier"},
		{"bad name", func(c *JobConfig) { c.Name = "../x" }, "../x"},
		{"fork timeout", func(c *JobConfig) { c.ForkTimeout = 0 }, "fork timeout"},
		{"pause timeout", func(c *JobConfig) { c.PauseTimeout = -time.Second }, "-1s"},
	}
	for _, tt := range tests {
		cfg := good
		tt.mutate(&cfg)
		err := cfg.validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want an error naming %q", tt.name, err, tt.want)
		}
	}
}

func TestStatusInfo(t *testing.T) {
	st := Status{State: StateFailed, Phase: PhaseCutting, ID: "20261121T193000Z-abcd", Shards: 3, Keys: 10, Bytes: 2048,
		PauseUS: 312, Error: "line one\r\nline two", Started: time.Unix(1000, 0), Finished: time.Unix(1002, 0)}
	got := st.Info()
	want := "state:failed\r\nphase:cutting\r\nid:20261121T193000Z-abcd\r\nname:\r\ndir:\r\nepoch:0\r\nshards:3\r\n" +
		"keys:10\r\nbytes:2048\r\npause_us:312\r\nstarted:1000\r\nfinished:1002\r\nelapsed_ms:2000\r\nerror:line one  line two\r\n"
	if got != want {
		t.Errorf("Info:\n%q\nwant\n%q", got, want)
	}
}

func TestKeyspaceKeys(t *testing.T) {
	text := "# Keyspace\r\ndb0:keys=10,expires=2,avg_ttl=0\r\ndb3:keys=5,expires=0,avg_ttl=0\r\n"
	if got := keyspaceKeys(text); got != 15 {
		t.Errorf("keyspaceKeys = %d, want 15", got)
	}
	if got := keyspaceKeys("# Keyspace\r\n"); got != 0 {
		t.Errorf("keyspaceKeys(empty) = %d", got)
	}
}

// writeSnapshot fabricates a snapshot directory with a manifest.
func writeSnapshot(t *testing.T, dir, id string, created time.Time) {
	t.Helper()
	m := Manifest{Version: manifestVersion, ID: id, Created: created,
		Table:  ManifestTable{Spec: "127.0.0.1:1=0-16383", Shards: []ManifestTableShard{{Addr: "127.0.0.1:1", Ranges: []string{"0-16383"}}}},
		Shards: []ShardManifest{{Index: 0, Addr: "127.0.0.1:1", RDBFile: "shard-0.rdb", TailFile: "shard-0.tail.aof"}}}
	b, _ := json.Marshal(m)
	if err := os.MkdirAll(filepath.Join(dir, id), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, id, ManifestFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestListLoadDeleteOffline(t *testing.T) {
	dir := t.TempDir()
	if got, err := List(filepath.Join(dir, "missing")); got != nil || err != nil {
		t.Errorf("List of a missing dir: %v, %v", got, err)
	}
	now := time.Now().UTC()
	// The later id was created first: List orders by creation time.
	writeSnapshot(t, dir, "20261121T193001Z-0001", now)
	writeSnapshot(t, dir, "20261121T193000Z-0002", now.Add(time.Second))
	os.MkdirAll(filepath.Join(dir, tempPrefix+"20261121T193002Z-0003"), 0o700)
	os.MkdirAll(filepath.Join(dir, "not-a-snapshot"), 0o700)
	os.WriteFile(filepath.Join(dir, "20261121T193003Z-0004"), []byte("a file"), 0o600)

	list, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != "20261121T193001Z-0001" || list[1].ID != "20261121T193000Z-0002" {
		t.Fatalf("List: %+v", list)
	}

	// A damaged manifest: List reports it with the others; Load refuses
	// it; Delete still removes it.
	broken := "20261121T193004Z-0005"
	os.MkdirAll(filepath.Join(dir, broken), 0o700)
	os.WriteFile(filepath.Join(dir, broken, ManifestFile), []byte("{"), 0o600)
	list, err = List(dir)
	if len(list) != 2 || !errors.Is(err, ErrBadManifest) {
		t.Errorf("List with a broken manifest: %d, %v", len(list), err)
	}
	if _, err := Load(dir, broken); !errors.Is(err, ErrBadManifest) {
		t.Errorf("Load(broken) = %v", err)
	}
	// A manifest renamed under another id does not pass for it.
	os.Rename(filepath.Join(dir, "20261121T193000Z-0002"), filepath.Join(dir, "20261121T193000Z-0009"))
	if _, err := Load(dir, "20261121T193000Z-0009"); !errors.Is(err, ErrBadManifest) {
		t.Errorf("Load of a renamed snapshot = %v", err)
	}
	for _, id := range []string{broken, "20261121T193000Z-0009"} {
		if err := Delete(dir, id); err != nil {
			t.Errorf("Delete(%s): %v", id, err)
		}
	}
	for _, bad := range []string{"not-a-snapshot", tempPrefix + "20261121T193002Z-0003", "20261121T193003Z-0004", "/", ""} {
		if err := Delete(dir, bad); !errors.Is(err, ErrNotSnapshot) {
			t.Errorf("Delete(%q) = %v, want ErrNotSnapshot", bad, err)
		}
	}
	removed, err := RemoveStale(dir)
	if err != nil || len(removed) != 1 || removed[0] != tempPrefix+"20261121T193002Z-0003" {
		t.Errorf("RemoveStale: %v, %v", removed, err)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "20261121T193001Z-0001 20261121T193003Z-0004 not-a-snapshot" {
		t.Errorf("left in dir: %v", names)
	}
}

func TestCheckTail(t *testing.T) {
	set := "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"
	multi, exec := "*1\r\n$5\r\nMULTI\r\n", "*1\r\n$4\r\nEXEC\r\n"
	tests := []struct {
		name     string
		content  string
		commands int64
		wantErr  string
	}{
		{"empty", "", 0, ""},
		{"commands", set + multi + set + exec, 4, ""},
		{"truncated header", set + "*3\r\n$3\r", 0, "truncated command at offset 27"},
		{"truncated payload", set + "*3\r\n$3\r\nSET\r\n$1\r\nk", 0, "truncated command at offset 27"},
		{"open transaction", set + multi + set, 0, "inside MULTI/EXEC"},
		{"ping", set + "*1\r\n$4\r\nPING\r\n", 0, "offset 27"},
		{"inline", "SET k v\r\n", 0, "offset 0"},
	}
	for _, tt := range tests {
		p := filepath.Join(t.TempDir(), "tail.aof")
		os.WriteFile(p, []byte(tt.content), 0o600)
		sum, err := CheckTail(p)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: got %v, want an error with %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if sum.Commands != tt.commands || sum.Size != int64(len(tt.content)) {
			t.Errorf("%s: %+v", tt.name, sum)
		}
	}
}

// FuzzCheckTail: CheckTail never panics, and a tail it accepts is read to
// its last byte.
func FuzzCheckTail(f *testing.F) {
	f.Add([]byte("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"))
	f.Add([]byte("*1\r\n$5\r\nMULTI\r\n*1\r\n$4\r\nEXEC\r\n"))
	f.Add([]byte("*2\r\n$3\r\nGET\r\n$1\r\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "tail.aof")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		sum, err := CheckTail(p)
		if err == nil && sum.Size != int64(len(b)) {
			t.Fatalf("accepted %d bytes of %d", sum.Size, len(b))
		}
	})
}

// TestFind: a snapshot is found by its id or by its name, a name standing
// for every snapshot that has it, oldest first; a damaged manifest
// elsewhere does not stop the search.
func TestFind(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().UTC()
	named := func(id, name string, created time.Time) {
		writeSnapshot(t, dir, id, created)
		m, err := Load(dir, id)
		if err != nil {
			t.Fatal(err)
		}
		m.Name = name
		b, _ := json.Marshal(m)
		if err := os.WriteFile(filepath.Join(dir, id, ManifestFile), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	named("20261121T193000Z-0001", "nightly", now)
	named("20261121T193001Z-0002", "nightly", now.Add(time.Second))
	named("20261121T193002Z-0003", "before-upgrade", now.Add(2*time.Second))
	os.MkdirAll(filepath.Join(dir, "20261121T193004Z-0005"), 0o700)
	os.WriteFile(filepath.Join(dir, "20261121T193004Z-0005", ManifestFile), []byte("{"), 0o600)
	for _, tc := range []struct {
		ref  string
		want []string // ids; nil: ErrNotSnapshot
	}{
		{"20261121T193002Z-0003", []string{"20261121T193002Z-0003"}},
		{"nightly", []string{"20261121T193000Z-0001", "20261121T193001Z-0002"}},
		{"before-upgrade", []string{"20261121T193002Z-0003"}},
		{"weekly", nil},
		{"20261121T193009Z-0009", nil},
		{"../x", nil},
		{"", nil},
	} {
		found, err := Find(dir, tc.ref)
		var got []string
		for _, m := range found {
			got = append(got, m.ID)
		}
		if tc.want == nil {
			if !errors.Is(err, ErrNotSnapshot) {
				t.Errorf("Find(%q) = %v, %v; want ErrNotSnapshot", tc.ref, got, err)
			}
			continue
		}
		if err != nil || strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("Find(%q) = %v, %v; want %v", tc.ref, got, err, tc.want)
		}
	}
}
