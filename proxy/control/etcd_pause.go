package control

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/reshard/reshard/proxy"
)

// CLIENT PAUSE and CLIENT UNPAUSE across the group. The pause in effect is
// one key, PREFIX/clientpause: its mode (ALL or WRITE) and its deadline
// (unix ms). A pause given to a member is merged with the one the key
// holds, as Redis merges a second pause (the longer, the stricter), by
// putOver, whose transaction also reads the live members; CLIENT UNPAUSE
// deletes the key. Every member follows the key as it follows a cutover
// job (watchKey: a Get, then a watch) and holds its own clients until the
// deadline on a timer of its own (proxy.Server.PauseClients). So a pause
// ends at its deadline on every member even when etcd is gone or the
// member that gave it died. A member that starts (or restarts) during a
// pause holds its clients before it serves any: reconcile, which runs
// before a member serves at all and again after a lost lease, reads the
// key with the table. The key holds no lease: a pause outlives
// the member given it, as on Redis it outlives its client; past its
// deadline it is ignored, and the next pause replaces it.
//
// The member given the pause waits for every other live member's ack
// (PREFIX/acks/ID/RUN_ID, as for a cutover), up to its etcd timeout and
// the pause's deadline, before it pauses the shards: a write another
// member sent to a paused shard would stall that member's shared shard
// connection, and every request behind it, for the rest of the pause.
//
// Changes to the key are applied in revision order, whether the watch or
// the member that wrote it gets there first (etcdPauses.apply), so that a
// pause and an UNPAUSE given to two members at once end the same on all.

// groupPause is the pause key's value.
type groupPause struct {
	ID       string `json:"id"`
	By       string `json:"by"`       // run id of the member it was given to
	All      bool   `json:"all"`      // ALL, else WRITE
	Deadline int64  `json:"deadline"` // unix ms
}

func (g groupPause) until() time.Time { return time.UnixMilli(g.Deadline) }

func (e *Etcd) pauseKey() string { return e.cfg.Prefix + "/clientpause" }

// etcdPauses is the group's proxy.PauseShare.
type etcdPauses struct {
	e   *Etcd
	srv *proxy.Server

	mu      sync.Mutex
	applied int64 // the revision of the last change to the key applied
}

// Pause implements proxy.PauseShare.
func (ps *etcdPauses) Pause(ctx context.Context, until time.Time, all bool) error {
	e := ps.e
	tctx, cancel := context.WithTimeout(ctx, e.cfg.DialTimeout)
	defer cancel()
	mine := groupPause{ID: newPauseID(), By: ps.srv.RunID(), All: all, Deadline: until.UnixMilli()}
	var g groupPause
	var val []byte
	members, rev, err := e.putOver(tctx, e.pauseKey(), func(cur []byte) (string, error) {
		g = mine
		var in groupPause
		if cur != nil && json.Unmarshal(cur, &in) == nil && time.Now().Before(in.until()) {
			g.All = g.All || in.All
			g.Deadline = max(g.Deadline, in.Deadline)
		}
		var err error
		val, err = json.Marshal(g)
		return string(val), err
	})
	if err != nil {
		return fmt.Errorf("the proxy's etcd group not reached: %v", err)
	}
	ps.apply(val, rev)
	others := slices.DeleteFunc(members, func(id string) bool { return id == g.By })
	wait := min(e.cfg.DialTimeout, time.Until(g.until()))
	if len(others) == 0 || wait <= 0 {
		return nil
	}
	actx, acancel := context.WithTimeout(ctx, wait)
	defer acancel()
	if err := e.waitAcks(actx, "within "+wait.Round(time.Millisecond).String()+" of the client pause", g.ID, rev, others); err != nil {
		e.log.Warn("client pause: pausing the shards before every proxy of the group holds its clients", zap.Error(err))
	}
	dctx, dcancel := context.WithTimeout(ctx, e.cfg.DialTimeout)
	defer dcancel()
	if _, err := e.cli.Delete(dctx, e.cfg.Prefix+"/acks/"+g.ID+"/", clientv3.WithPrefix()); err != nil {
		e.log.Debug("client pause acks not deleted", zap.Error(err))
	}
	return nil
}

// Unpause implements proxy.PauseShare.
func (ps *etcdPauses) Unpause(ctx context.Context) error {
	e := ps.e
	ctx, cancel := context.WithTimeout(ctx, e.cfg.DialTimeout)
	defer cancel()
	resp, err := e.cli.Delete(ctx, e.pauseKey())
	if err != nil {
		return fmt.Errorf("the proxy's etcd group not reached: %v", err)
	}
	ps.apply(nil, resp.Header.Revision)
	return nil
}

// apply applies the pause key's value val, written (or deleted: nil) at
// rev, to this proxy's clients, unless a later change is applied already.
// It returns the pause applied, if any.
func (ps *etcdPauses) apply(val []byte, rev int64) (g groupPause, ok bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if rev <= ps.applied {
		return g, false
	}
	ps.applied = rev
	if val == nil {
		ps.srv.UnpauseClients()
		return g, false
	}
	if err := json.Unmarshal(val, &g); err != nil {
		ps.e.log.Error("client pause in etcd not read", zap.Error(err))
		return g, false
	}
	ps.srv.PauseClients(g.until(), g.All) // nothing if past its deadline
	return g, true
}

// followPauses applies each pause and UNPAUSE of the group to this proxy's
// clients, until ctx ends.
func (e *Etcd) followPauses(ctx context.Context, ps *etcdPauses) {
	e.watchKey(ctx, e.pauseKey(), func(val []byte, rev int64) { ps.follow(ctx, val, rev) })
}

// follow applies the pause key's value val, written (or deleted) at rev,
// and acks a pause another member was given, the first time this member
// applies it, whether the watch or reconcile read it first.
func (ps *etcdPauses) follow(ctx context.Context, val []byte, rev int64) {
	e, self := ps.e, ps.srv.RunID()
	g, ok := ps.apply(val, rev)
	if !ok || g.By == self || !time.Now().Before(g.until()) {
		return
	}
	lease := e.lease()
	if lease == 0 {
		return // not a member the pause waits for
	}
	actx, cancel := context.WithTimeout(ctx, e.cfg.DialTimeout)
	defer cancel()
	if _, err := e.cli.Put(actx, e.ackKey(g.ID, self), "paused", clientv3.WithLease(lease)); err != nil {
		e.log.Warn("client pause not acked", zap.String("pause", g.ID), zap.Error(err))
	}
}

// newPauseID returns a pause's id, unique in the group.
func newPauseID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "clientpause-" + hex.EncodeToString(b[:])
}
