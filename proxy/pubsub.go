package proxy

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/reshard/reshard/proxy/command"
	"github.com/reshard/reshard/router"

	"github.com/reshard/reshard/internal/resp"
	"github.com/reshard/reshard/proxy/internal/wire"
)

// Pub/sub with the semantics of one Redis: every classic subscription
// (SUBSCRIBE, PSUBSCRIBE) and every PUBLISH goes to one *home* shard, the
// first of the table, so a message published through the proxy reaches every
// subscriber of the proxy. Shard channels (SSUBSCRIBE, SPUBLISH) go to the
// shard of the channel's slot, as in Redis Cluster.
//
// A client that subscribes leaves the request/response loop: the session
// hands the connection to a loop of its own (writes then take a lock). Each
// subscription connection (home, and one per shard for shard channels) has a
// pump goroutine that forwards its replies and messages to the client.
// Whether the client is still in subscribed mode is what the shards say: when
// a command other than the (un)subscriptions arrives, the loop sends a marked
// PING down every subscription connection and waits for the pumps to see it
// come back, so every (un)subscribe confirmation before it has been counted.
// With no subscription left, the connections are closed and the client goes
// back to the request/response loop (handBack).
//
// Keyspace notifications are the exception to one home: each shard
// publishes those of its own keys. So a channel of __keyspace@ or
// __keyevent@, or a pattern that can match one (__key*__:*, *), is also
// subscribed on every other shard, over a *mirror* connection per shard
// (mirror). Home still holds every subscription, and only its
// confirmations reach the client, so counts and confirmations are one
// Redis's; a mirror's are swallowed. No message comes twice: a message is
// published on one shard only (PUBLISH on home, a notification on the
// key's shard), and each shard has one connection of the client's for it.
// A mirror is subscribed, and has confirmed, before home is sent the
// command, so the client's confirmation comes after every shard listens;
// an unsubscription leaves the mirrors before home, so none sends a message
// after the client's confirmation.

var (
	// syncToken marks the proxy's own PINGs on subscription connections.
	syncToken = func() string {
		b := make([]byte, 8)
		rand.Read(b)
		return "__reshard_sync_" + hex.EncodeToString(b)
	}()
	syncPing     = resp.AppendCommand(nil, []byte("PING"), []byte(syncToken))
	syncPongSub  = resp.AppendBulkString(resp.AppendBulkString(resp.AppendArrayHeader(nil, 2), "pong"), syncToken)
	syncPongBulk = resp.AppendBulkString(nil, syncToken)
)

// home sends a command to the pub/sub home shard.
func home(s *session, _ *route, _ *command.Info, c wire.Request) { s.forward(0, c.Raw) }

// shardChannel routes SPUBLISH by its channel's slot.
func shardChannel(s *session, r *route, info *command.Info, c wire.Request) {
	chans, err := info.RoutingKeys(c.Args, s.keys[:0])
	if err != nil || len(chans) == 0 {
		s.errorReply("ERR syntax error")
		return
	}
	s.keys = chans
	slot := router.Slot(c.Args[chans[0]])
	s.forward(r.table.ShardOfSlot(slot), c.Raw)
}

// notSubscribed answers (P|S)UNSUBSCRIBE outside subscribed mode. In a
// pub/sub loop that holds subscriptions, the loop sends it on (sub.detachWith).
func notSubscribed(s *session, _ *route, info *command.Info, c wire.Request) {
	if info.Name() == "sunsubscribe" { // shard channels share a slot, as for SSUBSCRIBE
		if msg := shardChannelsSlot(s, info, c); msg != "" {
			s.errorReply(msg)
			return
		}
	}
	if s.sub.loop != nil && s.sub.loop.subscribed {
		s.sub.detachWith = c
		return
	}
	s.local(notSubscribedReply(info, c, s.proto))
	s.replyAlways = true // a confirmation: CLIENT REPLY OFF or SKIP does not silence it
}

// notSubscribedReply is Redis's reply to (P|S)UNSUBSCRIBE from channels the
// client is not subscribed to: one confirmation per channel (or one with a
// null channel), count 0, pushed in RESP3.
func notSubscribedReply(info *command.Info, c wire.Request, proto int) []byte {
	kind := info.Name()
	header := resp.AppendArrayHeader(nil, 3)
	if proto == 3 {
		header = []byte(">3\r\n")
	}
	var b []byte
	if len(c.Args) == 1 {
		b = append(b, header...)
		b = resp.AppendBulkString(b, kind)
		b = wire.AppendNullIn(b, proto)
		b = wire.AppendInt(b, 0)
	}
	for _, ch := range c.Args[1:] {
		b = append(b, header...)
		b = resp.AppendBulkString(b, kind)
		b = resp.AppendBulk(b, ch)
		b = wire.AppendInt(b, 0)
	}
	return b
}

// subscribe enters subscribed mode: the connection goes to a pub/sub loop
// once what is planned so far has been answered.
func subscribe(s *session, r *route, info *command.Info, c wire.Request) {
	if info.Name() == "ssubscribe" {
		if msg := shardChannelsSlot(s, info, c); msg != "" {
			s.errorReply(msg)
			return
		}
	}
	s.sub.detachWith = c
}

// shardChannelsSlot checks that shard channels share one slot.
func shardChannelsSlot(s *session, info *command.Info, c wire.Request) string {
	chans, err := info.RoutingKeys(c.Args, s.keys[:0])
	if err != nil {
		return err.Error()
	}
	s.keys = chans
	if len(chans) == 0 {
		return ""
	}
	slot := router.Slot(c.Args[chans[0]])
	for _, i := range chans[1:] {
		if router.Slot(c.Args[i]) != slot {
			return crossSlot
		}
	}
	return ""
}

// sumPairs merges PUBSUB SHARDNUMSUB replies ([channel, count, ...] per
// shard) by adding the counts of each channel.
func sumPairs(s *session, c *call, out []byte) []byte {
	rs := s.results(c)
	if e := firstError(rs); e != nil {
		return append(out, e...)
	}
	var names [][]byte
	var sums []int64
	for _, r := range rs {
		elems, ok := wire.ArrayElems(r, nil)
		if !ok || len(elems)%2 != 0 {
			return wire.AppendError(out, "ERR unexpected reply from shard")
		}
		for i := 0; i < len(elems); i += 2 {
			n, _ := wire.IntReply(elems[i+1])
			j := i / 2
			if j == len(names) {
				names = append(names, elems[i])
				sums = append(sums, 0)
			}
			sums[j] += n
		}
	}
	out = resp.AppendArrayHeader(out, 2*len(names))
	for i := range names {
		out = append(out, names[i]...)
		out = wire.AppendInt(out, sums[i])
	}
	return out
}

// subConn is one subscription connection and its pump.
type subConn struct {
	d       *dconn
	addr    string
	mirror  bool          // a mirror (keyspace notifications): its confirmations are not the client's
	count   atomic.Int64  // subscriptions the shard last reported on it
	closing atomic.Bool   // the session closes it: not a shard failure
	synced  chan struct{} // a sync PING came back, or the reply to a HELLO
	done    chan struct{} // the pump stopped

	// hello, while the loop switches the connection's protocol, is what
	// the pump waits on once it has swallowed HELLO's reply, so that no
	// message in the new protocol reaches the client before the client's
	// own reply to HELLO
	hello atomic.Pointer[chan struct{}]

	// What the shard confirmed, kept so a table swap can subscribe again
	// on the new shards; and confirmations of such a resubscription, which
	// the client must not see.
	mu      sync.Mutex
	names   map[string]map[string]bool // "subscribe"|"psubscribe"|"ssubscribe" -> names
	kinds   *[3]atomic.Int64           // the session's count of names by kind (subKind)
	swallow int
	moved   chan struct{} // closed when the last swallowed confirmation came
}

// pubsubLoop owns a detached client connection while it is subscribed.
type pubsubLoop struct {
	s     *session
	out   *clientConn      // shared with the pumps
	mu    sync.Mutex       // held while the loop uses its subscription connections or moves to a new table
	conns map[int]*subConn // key: homeConn for classic channels, mirrorKey(shard), else shard index

	// unsynced: a command went down a subscription connection since the
	// last sync, so what the shards report may not count it yet; or the
	// client ran a command that may publish to itself
	unsynced bool
	// last is the key of the connection a command last went down, or
	// manyConns: a command for another one waits for its replies first,
	// so confirmations keep the order of the commands
	last int
	// subscribed: the loop had a subscription connection when the command
	// being served began (the session reads it, on the loop's goroutine)
	subscribed bool
}

const (
	homeConn  = -1
	manyConns = -2
)

// mirrorKey is the key of shard's mirror connection in pubsubLoop.conns.
func mirrorKey(shard int) int { return -3 - shard }

func isMirrorKey(key int) bool { return key <= mirrorKey(0) }

// shardOfKey is the shard a connection key of pubsubLoop.conns is on.
func shardOfKey(key int) int {
	switch {
	case key == homeConn:
		return 0
	case isMirrorKey(key):
		return mirrorKey(0) - key
	}
	return key
}

// run forwards the SUBSCRIBE that started the loop, then serves the client's
// commands one at a time, until the client goes or, with no subscription
// left, the connection goes back to the serving loop with what it sent.
func (p *pubsubLoop) run(first wire.Request, queue []wire.Request) {
	s := p.s
	defer s.srv.contain(s, p.end)
	ok := p.forwardLocked(first)
	for ok && !s.quit && p.out.Flush() == nil {
		var cmd wire.Request
		if len(queue) > 0 {
			cmd, queue = queue[0], queue[1:]
		} else {
			var err error
			if cmd, err = p.out.ReadCommand(); err != nil {
				s.srv.answerProtocolError(p.out, err)
				break
			}
			s.srv.counters.commands.Add(1) // the queued ones were counted by serveConn
		}
		var back bool
		ok, back = p.handle(cmd)
		if back {
			p.handBack(append([]wire.Request{cmd}, queue...))
			return
		}
	}
	p.end()
}

// end closes the subscription connections, then the client's.
func (p *pubsubLoop) end() {
	s := p.s
	s.srv.subscribers.Delete(p)
	p.closeAllLocked()
	p.out.Close()
	s.srv.endSession(s)
}

func (p *pubsubLoop) closeAllLocked() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closeAll()
}

func (p *pubsubLoop) forwardLocked(cmd wire.Request) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.forward(cmd)
}

// local writes a reply the loop makes itself, after every reply the shards
// owe for earlier commands, so order is kept.
func (p *pubsubLoop) local(reply []byte) {
	p.caughtUp()
	if reply[0] == '-' {
		p.s.srv.stats.countError(reply, p.s.srv.log)
	}
	p.out.WriteRaw(reply)
}

// handle serves one command. ok is false when the client is done; back
// means the client is no longer subscribed and the command was left for the
// serving loop.
//
// The session plans every command, as for any client, so its checks, CLIENT
// REPLY, MONITOR and statistics apply alike; while the client is
// subscribed in RESP2 it refuses what Redis refuses there (sub.restricted).
// A (un)subscription the plan accepts comes back in sub.detachWith, for the
// loop to send down its subscription connection.
//
// The loop's lock is held while the loop deals with its subscription
// connections (before, after), not while the session serves the command:
// that waits for the barrier's gate, and SwapTable, which holds the
// barrier, moves the loop to the new shards under this lock (moveTo).
func (p *pubsubLoop) handle(cmd wire.Request) (ok, back bool) {
	s := p.s
	info := command.Lookup(cmd.Args)
	if !p.before(info) {
		return true, true
	}
	proto := s.proto
	s.serve(cmd, nil)
	s.sub.restricted = false
	return p.after(info, proto), false
}

// before readies the loop for a command: the replies the shards owe for
// earlier ones are out first, and the connection goes back to the serving
// loop (false) if the command finds the client no longer subscribed.
func (p *pubsubLoop) before(info *command.Info) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch name := nameOf(info); name {
	case "subscribe", "psubscribe", "ssubscribe", "unsubscribe", "punsubscribe", "sunsubscribe":
		// the shard answers in order after what the loop sent before
	case "reset":
		// the confirmations owed go out before +RESET
		p.settle()
		p.closeAll()
	default:
		if !p.settle() {
			return false
		}
		p.s.sub.restricted = p.s.proto == 2
	}
	p.subscribed = len(p.conns) > 0
	return true
}

// after writes the reply of a command the session served and sends on the
// (un)subscription it planned, if any; false ends the client.
func (p *pubsubLoop) after(info *command.Info, proto int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.s
	if mayPublish(info) {
		// A message to the client itself goes before the command's reply,
		// as Redis writes it while the command runs.
		p.unsynced = true
	}
	if s.proto != proto {
		defer close(p.switchProto(s.proto)) // once HELLO's reply is out
	}
	if len(s.sub.held) > 0 {
		p.caughtUp()
		p.out.WriteRaw(s.sub.held)
		s.sub.held = s.sub.held[:0]
	}
	if s.sub.detachWith.Raw == nil {
		return true
	}
	c := s.sub.detachWith
	s.sub.detachWith, s.sub.detachRest = wire.Request{}, nil
	return p.forward(c)
}

// mayPublish reports whether info can publish a message (a RESP3
// subscriber may publish to itself). Keyspace notifications are not
// counted: any write could send one.
func mayPublish(info *command.Info) bool {
	switch nameOf(info) {
	case "publish", "spublish", "exec", "eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro":
		return true
	}
	return false
}

// switchProto moves the subscription connections to the protocol the
// client switched to with HELLO, so that confirmations and messages come in
// it, as in Redis. What the shards sent before is forwarded first; the
// pumps then hold what comes in the new protocol until the caller, having
// written HELLO's reply, closes the returned channel.
func (p *pubsubLoop) switchProto(proto int) chan struct{} {
	p.caughtUp()
	release := make(chan struct{})
	hello := resp.AppendCommand(nil, []byte("HELLO"), []byte(strconv.Itoa(proto)))
	for _, sc := range p.conns {
		sc.hello.Store(&release)
		if _, err := sc.d.nc.Write(hello); err != nil {
			continue // the pump ends and closes the client
		}
		select {
		case <-sc.synced:
		case <-sc.done:
		case <-time.After(5 * time.Second):
			p.s.srv.log.Warn("pub/sub HELLO", zap.Error(errSyncTimeout))
		}
	}
	return release
}

// allowedSubscribed reports whether Redis runs info for a client subscribed
// in RESP2.
func allowedSubscribed(info *command.Info) bool {
	switch info.Name() {
	case "subscribe", "psubscribe", "ssubscribe", "unsubscribe", "punsubscribe", "sunsubscribe",
		"ping", "quit", "reset":
		return true
	}
	return false
}

func nameOf(info *command.Info) string {
	if info == nil {
		return ""
	}
	return info.Name()
}

// forward sends a (un)subscription the session planned down the
// subscription connection it belongs to.
func (p *pubsubLoop) forward(cmd wire.Request) bool {
	info := command.Lookup(cmd.Args)
	switch info.Name() {
	case "ssubscribe", "sunsubscribe":
		return p.shardChannels(info, cmd)
	case "unsubscribe", "punsubscribe":
		if p.conns[homeConn] == nil {
			p.local(notSubscribedReply(info, cmd, p.s.proto))
			return true
		}
	}
	if !p.mirror(info.Name(), cmd.Args[1:]) {
		return false
	}
	return p.send(homeConn, cmd.Raw)
}

// mirror sends the part of a classic (un)subscription that concerns
// keyspace notifications to the mirror connection of every shard but home
// (opening them as needed), and waits until each has answered it.
func (p *pubsubLoop) mirror(kind string, names [][]byte) bool {
	unsub := strings.Contains(kind, "unsub")
	args := [][]byte{[]byte(kind)}
	for _, nm := range names {
		if mayCarryKeyspace(kind, nm) {
			args = append(args, nm)
		}
	}
	if len(args) == 1 && (len(names) > 0 || !unsub) {
		return true
	}
	raw := resp.AppendCommand(nil, args...)
	r := p.s.srv.route.Load()
	var sent []*subConn
	for shard := 1; shard < len(r.pools); shard++ {
		key := mirrorKey(shard)
		sc := p.conns[key]
		if sc == nil {
			if unsub {
				continue
			}
			var err error
			if sc, err = p.open(r, key); err != nil {
				// Home still confirms: a reply of the proxy's own would
				// be one the client does not expect. That shard's
				// notifications do not come, as while it is down.
				p.s.srv.log.Warn("pub/sub: keyspace notifications of a shard not subscribed",
					zap.Uint64("client", p.s.id), zap.String("shard", r.pools[shard].addr), zap.Error(err))
				continue
			}
			p.conns[key] = sc
		}
		if _, err := sc.d.nc.Write(raw); err != nil {
			return false
		}
		sent = append(sent, sc)
	}
	syncConns(p.s.srv, sent)
	return true
}

// mayCarryKeyspace reports whether a classic subscription of kind to name
// may receive keyspace notifications: a channel of __keyspace@ or
// __keyevent@, or a pattern that can match one.
func mayCarryKeyspace(kind string, name []byte) bool {
	for _, prefix := range [][]byte{keyspacePrefix, keyeventPrefix} {
		if kind[0] == 'p' { // psubscribe, punsubscribe
			if globMayMatchPrefix(name, prefix) {
				return true
			}
		} else if bytes.HasPrefix(name, prefix) {
			return true
		}
	}
	return false
}

var (
	keyspacePrefix = []byte("__keyspace@")
	keyeventPrefix = []byte("__keyevent@")
)

// globMayMatchPrefix reports whether a Redis glob pattern can match some
// string that starts with prefix. In doubt (an unterminated class) it says
// yes: a mirror subscription too many costs a connection, one too few
// loses notifications.
func globMayMatchPrefix(pat, prefix []byte) bool {
	for _, c := range prefix {
		if len(pat) == 0 {
			return false
		}
		switch pat[0] {
		case '*':
			return true
		case '?':
			pat = pat[1:]
		case '[':
			rest, ok, closed := globClass(pat[1:], c)
			if !closed {
				return true
			}
			if !ok {
				return false
			}
			pat = rest
		default:
			if pat[0] == '\\' && len(pat) > 1 {
				pat = pat[1:]
			}
			if pat[0] != c {
				return false
			}
			pat = pat[1:]
		}
	}
	return true
}

// globClass matches c against a class whose '[' is gone, as Redis's
// stringmatchlen does ('^' negates, a-z ranges either way round, '\'
// escapes), and returns the pattern after its ']'; closed is false when no
// ']' ends it.
func globClass(pat []byte, c byte) (rest []byte, ok, closed bool) {
	not := len(pat) > 0 && pat[0] == '^'
	if not {
		pat = pat[1:]
	}
	match := false
	for len(pat) > 0 && pat[0] != ']' {
		switch {
		case pat[0] == '\\' && len(pat) >= 2:
			match = match || pat[1] == c
			pat = pat[2:]
		case len(pat) >= 3 && pat[1] == '-' && pat[2] != ']':
			lo, hi := min(pat[0], pat[2]), max(pat[0], pat[2])
			match = match || lo <= c && c <= hi
			pat = pat[3:]
		default:
			match = match || pat[0] == c
			pat = pat[1:]
		}
	}
	if len(pat) == 0 {
		return nil, false, false
	}
	return pat[1:], match != not, true
}

// shardChannels sends SSUBSCRIBE/SUNSUBSCRIBE to the shard of their slot;
// SUNSUBSCRIBE without channels goes to every shard subscribed to.
func (p *pubsubLoop) shardChannels(info *command.Info, cmd wire.Request) bool {
	s := p.s
	if msg := shardChannelsSlot(s, info, cmd); msg != "" {
		p.local(wire.AppendError(nil, msg)) // the plan has checked it (subscribe, notSubscribed): not reached
		return true
	}
	if len(s.keys) == 0 { // SUNSUBSCRIBE from all
		p.caughtUp()
		p.last = manyConns
		sent := false
		for k, sc := range p.conns {
			if k >= 0 {
				if _, err := sc.d.nc.Write(cmd.Raw); err != nil {
					return false
				}
				sent, p.unsynced = true, true
			}
		}
		if !sent {
			p.local(notSubscribedReply(info, cmd, s.proto))
		}
		return true
	}
	r := s.srv.route.Load()
	shard := r.table.ShardOf(cmd.Args[s.keys[0]])
	if info.Name() == "sunsubscribe" && p.conns[shard] == nil {
		p.local(notSubscribedReply(info, cmd, s.proto))
		return true
	}
	return p.send(shard, cmd.Raw)
}

// send writes a subscription command on connection key, opening it first.
func (p *pubsubLoop) send(key int, raw []byte) bool {
	sc := p.conns[key]
	if sc == nil {
		var err error
		if sc, err = p.open(p.s.srv.route.Load(), key); err != nil {
			p.local(wire.AppendError(nil, err.Error()))
			return true
		}
		p.conns[key] = sc
	}
	if key != p.last {
		p.caughtUp()
		p.last = key
	}
	if _, err := sc.d.nc.Write(raw); err != nil {
		return false
	}
	p.unsynced = true
	return true
}

// open starts a subscription connection for key on route r, and its pump.
func (p *pubsubLoop) open(r *route, key int) (*subConn, error) {
	pl := r.pools[shardOfKey(key)].dedicated(p.s.proto)
	d, err := pl.get()
	if err != nil {
		return nil, errors.New(pl.downMessage(err))
	}
	sc := &subConn{d: d, addr: pl.addr, mirror: isMirrorKey(key), synced: make(chan struct{}, 1), done: make(chan struct{}),
		names: map[string]map[string]bool{"subscribe": {}, "psubscribe": {}, "ssubscribe": {}},
		kinds: &p.s.sub.kinds}
	go p.pump(sc)
	return sc, nil
}

// pump forwards what a subscription connection receives to the client.
func (p *pubsubLoop) pump(sc *subConn) {
	defer close(sc.done)
	defer p.s.srv.contain(p.s, func() {}) // the loop's read fails and ends the client
	r := sc.d.r
	for {
		reply, err := wire.ReadReply(r, nil)
		if err != nil {
			if !sc.closing.Load() {
				// A shard that dies takes the client's subscriptions with
				// it: close the client, as a Redis that went away would.
				p.s.srv.log.Warn("subscription connection lost, closing client", zap.Error(err))
				p.out.nc.Close()
			}
			return
		}
		if h := p.s.srv.cfg.testHook; h != nil {
			h("pump", [][]byte{reply})
		}
		if wait := sc.hello.Load(); wait != nil && !isMessage(reply) {
			// the reply to the loop's HELLO
			sc.hello.Store(nil)
			p.out.Flush()
			sc.synced <- struct{}{}
			<-*wait
			continue
		}
		if bytes.Equal(reply, syncPongSub) || bytes.Equal(reply, syncPongBulk) {
			if r.Buffered() == 0 {
				p.out.Flush()
			}
			sc.synced <- struct{}{}
			continue
		}
		if kind, name, n, ok := confirmation(reply); ok {
			sc.count.Store(n)
			if sc.noted(kind, name) {
				continue // a resubscription after a table swap
			}
		}
		p.out.WriteRaw(reply)
		if r.Buffered() == 0 {
			p.out.Flush()
		}
	}
}

// isMessage reports whether a subscription connection's reply is a push:
// a message or a confirmation, in RESP3 or RESP2.
func isMessage(reply []byte) bool {
	if reply[0] == '>' {
		return true
	}
	elems, ok := wire.ArrayElems(reply, nil)
	if !ok || len(elems) < 3 {
		return false
	}
	k, _ := wire.BulkText(elems[0])
	return bytes.HasSuffix(k, []byte("message")) || bytes.HasSuffix(k, []byte("subscribe"))
}

// noted records a confirmation and reports whether it is one to swallow.
func (sc *subConn) noted(kind, name string) (swallow bool) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	counted := !sc.mirror // home counts what the mirrors hold
	switch kind {
	case "subscribe", "psubscribe", "ssubscribe":
		if !sc.names[kind][name] {
			sc.names[kind][name] = true
			if counted {
				sc.kinds[subKind(kind)].Add(1)
			}
		}
		if sc.swallow > 0 {
			sc.swallow--
			if sc.swallow == 0 {
				close(sc.moved)
			}
			return true
		}
	case "unsubscribe", "punsubscribe", "sunsubscribe":
		sub := strings.Replace(kind, "un", "", 1) // the kind it ends
		if sc.names[sub][name] {
			delete(sc.names[sub], name)
			if counted {
				sc.kinds[subKind(sub)].Add(-1)
			}
		}
	}
	return sc.mirror
}

// The kinds of subscription, as CLIENT LIST counts them.
const (
	subChannel = iota // SUBSCRIBE: sub
	subPattern        // PSUBSCRIBE: psub
	subShard          // SSUBSCRIBE: ssub
)

func subKind(kind string) int {
	switch kind {
	case "psubscribe":
		return subPattern
	case "ssubscribe":
		return subShard
	}
	return subChannel
}

// forgetAll ends the count of what a closed connection was subscribed to.
func (sc *subConn) forgetAll() {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for kind, names := range sc.names {
		if !sc.mirror {
			sc.kinds[subKind(kind)].Add(-int64(len(names)))
		}
		clear(names)
	}
}

// confirmation parses a (un)subscribe confirmation: kind, name, count.
func confirmation(reply []byte) (kind, name string, count int64, ok bool) {
	elems, ok := wire.ArrayElems(reply, nil)
	if !ok || len(elems) != 3 {
		return "", "", 0, false
	}
	k, ok := wire.BulkText(elems[0])
	if !ok || !bytes.HasSuffix(k, []byte("subscribe")) {
		return "", "", 0, false
	}
	nm, _ := wire.BulkText(elems[1])
	count, ok = wire.IntReply(elems[2])
	return string(k), string(nm), count, ok
}

// moveTo re-subscribes everything on the shards of a new route, then drops
// the connections the new route no longer needs. SwapTable calls it with the
// barrier held, so no message can be published between the two.
func (p *pubsubLoop) moveTo(r *route) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// The names to move are what the shards confirmed: a (un)subscription
	// sent on must be confirmed first.
	p.caughtUp()
	next := map[int]*subConn{}
	oldKey := map[*subConn]int{}
	want := map[int]map[string][]string{} // new key -> kind -> names
	add := func(nk int, kind, name string) {
		if want[nk] == nil {
			want[nk] = map[string][]string{}
		}
		want[nk][kind] = append(want[nk][kind], name)
	}
	for key, sc := range p.conns {
		oldKey[sc] = key
		if sc.mirror {
			continue // home holds the same names
		}
		sc.mu.Lock()
		for kind, names := range sc.names {
			for name := range names {
				if kind == "ssubscribe" {
					add(r.table.ShardOf([]byte(name)), kind, name)
					continue
				}
				add(homeConn, kind, name)
				if mayCarryKeyspace(kind, []byte(name)) {
					for shard := 1; shard < len(r.pools); shard++ {
						add(mirrorKey(shard), kind, name)
					}
				}
			}
		}
		sc.mu.Unlock()
	}
	for nk, kinds := range want {
		// Keep a connection of the same kind already on the right shard.
		var keep *subConn
		for sc, key := range oldKey {
			if sc.addr == r.pools[shardOfKey(nk)].addr && connKind(key) == connKind(nk) {
				keep = sc
			}
		}
		if keep != nil {
			next[nk] = keep
			continue
		}
		sc, err := p.open(r, nk)
		if err != nil {
			p.s.srv.log.Warn("pub/sub: resubscribe after table swap", zap.Error(err))
			continue
		}
		var raw []byte
		n := 0
		for kind, names := range kinds {
			args := [][]byte{[]byte(kind)}
			for _, nm := range names {
				args = append(args, []byte(nm))
			}
			raw = resp.AppendCommand(raw, args...)
			n += len(names)
		}
		sc.mu.Lock()
		sc.swallow, sc.moved = n, make(chan struct{})
		sc.mu.Unlock()
		if _, err := sc.d.nc.Write(raw); err == nil {
			select {
			case <-sc.moved:
			case <-sc.done:
			case <-time.After(2 * time.Second):
				p.s.srv.log.Warn("pub/sub: resubscribe after table swap timed out")
			}
		}
		next[nk] = sc
	}
	var drop []*subConn
	for sc := range oldKey {
		kept := false
		for _, n := range next {
			kept = kept || n == sc
		}
		if !kept {
			drop = append(drop, sc)
		}
	}
	// What the old shards sent before the barrier closed may still be on
	// its way: their pumps forward all of it before the connections close.
	syncConns(p.s.srv, drop)
	for _, sc := range drop {
		p.closeConn(sc)
	}
	p.conns = next
	p.last = manyConns // keys now name other connections
}

// connKind tells home, mirror and shard-channel connection keys apart.
func connKind(key int) int {
	switch {
	case key == homeConn:
		return 0
	case isMirrorKey(key):
		return 1
	}
	return 2
}

var errSyncTimeout = errors.New("proxy: subscription connection did not answer")

// caughtUp waits until every subscription connection has answered all that
// was sent on it.
func (p *pubsubLoop) caughtUp() {
	if p.unsynced {
		p.sync()
		p.unsynced = false
	}
}

// settle waits until every subscription connection has answered all that
// was sent on it, then reports whether any subscription is left; with none
// left it closes the connections.
func (p *pubsubLoop) settle() bool {
	p.caughtUp()
	for _, sc := range p.conns {
		if sc.count.Load() > 0 && !sc.mirror { // home holds what the mirrors hold
			return true
		}
	}
	p.closeAll()
	return false
}

// sync waits until every subscription connection has answered all that was
// sent on it before.
func (p *pubsubLoop) sync() {
	conns := make([]*subConn, 0, len(p.conns))
	for _, sc := range p.conns {
		conns = append(conns, sc)
	}
	syncConns(p.s.srv, conns)
}

// syncConns waits until each subscription connection has answered all that
// was sent on it before, and its pump has forwarded all that came before.
func syncConns(srv *Server, conns []*subConn) {
	for _, sc := range conns {
		if _, err := sc.d.nc.Write(syncPing); err != nil {
			continue
		}
		select {
		case <-sc.synced:
		case <-sc.done:
		case <-time.After(5 * time.Second):
			srv.log.Warn("pub/sub sync", zap.Error(errSyncTimeout))
		}
	}
}

// closeAll closes every subscription connection and waits for its pump.
func (p *pubsubLoop) closeAll() {
	for k, sc := range p.conns {
		p.closeConn(sc)
		delete(p.conns, k)
	}
}

// closeConn closes a subscription connection and waits for its pump; its
// subscriptions end with it.
func (p *pubsubLoop) closeConn(sc *subConn) {
	sc.closing.Store(true)
	sc.d.nc.Close()
	<-sc.done
	sc.forgetAll()
}
