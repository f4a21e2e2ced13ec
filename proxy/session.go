package proxy

import (
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/reshard/reshard/proxy/command"
	"github.com/reshard/reshard/router"

	"github.com/reshard/reshard/proxy/internal/wire"
)

// A session is one client connection. It handles a whole client pipeline at
// a time: plan every command (a local reply, a forward to one shard, or a
// split/fan-out over several), submit everything to the backends at once
// with one lock per shard, wait for the last reply, then write the replies
// back in the client's order, merging where one command went to several
// shards. All buffers are kept from pipeline to pipeline.
type session struct {
	srv  *Server
	id   uint64
	conn *clientConn
	name string

	b      batch
	nslots int32
	calls  []call
	stages []stage
	aux    []int32 // per-key bookkeeping of split commands
	keys   []int
	out    []byte
	quit   bool

	lookups    [4]cachedLookup // the last commands looked up (lookup)
	nextLookup int

	// shown guards what CLIENT LIST and CLIENT INFO show of this session
	// (name, proto, admin, tx.active, tx.stats), which other sessions'
	// goroutines read: the session writes those fields only while holding
	// it, and reads them without it.
	shown sync.Mutex

	// connection state (stateful.go)
	proto         int // 2 or 3 (HELLO)
	authed, admin bool
	tx            txState
	txSlot        int // the slot WATCH or the transaction fixed, or noSlot
	watchConn     *dconn
	watchPool     *dpool                // where watchConn goes back
	watchEpoch    uint64                // the table's epoch at WATCH
	syncNext      func(r *route) []byte // a step to run after what is planned so far
	syncMayBlock  bool                  // syncNext may block for long (BLPOP, WAIT)
	syncSilent    bool                  // syncNext's reply is not sent (CLIENT REPLY)

	// for letArrivedFirst (order.go): syncNext runs after what other
	// clients had sent before; what the serving loop is doing; a count of
	// the times it dispatched what it had read
	syncAfterArrived bool
	orderState       atomic.Int32
	progress         atomic.Uint64

	// for CLIENT LIST/INFO/REPLY (client.go)
	created     time.Time
	lastCmd     atomic.Int64 // unix nanoseconds of the last command
	replyMode   int
	replyAlways bool           // this command's reply goes out whatever replyMode says (silenced)
	detachWith  wire.Request   // a SUBSCRIBE that hands the connection to a pub/sub loop
	detachRest  []wire.Request // the commands the client sent after it
	pubsub      *pubsubLoop    // the loop that owns the connection, while it has one (detach)
	// subscriptions the shards confirmed by kind: channels, patterns and
	// shard channels, for CLIENT LIST (sub, psub, ssub), KILL and INFO
	// (written by the pub/sub loop's pumps)
	subKinds [3]atomic.Int64
	held     []byte // replies for the pub/sub loop to write (sendReply)

	// cmdName is the command being planned, as CLIENT LIST's cmd shows it;
	// cmdShown is what other sessions see, the last command of the last
	// pipeline (written under shown once per pipeline)
	cmdName, cmdShown string

	// pubsubContext: the client is subscribed in RESP2, where Redis allows
	// only (un)subscriptions, PING, QUIT and RESET, and PING answers as a
	// subscriber (set by the pub/sub loop around the command's plan)
	pubsubContext bool

	stat *cmdStat // the command being planned, once past the checks that reject it (cmdstats.go)

	monitor  *monitor // in MONITOR mode (monitor.go); written under shown
	monLines []byte   // MONITOR lines of the pipeline's commands, not yet fed
}

type cachedLookup struct {
	name []byte // as the client spelt it
	info *command.Info
	h    handler
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
	reqs []pending
}

func newSession(srv *Server, id uint64, conn *clientConn) *session {
	authed := srv.cfg.RequirePass == ""
	s := &session{srv: srv, id: id, conn: conn, b: batch{done: make(chan struct{}, 1), limit: srv.cfg.MaxOutputBuffer},
		authed: authed, admin: authed && srv.cfg.AdminPassword == "", txSlot: noSlot, created: time.Now(), proto: 2}
	s.lastCmd.Store(s.created.UnixNano())
	return s
}

func (s *session) serve(first wire.Request, rest []wire.Request) {
	s.srv.gate.mu.RLock()
	defer s.srv.gate.mu.RUnlock()
	defer s.showCmd()
	r := s.srv.route.Load()
	s.begin(r.table.NumShards())
	s.lastCmd.Store(time.Now().UnixNano())
	cmd := first
	for i := 0; ; i++ {
		s.plan(r, cmd)
		if s.syncNext != nil {
			r = s.runSync(r)
		}
		if s.detachWith.Raw != nil {
			// the connection goes to a pub/sub loop (detach) once this
			// returns: its first write must not be made inside the gate
			s.submit(r)
			s.reply()
			s.detachRest = rest[i:]
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

// subscriptions counts the subscriptions the shards confirmed.
func (s *session) subscriptions() int64 {
	return s.subKinds[subChannel].Load() + s.subKinds[subPattern].Load() + s.subKinds[subShard].Load()
}

// showCmd lets other sessions' CLIENT LIST see the last command planned.
func (s *session) showCmd() {
	if s.cmdShown != s.cmdName {
		s.shown.Lock()
		s.cmdShown = s.cmdName
		s.shown.Unlock()
	}
}

// runSync answers everything planned so far, runs the pending sync step and
// starts a new batch on the table now current.
func (s *session) runSync(r *route) *route {
	s.submit(r)
	s.reply()
	fn := s.syncNext
	s.syncNext = nil
	if s.syncAfterArrived {
		s.syncAfterArrived = false
		s.outsideGate(func(*route) []byte { s.srv.letArrivedFirst(s); return nil })
		r = s.srv.route.Load()
	}
	var reply []byte
	if s.syncMayBlock {
		// BLPOP, WAIT: outside the barrier's gate, so they cannot hold a
		// barrier up; the table may change meanwhile, so the step gets a
		// fresh one. (EXEC and WATCH are quick and stay inside: the cut
		// must not split a write from its acknowledgement.)
		s.syncMayBlock = false
		reply = s.outsideGate(fn)
	} else {
		reply = fn(r)
	}
	if reply != nil && !s.syncSilent {
		s.sendReply(s.stat, reply)
	}
	r = s.srv.route.Load()
	s.begin(r.table.NumShards())
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

func (s *session) begin(shards int) {
	s.nslots = 0
	s.b.size.Store(0)
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
	for int(i) >= len(s.b.results) {
		// reply drops the buffers after a huge pipeline; a sync step
		// (onEveryShard) reserves slots after that
		s.b.results = append(s.b.results, nil)
	}
	s.b.results[i] = s.b.results[i][:0]
	return i
}

// local answers a command with a reply the proxy makes itself.
func (s *session) local(reply []byte) {
	i := s.slot()
	s.b.results[i] = append(s.b.results[i], reply...)
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
	s.b.results[i] = wire.AppendError(s.b.results[i], msg)
	s.calls = append(s.calls, call{first: i, n: 1})
}

// stageTo queues raw for shard and returns its result slot.
func (s *session) stageTo(shard int, raw []byte) int32 {
	i := s.slot()
	st := &s.stages[shard]
	st.raw = append(st.raw, raw...)
	st.reqs = append(st.reqs, pending{b: &s.b, i: i})
	return i
}

// forward sends the command unchanged to one shard.
func (s *session) forward(shard int, raw []byte) {
	i := s.stageTo(shard, raw)
	s.calls = append(s.calls, call{first: i, n: 1})
}

// fanout sends the command unchanged to every shard and merges the replies.
func (s *session) fanout(r *route, args [][]byte, raw []byte, m merger) {
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
	for i := range r.pools {
		total += int32(len(s.stages[i].reqs))
	}
	if total == 0 {
		return
	}
	s.b.remaining.Store(total)
	for i, p := range r.pools {
		if st := &s.stages[i]; len(st.reqs) > 0 {
			p.pick(s.id, s.proto).submit(st.raw, st.reqs)
		}
	}
	<-s.b.done
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
	for _, r := range s.b.results[:s.nslots] {
		size += int64(len(r))
	}
	if size > s.srv.cfg.MaxOutputBuffer || s.b.overLimit() {
		size = max(size, s.b.size.Load())
		s.srv.log.Warn("client output buffer limit reached, closing client",
			zap.Uint64("client", s.id), zap.Int64("bytes", size))
		s.b.results = nil
		s.conn.drop()
		return
	}
	for i := range s.calls {
		c := &s.calls[i]
		if c.silent {
			continue
		}
		if c.merge == nil {
			s.sendReply(c.stat, s.b.results[c.first])
			continue
		}
		s.out = c.merge(s, c, s.out[:0])
		s.sendReply(c.stat, s.out)
	}
	if cap(s.out) > 1<<20 {
		s.out = nil
	}
	if size > 1<<20 || cap(s.b.results) > 4096 {
		s.b.results = nil // after a huge pipeline, do not keep its buffers
	}
	if s.quit {
		s.conn.closed = true // serveConn writes the replies, outside the gate, and closes
	}
}

// sendReply queues the reply of one call of stat for the client.
func (s *session) sendReply(stat *cmdStat, reply []byte) {
	if len(reply) > 0 && reply[0] == '-' {
		s.srv.stats.errorReplied(stat, reply, s.srv.log)
	}
	if s.pubsub != nil {
		// the pub/sub loop writes it after what the shards still owe the
		// client for earlier commands (pubsubLoop.handle)
		s.held = append(s.held, reply...)
		return
	}
	s.conn.WriteRaw(reply)
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
	s.syncSilent = silent
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
	if s.pubsubContext && !allowedSubscribed(info) {
		s.reject(info, "ERR Can't execute '"+info.Name()+
			"': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context")
		return
	}
	if s.monitor != nil && touchesKeyspace(info) {
		s.tx.dirty = s.tx.active
		s.reject(info, "ERR Replica can't interact with the keyspace")
		return
	}
	s.stat = s.srv.stats.of(info)
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
	s.forward(r.table.ShardOfSlot(slot), cmd.Raw)
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
