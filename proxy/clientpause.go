package proxy

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reshard/reshard/internal/resp"
	"github.com/reshard/reshard/proxy/command"
	"github.com/reshard/reshard/proxy/internal/wire"
)

// CLIENT PAUSE timeout [WRITE|ALL] and CLIENT UNPAUSE, as one Redis server
// gives them to its clients: for timeout milliseconds, or until CLIENT
// UNPAUSE, the proxy holds every client's commands (ALL, the default), or
// only those that may write (WRITE: commands flagged write or
// may-replicate, which takes in EVAL, EVALSHA, FCALL, PUBLISH, PFCOUNT and
// WAIT, and EXEC), each client's held in its order and answered once the
// pause ends. A pause given while one is in effect makes it the longer and
// the stricter of the two, as Redis does. The pausing client is held like
// any other: under ALL, its own CLIENT UNPAUSE waits for the timeout, as
// on Redis.
//
// The shards are paused too (CLIENT PAUSE ... WRITE on every one, lifted
// by UNPAUSE), so that they neither expire nor evict keys meanwhile, as a
// paused Redis does not; the proxy's reads still reach them. The hold is
// the proxy's own: a write another proxy sends is held by the shard's
// pause, but only until that pause's end.
//
// The hold is taken before a batch takes the barrier's gate, so a held
// client never keeps a snapshot's or a cutover's barrier from closing. A
// snapshot's cut ends the shards' pauses (its own CLIENT UNPAUSE), and a
// cutover brings new shards: when the barrier lifts during a client's
// pause, the shards now routed to are paused again for what is left of it
// (repauseShards).
// Nothing is paid on the command path while no pause is in effect: one
// atomic load per batch.
type clientPause struct {
	active atomic.Bool

	mu    sync.Mutex
	all   bool
	until time.Time
	done  chan struct{} // closed when the pause ends; nil when none
	timer *time.Timer
}

// pause starts a pause of d, or extends the one in effect.
func (p *clientPause) pause(d time.Duration, all bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	until := time.Now().Add(d)
	if p.done == nil {
		p.done, p.all, p.until = make(chan struct{}), all, until
		p.timer = time.AfterFunc(d, p.end)
		p.active.Store(true)
		return
	}
	p.all = p.all || all
	if until.After(p.until) {
		p.until = until
		p.timer.Reset(d)
	}
}

// end ends the pause in effect, if any.
func (p *clientPause) end() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		return
	}
	p.timer.Stop()
	close(p.done)
	p.done = nil
	p.active.Store(false)
}

// hold waits while a pause in effect holds the batch first+rest.
func (p *clientPause) hold(first wire.Request, rest []wire.Request) {
	for p.active.Load() {
		p.mu.Lock()
		done, all := p.done, p.all
		p.mu.Unlock()
		if done == nil || (!all && !mayWrite(first) && !anyMayWrite(rest)) {
			return
		}
		<-done
	}
}

func anyMayWrite(cmds []wire.Request) bool {
	for _, c := range cmds {
		if mayWrite(c) {
			return true
		}
	}
	return false
}

// mayReplicate names the commands Redis 7.0 flags may_replicate, which
// the command table the proxy is built from leaves out. A command the
// shards hold under their WRITE pause must be held by the proxy too: sent,
// it would stall the shared connection it went on, and every client's
// requests behind it.
var mayReplicate = map[string]bool{
	"eval": true, "evalsha": true, "fcall": true, "publish": true, "spublish": true,
	"pfcount": true, "wait": true, "exec": true,
	"script|load": true, "script|flush": true,
	"function|load": true, "function|delete": true, "function|flush": true, "function|restore": true,
}

// mayWrite tells whether Redis holds cmd under CLIENT PAUSE WRITE.
func mayWrite(cmd wire.Request) bool {
	info := command.Lookup(cmd.Args)
	if info == nil {
		return false
	}
	return info.Has(command.FlagWrite) || info.Has(command.FlagMayReplicate) || mayReplicate[info.Name()]
}

// clientPauseCmd serves CLIENT PAUSE timeout [WRITE|ALL].
func clientPauseCmd(s *session, r *route, _ *command.Info, c wire.Request) {
	if len(c.Args) != 3 && len(c.Args) != 4 {
		s.errorReply("ERR wrong number of arguments for 'client|pause' command")
		return
	}
	all := true
	if len(c.Args) == 4 {
		switch {
		case wire.EqualFold(c.Args[3], "write"):
			all = false
		case wire.EqualFold(c.Args[3], "all"):
		default:
			s.errorReply("ERR CLIENT PAUSE mode must be WRITE or ALL")
			return
		}
	}
	ms, err := strconv.ParseInt(string(c.Args[2]), 10, 64)
	switch {
	case err != nil:
		s.errorReply("ERR timeout is not an integer or out of range")
		return
	case ms < 0:
		s.errorReply("ERR timeout is negative")
		return
	}
	d := time.Duration(ms) * time.Millisecond
	s.srv.cpause.pause(d, all)
	shards := resp.AppendCommandString(nil, "CLIENT", "PAUSE", strconv.FormatInt(ms, 10), "WRITE")
	s.fanout(r, c.Args, shards, allOK)
}

// clientUnpauseCmd serves CLIENT UNPAUSE.
func clientUnpauseCmd(s *session, r *route, _ *command.Info, c wire.Request) {
	if len(c.Args) != 2 {
		s.errorReply("ERR wrong number of arguments for 'client|unpause' command")
		return
	}
	s.srv.cpause.end()
	s.fanout(r, c.Args, c.Raw, allOK)
}

// repauseShards pauses the shards of the route in use for what is left of
// the client pause in effect, if any: after a barrier, whose snapshot cut
// unpaused them or whose cutover brought new ones.
func (srv *Server) repauseShards() {
	p := &srv.cpause
	if !p.active.Load() {
		return
	}
	p.mu.Lock()
	left := time.Until(p.until)
	on := p.done != nil
	p.mu.Unlock()
	if !on || left <= 0 {
		return
	}
	cmd := resp.AppendCommandString(nil, "CLIENT", "PAUSE", strconv.FormatInt(left.Milliseconds()+1, 10), "WRITE")
	deadline := time.Now().Add(srv.cfg.DialTimeout)
	for _, pool := range srv.route.Load().pools {
		go Shard{pool}.Do(cmd, deadline)
	}
}
