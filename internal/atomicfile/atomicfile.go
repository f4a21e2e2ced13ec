package atomicfile

import (
	"os"
	"path/filepath"
)

// Write replaces dir/name with data, mode perm: it writes a temporary file
// in dir, fsyncs it, renames it over name and fsyncs dir, since a rename is
// durable only once the directory entry is. The temporary file is created
// with mode 0600 and changed to perm only before the rename, so a secret
// is never readable by others, even for a moment. dir must exist. A crash
// can leave a stray name.tmp-* file behind.
func Write(dir, name string, data []byte, perm os.FileMode) (err error) {
	tmp, err := os.CreateTemp(dir, name+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Chmod(perm); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	return SyncDir(dir)
}

// SyncDir makes the entries of dir durable: after a rename, or after a
// remove that must not be undone by a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err = d.Sync(); err != nil {
		d.Close()
		return err
	}
	return d.Close()
}
