package proxy

import (
	"go.uber.org/zap"

	"github.com/reshard/reshard/proxy/command"

	"github.com/reshard/reshard/proxy/internal/backend"
	"github.com/reshard/reshard/proxy/internal/wire"
)

// pipeline is the work of one client pipeline (one batch): the calls
// planned, the requests staged per shard, the reply slots, and the buffers
// kept from one pipeline to the next. The serving goroutine alone uses it,
// except b's reply slots, which the backends' readers fill between submit
// and the batch's done signal, which submit waits for.
type pipeline struct {
	b      backend.Batch
	nslots int32
	calls  []call
	stages []stage
	aux    []int32 // per-key bookkeeping of split commands
	keys   []int
	out    []byte
	quit   bool // the client is done (QUIT, killed, gone): nothing more of the pipeline runs

	lookups    [4]cachedLookup // the last commands looked up (lookup)
	nextLookup int

	cmdName string   // the command being planned, as CLIENT LIST's cmd shows it
	stat    *cmdStat // the command being planned, once past the checks that reject it (cmdstats.go)

	step syncStep // a step to run after what is planned so far (runSync)

	gens []int64 // the pools' Redial counts when the requests went (failover.go)

	// refused is why this pipeline may not serve data commands (lease.go),
	// or ""; read once at its start
	refused string
}

type cachedLookup struct {
	name []byte // as the client spelt it
	info *command.Info
	h    handler
}

// syncStep is a step of the pipeline that must wait for the shards to have
// answered everything planned before it: it runs between two batches
// (runSync), on a dedicated connection or in the proxy.
type syncStep struct {
	next         func(r *route) []byte
	mayBlock     bool // next may block for long (BLPOP, WAIT): run outside the barrier's gate
	silent       bool // next's reply is not sent (CLIENT REPLY)
	afterArrived bool // next runs after what other clients had sent before (letArrivedFirst)
}

// call is one client command of the pipeline: its reply is result slot
// first, or, with a merge, built from slots first..first+n-1.
type call struct {
	first, n int32
	silent   bool     // CLIENT REPLY OFF/SKIP: the reply is not sent
	stat     *cmdStat // the command's figures; nil for a rejected one
	merge    merger
	args     [][]byte
	auxOff   int32
}

type merger func(s *session, c *call, out []byte) []byte

// stage gathers the requests of one pipeline for one shard.
type stage struct {
	raw  []byte
	reqs []backend.Pending
}

func (s *session) begin(shards int) {
	s.nslots = 0
	s.b.Size.Store(0)
	s.calls = s.calls[:0]
	s.aux = s.aux[:0]
	for len(s.stages) < shards {
		s.stages = append(s.stages, stage{})
	}
	for i := range s.stages {
		s.stages[i].raw = s.stages[i].raw[:0]
		s.stages[i].reqs = s.stages[i].reqs[:0]
	}
}

// slot reserves a result slot, keeping the buffer it had last time.
func (s *session) slot() int32 {
	i := s.nslots
	s.nslots++
	for int(i) >= len(s.b.Results) {
		// reply drops the buffers after a huge pipeline; a sync step
		// (onEveryShard) reserves slots after that
		s.b.Results = append(s.b.Results, nil)
	}
	s.b.Results[i] = s.b.Results[i][:0]
	return i
}

// local answers a command with a reply the proxy makes itself.
func (s *session) local(reply []byte) {
	i := s.slot()
	s.b.Results[i] = append(s.b.Results[i], reply...)
	s.calls = append(s.calls, call{first: i, n: 1})
}

// reject answers a command refused before it runs: a rejected call in
// INFO commandstats, not a call.
func (s *session) reject(info *command.Info, msg string) {
	if info != nil {
		s.srv.stats.of(info).rejected.Add(1)
	}
	s.stat = nil
	s.errorReply(msg)
}

func (s *session) errorReply(msg string) {
	i := s.slot()
	s.b.Results[i] = wire.AppendError(s.b.Results[i], msg)
	s.calls = append(s.calls, call{first: i, n: 1})
}

// stageTo queues raw for shard and returns its result slot.
func (s *session) stageTo(shard int, raw []byte) int32 {
	i := s.slot()
	st := &s.stages[shard]
	st.raw = append(st.raw, raw...)
	st.reqs = append(st.reqs, backend.Pending{B: &s.b, I: i})
	return i
}

// forward sends the command unchanged to one shard.
func (s *session) forward(shard int, raw []byte) {
	i := s.stageTo(shard, raw)
	s.calls = append(s.calls, call{first: i, n: 1})
}

// fanout sends the command unchanged to every shard and merges the replies.
func (s *session) fanout(r *route, args [][]byte, raw []byte, m merger) {
	s.sentToEveryShard()
	first := s.nslots
	for sh := range r.pools {
		s.stageTo(sh, raw)
	}
	s.calls = append(s.calls, call{first: first, n: int32(len(r.pools)), merge: m, args: args})
}

func (s *session) submit(r *route) {
	if len(s.tx.waiting) > 0 {
		s.txFlush(r)
	}
	total := int32(0)
	for i := range r.stagePools {
		total += int32(len(s.stages[i].reqs))
	}
	if total == 0 {
		return
	}
	s.b.Remaining.Store(total)
	if r.sentinel {
		s.noteGens(r)
	}
	timer := s.startSlowTimer()
	for i, p := range r.stagePools {
		if st := &s.stages[i]; len(st.reqs) > 0 {
			p.Pick(s.id, s.proto).Submit(st.raw, st.reqs)
		}
	}
	<-s.b.Done
	s.witnessSlow(r, timer)
	if r.sentinel {
		s.retryRefused(r)
	}
}

func (s *session) reply() {
	// Monitors see the commands once the shards have run them, as Redis
	// shows a command once it has run (a monitor may act on what it sees),
	// and after their replies, which is where a monitor's own commands
	// show in its stream.
	defer s.flushMonitored()
	// Replies are written back before the next read, so what the proxy holds
	// for a client is one pipeline's replies; this caps that.
	var size int64
	for _, r := range s.b.Results[:s.nslots] {
		size += int64(len(r))
	}
	if size > s.srv.cfg.MaxOutputBuffer || s.b.OverLimit() {
		size = max(size, s.b.Size.Load())
		s.srv.log.Warn("client output buffer limit reached, closing client",
			zap.Uint64("client", s.id), zap.Int64("bytes", size))
		s.b.Results = nil
		s.conn.drop()
		return
	}
	for i := range s.calls {
		c := &s.calls[i]
		if c.silent {
			continue
		}
		if c.merge == nil {
			s.sendReply(c.stat, s.b.Results[c.first])
			continue
		}
		s.out = c.merge(s, c, s.out[:0])
		s.sendReply(c.stat, s.out)
	}
	if cap(s.out) > 1<<20 {
		s.out = nil
	}
	if size > 1<<20 || cap(s.b.Results) > 4096 {
		s.b.Results = nil // after a huge pipeline, do not keep its buffers
	}
	if s.quit {
		s.conn.closing = true // serveConn writes the replies, outside the gate, and closes
	}
}

// sendReply queues the reply of one call of stat for the client.
func (s *session) sendReply(stat *cmdStat, reply []byte) {
	if len(reply) > 0 && reply[0] == '-' {
		s.srv.stats.errorReplied(stat, reply, s.srv.log)
	}
	if s.sub.loop != nil {
		// the pub/sub loop writes it after what the shards still owe the
		// client for earlier commands (pubsubLoop.handle)
		s.sub.held = append(s.sub.held, reply...)
		return
	}
	s.conn.WriteRaw(reply)
}
