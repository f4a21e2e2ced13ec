package snapshot

import (
	"errors"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestDiagnosis(t *testing.T) {
	id, other := strings.Repeat("a", 40), strings.Repeat("b", 40)
	base := diagnosis{addr: "10.0.0.1:6379", phase: PhaseStream, at: 100, replID: id, port: 40000,
		linkTimeout: time.Minute, cause: io.EOF, info: replInfo{replID: id, offset: 5000, bgsaveStatus: "ok"}}
	tests := []struct {
		name   string
		change func(*diagnosis)
		want   error
		says   string
	}{
		{"output buffer", func(d *diagnosis) {}, ErrClosedBySource, "client-output-buffer-limit replica (shard 10.0.0.1:6379, stream phase, capture at offset 100, source at 5000: 4900 bytes behind"},
		{"output buffer during rdb", func(d *diagnosis) { d.phase = PhaseRDB }, ErrClosedBySource, "client-output-buffer-limit"},
		{"failed bgsave", func(d *diagnosis) { d.phase, d.info.bgsaveStatus = PhaseRDB, "err" }, ErrClosedBySource, "failed background save"},
		{"unreachable", func(d *diagnosis) { d.probeErr = syscall.ECONNREFUSED }, ErrSourceGone, "does not answer"},
		{"restarted", func(d *diagnosis) { d.info.replID = other }, ErrSourceGone, "restarted"},
		{"failed over", func(d *diagnosis) { d.info.replID, d.info.replID2 = other, id }, ErrSourceGone, "failed over"},
		{"still listed", func(d *diagnosis) { d.info.replicas = []int{6380, 40000} }, ErrLinkLost, "stream phase"},
		{"timeout", func(d *diagnosis) { d.cause = os.ErrDeadlineExceeded }, ErrLinkLost, "no data from the shard for 1m0s"},
		{"handshake", func(d *diagnosis) { d.phase, d.replID = PhaseHandshake, "" }, ErrLinkLost, "closed the link"},
	}
	for _, tt := range tests {
		d := base
		tt.change(&d)
		err := d.explain()
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
		}
		if !strings.Contains(err.Error(), tt.says) {
			t.Errorf("%s: %q does not say %q", tt.name, err, tt.says)
		}
		if !errors.Is(err, d.cause) {
			t.Errorf("%s: %v does not wrap the link error", tt.name, err)
		}
	}
}
