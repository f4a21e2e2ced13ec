package proxy

import (
	"strconv"
	"time"

	"github.com/reshard/reshard/proxy/command"

	"github.com/reshard/reshard/internal/resp"
	"github.com/reshard/reshard/proxy/internal/backend"
	"github.com/reshard/reshard/proxy/internal/wire"
)

// Blocking commands (BLPOP, BLMOVE, XREAD BLOCK, ...) and WAIT: they wait
// on a dedicated connection of their shard, never on a shared backend
// connection, as a sync step of the pipeline (see transaction.go).

// flushClient sends the replies written so far to the client.
func (s *session) flushClient() { s.conn.Flush() }

// blocking runs a blocking command (BLPOP, BLMOVE, XREAD BLOCK, ...) on a
// dedicated connection of its shard, honouring its timeout there, and gives
// the connection up if the client hangs up meanwhile. If the routing table
// changes while it blocks, the command is unblocked on the old shard and,
// unless the shard had already served it, run again on the new table with
// what is left of its timeout.
func blocking(s *session, r *route, info *command.Info, c wire.Request) {
	slot, ok, errMsg := s.slotOf(info, c.Args)
	switch {
	case errMsg != "":
		s.badKeys(info, errMsg, c.Raw) // refused before it could block
		return
	case !ok:
		s.reject(info, unsupported(info))
		return
	}
	s.step.mayBlock = true
	s.step.next = s.countedBlocked(func(*route) []byte {
		s.flushClient() // replies so far reach the client before it blocks
		start := time.Now()
		raw := c.Raw
		was := s.conn.loadState() // active, or hijacked for a RESP3 subscriber
		for {
			swapped := s.srv.Swapped()
			r := s.srv.route.Load() // each attempt on the table then current
			p := r.pools[r.table.ShardOfSlot(slot)].DedicatedPool(s.proto)
			d, err := p.Get()
			if err != nil {
				return wire.AppendError(nil, p.DownMessage(err))
			}
			reply, interrupted, err := backend.RoundTripWatching(d, p, raw, s.conn.NetConn(), swapped, s.srv.draining, func() {
				s.blockedOn.Store(&blockedCmd{pool: p, d: d, since: time.Now()})
				s.served(connBlocked)
			})
			s.blockedOn.Store(nil)
			s.conn.setState(was)
			if err == backend.ErrClientGone {
				s.quit = true
				return nil
			}
			if err != nil {
				d.NetConn.Close()
				return wire.AppendError(nil, p.DownMessage(err))
			}
			p.Put(d)
			if !interrupted || !isNullReply(reply) {
				return reply
			}
			if raw = withRemainingTimeout(info.Name(), c.Args, time.Since(start)); raw == nil {
				return reply // its time ran out as it moved
			}
		}
	})
}

func isNullReply(r []byte) bool {
	return string(r) == "*-1\r\n" || string(r) == "$-1\r\n" || string(r) == "_\r\n"
}

// withRemainingTimeout re-encodes a blocking command with its timeout less
// elapsed; nil if none is left. A timeout of 0 (for ever) stays 0.
func withRemainingTimeout(name string, args [][]byte, elapsed time.Duration) []byte {
	i, unit := len(args)-1, time.Second
	switch name {
	case "blmpop", "bzmpop":
		i = 1
	case "xread", "xreadgroup":
		unit = time.Millisecond
		for j := 1; j < len(args)-1; j++ {
			if wire.EqualFold(args[j], "block") {
				i = j + 1
				break
			}
		}
	}
	t, err := strconv.ParseFloat(string(args[i]), 64)
	if err != nil {
		return nil
	}
	if t != 0 {
		left := time.Duration(t*float64(unit)) - elapsed
		if left <= 0 {
			return nil
		}
		t = float64(left) / float64(unit)
		if unit == time.Millisecond {
			t = float64(max(1, int64(t)))
		}
	}
	out := make([][]byte, len(args))
	copy(out, args)
	out[i] = strconv.AppendFloat(nil, t, 'f', -1, 64)
	return resp.AppendCommand(nil, out...)
}

// wait runs WAIT on every shard and answers the smallest count: the writes
// of this client may be on any shard.
func wait(s *session, _ *route, _ *command.Info, c wire.Request) {
	s.onEveryShardWithin(c, waitOffset, true, 0, leastInt)
	s.step.next = s.countedBlocked(s.step.next)
}

// waitOffset precedes WAIT on each shard's dedicated connection. Redis's
// WAIT waits for the replication offset of the connection's own last
// write, and the dedicated connection wrote nothing: the client's writes
// went over the shared connections. SPUBLISH is propagated to replicas
// (cluster mode off), so it sets the connection's offset to the shard's
// current one, past every write the client was answered, without touching
// the data; only a client subscribed with SSUBSCRIBE to this very channel
// would see it. A shard that refuses it (ACL, before Redis 7) leaves
// WAIT as it was.
var waitOffset = resp.AppendCommand(nil, []byte("SPUBLISH"), []byte("__reshard__:wait"), []byte(""))

// countedBlocked counts the client in INFO's blocked_clients while step
// runs, as Redis counts a client in BLPOP or WAIT.
func (s *session) countedBlocked(step func(*route) []byte) func(*route) []byte {
	return func(r *route) []byte {
		s.srv.counters.blocked.Add(1)
		defer s.srv.counters.blocked.Add(-1)
		return step(r)
	}
}
