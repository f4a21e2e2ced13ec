package proxy

import (
	"bytes"
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/reshard/reshard/internal/resp"
	"github.com/reshard/reshard/proxy/command"
	"github.com/reshard/reshard/proxy/internal/wire"
)

// CLIENT PAUSE timeout [WRITE|ALL] and CLIENT UNPAUSE, as one Redis server
// gives them to its clients: for timeout milliseconds, or until CLIENT
// UNPAUSE, the proxy holds every client's commands (ALL, the default), or
// only those that may write (WRITE: commands flagged write or
// may-replicate, which takes in EVAL, EVALSHA and FCALL unless the script
// or function is flagged no-writes, PUBLISH, SPUBLISH and PFCOUNT, and EXEC
// of a transaction that queued one), each client's held in
// its order, counted in INFO's blocked_clients, and answered once the
// pause ends. A pause given while one is in effect makes it the longer and
// the stricter of the two, as Redis does. The pausing client is held like
// any other: under ALL, its own CLIENT UNPAUSE waits for the timeout, as
// on Redis.
//
// The shards are paused too (CLIENT PAUSE ... WRITE on every one, lifted
// by UNPAUSE), so that they neither expire nor evict keys meanwhile, as a
// paused Redis does not; the proxy's reads still reach them. With a
// PauseShare (the control plane with --etcd), a pause or UNPAUSE given to
// one proxy of a group holds or lets go the clients of every one: each
// applies the group's pause to its own clients (PauseClients), and the
// proxy the client gave it to pauses the shards once the others hold
// theirs. Without one the hold is this proxy's own: a write another
// proxy sends is held by the shard's pause, which stalls the shared shard
// connection it went on, and the requests behind it, until the pause ends.
//
// The hold is taken before a batch takes the barrier's gate, so a held
// client never keeps a snapshot's or a cutover's barrier from closing. A
// snapshot's cut ends the shards' pauses with its own CLIENT UNPAUSE: it
// gives them back what is left of the client pause in the same write
// (ClientPauseLeft, snapshot.ClientPauser), so they never run unpaused in
// between. A cutover brings new shards: when the barrier lifts during a
// client's pause, the shards now routed to are paused for what is left of
// it (repauseShards).
// Nothing is paid on the command path while no pause is in effect: one
// atomic load per batch.
type clientPause struct {
	active atomic.Bool

	mu    sync.Mutex
	all   bool
	until time.Time
	done  chan struct{} // closed when the pause ends; nil when none
	timer *time.Timer
	// functions flagged no-writes (FCALL runs under WRITE), read from a
	// shard once per pause; nil until then
	functions map[string]bool

	share PauseShare // set before Serve; nil: the pause is this proxy's alone
}

// pause starts a pause until until, or extends the one in effect; one
// whose until has passed changes nothing.
func (p *clientPause) pause(until time.Time, all bool) {
	d := time.Until(until)
	if d <= 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
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
	p.done, p.functions = nil, nil
	p.active.Store(false)
}

// PauseShare shares the proxy's CLIENT PAUSE and CLIENT UNPAUSE with the
// other proxies in front of the same shards (the control plane with
// --etcd), so that a pause given to one holds the clients of all. Its
// methods are called from client sessions (outside the barrier's gate,
// but for a pause a transaction gives at EXEC), ctx ending when the
// Server closes; they must be safe for concurrent use and bound their own
// waits.
type PauseShare interface {
	// Pause gives every proxy of the group a pause until until (all: ALL,
	// else WRITE), merged with the one in effect, and applies the group's
	// to this proxy (Server.PauseClients) before it returns. An error
	// means it may not have reached the group; this proxy's clients are
	// then not held.
	Pause(ctx context.Context, until time.Time, all bool) error
	// Unpause ends the group's pause on every proxy, this one before it
	// returns; an error, as for Pause, leaves this proxy's in effect.
	Unpause(ctx context.Context) error
}

// SharePauses makes share carry the CLIENT PAUSE and UNPAUSE the proxy's
// clients give to the other proxies of its group. Call it before Serve;
// without one a pause holds this proxy's clients only.
func (srv *Server) SharePauses(share PauseShare) { srv.cpause.share = share }

// PauseClients holds this proxy's clients until until, all of their
// commands (all) or those that may write, as CLIENT PAUSE does: the
// pause in effect, if any, becomes the longer and the stricter of the
// two. The shards are not paused by it: the PauseShare calls it for a
// pause another proxy of the group gave, and that proxy paused them.
func (srv *Server) PauseClients(until time.Time, all bool) { srv.cpause.pause(until, all) }

// UnpauseClients ends the pause of this proxy's clients, if any.
func (srv *Server) UnpauseClients() { srv.cpause.end() }

// holdForPause waits while a pause in effect holds the session's batch
// first+rest, counted in INFO's blocked_clients meanwhile, as Redis counts
// a paused client.
func (s *session) holdForPause(first wire.Request, rest []wire.Request) {
	p := &s.srv.cpause
	for p.active.Load() {
		p.mu.Lock()
		done, all := p.done, p.all
		p.mu.Unlock()
		if done == nil || (!all && !s.mayWrite(first) && !s.anyMayWrite(rest)) {
			return
		}
		s.srv.counters.blocked.Add(1)
		<-done
		s.srv.counters.blocked.Add(-1)
	}
}

func (s *session) anyMayWrite(cmds []wire.Request) bool {
	for _, c := range cmds {
		if s.mayWrite(c) {
			return true
		}
	}
	return false
}

// mayWrite tells whether Redis holds cmd under CLIENT PAUSE WRITE: a
// command that may write, queued in a transaction or not, and EXEC of a
// transaction that queued one.
func (s *session) mayWrite(cmd wire.Request) bool {
	info := command.Lookup(cmd.Args)
	if info == nil || !info.ArityOK(len(cmd.Args)) {
		return false // answered with its error at once, as Redis does
	}
	if info.Name() == "exec" {
		return s.tx.writes
	}
	return s.cmdMayWrite(info, cmd)
}

// cmdMayWrite is mayWrite for a command other than EXEC. Outside a pause
// an FCALL counts as writing (its function's flags are read only during a
// pause, from a shard).
func (s *session) cmdMayWrite(info *command.Info, cmd wire.Request) bool {
	switch info.Name() {
	case "eval":
		return len(cmd.Args) < 2 || !noWrites(cmd.Args[1])
	case "evalsha":
		body, ok := s.srv.scripts.body(cmd.Args[1])
		return !ok || !noWrites(body)
	case "fcall":
		return len(cmd.Args) < 2 || !s.srv.cpause.active.Load() || !s.srv.cpause.readOnlyFunction(s.srv, string(cmd.Args[1]))
	}
	return mayWriteInfo(info)
}

// noWrites tells whether a script declares flags=no-writes in its shebang
// line ("#!lua flags=no-writes,allow-stale"), which makes Redis run it as a
// read, even under CLIENT PAUSE WRITE.
func noWrites(body []byte) bool {
	if !bytes.HasPrefix(body, []byte("#!")) {
		return false
	}
	line, _, _ := bytes.Cut(body, []byte("\n"))
	for _, f := range bytes.Fields(line[2:]) {
		if v, ok := bytes.CutPrefix(f, []byte("flags=")); ok {
			for _, flag := range bytes.Split(v, []byte(",")) {
				if string(flag) == "no-writes" {
					return true
				}
			}
		}
	}
	return false
}

// readOnlyFunction tells whether the function name is registered with the
// no-writes flag, by FUNCTION LIST on one shard (the shards hold the same
// libraries), read once per pause.
func (p *clientPause) readOnlyFunction(srv *Server, name string) bool {
	p.mu.Lock()
	if p.functions == nil {
		p.mu.Unlock()
		fns := readOnlyFunctions(srv)
		p.mu.Lock()
		if p.done != nil {
			p.functions = fns
		}
		p.mu.Unlock()
		return fns[name]
	}
	ro := p.functions[name]
	p.mu.Unlock()
	return ro
}

// readOnlyFunctions lists the functions flagged no-writes on the first
// shard of the route in use.
func readOnlyFunctions(srv *Server) map[string]bool {
	out := map[string]bool{}
	pools := srv.route.Load().pools
	if len(pools) == 0 {
		return out
	}
	reply := Shard{pools[0]}.Do(resp.AppendCommandString(nil, "FUNCTION", "LIST"), time.Now().Add(srv.cfg.DialTimeout))
	libs, ok := wire.MapElems(reply)
	if !ok {
		return out
	}
	for _, lib := range libs {
		fields, ok := wire.MapElems(lib)
		for i := 0; ok && i+1 < len(fields); i += 2 {
			if k, _ := wire.BulkText(fields[i]); string(k) != "functions" {
				continue
			}
			fns, _ := wire.MapElems(fields[i+1])
			for _, fn := range fns {
				readFunctionFlags(fn, out)
			}
		}
	}
	return out
}

// readFunctionFlags notes fn (a FUNCTION LIST entry: name, description,
// flags) in out when its flags hold no-writes.
func readFunctionFlags(fn []byte, out map[string]bool) {
	fields, ok := wire.MapElems(fn)
	if !ok {
		return
	}
	var name string
	var ro bool
	for i := 0; i+1 < len(fields); i += 2 {
		k, _ := wire.BulkText(fields[i])
		switch string(k) {
		case "name":
			v, _ := wire.BulkText(fields[i+1])
			name = string(v)
		case "flags":
			flags, _ := wire.MapElems(fields[i+1])
			for _, f := range flags {
				if string(f) == "+no-writes\r\n" || string(f) == "$9\r\nno-writes\r\n" {
					ro = true
				}
			}
		}
	}
	if ro {
		out[name] = true
	}
}

// A command the shards hold under their WRITE pause must be held by the
// proxy too: sent, it would stall the shared connection it went on, and
// every client's requests behind it. Info.MayReplicate marks those that
// are not writes.
// mayWriteInfo tells whether a command may write, as CLIENT PAUSE WRITE
// sees it.
func mayWriteInfo(info *command.Info) bool {
	return info.Has(command.FlagWrite) || info.MayReplicate()
}

// parsePause reads CLIENT PAUSE's arguments; a non-empty errMsg is the
// error Redis answers.
func parsePause(args [][]byte) (ms int64, all bool, errMsg string) {
	if len(args) != 3 && len(args) != 4 {
		return 0, false, "ERR wrong number of arguments for 'client|pause' command"
	}
	all = true
	if len(args) == 4 {
		switch {
		case wire.EqualFold(args[3], "write"):
			all = false
		case wire.EqualFold(args[3], "all"):
		default:
			return 0, false, "ERR CLIENT PAUSE mode must be WRITE or ALL"
		}
	}
	ms, err := strconv.ParseInt(string(args[2]), 10, 64)
	switch {
	case err != nil:
		return 0, false, "ERR timeout is not an integer or out of range"
	case ms < 0:
		return 0, false, "ERR timeout is negative"
	}
	return ms, all, ""
}

// pauseInTx queues CLIENT PAUSE or UNPAUSE in a transaction: Redis runs it
// with the others at EXEC, so the pause starts once the transaction has
// run. Its reply goes in EXEC's reply; the shards are paused (or not)
// before EXEC answers. EXEC's reply cannot carry a failure to share it
// with the proxy's group: the pause then holds this proxy's clients only,
// and the failure is logged.
func (s *session) pauseInTx(info *command.Info, cmd wire.Request) apartCmd {
	at := len(s.tx.stats)
	if info.Name() == "client|unpause" {
		s.tx.onExec = append(s.tx.onExec, func() {
			if err := s.srv.unpauseGroup(); err != nil {
				s.srv.cpause.end()
				s.srv.log.Warn("client unpause ended this proxy's pause only", zap.Error(err))
			}
			s.srv.shardsDo(resp.AppendCommandString(nil, "CLIENT", "UNPAUSE"))
		})
		return apartCmd{at: at, reply: wire.AppendStatus(nil, "OK")}
	}
	ms, all, errMsg := parsePause(cmd.Args)
	if errMsg != "" {
		return apartCmd{at: at, reply: wire.AppendError(nil, errMsg)}
	}
	s.tx.onExec = append(s.tx.onExec, func() {
		until := time.Now().Add(time.Duration(ms) * time.Millisecond)
		if err := s.srv.pauseGroup(until, all); err != nil {
			s.srv.cpause.pause(until, all)
			s.srv.log.Warn("client pause holds this proxy's clients only", zap.Error(err))
		}
		s.srv.shardsDo(shardPauseCmd(ms))
	})
	return apartCmd{at: at, reply: wire.AppendStatus(nil, "OK")}
}

// pauseGroup starts a pause until until, or extends the one in effect: on
// every proxy of the group through the PauseShare, else on this one.
func (srv *Server) pauseGroup(until time.Time, all bool) error {
	if share := srv.cpause.share; share != nil {
		return share.Pause(srv.ctx, until, all)
	}
	srv.cpause.pause(until, all)
	return nil
}

// unpauseGroup ends the pause in effect, as pauseGroup starts it.
func (srv *Server) unpauseGroup() error {
	if share := srv.cpause.share; share != nil {
		return share.Unpause(srv.ctx)
	}
	srv.cpause.end()
	return nil
}

// shardsDo runs cmd on every shard of the route in use, in parallel, on
// connections no client's commands use, and returns when each has
// answered or the dial timeout has passed.
func (srv *Server) shardsDo(cmd []byte) {
	deadline := time.Now().Add(srv.cfg.DialTimeout)
	var wg sync.WaitGroup
	for _, pool := range srv.route.Load().pools {
		wg.Go(func() { Shard{pool}.Do(cmd, deadline) })
	}
	wg.Wait()
}

// clientPauseCmd serves CLIENT PAUSE timeout [WRITE|ALL].
func clientPauseCmd(s *session, r *route, _ *command.Info, c wire.Request) {
	ms, all, errMsg := parsePause(c.Args)
	if errMsg != "" {
		s.errorReply(errMsg)
		return
	}
	until := time.Now().Add(time.Duration(ms) * time.Millisecond)
	if s.srv.cpause.share == nil {
		s.srv.cpause.pause(until, all)
		s.fanout(r, c.Args, shardPauseCmd(ms), allOK)
		return
	}
	// The group's proxies hold their clients before the shards are paused
	// (a write one sent to a paused shard would stall the shared
	// connection it went on); reaching them takes etcd round trips, made
	// outside the barrier's gate.
	s.step.mayBlock = true
	s.step.next = func(*route) []byte {
		s.flushClient()
		if err := s.srv.pauseGroup(until, all); err != nil {
			return wire.AppendError(nil, "ERR CLIENT PAUSE not applied: "+err.Error())
		}
		s.srv.shardsDo(shardPauseCmd(ms))
		return wire.AppendStatus(nil, "OK")
	}
}

// clientUnpauseCmd serves CLIENT UNPAUSE.
func clientUnpauseCmd(s *session, r *route, _ *command.Info, c wire.Request) {
	if len(c.Args) != 2 {
		s.errorReply("ERR wrong number of arguments for 'client|unpause' command")
		return
	}
	if s.srv.cpause.share == nil {
		s.srv.cpause.end()
		s.fanout(r, c.Args, c.Raw, allOK)
		return
	}
	s.step.mayBlock = true
	s.step.next = func(*route) []byte {
		s.flushClient()
		if err := s.srv.unpauseGroup(); err != nil {
			return wire.AppendError(nil, "ERR CLIENT UNPAUSE not applied: "+err.Error())
		}
		s.srv.shardsDo(c.Raw)
		return wire.AppendStatus(nil, "OK")
	}
}

// repauseShards pauses the shards of the route in use for what is left of
// the client pause in effect, if any: after a barrier, whose snapshot cut
// unpaused them or whose cutover brought new ones. It does not wait for
// them: it runs as the barrier lifts.
func (srv *Server) repauseShards() {
	if left := srv.ClientPauseLeft(); left > 0 {
		go srv.shardsDo(shardPauseCmd(left.Milliseconds() + 1))
	}
}

// ClientPauseLeft is what is left of the clients' CLIENT PAUSE, 0 if none
// is in effect: a snapshot's cut gives it back to the shards as it ends
// its own pause of them (snapshot.ClientPauser).
func (srv *Server) ClientPauseLeft() time.Duration {
	p := &srv.cpause
	if !p.active.Load() {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		return 0
	}
	return max(time.Until(p.until), 0)
}

// shardPauseCmd is the pause the shards get during a client pause: WRITE,
// so that the proxy's reads still reach them.
func shardPauseCmd(ms int64) []byte {
	return resp.AppendCommandString(nil, "CLIENT", "PAUSE", strconv.FormatInt(ms, 10), "WRITE")
}
