package control

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/reshard/reshard/internal/resp"
	"github.com/reshard/reshard/proxy"
	"github.com/reshard/reshard/proxy/internal/wire"
	"go.uber.org/zap"
)

// The old shards of a cutover are kept intact, for a rollback, and no
// longer served: a write one of them takes after the cut, from a proxy
// that still routes by the old table or an application connected to it
// directly, would be lost to the new layout. So they are fenced inside the
// barrier, before the cut is read (the job's Seal): min-replicas-to-write
// is set higher than any shard's replica count (and min-replicas-max-lag,
// if 0, which turns the check off, to 10), and each refuses every write
// with -NOREPLICAS while reads still work. A write an old shard took is
// therefore before the cut, and reaches the new shards, or was refused.
// A job that does not commit sets both back as they were before the
// barrier lifts. The fence lasts until CONFIG SET min-replicas-to-write
// (the value before, which the log gives) or a restart of the shard, and
// a reshard onto the shard lifts it (unfence).
var (
	fenceValue  = []byte("2147483647")
	minReplicas = []byte("min-replicas-to-write")
	maxLag      = []byte("min-replicas-max-lag")
)

// fence is one fenced shard, and its settings before.
type fence struct {
	sh             proxy.Shard
	was, wasMaxLag []byte
}

// getShardConfig reads one of a shard's settings.
func getShardConfig(sh proxy.Shard, name []byte, by time.Time) ([]byte, error) {
	reply := sh.Do(resp.AppendCommand(nil, []byte("CONFIG"), []byte("GET"), name), by)
	if wire.IsError(reply) {
		return nil, errors.New(string(bytes.TrimSpace(reply[1:])))
	}
	if elems, ok := wire.ArrayElems(reply, nil); ok && len(elems) == 2 {
		if v, ok := wire.BulkText(elems[1]); ok {
			return bytes.Clone(v), nil
		}
	}
	return nil, fmt.Errorf("CONFIG GET %s: unexpected reply", name)
}

// setShardConfig sets one of a shard's settings.
func setShardConfig(sh proxy.Shard, name, v []byte, by time.Time) error {
	reply := sh.Do(resp.AppendCommand(nil, []byte("CONFIG"), []byte("SET"), name, v), by)
	if wire.IsError(reply) {
		return errors.New(string(bytes.TrimSpace(reply[1:])))
	}
	return nil
}

// lagOff reports whether min-replicas-max-lag was 0, which turns the check
// off: the fence sets it to 10.
func (f *fence) lagOff() bool { return bytes.Equal(f.wasMaxLag, []byte("0")) }

// set fences f's shard, once f holds its settings before; a failure leaves
// the shard as it was.
func (f *fence) set(by time.Time) error {
	if !f.lagOff() {
		return setShardConfig(f.sh, minReplicas, fenceValue, by)
	}
	if err := setShardConfig(f.sh, maxLag, []byte("10"), by); err != nil {
		return err
	}
	if err := setShardConfig(f.sh, minReplicas, fenceValue, by); err != nil {
		// with the lag on, an operator's own min-replicas-to-write would
		// start refusing writes
		setShardConfig(f.sh, maxLag, f.wasMaxLag, by)
		return err
	}
	return nil
}

// lift sets f's shard back as it was.
func (f *fence) lift(by time.Time) error {
	if err := setShardConfig(f.sh, minReplicas, f.was, by); err != nil {
		return err
	}
	return setShardConfig(f.sh, maxLag, f.wasMaxLag, by)
}

// fenceLeaving fences, all at once and by the deadline, the shards of old
// that now does not have, and returns the fences it set. A shard that
// cannot be fenced (CONFIG renamed or denied) is logged and left: writes
// sent to it directly are then not refused.
func (p *Plane) fenceLeaving(old, now proxy.Route, by time.Time) []fence {
	var shards []proxy.Shard
	for i, sh := range old.Shards() {
		if !slices.Contains(now.Table().Addrs(), sh.Addr()) {
			// its replicas too: CONFIG SET is not replicated, and a
			// replica promoted after the cut would take writes
			shards = append(append(shards, sh), old.Replicas(i)...)
		}
	}
	got := make([]*fence, len(shards))
	var wg sync.WaitGroup
	for i, sh := range shards {
		wg.Go(func() {
			f := &fence{sh: sh}
			var err error
			if f.was, err = getShardConfig(sh, minReplicas, by); err == nil {
				if f.wasMaxLag, err = getShardConfig(sh, maxLag, by); err == nil {
					err = f.set(by)
				}
			}
			if err != nil {
				p.log.Warn("could not fence a retiring shard: writes sent to it directly are not refused",
					zap.String("shard", sh.Addr()), zap.Error(err))
				return
			}
			got[i] = f
		})
	}
	wg.Wait()
	var out []fence
	for _, f := range got {
		if f != nil {
			out = append(out, *f)
		}
	}
	return out
}

// lift sets every fence's shard back as it was.
func (p *Plane) lift(fs []fence) {
	by := time.Now().Add(p.srv.DialTimeout())
	for _, f := range fs {
		if err := f.lift(by); err != nil {
			p.log.Error("could not lift a fence: the shard refuses writes (NOREPLICAS) until CONFIG SET min-replicas-to-write "+string(f.was),
				zap.String("shard", f.sh.Addr()), zap.Error(err))
		}
	}
}

// unfence lifts the fence from the shards of r that have it, before a
// reshard writes to them (a rollback onto them), and returns them as
// fences, to be set again if the reshard does not start.
func (p *Plane) unfence(r proxy.Route) []fence {
	by := time.Now().Add(p.srv.DialTimeout())
	var lifted []fence
	var shards []proxy.Shard
	for i, sh := range r.Shards() {
		shards = append(append(shards, sh), r.Replicas(i)...)
	}
	for _, sh := range shards {
		if v, err := getShardConfig(sh, minReplicas, by); err != nil || !bytes.Equal(v, fenceValue) {
			continue
		}
		lag, err := getShardConfig(sh, maxLag, by)
		if err != nil {
			continue
		}
		if err := setShardConfig(sh, minReplicas, []byte("0"), by); err == nil {
			p.log.Info("fence lifted from a former shard, a reshard target now", zap.String("shard", sh.Addr()))
			lifted = append(lifted, fence{sh: sh, was: fenceValue, wasMaxLag: lag})
		}
	}
	return lifted
}
