package snapshot

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/reshard/reshard/internal/s3test"
	"github.com/reshard/reshard/snapshot/objstore"
)

func bucketStore(t *testing.T) (*Store, *objstore.Client, objstore.URL) {
	t.Helper()
	srv := s3test.Start(t)
	cfg := objstore.DefaultConfig()
	cfg.Endpoint = srv.Endpoint()
	c, err := objstore.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	u, err := objstore.ParseURL(srv.URL("snaps"))
	if err != nil {
		t.Fatal(err)
	}
	return BucketStore(c, u, t.TempDir()), c, u
}

func testManifest(id string) []byte {
	return []byte(`{"version":1,"id":"` + id + `","created":"2026-12-07T12:00:00Z","table":{"spec":"127.0.0.1:1","shards":[{"addr":"127.0.0.1:1","ranges":["0-16383"]}]},` +
		`"shards":[{"index":0,"addr":"127.0.0.1:1","rdb_file":"shard-0.rdb","tail_file":"shard-0.tail.aof"}]}`)
}

// stage writes a whole snapshot through a bucket staging, up to (not
// including) publish.
func stage(t *testing.T, s *Store) (string, staging) {
	t.Helper()
	ctx := context.Background()
	id, st, err := s.begin(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sink, err := st.rdb(ctx, "shard-0.rdb")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Write([]byte("REDIS0011")); err != nil {
		t.Fatal(err)
	}
	if err := sink.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(st.tailPath("shard-0.tail.aof"), []byte("*1\r\n$4\r\nPING\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := st.tailDone(ctx, "shard-0.tail.aof"); err != nil {
		t.Fatal(err)
	}
	return id, st
}

// A snapshot in a bucket is listed only once its manifest is written; a
// job that fails even after publishing deletes every object it sent; the
// spool is left empty either way.
func TestBucketStaging(t *testing.T) {
	s, c, u := bucketStore(t)
	ctx := context.Background()

	id, st := stage(t, s)
	if l, err := s.List(ctx); err != nil || len(l) != 0 {
		t.Fatalf("List before the manifest = %v, %v; want none", l, err)
	}
	if err := st.publish(ctx, testManifest(id), nil); err != nil {
		t.Fatal(err)
	}
	l, err := s.List(ctx)
	if err != nil || len(l) != 1 || l[0].ID != id {
		t.Fatalf("List after the manifest = %v, %v; want %s", l, err, id)
	}
	if got, want := s.Location(id), u.String()+"/"+id; got != want {
		t.Errorf("Location = %s, want %s", got, want)
	}
	st.abort()
	if l, err := c.List(ctx, u.Join(id)); err != nil || len(l.Keys) != 0 {
		t.Fatalf("objects after abort: %v, %v; want none", l.Keys, err)
	}
	if left, _ := os.ReadDir(s.spool); len(left) != 0 {
		t.Errorf("spool holds %d entries, want none", len(left))
	}

	// Delete takes the manifest first, then the files.
	id, st = stage(t, s)
	if err := st.publish(ctx, testManifest(id), nil); err != nil {
		t.Fatal(err)
	}
	if found, err := s.Find(ctx, id); err != nil || len(found) != 1 {
		t.Fatalf("Find(%s) = %v, %v", id, found, err)
	}
	if err := s.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, id); !errors.Is(err, ErrNotSnapshot) {
		t.Fatalf("second Delete = %v, want ErrNotSnapshot", err)
	}
	if l, err := c.List(ctx, u.Join(id)); err != nil || len(l.Keys) != 0 {
		t.Fatalf("objects after Delete: %v, %v; want none", l.Keys, err)
	}
}

// RemoveStale takes a snapshot without a manifest only once it is older
// than any job can run; a recent one may be another proxy's running job.
func TestBucketRemoveStale(t *testing.T) {
	s, c, u := bucketStore(t)
	ctx := context.Background()
	old := "20201207T120000Z-abcd"
	for _, name := range []string{"shard-0.rdb", "shard-0.tail.aof"} {
		if err := c.Put(ctx, u.Join(old).Join(name), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	recent, _ := stage(t, s)
	removed, err := s.RemoveStale(ctx)
	if err != nil || len(removed) != 1 || removed[0] != old {
		t.Fatalf("RemoveStale = %v, %v; want [%s]", removed, err, old)
	}
	if _, err := c.Stat(ctx, u.Join(old).Join("shard-0.rdb")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale object still there: %v", err)
	}
	if _, err := c.Stat(ctx, u.Join(recent).Join("shard-0.rdb")); err != nil {
		t.Errorf("a recent job's object was removed: %v", err)
	}
}

func TestOpenStore(t *testing.T) {
	if s, err := OpenStore("/var/snaps", nil, ""); err != nil || !s.Local() || s.String() != "/var/snaps" {
		t.Errorf("OpenStore(dir) = %v, %v", s, err)
	}
	if _, err := OpenStore("s3://b/p", nil, ""); err == nil || !strings.Contains(err.Error(), "S3 client") {
		t.Errorf("OpenStore(s3 without client) = %v", err)
	}
	if _, err := OpenStore("s3:///p", nil, ""); !errors.Is(err, objstore.ErrBadURL) {
		t.Errorf("OpenStore(bad url) = %v", err)
	}
}
