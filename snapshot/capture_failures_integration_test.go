package snapshot

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/internal/redistest"
)

// Captures that fail: a source that refuses replication, dies mid-capture or
// drops the capture for its output buffer, and captures ended by Close, a
// cancelled context or a failing verifier.

func TestCaptureRefused(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		setup    func(ctx context.Context, c *redis.Client) error
		user     string
		password string
		want     string // in the error message
	}{
		{
			name: "acl user without psync",
			setup: func(ctx context.Context, c *redis.Client) error {
				return c.Do(ctx, "ACL", "SETUSER", "snap", "on", ">snap-pw", "~*", "&*", "+@all", "-psync").Err()
			},
			user: "snap", password: "snap-pw",
			want: "NOPERM",
		},
		{
			name: "psync disabled",
			args: []string{"--rename-command", "PSYNC", ""},
			want: "unknown command",
		},
		{
			name:  "no auth",
			setup: requirePass("secret-pw"),
			want:  "NOAUTH",
		},
		{
			name:     "wrong password",
			setup:    requirePass("secret-pw"),
			password: "not-the-pw",
			want:     "WRONGPASS",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := startSource(t, withArgs(disklessArgs, tt.args...)...)
			if tt.setup != nil {
				if err := tt.setup(ctx, s.Client()); err != nil {
					t.Fatal(err)
				}
			}
			cfg := captureConfig(t, s)
			cfg.Username, cfg.Password = tt.user, tt.password
			st, err := Capture(ctx, cfg)
			if err == nil {
				st.Close()
				t.Fatal("capture succeeded")
			}
			if !errors.Is(err, ErrRefused) {
				t.Errorf("got %v, want ErrRefused", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, "refused replication") || !strings.Contains(msg, tt.want) {
				t.Errorf("message %q should say the shard refused replication and %q", msg, tt.want)
			}
			if tt.password != "" && strings.Contains(msg, tt.password) {
				t.Errorf("message %q contains the password", msg)
			}
			t.Logf("%v", err)
			assertRemoved(t, cfg.RDBPath, cfg.TailPath)
		})
	}
}

// TestCaptureSourceKilled: a shard that dies mid-capture fails it with
// ErrSourceGone and leaves no files.
func TestCaptureSourceKilled(t *testing.T) {
	tests := []struct {
		name  string
		phase Phase
	}{
		{"during the rdb", PhaseRDB},
		{"during the stream", PhaseStream},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			args := disklessArgs
			if tt.phase == PhaseRDB {
				// 20k keys at 200 µs (or more) each: a transfer of 4 s
				// or more, to kill the shard in the middle of.
				args = withArgs(args, "--rdb-key-save-delay", "200")
			}
			s := startSource(t, args...)
			c := s.Client()
			populate(t, s, 20000, 16)
			cfg := captureConfig(t, s)
			st := startCapture(t, cfg)
			if tt.phase == PhaseRDB {
				for st.Progress().RDBBytes == 0 {
					redistest.Sleep(5)
				}
			} else {
				waitPhase(t, st, PhaseStream)
				c.Set(ctx, "k", "v", 0)
			}
			s.Kill()
			select {
			case <-st.Done():
			case <-time.After(20 * time.Second):
				t.Fatal("capture did not notice the shard died")
			}
			err := st.Err()
			if !errors.Is(err, ErrSourceGone) {
				t.Fatalf("got %v, want ErrSourceGone", err)
			}
			if !strings.Contains(err.Error(), tt.phase.String()+" phase") {
				t.Errorf("error %q does not name the phase", err)
			}
			t.Logf("%v", err)
			if _, err := st.StopAt(ctx, st.ForkOffset()); !errors.Is(err, ErrSourceGone) {
				t.Errorf("StopAt after the failure: %v", err)
			}
			assertRemoved(t, cfg.RDBPath, cfg.TailPath)
		})
	}
}

// TestCaptureOutputBufferLimit: a capture that stops reading while the
// source writes fast overruns client-output-buffer-limit replica; the
// source drops it, and the capture says so.
func TestCaptureOutputBufferLimit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := startSource(t, withArgs(disklessArgs, "--client-output-buffer-limit", "replica 64kb 32kb 1")...)
	c := s.Client()
	cfg := captureConfig(t, s)
	var stall atomic.Bool
	release := make(chan struct{})
	cfg.testBeforeCommand = func() {
		if stall.Load() {
			<-release
		}
	}
	st := startCapture(t, cfg)
	waitPhase(t, st, PhaseStream)
	stall.Store(true)

	// Far more than socket buffers hold, so the source has to buffer it.
	value := strings.Repeat("x", 16<<10)
	deadline := time.Now().Add(20 * time.Second)
	for infoField(t, c, "replication", "connected_slaves") != "0" {
		if time.Now().After(deadline) {
			close(release)
			t.Fatal("the source never dropped the stalled capture")
		}
		p := c.Pipeline()
		for i := 0; i < 500; i++ {
			p.Set(ctx, fmt.Sprintf("burst:%d", i), value, 0)
		}
		if _, err := p.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	close(release)
	select {
	case <-st.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("capture did not notice the dropped link")
	}
	err := st.Err()
	if !errors.Is(err, ErrClosedBySource) {
		t.Fatalf("got %v, want ErrClosedBySource", err)
	}
	if !strings.Contains(err.Error(), "client-output-buffer-limit replica") {
		t.Errorf("error %q does not point at the output buffer limit", err)
	}
	t.Logf("%v", err)
	assertRemoved(t, cfg.RDBPath, cfg.TailPath)
}

// TestCaptureClose: Close, a cancelled context and a failing verifier all
// end a capture with no files left.
func TestCaptureClose(t *testing.T) {
	verifyErr := errors.New("checksum mismatch")
	tests := []struct {
		name   string
		verify func(string) error
		end    func(st *Stream, cancel context.CancelFunc)
		want   error
	}{
		{"close", nil, func(st *Stream, _ context.CancelFunc) { st.Close() }, ErrClosed},
		{"cancel", nil, func(_ *Stream, cancel context.CancelFunc) { cancel() }, context.Canceled},
		{"verify", func(string) error { return verifyErr }, func(st *Stream, _ context.CancelFunc) {
			st.StopAt(context.Background(), st.ForkOffset())
		}, verifyErr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := disklessArgs
			if tt.verify == nil {
				args = withArgs(args, "--rdb-key-save-delay", "100") // to end it mid-transfer
			}
			s := startSource(t, args...)
			populate(t, s, 10000, 16)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cfg := captureConfig(t, s)
			cfg.Verify = tt.verify
			st, err := Capture(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if tt.verify == nil {
				for st.Progress().RDBBytes == 0 {
					redistest.Sleep(5)
				}
			}
			tt.end(st, cancel)
			select {
			case <-st.Done():
			case <-time.After(30 * time.Second):
				t.Fatal("capture did not end")
			}
			if err := st.Err(); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			st.Close() // idempotent
			assertRemoved(t, cfg.RDBPath, cfg.TailPath)
			// The shard forgets the capture.
			deadline := time.Now().Add(5 * time.Second)
			for infoField(t, s.Client(), "replication", "connected_slaves") != "0" {
				if time.Now().After(deadline) {
					t.Fatal("the source still lists the capture")
				}
				redistest.Sleep(10)
			}
		})
	}
}
