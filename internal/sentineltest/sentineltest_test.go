package sentineltest

import (
	"strings"
	"testing"
	"time"

	"github.com/reshard/reshard/internal/redistest"
)

// The rig's smoke test: three sentinels agree on the primary, and after
// its SIGKILL promote its replica within a few seconds, the replica's
// ROLE then master.
func TestFailover(t *testing.T) {
	primary := redistest.Start(t)
	replica := redistest.StartReplica(t, primary)
	sentinels := Start(t, "m", primary, 3)
	for _, s := range sentinels {
		if got, err := s.Primary("m"); err != nil || got != primary.Addr() {
			t.Fatalf("sentinel %s: primary %q, %v; want %s", s.Addr(), got, err, primary.Addr())
		}
	}
	primary.Kill()
	start := time.Now()
	for _, s := range sentinels {
		for {
			got, err := s.Primary("m")
			if err == nil && got == replica.Addr() {
				break
			}
			if time.Since(start) > 30*time.Second {
				t.Fatalf("sentinel %s still gives %q, %v 30s after the primary died; want %s", s.Addr(), got, err, replica.Addr())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Logf("failover seen by every sentinel %s after the kill", time.Since(start).Round(time.Millisecond))
	role, err := replica.Client().Do(t.Context(), "ROLE").Slice()
	if err != nil || len(role) == 0 || !strings.EqualFold(role[0].(string), "master") {
		t.Fatalf("the promoted replica's ROLE = %v, %v; want master", role, err)
	}
}
