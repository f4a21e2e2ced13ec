package proxy

import (
	"bytes"
	"errors"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/reshard/reshard/proxy/command"
	"github.com/reshard/reshard/router"

	"github.com/reshard/reshard/internal/resp"
	"github.com/reshard/reshard/proxy/internal/backend"
	"github.com/reshard/reshard/proxy/internal/wire"
)

// Transactions (MULTI, EXEC, DISCARD) and WATCH: commands whose meaning
// lives on one connection, so none of them travels on a shared backend
// connection.
//
// A transaction is checked in the proxy as it is queued (command known,
// arity, and here the one-slot rule), and each command the proxy accepts is
// sent on at once to the transaction's shard, inside a MULTI opened on a
// dedicated connection, so the client gets the shard's own answer: QUEUED,
// or the error Redis gives at queue time (OOM, NOREPLICAS, BUSY, ...), which
// makes the shard's EXEC answer EXECABORT as Redis does. The shard is the
// one of the transaction's slot, or the first one while no command has
// fixed the slot (a keyless transaction runs there). When the shard changes
// (a keyed command after keyless ones, or a table swap), nothing has run:
// the transaction is discarded there and queued again on the new shard.
// Sending waits until the session's next submit, so a pipelined
// transaction costs two round trips to its shard: the queued commands, whose
// replies the client gets before EXEC runs, then EXEC (it was one, EXEC and
// all, when the proxy queued the commands itself).
//
// Commands that must wait for the shard on a dedicated connection run as a
// *sync* step of the pipeline: everything before them is sent and answered
// first, then the step runs, then the rest of the pipeline.

type txState struct {
	active bool
	dirty  bool
	writes bool       // a command that may write is queued (CLIENT PAUSE WRITE holds EXEC)
	onExec []func()   // what queued CLIENT PAUSE/UNPAUSE do once EXEC has run the rest
	raw    []byte     // queued commands
	stats  []*cmdStat // one per queued command (CLIENT LIST's multi=): its counters, counted when EXEC runs it
	mon    []byte     // the queued commands' MONITOR lines, shown when EXEC runs them

	// Commands queued apart, not sent to the transaction's shard, with
	// their places among the queued commands: PUBLISH (pubRaw), which runs
	// on the pub/sub home shard, and commands whose error Redis Cluster
	// answers inside EXEC's reply (a fixed reply). See afterExec.
	apart  []apartCmd
	pubRaw []byte

	// every: commands of every shard (everyShardInTx), which the
	// transaction's shard runs in its EXEC and every other shard right
	// after it (everyShardAfter).
	every []everyShardCmd

	// The shard's side (txFlush): MULTI open on conn (from pool, to shard
	// at epoch), raw[:sent] sent on it; nraw commands in raw; waiting, the
	// result slots of the commands queued since the last flush, which get
	// the shard's replies. watched: conn holds the session's WATCH.
	// watchMoved: the watched keys moved (a table swap), so EXEC answers
	// null and nothing is sent.
	conn       *backend.Dedicated
	pool       *backend.DedicatedPool
	shard      int
	epoch      uint64
	sent       int
	nraw       int
	waiting    []txWaiting
	watched    bool
	watchMoved bool
}

// txWaiting is a queued command whose reply the shard gives.
type txWaiting struct {
	slot int32
	stat *cmdStat
}

// apartCmd is a command of a transaction queued apart: at is its place
// among the queued commands; reply, if not nil, is its reply, else it is a
// PUBLISH.
type apartCmd struct {
	at    int
	reply []byte
}

// everyShardCmd is a command of every shard queued in a transaction: at is
// its place among the commands the transaction's shard queued.
type everyShardCmd struct {
	at    int
	raw   []byte
	flush bool
	done  func() // what the proxy does once every shard answered OK (nil: nothing)
}

// everyShardInTx are the commands a transaction runs on every shard, as
// one server runs them in its transaction (Redis Cluster queues them as
// any other). Each acts on its shard alone and answers OK, so the shards'
// parts need no merge but the first error.
var everyShardInTx = map[string]bool{
	"config|set": true, "flushall": true, "flushdb": true, "slowlog|reset": true,
}

// noSlot marks that neither WATCH nor a queued command has fixed the slot.
const noSlot = -1

// inTransaction queues a command between MULTI and EXEC; it reports false
// for the commands that act on the transaction itself. As in Redis, a
// queued command shows in MONITOR when EXEC runs it, and a refused one
// never.
func (s *session) inTransaction(info *command.Info, cmd wire.Request, monitoring bool) bool {
	switch info.Name() {
	case "exec", "discard", "multi", "quit", "reset":
		return false
	case "watch": // Redis 7 runs this, so monitors see it, without flagging the transaction
		if monitoring {
			s.monitored(info, cmd.Args)
		}
		s.errorReply("ERR WATCH inside MULTI is not allowed")
		return true
	}
	if info.IsNoMulti() {
		s.tx.dirty = true
		s.reject(info, "ERR Command not allowed inside a transaction")
		return true
	}
	if msg := clusterRefusal(info, cmd.Args); msg != "" {
		// Redis Cluster queues it and answers the error in EXEC's reply,
		// the rest of the transaction running
		s.tx.apart = append(s.tx.apart, apartCmd{at: len(s.tx.stats), reply: wire.AppendError(nil, msg)})
		s.queued(info, cmd, monitoring)
		return true
	}
	var slot uint16
	var ok bool
	var errMsg string
	switch {
	case info.Name() == "client|pause" || info.Name() == "client|unpause":
		s.tx.apart = append(s.tx.apart, s.pauseInTx(info, cmd))
		s.queued(info, cmd, monitoring)
		return true
	case info.Name() == "publish":
		s.tx.apart = append(s.tx.apart, apartCmd{at: len(s.tx.stats)})
		s.tx.pubRaw = append(s.tx.pubRaw, cmd.Raw...)
		s.queued(info, cmd, monitoring)
		return true
	case info.Name() == "spublish":
		// Its channel is not a key, but Redis Cluster runs it in a
		// transaction on the channel's slot, as the proxy does outside one.
		slot, ok = router.Slot(cmd.Args[1]), true
	case everyShardInTx[info.Name()]:
		if msg := s.everyShardRefusal(info, cmd); msg != "" {
			// as outside a transaction; here in EXEC's reply, where Redis
			// answers CONFIG SET's errors
			s.tx.apart = append(s.tx.apart, apartCmd{at: len(s.tx.stats), reply: wire.AppendError(nil, msg)})
			s.queued(info, cmd, monitoring)
			return true
		}
		s.sentToEveryShard()
		e := everyShardCmd{at: s.tx.nraw, raw: bytes.Clone(cmd.Raw), flush: info.Name() == "flushall" || info.Name() == "flushdb"}
		switch info.Name() {
		case "config|set":
			args := make([][]byte, len(cmd.Args))
			for i, a := range cmd.Args {
				args[i] = bytes.Clone(a)
			}
			e.done = func() { s.srv.configSet(args) }
		case "slowlog|reset":
			e.done = s.srv.ownSlowlog.reset
		}
		s.tx.every = append(s.tx.every, e)
	case !info.HasKeys() && !keylessInTx[info.Name()] && !debugAnyShardArgs(info, cmd.Args):
		// Fan-out and proxy-answered commands have no one-shard meaning
		// inside a transaction.
		s.tx.dirty = true
		s.reject(info, unsupportedInTx(info))
		return true
	default:
		slot, ok, errMsg = s.slotOf(info, cmd.Args)
		if errMsg != "" && errMsg != crossSlot {
			// A bad number of keys (SINTERCARD, ZUNION, EVAL, ...): Redis
			// queues the command and EXEC answers the error in its reply
			// (Redis Cluster finds no key to check), so the transaction's
			// shard answers it.
			ok, errMsg = false, ""
		}
	}
	if errMsg == "" && ok {
		if s.txSlot != noSlot && int(slot) != s.txSlot {
			errMsg = crossSlot
		} else {
			s.txSlot = int(slot)
		}
	}
	if errMsg != "" {
		s.tx.dirty = true
		s.reject(info, errMsg)
		return true
	}
	s.tx.raw = append(s.tx.raw, cmd.Raw...)
	s.tx.nraw++
	stat := s.stat
	s.noteQueued(info, cmd, monitoring)
	i := s.slot() // the shard's reply, at the next submit (txFlush)
	s.calls = append(s.calls, call{first: i, n: 1})
	s.tx.waiting = append(s.tx.waiting, txWaiting{slot: i, stat: stat})
	return true
}

// queued answers a command queued in the transaction by the proxy alone.
func (s *session) queued(info *command.Info, cmd wire.Request, monitoring bool) {
	s.noteQueued(info, cmd, monitoring)
	s.local(wire.AppendStatus(nil, "QUEUED"))
}

// noteQueued counts a command queued in the transaction.
func (s *session) noteQueued(info *command.Info, cmd wire.Request, monitoring bool) {
	s.tx.writes = s.tx.writes || s.cmdMayWrite(info, cmd)
	s.shown.mu.Lock()
	s.tx.stats = append(s.tx.stats, s.stat)
	s.shown.mu.Unlock()
	s.stat = nil // QUEUED is not a call: Redis counts the command when EXEC runs it
	if monitoring {
		s.tx.mon = s.monitorLine(s.tx.mon, info, cmd.Args)
	}
}

// txFlush sends the shard the commands queued since the last flush and
// puts its replies where the client's replies are read from. A shard that
// cannot be reached answers each of them with its error, and the
// transaction aborts at EXEC, as after any refused command.
func (s *session) txFlush(r *route) {
	t := &s.tx
	if len(t.waiting) == 0 {
		return
	}
	var replies [][]byte
	errReply := s.txReady(r)
	if errReply == nil && !t.watchMoved {
		replies, errReply = s.txSend(nil, 0)
	}
	waiting := t.waiting
	t.waiting = t.waiting[:0]
	for i, w := range waiting {
		reply := errReply
		switch {
		case errReply != nil:
			t.dirty = true
		case t.watchMoved:
			reply = queuedReply // EXEC answers null: nothing is sent
		default:
			reply = replies[len(replies)-len(waiting)+i]
		}
		if len(reply) > 0 && reply[0] == '-' && w.stat != nil {
			w.stat.rejected.Add(1) // refused at queue time, as Redis counts it
		}
		s.b.Results[w.slot] = append(s.b.Results[w.slot][:0], reply...)
	}
}

var queuedReply = wire.AppendStatus(nil, "QUEUED")

// txReady makes sure MULTI is open on the transaction's shard in route r:
// it opens it, or moves it there from the shard it was opened on (nothing
// has run: DISCARD there, everything queued again here). It returns an
// error reply if the shard cannot be reached; with the session's WATCH on
// a shard of an older table it sets watchMoved instead.
func (s *session) txReady(r *route) []byte {
	t := &s.tx
	shard := s.txShard(r)
	if t.watchMoved || t.conn != nil && t.epoch == r.table.Epoch() && t.shard == shard {
		return nil
	}
	if t.conn != nil {
		if t.watched {
			// the WATCH was on the old table's shard: it cannot hold
			t.conn.NetConn.Close()
			t.conn, t.watchMoved = nil, true
			return nil
		}
		s.txDiscard()
	}
	t.watched = s.watchConn != nil
	d, err := s.borrowWatch(r, shard)
	if err == errWatchMoved {
		t.watchMoved = true
		return nil
	}
	pl := r.pools[shard].DedicatedPool(s.proto)
	if err != nil {
		return wire.AppendError(nil, pl.DownMessage(err))
	}
	t.conn, t.pool, t.shard, t.epoch, t.sent = d, pl, shard, r.table.Epoch(), -1
	return nil
}

// txSend writes what the shard has not had of the transaction (MULTI
// first if it is new there) and then tail, n commands, and returns the
// replies to the commands queued since the last flush and to tail's.
func (s *session) txSend(tail []byte, n int) ([][]byte, []byte) {
	t := &s.tx
	raw := t.raw[max(t.sent, 0):]
	skip, want := 0, len(t.waiting)+n
	var out []byte
	if t.sent < 0 {
		// new on this shard: MULTI and every command queued so far, the
		// replies of those answered before dropped (an error among them
		// leaves the shard's transaction to abort at EXEC, as it should)
		out = append(append(out, cmdMulti...), raw...)
		skip = 1 + t.nraw - len(t.waiting)
	} else {
		out = append(out, raw...)
	}
	out = append(out, tail...)
	replies, err := t.conn.RoundTrip(out, skip+want, nil)
	if err != nil {
		t.conn.NetConn.Close()
		t.conn = nil
		return nil, wire.AppendError(nil, t.pool.DownMessage(err))
	}
	if t.sent < 0 && replies[0][0] == '-' {
		// MULTI refused (MULTI runs while a script is busy or the shard
		// loads, so hardly ever): the connection is in no transaction,
		// and is closed so that nothing more runs on it.
		t.conn.NetConn.Close()
		t.conn = nil
		return nil, replies[0]
	}
	t.sent = len(t.raw)
	return replies[skip:], nil
}

// txAbandon ends the transaction's side on its shard without EXEC: the
// commands queued since the last flush get their replies first.
func (s *session) txAbandon(r *route) {
	s.txFlush(r)
	s.txDiscard()
}

// txDiscard ends the transaction's MULTI on its shard; the connection goes
// back to its pool (DISCARD also ends a WATCH on it).
func (s *session) txDiscard() {
	t := &s.tx
	d := t.conn
	t.conn = nil
	if d == nil {
		return
	}
	if t.sent < 0 { // MULTI never sent
		if t.watched {
			s.watchConn = d // still the session's WATCH
			return
		}
		t.pool.Put(d)
		return
	}
	if _, err := d.RoundTrip(cmdDiscard, 1, nil); err != nil {
		d.NetConn.Close()
		return
	}
	t.pool.Put(d)
}

// keylessInTx are the keyless commands that mean the same on whichever shard
// runs the transaction.
var keylessInTx = map[string]bool{
	"ping": true, "echo": true, "time": true, "lolwut": true, "unwatch": true,
	"eval": true, "evalsha": true, "eval_ro": true, "evalsha_ro": true, "fcall": true, "fcall_ro": true,
}

func unsupportedInTx(info *command.Info) string {
	return "ERR command '" + info.Name() + "' is not supported inside a transaction by the proxy"
}

func multi(s *session, _ *route, _ *command.Info, _ wire.Request) {
	if s.tx.active {
		s.errorReply("ERR MULTI calls can not be nested")
		return
	}
	s.shown.mu.Lock()
	s.tx = txState{active: true, raw: s.tx.raw[:0], stats: s.tx.stats[:0], mon: s.tx.mon[:0]}
	s.shown.mu.Unlock()
	s.local(wire.AppendStatus(nil, "OK"))
}

var (
	cmdMulti   = resp.AppendCommand(nil, []byte("MULTI"))
	cmdExec    = resp.AppendCommand(nil, []byte("EXEC"))
	cmdUnwatch = resp.AppendCommand(nil, []byte("UNWATCH"))
	cmdDiscard = resp.AppendCommand(nil, []byte("DISCARD"))
)

func exec(s *session, r *route, info *command.Info, c wire.Request) {
	if !s.tx.active {
		s.errorReply("ERR EXEC without MULTI")
		return
	}
	// EXEC's own MONITOR line comes after the lines of the commands it ran.
	var execLine []byte
	if s.srv.monitors.n.Load() != 0 {
		execLine = s.monitorLine(nil, info, c.Args)
	}
	if s.tx.dirty {
		s.mon.lines = append(s.mon.lines, execLine...)
		s.txAbandon(r)
		s.endTransaction()
		s.errorReply("EXECABORT Transaction discarded because of previous errors.")
		s.step.next = func(r *route) []byte { s.dropWatch(r); return nil }
		return
	}
	s.step.next = func(r *route) []byte {
		ran := false
		queued := s.tx.mon // intact until this step returns, as stats below
		defer func() {
			if ran {
				restamp(queued, time.Now())
				s.mon.lines = append(s.mon.lines, queued...)
			}
			s.mon.lines = append(s.mon.lines, execLine...)
			s.flushMonitored()
		}()
		if s.tx.dirty {
			// a command the shard could not be reached for (txFlush)
			s.txDiscard()
			s.endTransaction()
			s.dropWatch(r)
			return wire.AppendError(nil, "EXECABORT Transaction discarded because of previous errors.")
		}
		errReply := s.txReady(r)
		if s.tx.watchMoved {
			// The watched keys moved to other shards: as if they had been
			// changed, EXEC aborts (a null reply; clients retry).
			s.txDiscard()
			s.endTransaction()
			s.dropWatch(r)
			return []byte("*-1\r\n")
		}
		var replies [][]byte
		if errReply == nil {
			replies, errReply = s.txSend(cmdExec, 1)
		}
		stats := s.tx.stats // intact: nothing queues until this step returns
		apart, pubRaw, onExec, every, shard := s.tx.apart, s.tx.pubRaw, s.tx.onExec, s.tx.every, s.tx.shard
		if errReply != nil {
			s.endTransaction()
			s.dropWatch(r)
			return errReply
		}
		s.tx.pool.Put(s.tx.conn) // EXEC leaves it unwatched and out of MULTI
		s.tx.conn = nil
		s.endTransaction()
		reply := replies[len(replies)-1]
		if len(every) > 0 {
			reply = s.everyShardAfter(r, shard, reply, every)
		}
		if len(apart) > 0 {
			reply = s.afterExec(r, reply, apart, pubRaw)
		}
		if !bytes.HasPrefix(reply, []byte("*-1\r\n")) && !wire.IsError(reply) {
			for _, fn := range onExec {
				fn()
			}
		}
		ran = s.srv.stats.execRan(stats, reply, s.srv.log)
		return reply
	}
	if slices.ContainsFunc(s.tx.every, func(e everyShardCmd) bool { return e.flush }) {
		s.step.afterArrived = true // see order.go
	}
}

// everyShardAfter runs a transaction's commands of every shard on every
// shard but the transaction's, once the transaction's shard has run them in
// its EXEC, and puts the first error a shard answered for one of them in
// EXEC's reply, where the command stands. The other shards run them right
// after the transaction, not inside it: what a client reads of those
// shards meanwhile is what it could read before the transaction ran. A
// transaction that did not run (WATCH, an error) runs nothing more.
func (s *session) everyShardAfter(r *route, txShard int, reply []byte, every []everyShardCmd) []byte {
	elems, ok := wire.ArrayElems(reply, nil)
	if !ok || reply[0] != '*' || bytes.HasPrefix(reply, []byte("*-1\r\n")) {
		return reply
	}
	var raw []byte
	for _, e := range every {
		raw = append(raw, e.raw...)
	}
	others := make([][][]byte, len(r.pools))
	var wg sync.WaitGroup
	for i, p := range r.pools {
		if i != txShard {
			wg.Go(func() { others[i] = p.DedicatedPool(s.proto).DoAllBy(raw, len(every), time.Time{}) })
		}
	}
	wg.Wait()
	for k, e := range every {
		if e.at >= len(elems) {
			continue
		}
		for _, rs := range others {
			if !wire.IsError(elems[e.at]) && rs != nil && wire.IsError(rs[k]) {
				elems[e.at] = rs[k]
			}
		}
		if e.done != nil && bytes.Equal(elems[e.at], okReply) {
			e.done()
		}
	}
	out := resp.AppendArrayHeader(nil, len(elems))
	for _, el := range elems {
		out = append(out, el...)
	}
	return out
}

// everyShardRefusal is why a command of every shard is refused as it is
// outside a transaction, or "".
func (s *session) everyShardRefusal(info *command.Info, cmd wire.Request) string {
	switch info.Name() {
	case "config|set":
		return configSetRefusal(cmd.Args)
	case "flushall", "flushdb":
		return s.srv.refusal(info.Name())
	}
	return ""
}

// afterExec puts the replies of the commands a transaction queued apart in
// EXEC's reply, where they were queued: an error Redis Cluster answers
// there (clusterRefusal), and PUBLISH's count.
//
// PUBLISH runs once EXEC has run the rest, on the pub/sub home shard, where
// every subscriber listens. Redis Cluster runs it in any node's transaction
// and spreads the message; a shard of the proxy's that is not home would
// reach none of the proxy's subscribers. The messages go out right after
// the transaction instead of inside it: a subscriber still finds every
// write of the transaction done. A transaction that did not run (WATCH, an
// error) publishes nothing.
func (s *session) afterExec(r *route, reply []byte, apart []apartCmd, pubRaw []byte) []byte {
	elems, ok := wire.ArrayElems(reply, nil)
	if !ok || reply[0] != '*' || bytes.HasPrefix(reply, []byte("*-1\r\n")) {
		return reply // a null (aborted), or not an array
	}
	var counts [][]byte
	npub := 0
	for _, a := range apart {
		if a.reply == nil {
			npub++
		}
	}
	if npub > 0 {
		counts = s.publishAfter(r, pubRaw, npub)
	}
	n := len(elems) + len(apart)
	out := resp.AppendArrayHeader(nil, n)
	for i, j, k := 0, 0, 0; i < n; i++ {
		switch {
		case k < len(apart) && apart[k].at == i && apart[k].reply != nil:
			out = append(out, apart[k].reply...)
			k++
		case k < len(apart) && apart[k].at == i:
			out = append(out, counts[0]...)
			counts = counts[1:]
			k++
		default:
			out = append(out, elems[j]...)
			j++
		}
	}
	return out
}

// publishAfter runs a transaction's n PUBLISHes on the pub/sub home shard
// and returns their replies.
func (s *session) publishAfter(r *route, raw []byte, n int) [][]byte {
	return r.pools[0].DedicatedPool(s.proto).DoAllBy(raw, n, time.Time{})
}

func discard(s *session, r *route, _ *command.Info, _ wire.Request) {
	if !s.tx.active {
		s.errorReply("ERR DISCARD without MULTI")
		return
	}
	s.txAbandon(r)
	s.endTransaction()
	s.local(wire.AppendStatus(nil, "OK"))
	s.step.next = func(r *route) []byte { s.dropWatch(r); return nil }
}

func (s *session) endTransaction() {
	s.shown.mu.Lock()
	s.tx = txState{raw: s.tx.raw[:0], stats: s.tx.stats[:0], mon: s.tx.mon[:0]}
	s.shown.mu.Unlock()
	if s.watchConn == nil {
		s.txSlot = noSlot
	}
}

func watch(s *session, r *route, info *command.Info, c wire.Request) {
	slot, _, errMsg := s.slotOf(info, c.Args)
	if errMsg == "" && s.txSlot != noSlot && int(slot) != s.txSlot {
		errMsg = crossSlot
	}
	if errMsg != "" {
		s.reject(info, errMsg)
		return
	}
	s.txSlot = int(slot)
	s.step.next = func(r *route) []byte {
		shard := r.table.ShardOfSlot(slot)
		d, err := s.borrowWatch(r, shard)
		if err != nil {
			return wire.AppendError(nil, r.pools[shard].DedicatedPool(s.proto).DownMessage(err))
		}
		replies, err := d.RoundTrip(c.Raw, 1, nil)
		if err != nil {
			d.NetConn.Close()
			s.watchConn = nil
			return wire.AppendError(nil, r.pools[shard].DedicatedPool(s.proto).DownMessage(err))
		}
		s.watchConn, s.watchPool, s.watchEpoch = d, r.pools[shard].DedicatedPool(s.proto), r.table.Epoch()
		return replies[0]
	}
}

func unwatch(s *session, _ *route, _ *command.Info, _ wire.Request) {
	s.local(wire.AppendStatus(nil, "OK"))
	s.step.next = func(r *route) []byte { s.dropWatch(r); return nil }
}

// errWatchMoved: the routing table changed since WATCH, so the watched keys
// now live on other shards and the WATCH cannot be honoured.
var errWatchMoved = errors.New("watched keys moved")

// borrowWatch returns the connection holding this session's WATCH, or a
// fresh one of shard.
func (s *session) borrowWatch(r *route, shard int) (*backend.Dedicated, error) {
	if d := s.watchConn; d != nil {
		s.watchConn = nil
		if s.watchEpoch == r.table.Epoch() {
			return d, nil // WATCH fixed the slot, so this is the slot's shard
		}
		d.NetConn.Close()
		return nil, errWatchMoved
	}
	return r.pools[shard].DedicatedPool(s.proto).Get()
}

// switchWatch moves the connection that holds a WATCH to the protocol the
// session switches to (HELLO), as WATCH outlives HELLO in Redis: EXEC then
// answers in the new protocol, and the connection goes back to that
// protocol's pool. If the switch fails, the connection is closed, and EXEC
// on it answers the shard's error.
func (s *session) switchWatch(r *route, proto int) {
	d := s.watchConn
	if d == nil || proto == s.proto || s.watchEpoch != r.table.Epoch() {
		return // none, the same protocol, or moved (EXEC aborts)
	}
	hello := resp.AppendCommand(nil, []byte("HELLO"), []byte(strconv.Itoa(proto)))
	if _, err := d.RoundTrip(hello, 1, nil); err != nil {
		d.NetConn.Close()
	}
	s.watchPool = r.pools[s.txShard(r)].DedicatedPool(proto)
}

// dropWatch ends a WATCH: UNWATCH on its connection, which goes back to its
// pool.
func (s *session) dropWatch(_ *route) {
	d := s.watchConn
	s.watchConn = nil
	s.txSlot = noSlot
	if d == nil {
		return
	}
	if _, err := d.RoundTrip(cmdUnwatch, 1, nil); err != nil {
		d.NetConn.Close()
		return
	}
	s.watchPool.Put(d)
}

func (s *session) txShard(r *route) int {
	if s.txSlot != noSlot {
		return r.table.ShardOfSlot(uint16(s.txSlot))
	}
	return 0
}
