package migrate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/reshard/reshard/internal/redistest"
)

// A restore into targets with a replica each: a replica holding keys is
// refused unless FLUSH, naming it, with nothing written; otherwise each
// replica is made to follow its target, and holds every restored key when
// the restore reports done. One that already follows its target passes
// the pre-flight whatever it holds.
func TestRestoreOntoReplicas(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t, sourceArgs...)
	sc := src.Client()
	do(t, sc, "DEBUG", "POPULATE", 5000)
	path := saveRDB(t, src, "dump.rdb")

	targets := redistest.StartN(t, 2, "--repl-diskless-sync-delay", "0") // each replica's sync at once
	replicas := redistest.StartN(t, 2)
	shards := evenShards(t, targets)
	for i := range shards {
		shards[i].Replicas = []string{replicas[i].Addr()}
	}
	do(t, replicas[1].Client(), "SET", "stray", "1")
	_, err := Restore(ctx, testConfig([]string{path}, shards))
	want := fmt.Sprintf("replica %s of target %s holds 1 key", replicas[1].Addr(), targets[1].Addr())
	if !errors.Is(err, ErrTargetNotEmpty) || !strings.Contains(err.Error(), want) {
		t.Fatalf("restore onto a replica holding a key = %v, want %q", err, want)
	}
	if n, _ := targets[0].Client().DBSize(ctx).Result(); n != 0 {
		t.Fatalf("a refused restore wrote %d keys", n)
	}

	cfg := testConfig([]string{path}, shards)
	cfg.Flush = true
	rep, err := Restore(ctx, cfg)
	t.Log("\n" + rep.String())
	must(t, err)
	// at once: the restore waited for them
	for i, r := range replicas {
		want, _ := targets[i].Client().DBSize(ctx).Result()
		if got, _ := r.Client().DBSize(ctx).Result(); got != want || want == 0 {
			t.Errorf("replica %s holds %d keys when the restore is done, its target %d", r.Addr(), got, want)
		}
		info, _ := r.Client().Info(ctx, "replication").Result()
		if !strings.Contains(info, fmt.Sprintf("master_port:%d\r\n", targets[i].Port())) {
			t.Errorf("replica %s does not follow target %s:\n%s", r.Addr(), targets[i].Addr(), info)
		}
	}
	compareServers(t, sc, targets, shards)

	// again, with REPLACE: the replicas follow their targets and hold
	// their keys, which is no reason to refuse
	cfg = testConfig([]string{path}, shards)
	cfg.Replace = true
	_, err = Restore(ctx, cfg)
	must(t, err)
}
