package proxy_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/internal/redistest"
)

// TestIntegrationProxyRestoreDuplicates: PROXY RESTORE of an RDB file
// and its copy fails in its pre-flight, nothing
// written; with ALLOW-DUPLICATES it restores, the keys once.
func TestIntegrationProxyRestoreDuplicates(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 1})
	ctx := t.Context()
	cl := c.Client()
	src := redistest.Start(t)
	sc := src.Client()
	for i := 0; i < 500; i++ {
		if err := sc.Set(ctx, fmt.Sprint("key:", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := sc.Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(src.Dir(), "dump.rdb")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), "copy.rdb")
	if err := os.WriteFile(cp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	twice := file + "," + cp
	target := redistest.Start(t)

	if err := cl.Do(ctx, "PROXY", "RESTORE", twice, target.Addr()).Err(); err != nil {
		t.Fatal(err)
	}
	st := waitJob(t, c, "PROXY", "RESTORE", "STATUS")
	if !strings.Contains(st, "state:failed") || !strings.Contains(st, "500 keys are in more than one source") || !strings.Contains(st, "ALLOW-DUPLICATES") {
		t.Fatalf("restore of a file twice: %s", st)
	}
	if n := target.Client().DBSize(ctx).Val(); n != 0 {
		t.Errorf("target holds %d keys after the refusal", n)
	}

	if err := cl.Do(ctx, "PROXY", "RESTORE", twice, target.Addr(), "ALLOW-DUPLICATES").Err(); err != nil {
		t.Fatal(err)
	}
	if st := waitJob(t, c, "PROXY", "RESTORE", "STATUS"); !strings.Contains(st, "state:done") {
		t.Fatalf("restore with ALLOW-DUPLICATES: %s", st)
	}
	if n := target.Client().DBSize(ctx).Val(); n != 500 {
		t.Errorf("target holds %d keys, want 500", n)
	}
}
