package snapshot

import (
	"context"

	"go.uber.org/zap"
)

// A shard with replicas (router: PRIMARY+REPLICA) is captured from a
// replica, as managed services take their backups, so that its primary
// never forks. The cut is still read on the primaries, with their writes
// paused (job_cut.go): a replica's stream is its primary's, with the same
// replication id and offsets, so the capture stops at the primary's cut
// offset as it would on the primary, only a little later. The replica is
// one whose link to its primary is up, that is not loading or in a full
// sync, and whose replication id is its primary's (else the offsets are
// not the same); with none such, the primary is captured. The cut checks
// again that the stream's replication id is the primary's.

// captureAddr returns the address to capture shard i from: a healthy
// replica's, else its primary's.
func (j *Job) captureAddr(ctx context.Context, i int) string {
	primary := j.cfg.Table.Addr(i)
	replicas := j.cfg.Table.Replicas(i)
	if len(replicas) == 0 {
		return primary
	}
	cc := DefaultCaptureConfig()
	cc.Username, cc.Password, cc.DialTimeout = j.cfg.Username, j.cfg.Password, j.cfg.DialTimeout
	cc.Addr = primary
	pi, err := probe(ctx, cc)
	if err != nil {
		return primary // the capture of the primary says what is wrong
	}
	for _, r := range replicas {
		cc.Addr = r
		ri, err := probe(ctx, cc)
		switch {
		case err != nil:
			j.log.Warn("replica not captured: unreachable", zap.String("replica", r), zap.Error(err))
		case ri.role != "slave" || !ri.linkUp || ri.syncing:
			j.log.Warn("replica not captured: not an in-sync replica", zap.String("replica", r), zap.String("role", ri.role), zap.Bool("link_up", ri.linkUp))
		case ri.replID != pi.replID:
			j.log.Warn("replica not captured: its replication id is not its primary's", zap.String("replica", r))
		default:
			return r
		}
	}
	j.log.Warn("no replica of the shard can be captured: capturing its primary", zap.String("shard", primary))
	return primary
}
