package proxy_test

import (
	"os"
	"strings"
	"testing"

	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/internal/s3test"
)

// A snapshot to a bucket whose server is gone fails with an error that
// names the bucket, marks INFO persistence's status err, lists nothing,
// and shows the store's secret key nowhere.
func TestIntegrationSnapshotBucketGone(t *testing.T) {
	cfg, srv, spool := bucketControl(t)
	c := proxytest.Start(t, proxytest.Options{Shards: 2, Control: &cfg, ShardArgs: []string{"--repl-diskless-sync-delay", "0"}})
	ctx := t.Context()
	admin := c.Client()
	admin.Set(ctx, "k", "v", 0)
	srv.Stop()

	var status string
	if err := admin.Do(ctx, "PROXY", "SNAPSHOT").Err(); err != nil {
		status = err.Error()
	} else {
		status = waitJob(t, c, "PROXY", "SNAPSHOT", "STATUS")
		if !strings.Contains(status, "state:failed") {
			t.Fatalf("snapshot to a stopped store: %s", status)
		}
	}
	if !strings.Contains(status, "s3://"+srv.Bucket()+"/backups/prod") {
		t.Errorf("the failure does not name the store: %s", status)
	}
	persistence := infoLines(admin.Info(ctx, "persistence").Val())
	if got := persistence["rdb_last_bgsave_status"]; got != "err" && !strings.HasPrefix(status, "ERR") {
		t.Errorf("rdb_last_bgsave_status:%s after a failed snapshot, want err", got)
	}
	if list := admin.Do(ctx, "PROXY", "SNAPSHOT", "LIST").String(); strings.Contains(list, "id=") {
		t.Errorf("PROXY SNAPSHOT LIST after a failure = %s", list)
	}
	all := status + admin.Info(ctx, "everything").Val()
	for _, secret := range []string{s3test.SecretKey, s3test.AccessKey} {
		if strings.Contains(all, secret) {
			t.Errorf("a credential of the store is in STATUS or INFO")
		}
	}
	if left := dirEntries(t, spool); left != 0 {
		t.Errorf("the spool holds %d entries after the failure", left)
	}
}

func dirEntries(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
