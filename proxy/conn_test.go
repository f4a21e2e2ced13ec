package proxy

import (
	"testing"
	"time"
)

// The soft limit is passed only by a queue that stays over it for longer
// than its time; going back under it starts the time again.
func TestStreamerOver(t *testing.T) {
	st := &streamer{limit: outputLimit{hard: 1000, soft: 100, softFor: 50 * time.Millisecond}}
	for _, step := range []struct {
		queued int64
		sleep  time.Duration
		want   string
	}{
		{50, 0, ""},
		{150, 0, ""}, // over the soft limit: the time starts
		{150, 60 * time.Millisecond, "soft"},
		{50, 0, ""}, // back under: the time stops
		{150, 0, ""},
		{150, 20 * time.Millisecond, ""},
		{1001, 0, "hard"},
	} {
		time.Sleep(step.sleep)
		if got := st.over(step.queued); got != step.want {
			t.Fatalf("over(%d) after %s = %q, want %q", step.queued, step.sleep, got, step.want)
		}
	}
	none := &streamer{limit: outputLimit{hard: 1000}}
	none.over(500)
	time.Sleep(time.Millisecond)
	if got := none.over(500); got != "" {
		t.Errorf("with no soft limit: over(500) = %q", got)
	}
}
