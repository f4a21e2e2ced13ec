package snapshot

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reshard/reshard/internal/redistest"
)

// TestFollowStream follows a capture while a client writes: every command
// comes out once, in order, with the exact replication offset after it;
// PINGs in the stream (one a second here) only move the offset; once the
// writes stop, the follower reaches the shard's master_repl_offset. With
// Acked set, the capture acknowledges what the consumer reports, so WAIT
// on the shard counts the capture only once that has been applied.
func TestFollowStream(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := startSource(t, withArgs(disklessArgs, "--repl-ping-replica-period", "1")...)
	c := s.Client()
	populate(t, s, 1000, 16)

	var applied atomic.Int64
	cfg := captureConfig(t, s)
	cfg.AckInterval = 50 * time.Millisecond
	cfg.Acked = applied.Load
	cfg.Follow = true
	st := startCapture(t, cfg)
	if _, err := st.Follow(); err == nil {
		t.Fatal("Follow before the RDB is complete: want an error")
	}
	select {
	case <-st.RDBReceived():
	case <-st.Done():
		t.Fatal(st.Err())
	}
	applied.Store(st.ForkOffset())
	f, err := st.Follow()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := st.Follow(); err == nil {
		t.Fatal("second Follow: want an error")
	}

	const n = 3000
	done := make(chan error, 1)
	go func() {
		for i := range n {
			if err := c.Set(ctx, "f:"+strconv.Itoa(i), i, 0).Err(); err != nil {
				done <- err
				return
			}
			if i == n/2 {
				redistest.Sleep(1500) // a PING or two in the middle
			}
		}
		done <- nil
	}()

	next := func(deadline time.Time) Event {
		t.Helper()
		for {
			ev, ok, err := f.Next()
			if err != nil {
				t.Fatalf("Next: %v", err)
			}
			if ok {
				return ev
			}
			select {
			case <-f.Wait():
			case <-time.After(time.Until(deadline)):
				t.Fatalf("no event until the deadline; follower at %d, capture at %d", f.Offset(), st.Offset())
			}
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	seen, moves := 0, 0
	last := st.ForkOffset()
	var lastAt time.Time
	for seen < n {
		ev := next(deadline)
		if ev.Offset <= last {
			t.Fatalf("offset %d after %d", ev.Offset, last)
		}
		if ev.Received.Before(lastAt) {
			t.Errorf("received %v before the previous event's %v", ev.Received, lastAt)
		}
		last, lastAt = ev.Offset, ev.Received
		if ev.Args == nil {
			moves++
			continue
		}
		if strings.EqualFold(string(ev.Args[0]), "select") {
			continue
		}
		if want := fmt.Sprintf("set f:%d %d", seen, seen); strings.ToLower(fmt.Sprintf("%s %s %s", ev.Args[0], ev.Args[1], ev.Args[2])) != want {
			t.Fatalf("command %d: %q, want %s", seen, ev.Args, want)
		}
		seen++
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if moves == 0 {
		t.Errorf("no offset-only event: the PINGs did not show")
	}

	// WAIT counts the capture only once the consumer reports the offset.
	if err := c.Set(ctx, "wait", 1, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Wait(ctx, 1, 300*time.Millisecond).Result(); err != nil || got != 0 {
		t.Errorf("WAIT before the consumer applied: %d, %v; want 0", got, err)
	}
	want := masterOffset(t, c)
	for f.Offset() < want {
		next(time.Now().Add(10 * time.Second))
	}
	if f.Offset() != want {
		t.Errorf("follower at %d, master_repl_offset %d", f.Offset(), want)
	}
	applied.Store(f.Offset())
	if got, err := c.Wait(ctx, 1, 5*time.Second).Result(); err != nil || got != 1 {
		t.Errorf("WAIT after the consumer applied: %d, %v; want 1", got, err)
	}

	st.Close()
	for {
		_, ok, err := f.Next()
		if err != nil {
			if err == io.EOF {
				t.Fatal("io.EOF after Close, want the capture's error")
			}
			break
		}
		if !ok {
			<-f.Wait()
		}
	}
}
