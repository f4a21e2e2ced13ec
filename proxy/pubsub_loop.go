package proxy

import (
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/reshard/reshard/proxy/command"

	"github.com/reshard/reshard/internal/resp"
	"github.com/reshard/reshard/proxy/internal/wire"
)

// The pub/sub loop, which owns a subscribed client's connection.
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
// back to the request/response loop (handBack). The hand-offs themselves,
// detach and handBack, are in handoff.go.

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
		if _, err := sc.d.NetConn.Write(hello); err != nil {
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
				if _, err := sc.d.NetConn.Write(cmd.Raw); err != nil {
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
	if _, err := sc.d.NetConn.Write(raw); err != nil {
		return false
	}
	p.unsynced = true
	return true
}
