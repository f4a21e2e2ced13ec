package proxy

import (
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/reshard/reshard/proxy/internal/wire"
)

// The hand-off of a client connection between its serving loop and a
// pub/sub loop (pubsub.go): a SUBSCRIBE planned by the session detaches the
// connection to a loop of its own; when no subscription is left, the loop
// hands it back with what the client sent meanwhile.

// subscriber is the session's side of pub/sub. While no loop owns the
// connection the session's goroutine alone uses it; while one does, the
// loop's goroutine does, serving the session's commands itself, one at a
// time (pubsubLoop.handle). kinds is the exception: the loop's pumps write
// it and any session reads it, as atomics.
type subscriber struct {
	detachWith wire.Request   // a SUBSCRIBE that hands the connection to a pub/sub loop
	detachRest []wire.Request // the commands the client sent after it
	loop       *pubsubLoop    // the loop that owns the connection, while it has one (detach)
	held       []byte         // replies for the loop to write (sendReply)

	// restricted: the client is subscribed in RESP2, where Redis allows
	// only (un)subscriptions, PING, QUIT and RESET, and PING answers as a
	// subscriber (set by the loop around the command's plan)
	restricted bool

	// subscriptions the shards confirmed by kind: channels, patterns and
	// shard channels, for CLIENT LIST (sub, psub, ssub), KILL and INFO
	kinds [3]atomic.Int64
}

// subscriptions counts the subscriptions the shards confirmed.
func (s *session) subscriptions() int64 {
	return s.sub.kinds[subChannel].Load() + s.sub.kinds[subPattern].Load() + s.sub.kinds[subShard].Load()
}

// detach hands the client connection to a pub/sub loop that starts with the
// SUBSCRIBE planned (detachWith) and then the rest of the pipeline. It runs
// after serve, outside the barrier's gate: its first write waits for the
// client to read.
func (s *session) detach() {
	cmd, rest := s.sub.detachWith, s.sub.detachRest
	s.sub.detachWith, s.sub.detachRest = wire.Request{}, nil
	p := &pubsubLoop{s: s, out: s.conn, conns: map[int]*subConn{}, last: manyConns}
	s.sub.loop = p
	p.out.share()
	if s.srv.cfg.IdleTimeout > 0 {
		p.out.nc.SetReadDeadline(time.Time{}) // Redis does not time out subscribers
	}
	if err := p.out.Flush(); err != nil {
		s.srv.endSession(s)
		return
	}
	// From here on nothing waits for the client to read: not the pumps,
	// whose waits the loop's syncs would share, nor the loop, which a table
	// swap waits for (moveTo).
	cfg := &s.srv.cfg
	limit := outputLimit{hard: cfg.MaxPubsubOutputBuffer, soft: cfg.PubsubOutputBufferSoft, softFor: cfg.PubsubOutputBufferSoftTime}
	p.out.stream(limit, func(queued int, why string) {
		s.srv.counters.pubsubDropped.Add(1)
		s.srv.log.Warn("pub/sub client output buffer limit reached, closing it", zap.Uint64("client", s.id),
			zap.Int("queued", queued), zap.String("limit", why), zap.Int64("hard", limit.hard),
			zap.Int64("soft", limit.soft), zap.Duration("soft_time", limit.softFor))
	})
	s.srv.subscribers.Store(p, true)
	go p.run(cmd, rest)
}

// handBack returns the connection to the serving loop, which serves reqs
// and then what the client sent after them.
func (p *pubsubLoop) handBack(reqs []wire.Request) {
	s := p.s
	s.srv.subscribers.Delete(p)
	p.out.unstream() // what the loop queued goes out first
	s.srv.counters.commands.Add(int64(len(p.out.pending)))
	reqs = append(reqs, p.out.pending...)
	p.out.pending = nil
	s.sub.loop = nil
	s.srv.serveClient(s, reqs)
}
