package router

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestSaveLoadRoundTrip(t *testing.T) {
	dir := t.TempDir()
	shards, err := ParseSpec("127.0.0.1:7001+127.0.0.1:7101=0-5000/8000-9000,[::1]:7002=5001-7999/9001-16382,redis.internal:7003=16383")
	if err != nil {
		t.Fatal(err)
	}
	want := mustTable(t, 42, shards)
	if err := Save(dir, want); err != nil {
		t.Fatalf("Save: %v", err)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got.Epoch() != want.Epoch() {
		t.Errorf("epoch = %d, want %d", got.Epoch(), want.Epoch())
	}
	if !reflect.DeepEqual(got.Shards(), want.Shards()) {
		t.Errorf("shards = %v, want %v", got.Shards(), want.Shards())
	}
	if got.slots != want.slots {
		t.Error("slot maps differ")
	}
	if r := got.Replicas(0); !reflect.DeepEqual(r, []string{"127.0.0.1:7101"}) || got.Replicas(1) != nil {
		t.Errorf("replicas = %q, %q; want shard 0's one, none of shard 1", r, got.Replicas(1))
	}

	// The file is readable JSON with "A-B" range strings.
	data, err := os.ReadFile(filepath.Join(dir, TableFile))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Epoch  uint64
		Shards []struct {
			Addr   string
			Ranges []string
		}
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("%s is not JSON: %v", TableFile, err)
	}
	if got, want := f.Shards[0].Ranges, []string{"0-5000", "8000-9000"}; !reflect.DeepEqual(got, want) {
		t.Errorf("shard 0 ranges in file = %q, want %q", got, want)
	}
	if got, want := f.Shards[2].Ranges, []string{"16383-16383"}; !reflect.DeepEqual(got, want) {
		t.Errorf("shard 2 ranges in file = %q, want %q", got, want)
	}
	if fi, err := os.Stat(filepath.Join(dir, TableFile)); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("file mode = %v, %v; want 0644", fi.Mode(), err)
	}
}

func TestSaveReplaces(t *testing.T) {
	dir := t.TempDir()
	old := mustTable(t, 1, threeShards())
	next := mustTable(t, 2, []Shard{{Addr: "10.0.0.1:6379", Ranges: []Range{{0, 16383}}}})
	for _, tab := range []*Table{old, next} {
		if err := Save(dir, tab); err != nil {
			t.Fatalf("Save epoch %d: %v", tab.Epoch(), err)
		}
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Epoch() != 2 || got.Addr(0) != "10.0.0.1:6379" {
		t.Errorf("Load after two saves = epoch %d %v, want epoch 2 [10.0.0.1:6379]", got.Epoch(), got.Addrs())
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != TableFile {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("state dir holds %q, want only %s", names, TableFile)
	}
}

func TestSaveMissingDir(t *testing.T) {
	err := Save(filepath.Join(t.TempDir(), "missing"), mustTable(t, 1, threeShards()))
	if err == nil || !strings.Contains(err.Error(), "router: save table epoch 1") {
		t.Errorf("Save into a missing dir: error = %v", err)
	}
}

func TestLoadNoTable(t *testing.T) {
	for name, dir := range map[string]string{
		"empty dir":   t.TempDir(),
		"missing dir": filepath.Join(t.TempDir(), "missing"),
	} {
		tab, err := Load(dir)
		if !errors.Is(err, ErrNoTable) || tab != nil {
			t.Errorf("%s: Load = %v, %v; want nil, ErrNoTable", name, tab, err)
		}
	}
}

func TestLoadIgnoresStrayTemp(t *testing.T) {
	dir := t.TempDir()
	if err := Save(dir, mustTable(t, 3, threeShards())); err != nil {
		t.Fatal(err)
	}
	// What a crash between create and rename leaves behind.
	if err := os.WriteFile(filepath.Join(dir, TableFile+".tmp-123"), []byte(`{"epoch":`), 0o600); err != nil {
		t.Fatal(err)
	}
	if tab, err := Load(dir); err != nil || tab.Epoch() != 3 {
		t.Errorf("Load = %v, %v; want epoch 3", tab, err)
	}
}

// validFile returns the JSON Save writes for the three-shard table, as a map
// that tests can damage.
func validFile(t *testing.T) map[string]any {
	t.Helper()
	dir := t.TempDir()
	if err := Save(dir, mustTable(t, 5, threeShards())); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, TableFile))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func marshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestLoadCorrupt(t *testing.T) {
	shard := func(m map[string]any, i int) map[string]any {
		return m["shards"].([]any)[i].(map[string]any)
	}
	damage := func(f func(m map[string]any)) func(t *testing.T) string {
		return func(t *testing.T) string {
			m := validFile(t)
			f(m)
			return marshal(t, m)
		}
	}
	literal := func(s string) func(t *testing.T) string {
		return func(*testing.T) string { return s }
	}
	valid := func(t *testing.T) string { return marshal(t, validFile(t)) }

	// A table that does not validate, with a matching checksum: only a
	// buggy writer can produce it, and Load must still refuse it.
	gap := []Shard{{Addr: "a:1", Ranges: []Range{{0, 100}}}}
	gapFile := marshal(t, tableFile{Version: 1, Epoch: 1, Checksum: tableChecksum(1, gap),
		Shards: []shardFile{{Addr: "a:1", Ranges: []string{"0-100"}}}})

	tests := []struct {
		name    string
		content func(t *testing.T) string
		want    string
	}{
		{"empty", literal(""), "EOF"},
		{"not json", literal("shards: 127.0.0.1:7001=0-16383\n"), "invalid character"},
		{"not an object", literal("127.0\n"), "cannot unmarshal number"},
		{"truncated", func(t *testing.T) string { s := valid(t); return s[:len(s)/2] }, "unexpected EOF"},
		{"trailing data", func(t *testing.T) string { return valid(t) + "{}" }, "data after the JSON object"},
		{"unknown field", damage(func(m map[string]any) { m["slots"] = 1 }), `unknown field "slots"`},
		{"future version", damage(func(m map[string]any) { m["version"] = 2 }), "unsupported version 2 (want 1)"},
		{"negative epoch", damage(func(m map[string]any) { m["epoch"] = -1 }), "cannot unmarshal"},
		{"changed address", damage(func(m map[string]any) { shard(m, 1)["addr"] = "127.0.0.1:7012" }), "does not match the content"},
		{"changed epoch", damage(func(m map[string]any) { m["epoch"] = 6 }), "does not match the content"},
		{"changed range", damage(func(m map[string]any) { shard(m, 0)["ranges"] = []string{"0-5459"} }), "does not match the content"},
		{"no checksum", damage(func(m map[string]any) { delete(m, "checksum") }), "does not match the content"},
		{"bad range", damage(func(m map[string]any) { shard(m, 0)["ranges"] = []string{"0-5460/7"} }), `shard 127.0.0.1:7001: bad slot range "0-5460/7"`},
		{"bad address", damage(func(m map[string]any) { shard(m, 0)["addr"] = "127.0.0.1" }), `shard 0: address "127.0.0.1" is not HOST:PORT`},
		{"non-canonical address", damage(func(m map[string]any) { shard(m, 0)["addr"] = "127.0.0.1:07001" }), `not in canonical form "127.0.0.1:7001"`},
		{"coverage", literal(gapFile), "router: slot 101 is not owned by any shard"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, TableFile)
			if err := os.WriteFile(path, []byte(tt.content(t)), 0o644); err != nil {
				t.Fatal(err)
			}
			tab, err := Load(dir)
			if err == nil {
				t.Fatalf("Load succeeded (epoch %d), want error containing %q", tab.Epoch(), tt.want)
			}
			if !errors.Is(err, ErrCorruptTable) {
				t.Errorf("error %q does not wrap ErrCorruptTable", err)
			}
			if msg := err.Error(); !strings.Contains(msg, tt.want) || !strings.HasPrefix(msg, "router: corrupt persisted table "+path+": ") {
				t.Errorf("error = %q, want it to name %s and contain %q", msg, path, tt.want)
			}
		})
	}
}
