package migrate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/reshard/reshard/internal/redistest"
)

// TestRestorePartialReport: a restore that one target stops half-way (its
// ACL refuses the keys of one prefix: NOPERM, at the same place in every
// run) reports what each target really holds, DBSIZE as the test reads it
// afterwards, not the keys acknowledged, and says how to resume. On the
// old code the report had only the acknowledged counts, below what the
// targets held, and no way on.
func TestRestorePartialReport(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t, sourceArgs...)
	sc := src.Client()
	do(t, sc, "DEBUG", "POPULATE", 50000)
	for i := range 200 {
		do(t, sc, "SET", fmt.Sprintf("denied:%d", i), "v")
	}
	path := saveRDB(t, src, "dump.rdb")
	targets := redistest.StartN(t, 2)
	do(t, targets[1].Client(), "ACL", "SETUSER", "default", "resetkeys", "~key:*")
	shards := evenShards(t, targets)

	rep, err := Restore(ctx, testConfig([]string{path}, shards))
	t.Log("\n" + rep.String())
	if !errors.Is(err, ErrTarget) || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("err = %v, want ErrTarget with NOPERM", err)
	}
	for _, want := range []string{"--replace", "--flush", "REPLACE", "FLUSH", "hold now (DBSIZE)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q: %v", want, err)
		}
	}
	if !rep.Partial {
		t.Error("report not marked Partial")
	}
	for i, n := range dbsizes(t, targets) {
		tr := rep.Targets[i]
		t.Logf("%s: DBSIZE %d, reported %d held, %d acknowledged", tr.Addr, n, tr.Holds, tr.Written)
		if tr.Holds != n {
			t.Errorf("%s: report says %d keys held, DBSIZE is %d", tr.Addr, tr.Holds, n)
		}
		if want := fmt.Sprintf("%s %d", tr.Addr, n); !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q: %v", want, err)
		}
		if want := fmt.Sprintf("%s: DBSIZE %d", tr.Addr, n); !strings.Contains(rep.String(), want) {
			t.Errorf("report does not say %q", want)
		}
	}

	// PROXY RESTORE STATUS says it too: again, with Replace, as a job.
	cfg := testConfig([]string{path}, shards)
	cfg.Replace = true
	job := StartRestore(ctx, cfg)
	<-job.Done()
	var b strings.Builder
	must(t, job.Status().WriteInfo(&b))
	var held int64
	for _, n := range dbsizes(t, targets) {
		held += n
	}
	for _, want := range []string{"state:failed\r\n", fmt.Sprintf("keys_held:%d\r\n", held), "FLUSH (--flush)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, b.String())
		}
	}
}
