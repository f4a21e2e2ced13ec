package objstore_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/reshard/reshard/internal/s3test"
	"github.com/reshard/reshard/snapshot/objstore"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want objstore.URL
		bad  bool
	}{
		{in: "s3://b", want: objstore.URL{Bucket: "b"}},
		{in: "s3://b/", want: objstore.URL{Bucket: "b"}},
		{in: "s3://b/p/q/", want: objstore.URL{Bucket: "b", Key: "p/q"}},
		{in: "s3://b/x.rdb", want: objstore.URL{Bucket: "b", Key: "x.rdb"}},
		{in: "s3:///p", bad: true},
		{in: "s3://b/p//q", bad: true},
		{in: "/tmp/x", bad: true},
	} {
		got, err := objstore.ParseURL(tc.in)
		if tc.bad {
			if !errors.Is(err, objstore.ErrBadURL) {
				t.Errorf("ParseURL(%q) = %v, %v; want ErrBadURL", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseURL(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func client(t *testing.T, srv *s3test.Server) *objstore.Client {
	t.Helper()
	cfg := objstore.DefaultConfig()
	cfg.Endpoint = srv.Endpoint()
	cfg.PartSize = 5 << 20
	c, err := objstore.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// An upload larger than a part goes as a multipart upload, written in odd
// sized pieces; it reads back byte for byte, and lists, and deletes.
func TestUploadMultipart(t *testing.T) {
	srv := s3test.Start(t)
	c := client(t, srv)
	ctx := context.Background()
	base, _ := objstore.ParseURL(srv.URL("snaps/one"))
	data := make([]byte, 12<<20+12345)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	up := c.Create(ctx, base.Join("big.rdb"))
	for rest := data; len(rest) > 0; {
		n := min(len(rest), 1+rng.IntN(3<<20))
		if _, err := up.Write(rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	if err := up.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := c.Put(ctx, base.Join("small.json"), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	body, size, err := c.Open(ctx, base.Join("big.rdb"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(body)
	body.Close()
	if err != nil || size != int64(len(data)) || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes (size %d, err %v), want the %d written", len(got), size, err, len(data))
	}
	l, err := c.List(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(l.Keys)
	if want := []string{"big.rdb", "small.json"}; !slices.Equal(l.Keys, want) || len(l.Dirs) != 0 {
		t.Fatalf("List = %+v, want keys %v", l, want)
	}
	parent, _ := objstore.ParseURL(srv.URL("snaps"))
	if l, err := c.List(ctx, parent); err != nil || !slices.Equal(l.Dirs, []string{"one"}) {
		t.Fatalf("List(parent) = %+v, %v; want dir one", l, err)
	}
	if err := c.Delete(ctx, base.Join("big.rdb"), base.Join("small.json"), base.Join("never")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Stat(ctx, base.Join("big.rdb")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Stat after Delete = %v, want fs.ErrNotExist", err)
	}
}

// An aborted upload leaves no object, also after parts were sent.
func TestUploadAbort(t *testing.T) {
	srv := s3test.Start(t)
	c := client(t, srv)
	ctx := context.Background()
	u, _ := objstore.ParseURL(srv.URL("x/aborted.rdb"))
	up := c.Create(ctx, u)
	if _, err := up.Write(make([]byte, 11<<20)); err != nil {
		t.Fatal(err)
	}
	up.Abort()
	up.Abort()
	if err := up.Commit(); !errors.Is(err, objstore.ErrUploadDone) {
		t.Fatalf("Commit after Abort = %v, want ErrUploadDone", err)
	}
	if _, _, err := c.Open(ctx, u); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open of an aborted upload = %v, want fs.ErrNotExist", err)
	}
}

// A store that is gone fails the upload with an error naming the object.
func TestUploadStoreGone(t *testing.T) {
	srv := s3test.Start(t)
	c := client(t, srv)
	u, _ := objstore.ParseURL(srv.URL("x/gone.rdb"))
	srv.Stop()
	up := c.Create(context.Background(), u)
	_, werr := up.Write(make([]byte, 6<<20))
	cerr := up.Commit()
	if werr == nil && cerr == nil {
		t.Fatal("an upload to a stopped server succeeded")
	}
	err := errors.Join(werr, cerr)
	if !bytes.Contains([]byte(err.Error()), []byte(u.String())) {
		t.Fatalf("error %q does not name %s", err, u)
	}
}
