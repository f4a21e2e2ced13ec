package snapshot

import (
	"context"
	"strings"
	"testing"
	"time"
)

func forkDelayOf(t *testing.T, c *cluster, i int) string {
	t.Helper()
	v, err := c.clients[i].ConfigGet(context.Background(), forkDelaySetting).Result()
	if err != nil {
		t.Fatal(err)
	}
	return v[forkDelaySetting]
}

// On shards with Redis's default fork delay (5 s) a snapshot does not wait
// for it, and each shard's setting is as it was afterwards: after a job
// that completed, one canceled, and one whose handshake the shard refused.
func TestJobForkDelay(t *testing.T) {
	t.Parallel()
	defaults := []string{"--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "5"}
	c := startCluster(t, defaults, defaults)
	b := &testBarrier{}
	cfg := c.jobConfig(t, b)
	started := time.Now()
	j, err := runJob(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(started)
	if took > 3*time.Second {
		t.Errorf("the snapshot took %s on shards with a 5 s fork delay", took)
	}
	if st := j.Status(); st.ForkDelay != "" {
		t.Errorf("fork_delay %q, want none", st.ForkDelay)
	}
	for i := range c.servers {
		if got := forkDelayOf(t, c, i); got != "5" {
			t.Errorf("shard %d: %s %s after the snapshot, want 5", i, forkDelaySetting, got)
		}
	}
	t.Logf("snapshot on shards with a 5 s fork delay: %s", took)

	// A job canceled as it starts: wherever the cancel lands, the delay
	// is as it was once the job has ended.
	j, err = StartJob(context.Background(), c.jobConfig(t, b))
	if err != nil {
		t.Fatal(err)
	}
	j.Cancel()
	<-j.Done()
	for i := range c.servers {
		if got := forkDelayOf(t, c, i); got != "5" {
			t.Errorf("shard %d: %s %s after a canceled snapshot, want 5", i, forkDelaySetting, got)
		}
	}

	// A user who may CONFIG but not PSYNC: the capture lowers the delay,
	// the handshake fails, the delay is set back.
	for _, cl := range c.clients {
		if err := cl.Do(context.Background(), "ACL", "SETUSER", "nosync", "on", ">pw", "+@all", "-psync", "-sync", "~*").Err(); err != nil {
			t.Fatal(err)
		}
	}
	cfg = c.jobConfig(t, b)
	cfg.Username, cfg.Password = "nosync", "pw"
	if _, err := runJob(t, cfg); err == nil || !strings.Contains(err.Error(), "PSYNC") {
		t.Fatalf("a job whose PSYNC is refused: %v", err)
	}
	for i := range c.servers {
		if got := forkDelayOf(t, c, i); got != "5" {
			t.Errorf("shard %d: %s %s after a failed snapshot, want 5", i, forkDelaySetting, got)
		}
	}
}

// A shard that refuses CONFIG keeps its delay: the snapshot waits for it,
// completes, and its status says why.
func TestJobForkDelayRefused(t *testing.T) {
	t.Parallel()
	c := startCluster(t, []string{"--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "1"})
	if err := c.clients[0].Do(context.Background(), "ACL", "SETUSER", "noconfig", "on", ">pw", "+@all", "-config", "~*").Err(); err != nil {
		t.Fatal(err)
	}
	cfg := c.jobConfig(t, &testBarrier{})
	cfg.Username, cfg.Password = "noconfig", "pw"
	j, err := runJob(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	note := j.Status().ForkDelay
	if !strings.Contains(note, c.servers[0].Addr()) || !strings.Contains(note, "refused") {
		t.Errorf("fork_delay %q, want the shard and why", note)
	}
	if !strings.Contains(j.Status().Info(), "fork_delay:shard ") {
		t.Errorf("PROXY SNAPSHOT STATUS lacks fork_delay:\n%s", j.Status().Info())
	}
}
