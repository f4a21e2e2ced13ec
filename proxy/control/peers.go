package control

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/reshard/reshard/internal/proxyname"
	"github.com/reshard/reshard/internal/resp"
	"github.com/reshard/reshard/proxy"
	"github.com/reshard/reshard/proxy/internal/wire"
)

// A cutover moves the clients of one proxy. Another proxy in front of the
// same shards would go on routing by the old table: every write it takes
// after the cutover lands on a shard that is no longer served, and is lost
// to the new layout without an error anywhere. So every proxy names its
// shard connections after its run id (CLIENT SETNAME reshard-proxy-<run_id>,
// the run_id of its INFO server), and PROXY RESHARD looks for names of
// other proxies in every source's CLIENT LIST: when it starts, and again
// inside the barrier before the cut is read, so that one started meanwhile
// is caught too. FORCE skips both looks, for an operator who knows what the
// other proxies do (they are being drained, say).
//
// What this cannot see: a proxy that connects to the old shards after the
// cut (restarted with a stale --shards), and proxies older than the
// names; for those the old shards are fenced inside the barrier
// (fence.go). It does not make several proxies share a cutover; it keeps
// one proxy's cutover from silently losing another's writes.

// peer is another proxy's connection seen on a shard.
type peer = proxyname.Conn

var cmdClientListNormal = resp.AppendCommand(nil, []byte("CLIENT"), []byte("LIST"), []byte("TYPE"), []byte("normal"))

// otherProxies looks for other proxies' connections on every shard of r,
// all shards at once, over their dedicated connections. A shard that cannot
// be asked (down, or CLIENT LIST refused to the proxy's ACL user) is
// logged and passed over: the look is a guard, not a condition of the
// reshard, whose own steps fail on a shard that is down.
func (p *Plane) otherProxies(ctx context.Context, r proxy.Route) []peer {
	shards := r.Shards()
	found := make([][]peer, len(shards))
	var wg sync.WaitGroup
	for i, sh := range shards {
		wg.Go(func() {
			list, err := shardClients(ctx, sh, p.srv.DialTimeout())
			if err != nil {
				p.log.Warn("cannot look for other proxies on a shard", zap.String("shard", sh.Addr()), zap.Error(err))
				return
			}
			found[i] = proxyname.In(list, sh.Addr(), p.srv.RunID())
		})
	}
	wg.Wait()
	peers := slices.Concat(found...)
	if e := p.cfg.Etcd; e != nil && len(peers) > 0 {
		// the proxies of the group cut over together (etcd_cutover.go)
		if ids, err := e.groupIDs(ctx); err == nil {
			peers = slices.DeleteFunc(peers, func(pr peer) bool { return slices.Contains(ids, pr.RunID) })
		}
	}
	return peers
}

// shardClients runs CLIENT LIST TYPE normal on sh, within ctx and at most
// timeout, and returns the list's text.
func shardClients(ctx context.Context, sh proxy.Shard, timeout time.Duration) ([]byte, error) {
	reply := sh.Do(cmdClientListNormal, deadlineWithin(ctx, timeout))
	if wire.IsError(reply) {
		return nil, fmt.Errorf("CLIENT LIST: %s", bytes.TrimSpace(reply[1:]))
	}
	text, ok := wire.BulkText(reply)
	if !ok {
		return nil, fmt.Errorf("CLIENT LIST: unexpected reply %q", wire.Clip(reply))
	}
	return text, nil
}

// deadlineWithin is timeout from now, or ctx's deadline if that is sooner.
func deadlineWithin(ctx context.Context, timeout time.Duration) time.Time {
	deadline := time.Now().Add(timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		return dl
	}
	return deadline
}

// peersText lists peers: shard, address and run id of each.
func peersText(peers []peer) string {
	var b strings.Builder
	for i, p := range peers {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "on %s from %s (run_id %s)", p.Shard, p.From, p.RunID)
	}
	return b.String()
}

// peersError is the error that refuses a reshard because of peers.
func peersError(peers []peer) error {
	return fmt.Errorf("other reshard proxies are connected to the shards: %s. A cutover moves only this proxy's clients: "+
		"the others would go on writing to the old shards, and those writes would be lost. Stop them first, or add FORCE", peersText(peers))
}

// peersWarning is what a snapshot taken with peers connected says of its
// cut: the barrier holds this proxy's clients only, so another proxy's
// writes may be in one shard's part and not in another's.
func peersWarning(peers []peer) string {
	return "other reshard proxies were connected to the shards (" + peersText(peers) + "); the cut is consistent for this proxy's writes only: " +
		"the barrier does not hold the others', so a write of theirs may be in one shard's part and a later one missing from another's"
}
