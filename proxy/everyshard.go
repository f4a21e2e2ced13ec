package proxy

import (
	"slices"
	"sync"
	"time"

	"github.com/reshard/reshard/proxy/internal/backend"
	"github.com/reshard/reshard/proxy/internal/wire"
)

// onEveryShard makes c a sync step that runs it on every shard at once, each
// over a dedicated connection, and merges the replies with m, as a fan-out
// over the shared connections would. It serves WAIT, and the commands that
// can keep a shard busy for long (KEYS over a large keyspace, a synchronous
// FLUSHALL): on a shared connection the watchdog would take that silence
// for a stopped shard after --shard-timeout and fail every request on the
// connection, theirs included. mayBlock runs the step outside the barrier's
// gate (see runSync): right for WAIT and KEYS, not for a FLUSHALL, which a
// cutover must not split.
func (s *session) onEveryShard(c wire.Request, mayBlock bool, m merger) {
	s.onEveryShardWithin(c, nil, mayBlock, 0, m)
}

// onEveryShardWithin is onEveryShard where each shard must answer within
// limit (0: no limit), or the reply is an error naming it. before, if not
// nil, is one command each connection runs first, its reply dropped.
func (s *session) onEveryShardWithin(c wire.Request, before []byte, mayBlock bool, limit time.Duration, m merger) {
	s.sentToEveryShard()
	raw, n := c.Raw, 1
	if before != nil {
		raw, n = append(slices.Clip(before), c.Raw...), 2
	}
	s.step.mayBlock = mayBlock
	s.step.next = func(r *route) []byte {
		if mayBlock {
			s.flushClient() // inside the gate the replies wait: a write may block (clientConn)
		}
		all := call{first: s.nslots, n: int32(len(r.pools)), args: c.Args}
		for range r.pools {
			s.slot() // all reserved before any is filled: slot may grow the slice
		}
		var wg sync.WaitGroup
		for i, pl := range r.pools {
			wg.Add(1)
			go func(slot int32, p *backend.DedicatedPool) {
				defer wg.Done()
				var deadline time.Time
				if limit > 0 {
					deadline = time.Now().Add(limit)
				}
				s.b.Results[slot] = p.DoLastBy(raw, n, deadline)
			}(all.first+int32(i), pl.DedicatedPool(s.proto))
		}
		wg.Wait()
		s.out = m(s, &all, s.out[:0])
		return s.out
	}
}
