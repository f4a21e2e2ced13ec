// Package s3test starts a real S3-protocol server on loopback for tests:
// gofakes3 (github.com/johannesboyne/gofakes3, the server `rclone serve s3`
// is built on), as a process of its own holding its objects in memory, the way
// internal/redistest starts redis-server. It speaks S3's HTTP protocol, so
// the code under test runs the AWS SDK unchanged against it; nothing of the
// SDK is mocked. Its own process keeps its memory out of the measurements
// of benchmarks that sample the test binary's.
//
// The server binary is built from the version go.mod pins (a tool
// dependency) with `go build`, once per machine and version, into the
// user's cache directory.
package s3test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/reshard/reshard/internal/proc"
)

// pkg is the server's main package, a tool in go.mod.
const pkg = "github.com/johannesboyne/gofakes3/cmd/gofakes3"

// Test credentials: gofakes3 accepts any, the SDK insists on some.
const (
	AccessKey = "reshard-test-access-key"
	SecretKey = "reshard-test-secret-key-not-for-logs"
)

// Server is one gofakes3 process owned by a test.
type Server struct {
	port   int
	bucket string
	p      *proc.Process
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds the server once per test process (go build's cache makes
// later builds cheap) and returns its path.
func binary() (string, error) {
	buildOnce.Do(func() {
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		dir := filepath.Join(cache, "reshard-s3test")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			buildErr = err
			return
		}
		goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := os.Stat(goBin); err != nil {
			goBin = "go"
		}
		// A temporary name, renamed into place: test binaries of several
		// packages may build at once.
		tmp, err := os.CreateTemp(dir, "gofakes3-*")
		if err != nil {
			buildErr = err
			return
		}
		tmp.Close()
		out, err := exec.Command(goBin, "build", "-o", tmp.Name(), pkg).CombinedOutput()
		if err != nil {
			os.Remove(tmp.Name())
			buildErr = fmt.Errorf("s3test: go build %s: %v\n%s", pkg, err, out)
			return
		}
		binPath = filepath.Join(dir, "gofakes3")
		if err := os.Rename(tmp.Name(), binPath); err != nil {
			buildErr = err
		}
	})
	return binPath, buildErr
}

// Start starts a server with one empty bucket, sets the AWS credential
// variables the SDK reads for the rest of the test (t.Setenv), and stops
// the server when the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin, err := binary()
	if err != nil {
		tb.Fatal(err)
	}
	if t, ok := tb.(interface{ Setenv(k, v string) }); ok {
		t.Setenv("AWS_ACCESS_KEY_ID", AccessKey)
		t.Setenv("AWS_SECRET_ACCESS_KEY", SecretKey)
		t.Setenv("AWS_REGION", "us-east-1")
	}
	s := &Server{bucket: "reshard-test"}
	for range 5 {
		if s.port, err = proc.FreePort(); err != nil {
			tb.Fatalf("s3test: free port: %v", err)
		}
		if err = s.start(bin); err == nil {
			tb.Cleanup(func() { s.p.Stop(5 * time.Second) })
			return s
		}
	}
	tb.Fatalf("s3test: %v", err)
	return nil
}

func (s *Server) start(bin string) error {
	cmd := exec.Command(bin,
		"-host", "127.0.0.1:"+strconv.Itoa(s.port),
		"-backend", "mem",
		"-initialbucket", s.bucket, "-quiet")
	p, err := proc.Start(cmd)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		if proc.ListensOn(p.PID(), s.port) {
			resp, err := http.Get(s.Endpoint() + "/" + s.bucket)
			if err == nil {
				resp.Body.Close()
				s.p = p
				return nil
			}
		}
		select {
		case <-ctx.Done():
			p.Kill()
			return fmt.Errorf("gofakes3 on port %d not ready\n%s", s.port, p.Output(5))
		case <-p.Done():
			return fmt.Errorf("gofakes3 on port %d exited: %v\n%s", s.port, p.Err(), p.Output(5))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Endpoint is the server's URL, as --s3-endpoint takes it.
func (s *Server) Endpoint() string { return "http://127.0.0.1:" + strconv.Itoa(s.port) }

// Bucket is the bucket the server was started with.
func (s *Server) Bucket() string { return s.bucket }

// URL is s3://BUCKET/prefix.
func (s *Server) URL(prefix string) string { return "s3://" + s.bucket + "/" + prefix }

// PID is the server's process id.
func (s *Server) PID() int { return s.p.PID() }

// Stop stops the server now (a test of a store that goes away).
func (s *Server) Stop() { s.p.Stop(5 * time.Second) }
