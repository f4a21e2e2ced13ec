package sentinel_test

import (
	"context"
	"testing"
	"time"

	"github.com/reshard/reshard/internal/redistest"
	"github.com/reshard/reshard/internal/sentinel"
	"github.com/reshard/reshard/internal/sentineltest"
)

// A Watcher names the primary, sees a failover start and end when the
// primary is SIGKILLed, and names the promoted replica afterwards.
func TestWatcherFollowsFailover(t *testing.T) {
	primary := redistest.Start(t)
	replica := redistest.StartReplica(t, primary)
	ss := sentineltest.Start(t, "m", primary, 3)
	events := make(chan sentinel.Event, 16)
	w, err := sentinel.New(sentinel.Config{Addrs: sentineltest.Addrs(ss), Poll: 200 * time.Millisecond}, func(e sentinel.Event) { events <- e })
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Follow("m")
	if got, err := w.Primary(t.Context(), "m"); err != nil || got != primary.Addr() {
		t.Fatalf("Primary = %q, %v; want %s", got, err, primary.Addr())
	}
	if _, err := w.Resolve(t.Context(), "nosuch"); err == nil {
		t.Fatal("Resolve of a master no sentinel monitors succeeded")
	}
	time.Sleep(300 * time.Millisecond) // the subscriptions are made
	primary.Kill()
	var saw []sentinel.Event
	timeout := time.After(30 * time.Second)
	for len(saw) == 0 || saw[len(saw)-1].Kind != sentinel.Switched {
		select {
		case e := <-events:
			saw = append(saw, e)
		case <-timeout:
			t.Fatalf("no switch 30s after the kill; events %v", saw)
		}
	}
	if saw[0].Kind != sentinel.Starting || saw[0].Name != "m" {
		t.Errorf("first event %v, want m starting", saw[0])
	}
	if last := saw[len(saw)-1]; last.Addr != replica.Addr() {
		t.Errorf("switched to %q, want %s", last.Addr, replica.Addr())
	}
	if got, err := w.Primary(t.Context(), "m"); err != nil || got != replica.Addr() {
		t.Fatalf("Primary after the failover = %q, %v; want %s", got, err, replica.Addr())
	}
}

// With fewer than a majority of the sentinels answering, no primary is
// named.
func TestResolveNeedsMajority(t *testing.T) {
	primary := redistest.Start(t)
	ss := sentineltest.Start(t, "m", primary, 3)
	w, err := sentinel.New(sentinel.Config{Addrs: sentineltest.Addrs(ss), Timeout: 500 * time.Millisecond}, func(sentinel.Event) {})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ss[0].Stop(5 * time.Second)
	if got, err := w.Resolve(context.Background(), "m"); err != nil || got != primary.Addr() {
		t.Fatalf("with 2 of 3 sentinels: %q, %v; want %s", got, err, primary.Addr())
	}
	ss[1].Stop(5 * time.Second)
	if got, err := w.Resolve(context.Background(), "m"); err == nil {
		t.Fatalf("with 1 of 3 sentinels: %q, want an error", got)
	} else {
		t.Log(err)
	}
}
