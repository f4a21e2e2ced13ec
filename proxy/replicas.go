package proxy

import (
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/reshard/reshard/internal/resp"
	"github.com/reshard/reshard/proxy/command"
	"github.com/reshard/reshard/proxy/internal/backend"
	"github.com/reshard/reshard/proxy/internal/wire"
)

// Reads from replicas. A shard of the table may list replicas (router:
// PRIMARY+REPLICA...). The route holds a pool of connections to each,
// after the primaries' pools, and a monitor per replica tells whether it
// may be read from: its link to the primary up, not loading or in a full
// sync, and at most Config.ReplicaMaxLag bytes behind the primary's
// offset, read just before its own. A connection reads from replicas when
// --read-from says so (Config.ReadFrom), or after READONLY, Redis
// Cluster's opt-in; READWRITE opts it out. Only a read-only command of one
// slot goes to a replica, outside a transaction; everything else goes to
// the primary. A connection reads from one replica of a shard while that
// replica stays readable, so its reads never go back in time by moving
// to a replica further behind.

// ReadFrom is where reads go (--read-from; Envoy's names).
type ReadFrom int

const (
	// ReadPrimary: every command to the primary (the default).
	ReadPrimary ReadFrom = iota
	// ReadPreferReplica: reads to a readable replica, to the primary when
	// the shard has none.
	ReadPreferReplica
	// ReadReplica: reads to a readable replica only; with none, a read
	// gets an error.
	ReadReplica
)

// ParseReadFrom reads a --read-from value.
func ParseReadFrom(s string) (ReadFrom, error) {
	switch s {
	case "", "primary":
		return ReadPrimary, nil
	case "prefer-replica":
		return ReadPreferReplica, nil
	case "replica":
		return ReadReplica, nil
	}
	return 0, errors.New("proxy: --read-from must be primary, prefer-replica or replica, not " + strconv.Quote(s))
}

func (r ReadFrom) String() string {
	switch r {
	case ReadPreferReplica:
		return "prefer-replica"
	case ReadReplica:
		return "replica"
	}
	return "primary"
}

// DefaultReplicaMaxLag is Config.ReplicaMaxLag's default.
const DefaultReplicaMaxLag = 1 << 20

// replicaProbeEvery is how often a replica's state is read.
const replicaProbeEvery = 100 * time.Millisecond

// A replica's state, as its monitor last read it.
const (
	replicaUnknown int32 = iota // not probed yet
	replicaReadable
	replicaDown // unreachable, or not a replica
	replicaLinkDown
	replicaSyncing // loading, or in a full sync
	replicaLagging
)

var replicaStates = [...]string{"unknown", "readable", "down", "link_down", "syncing", "lagging"}

// replica is one replica of a shard: its connections and its state.
type replica struct {
	pool    *backend.Pool
	primary *backend.Pool
	state   atomic.Int32
	lag     atomic.Int64 // bytes behind the primary at the last probe
}

// readable reports whether reads may go to the replica.
func (rp *replica) readable() bool { return rp.state.Load() == replicaReadable }

// monitor probes the replica until its pool closes.
func (rp *replica) monitor(maxLag int64) {
	t := time.NewTicker(replicaProbeEvery)
	defer t.Stop()
	for {
		rp.probe(maxLag)
		select {
		case <-rp.pool.Closed():
			return
		case <-t.C:
		}
	}
}

var (
	infoReplication        = resp.AppendCommand(nil, []byte("INFO"), []byte("replication"))
	infoReplicationLoading = resp.AppendCommand(nil, []byte("INFO"), []byte("replication"), []byte("persistence"))
)

// probe reads the primary's offset, then the replica's state.
func (rp *replica) probe(maxLag int64) {
	by := time.Now().Add(time.Second)
	primary := infoFields(rp.primary.DedicatedPool(2).DoBy(infoReplication, by))
	mine := infoFields(rp.pool.DedicatedPool(2).DoBy(infoReplicationLoading, by))
	state := replicaReadable
	lag := int64(0)
	switch {
	case mine["role"] != "slave":
		state = replicaDown
	case mine["master_link_status"] != "up":
		state = replicaLinkDown
	case mine["loading"] != "0" || mine["master_sync_in_progress"] != "0":
		state = replicaSyncing
	default:
		at, err1 := strconv.ParseInt(primary["master_repl_offset"], 10, 64)
		got, err2 := strconv.ParseInt(mine["slave_repl_offset"], 10, 64)
		if err1 != nil || err2 != nil {
			state = replicaLinkDown // the primary's offset unknown: its replica's lag too
			break
		}
		lag = max(at-got, 0)
		if lag > maxLag {
			state = replicaLagging
		}
	}
	rp.lag.Store(lag)
	rp.state.Store(state)
}

// infoFields splits an INFO reply into its fields; an empty map for any
// reply but a bulk string.
func infoFields(reply []byte) map[string]string {
	fields := map[string]string{}
	text, ok := wire.BulkText(reply)
	if !ok {
		return fields
	}
	for line := range strings.SplitSeq(string(text), "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, "#") {
			fields[k] = v
		}
	}
	return fields
}

// readStage returns the stage a read-only command of shard goes to: a
// readable replica's when the session reads from replicas, else the
// primary's (shard). ok is false when the session reads from replicas
// only and the shard has none readable.
func (s *session) readStage(r *route, info *command.Info, shard int) (stage int, ok bool) {
	if s.readFrom == ReadPrimary || r.replicas == nil || !info.IsReadonly() || s.tx.active || s.track.on {
		// a tracking client reads from primaries: a replica could answer
		// with a value older than an invalidation already sent
		return shard, true
	}
	rs := r.replicas[shard]
	if n := len(rs); n > 0 {
		// this session's replica of the shard, or the next readable one
		start := int(s.id % uint64(n))
		for i := range n {
			if j := (start + i) % n; rs[j].readable() {
				return r.replicaStage[shard] + j, true
			}
		}
	}
	return shard, s.readFrom != ReadReplica
}

// noReplica is what a read gets under --read-from replica when its shard
// has no readable replica.
func noReplica(addr string) string {
	return "CLUSTERDOWN no readable replica of shard " + addr + " (--read-from replica)"
}

func readonlyCmd(s *session, _ *route, _ *command.Info, _ wire.Request) {
	s.readFrom = max(s.srv.cfg.ReadFrom, ReadPreferReplica)
	s.local(wire.AppendStatus(nil, "OK"))
}

func readwriteCmd(s *session, _ *route, _ *command.Info, _ wire.Request) {
	s.readFrom = ReadPrimary
	s.local(wire.AppendStatus(nil, "OK"))
}

// replicasInfo adds each replica to INFO proxy: replicaN_M (shard N's
// Mth) with its address, state and lag.
func (r *route) replicasInfo(field func(string, any)) {
	for sh, rs := range r.replicas {
		for j, rp := range rs {
			field("replica"+strconv.Itoa(sh)+"_"+strconv.Itoa(j),
				"addr="+rp.pool.Addr+",state="+replicaStates[rp.state.Load()]+",lag_bytes="+strconv.FormatInt(rp.lag.Load(), 10))
		}
	}
}
