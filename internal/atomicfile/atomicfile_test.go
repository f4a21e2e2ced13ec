package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		data string
		perm os.FileMode
	}{
		{"first", 0o644},
		{"second, replacing it", 0o600},
	} {
		if err := Write(dir, "f.json", []byte(tc.data), tc.perm); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, "f.json"))
		if err != nil || string(got) != tc.data {
			t.Errorf("content = %q, %v; want %q", got, err, tc.data)
		}
		if fi, err := os.Stat(filepath.Join(dir, "f.json")); err != nil || fi.Mode().Perm() != tc.perm {
			t.Errorf("mode = %v, %v; want %v", fi.Mode().Perm(), err, tc.perm)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only f.json (no temporary file left)", len(entries))
	}
}

func TestWriteMissingDir(t *testing.T) {
	if err := Write(filepath.Join(t.TempDir(), "absent"), "f", []byte("x"), 0o600); err == nil {
		t.Error("Write into a missing directory succeeded")
	}
}
