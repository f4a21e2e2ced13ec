package proxy

import (
	"sync/atomic"
	"time"

	"github.com/reshard/reshard/proxy/command"
	"github.com/reshard/reshard/router"

	"github.com/reshard/reshard/proxy/internal/backend"
	"github.com/reshard/reshard/proxy/internal/wire"
)

// A session is one client connection. It handles a whole client pipeline at
// a time: plan every command (a local reply, a forward to one shard, or a
// split/fan-out over several), submit everything to the backends at once
// with one lock per shard, wait for the last reply, then write the replies
// back in the client's order, merging where one command went to several
// shards. All buffers are kept from pipeline to pipeline.
//
// Its state comes in parts, each with its own rules for who may touch it:
// the pipeline being served and the settings the client made are the
// serving goroutine's (embedded: the data path reads them at no extra
// cost); what other sessions read for CLIENT LIST (shown), the pub/sub
// hand-off (sub) and MONITOR (mon) are named, so that every use says which
// rules apply. The serving goroutine is the session's own, or the pub/sub
// loop's while one owns the connection (sub), never both at once.
type session struct {
	srv  *Server
	id   uint64
	conn *clientConn // its lifecycle state says who serves it (connState)

	pipeline
	settings

	shown shownState // what other sessions' CLIENT LIST, INFO and KILL read
	sub   subscriber // the hand-off to a pub/sub loop and back (handoff.go)
	mon   monitoring // MONITOR mode (monitor.go)
	track trackState // CLIENT TRACKING, and invalidations for it (tracking.go)

	// times the session dispatched what it had read, for letArrivedFirst
	// (order.go), which other sessions run
	progress atomic.Uint64
	// blockedOn is the blocking command the session has sent, while it
	// waits for its reply (order.go)
	blockedOn atomic.Pointer[blockedCmd]
}

// settings is what the client set on its connection: protocol (HELLO),
// authentication (AUTH), name (CLIENT SETNAME), reply mode (CLIENT REPLY),
// transaction and WATCH (transaction.go). Only the serving goroutine writes
// them; it writes name, proto, authed, admin, tx.active and tx.stats
// holding shown.mu, because other sessions' CLIENT LIST reads them, and
// reads them without it.
type settings struct {
	name          string
	proto         int // 2 or 3 (HELLO)
	authed, admin bool
	replyMode     int      // CLIENT REPLY: replyOn, replyOff, replySkipNext or replySkipThis
	replyAlways   bool     // this command's reply goes out whatever replyMode says (silenced)
	readFrom      ReadFrom // where reads go: Config.ReadFrom, or READONLY/READWRITE's

	tx         txState
	txSlot     int // the slot WATCH or the transaction fixed, or noSlot
	watchConn  *backend.Dedicated
	watchPool  *backend.DedicatedPool // where watchConn goes back
	watchEpoch uint64                 // the table's epoch at WATCH
}

func newSession(srv *Server, id uint64, conn *clientConn) *session {
	authed := srv.cfg.RequirePass == ""
	s := &session{srv: srv, id: id, conn: conn}
	s.b = backend.Batch{Done: make(chan struct{}, 1), Limit: srv.cfg.MaxOutputBuffer}
	s.settings = settings{authed: authed, admin: authed && srv.cfg.AdminPassword == "", txSlot: noSlot, proto: 2, readFrom: srv.cfg.ReadFrom}
	s.shown.created = time.Now()
	s.shown.lastCmd.Store(s.shown.created.UnixNano())
	return s
}

func (s *session) serve(first wire.Request, rest []wire.Request) {
	s.holdForPause(first, rest) // CLIENT PAUSE, outside the gate
	s.srv.gate.mu.RLock()
	defer s.srv.gate.mu.RUnlock()
	defer s.showCmd()
	if s.track.receiver.Load() {
		s.trackingBegin()
	}
	defer s.trackingEnd()
	r := s.srv.route.Load()
	s.begin(len(r.stagePools))
	now := time.Now()
	s.shown.lastCmd.Store(now.UnixNano())
	s.refused = s.srv.leaseRefusal(now)
	cmd := first
	for i := 0; ; i++ {
		s.plan(r, cmd)
		if s.step.next != nil {
			r = s.runSync(r)
		}
		if s.sub.detachWith.Raw != nil {
			// the connection goes to a pub/sub loop (detach) once this
			// returns: its first write must not be made inside the gate
			s.submit(r)
			s.reply()
			s.sub.detachRest = rest[i:]
			return
		}
		if i == len(rest) || s.quit {
			break
		}
		cmd = rest[i]
	}
	s.submit(r)
	s.reply()
}

// runSync answers everything planned so far, runs the pending sync step and
// starts a new batch on the table now current.
func (s *session) runSync(r *route) *route {
	s.submit(r)
	s.reply()
	fn := s.step.next
	s.step.next = nil
	if s.step.afterArrived {
		s.step.afterArrived = false
		s.outsideGate(func(*route) []byte { s.srv.letArrivedFirst(s); return nil })
		r = s.srv.route.Load()
	}
	var reply []byte
	if s.step.mayBlock {
		// BLPOP, WAIT: outside the barrier's gate, so they cannot hold a
		// barrier up; the table may change meanwhile, so the step gets a
		// fresh one. (EXEC and WATCH are quick and stay inside: the cut
		// must not split a write from its acknowledgement.)
		s.step.mayBlock = false
		reply = s.outsideGate(fn)
	} else {
		reply = fn(r)
	}
	if reply != nil && !s.step.silent {
		s.sendReply(s.stat, reply)
	}
	r = s.srv.route.Load()
	s.begin(len(r.stagePools))
	return r
}

// outsideGate runs fn out of the barrier's gate, which serve holds, and
// takes the gate again, even if fn panics (serve's deferred release needs
// it held).
func (s *session) outsideGate(fn func(*route) []byte) []byte {
	s.srv.gate.mu.RUnlock()
	defer s.srv.gate.mu.RLock()
	if h := s.srv.cfg.testHook; h != nil {
		h("outside gate", nil)
	}
	return fn(s.srv.route.Load())
}

// plan decides how one command is served, and applies CLIENT REPLY.
func (s *session) plan(r *route, cmd wire.Request) {
	mode, n := s.replyMode, len(s.calls)
	if len(cmd.Args) == 0 {
		// *0 or an empty line: Redis runs nothing and counts nothing, but
		// the command still takes a CLIENT REPLY SKIP
		s.srv.counters.commands.Add(-1)
		s.silenced(mode)
		return
	}
	s.stat = nil
	if h := s.srv.cfg.testHook; h != nil {
		h("plan", cmd.Args)
	}
	s.planOne(r, cmd)
	if s.stat != nil {
		s.stat.calls.Add(1)
		for i := n; i < len(s.calls); i++ {
			s.calls[i].stat = s.stat
		}
	}
	silent := s.silenced(mode)
	if silent {
		for i := n; i < len(s.calls); i++ {
			s.calls[i].silent = true
		}
	}
	s.step.silent = silent
}

// silenced applies CLIENT REPLY to a command just handled, which found the
// reply mode at mode: it reports whether the command's reply is dropped,
// and moves a SKIP on.
func (s *session) silenced(mode int) bool {
	silent := (mode == replyOff || mode == replySkipThis) && !s.replyAlways
	s.replyAlways = false
	switch {
	case s.replyMode == replySkipNext:
		s.replyMode = replySkipThis
	case mode == replySkipThis && s.replyMode == replySkipThis:
		s.replyMode = replyOn
	}
	return silent
}

// planOne decides how one command is served.
func (s *session) planOne(r *route, cmd wire.Request) {
	args := cmd.Args
	info, h := s.lookup(args)
	s.cmdName = "NULL" // as Redis shows a command it does not know
	switch {
	case info != nil:
		s.cmdName = info.Name()
	case isProxyCommand(args[0]):
		s.cmdName = "proxy"
	}
	if !s.authed || !s.admin {
		if msg := s.permitted(info, args[0]); msg != "" {
			s.tx.dirty = s.tx.active
			s.reject(info, msg)
			return
		}
	}
	if info == nil && isProxyCommand(args[0]) {
		s.controlCommand(args)
		return
	}
	if s.refused != "" && info != nil && refusedWithoutLease(info.Name()) {
		s.tx.dirty = s.tx.active
		s.reject(info, s.refused)
		return
	}
	if info == nil {
		s.tx.dirty = s.tx.active
		s.errorReply(unknownCommand(args))
		return
	}
	if info.IsContainer() && !(len(args) == 1 && info.ArityOK(1)) { // bare COMMAND is a command
		s.tx.dirty = s.tx.active // refused, so EXEC aborts, as in Redis
		if len(args) < 2 {
			s.errorReply("ERR wrong number of arguments for '" + info.Name() + "' command")
		} else {
			s.errorReply("ERR unknown subcommand '" + wire.Clip(args[1]) + "'. Try " + upper(info.Name()) + " HELP.")
		}
		return
	}
	if !info.ArityOK(len(args)) {
		s.tx.dirty = s.tx.active
		s.reject(info, "ERR wrong number of arguments for '"+info.Name()+"' command")
		return
	}
	if s.sub.restricted && !allowedSubscribed(info) {
		s.reject(info, "ERR Can't execute '"+info.Name()+
			"': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context")
		return
	}
	if s.mon.active != nil && touchesKeyspace(info) {
		s.tx.dirty = s.tx.active
		s.reject(info, "ERR Replica can't interact with the keyspace")
		return
	}
	s.stat = s.srv.stats.of(info)
	if s.srv.tracker.active.Load() {
		s.trackCommand(r, info, args)
	}
	monitoring := s.srv.monitors.n.Load() != 0
	if s.tx.active {
		if s.inTransaction(info, cmd, monitoring) {
			return
		}
		// EXEC shows after the commands it runs (exec)
		monitoring = monitoring && info.Name() != "exec"
	}
	if monitoring {
		s.monitored(info, args)
	}
	if h != nil {
		h(s, r, info, cmd)
		return
	}
	s.routeByKeys(r, info, cmd)
}

// touchesKeyspace reports whether Redis 7 refuses info to a monitor, which
// it counts among its replicas: read and write commands, and those flagged
// may-replicate inside Redis, a flag COMMAND INFO does not show (so not in
// the command table either).
func touchesKeyspace(info *command.Info) bool {
	if info.IsReadonly() || info.IsWrite() {
		return true
	}
	switch info.Name() {
	case "eval", "evalsha", "fcall", "publish", "spublish":
		return true
	}
	return false
}

// lookup returns the command args names and its handler (nil: route by
// keys). Clients repeat a few commands, so the session remembers its last
// few names as the client spelt them: comparing a few bytes costs less than
// lowercasing and hashing the name into two maps, command and handler.
// Containers (CONFIG GET, ...) are looked up each time.
func (s *session) lookup(args [][]byte) (*command.Info, handler) {
	for i := range s.lookups {
		if l := &s.lookups[i]; l.info != nil && string(l.name) == string(args[0]) {
			return l.info, l.h
		}
	}
	info := command.Lookup(args)
	if info == nil {
		return nil, nil
	}
	h := handlers[info.Name()]
	if info.Parent() == nil && !info.IsContainer() && len(args[0]) <= 32 {
		l := &s.lookups[s.nextLookup]
		s.nextLookup = (s.nextLookup + 1) % len(s.lookups)
		l.name = append(l.name[:0], args[0]...)
		l.info, l.h = info, h
	}
	return info, h
}

// routeByKeys sends a command to the shard owning its keys, which must all
// be in one slot.
func (s *session) routeByKeys(r *route, info *command.Info, cmd wire.Request) {
	if info.IsBlocking() {
		blocking(s, r, info, cmd)
		return
	}
	slot, ok, errMsg := s.slotOf(info, cmd.Args)
	if errMsg != "" {
		s.badKeys(info, errMsg, cmd.Raw)
		return
	}
	if !ok {
		// keyless commands without a handler change server-wide or
		// connection state; the proxy cannot give them one meaning.
		s.reject(info, unsupported(info))
		return
	}
	shard := r.table.ShardOfSlot(slot)
	stage, ok := s.readStage(r, info, shard)
	if !ok {
		s.errorReply(noReplica(r.pools[shard].Addr))
		return
	}
	s.forward(stage, cmd.Raw)
}

// slotOf returns the one slot of the command's keys. ok is false for a
// command without keys; errMsg is set for a CROSSSLOT or key-spec error.
func (s *session) slotOf(info *command.Info, args [][]byte) (slot uint16, ok bool, errMsg string) {
	keys, err := info.Keys(args, s.keys[:0])
	s.keys = keys
	if err != nil {
		return 0, false, err.Error()
	}
	if len(keys) == 0 {
		return 0, false, ""
	}
	slot = router.Slot(args[keys[0]])
	for _, k := range keys[1:] {
		if router.Slot(args[k]) != slot {
			return 0, false, crossSlot
		}
	}
	return slot, true, ""
}

const crossSlot = "CROSSSLOT Keys in request don't hash to the same slot"

// badKeys answers a command slotOf refused. CROSSSLOT is the proxy's own
// refusal. Any other error is a number of keys the command's arguments do
// not hold (SINTERCARD 3 k, EVAL s -1, ...): a shard answers it, in its own
// words and after its own checks (FCALL looks its function up first), and
// runs nothing, as Redis Cluster runs a command it finds no key in.
func (s *session) badKeys(info *command.Info, errMsg string, raw []byte) {
	if errMsg == crossSlot {
		s.reject(info, errMsg)
		return
	}
	s.forward(0, raw)
}

func unsupported(info *command.Info) string {
	return "ERR command '" + info.Name() + "' is not supported by the proxy"
}

// unknownCommand words the error as Redis does: the name cut at 128 bytes,
// then quoted arguments while the list is under 128 bytes, each cut to what
// is left of those 128; every one also ends at a NUL byte, as Redis formats
// them as C strings.
func unknownCommand(args [][]byte) string {
	var list []byte
	for _, a := range args[1:] {
		if len(list) >= 128 {
			break
		}
		a = wire.CString(a)
		list = append(list, '\'')
		list = append(list, a[:min(len(a), 128-len(list)+1)]...)
		list = append(list, '\'', ' ')
	}
	return "ERR unknown command '" + wire.Clip(args[0]) + "', with args beginning with: " + string(list)
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 32
		}
	}
	return string(b)
}

func isProxyCommand(name []byte) bool { return wire.EqualFold(name, "proxy") }
