package proxy

import (
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reshard/reshard/proxy/command"
	"go.uber.org/zap"

	"github.com/reshard/reshard/internal/resp"
	"github.com/reshard/reshard/proxy/internal/backend"
	"github.com/reshard/reshard/proxy/internal/wire"
)

// CLIENT TRACKING: client-side caching through the proxy, as one Redis
// gives it. The proxy keeps the tracking itself, per client: the keys a
// client read (default mode) or the prefixes it asked for (BCAST), with
// OPTIN/OPTOUT, NOLOOP and REDIRECT. What it learns from the shards is
// which keys changed: each shard of the table has one connection of the
// proxy's in CLIENT TRACKING ON BCAST mode (a source, tracking_source.go),
// over which the shard reports every key modified, by anyone: this proxy's
// clients, other proxies, expiry and eviction. The proxy turns those into
// invalidation messages for the clients that track the keys: pushes in
// RESP3, or messages on __redis__:invalidate for a RESP2 client that
// another redirects to.
//
// The rules that keep a cache from going stale:
//   - A read's keys are tracked before the read goes to its shard, so a
//     write that follows it on the shard is reported to the client.
//   - Messages for a client wait while it has a pipeline in flight and go
//     out after that pipeline's replies: a read's reply can never come after
//     an invalidation of what it read. A key invalidated while a read of it
//     is in flight stays tracked (the read may have run after the write).
//   - While any client tracks, a pipeline that wrote is answered only once
//     its shards' reports of the writes have come (a PING through each
//     source, whose reply follows them): as in Redis, a write is
//     acknowledged after its invalidations were sent, so a client that
//     learns of a write from its writer never reads the old value from its
//     cache; and a client's own write is answered before its invalidation.
//   - Whenever the proxy may have missed a shard's report (a source lost or
//     started again, a table swap the source could not follow at once), every
//     tracking client gets the message Redis sends for FLUSHALL, which tells
//     it to drop everything it caches, and the tracked keys are forgotten.
//   - A tracking client's reads go to the primaries, whatever READONLY or
//     --read-from say: a replica may answer with a value older than an
//     invalidation already sent.
//
// Where the proxy differs from Redis: a script's declared keys are tracked
// (Redis tracks them only if the script calls a read command, which the
// proxy cannot see); a client blocked in BLPOP and the like gets its
// messages when the command returns; an invalidation for an eviction comes
// after the reply of the command that caused it, not before.
//
// Costs: nothing on the data path until a client enables tracking (an
// atomic load per command and per pipeline). While any client tracks, each
// shard sends the proxy a message per write, every write pipeline waits one
// more round trip for its shards' reports, and a tracking client's
// pipelines take the tracker's lock twice. When the last tracking client
// stops, the sources close and the waits with them.

// trackState is a session's CLIENT TRACKING state, and its side as a
// receiver of invalidation messages (its own, or another client's that
// redirects to it). The serving goroutine writes the settings holding
// tracker.mu; the tracker reads them under it.
type trackState struct {
	on, bcast             bool
	optin, optout, noloop bool
	broken                bool   // the redirect target went away (TRACKINGINFO's broken_redirect)
	redirect              uint64 // client ID messages go to; 0: this client
	prefixes              []string

	caching bool // CLIENT CACHING yes (OPTIN) or no (OPTOUT), for the next command; the serving goroutine's
	spent   bool // that command has come: caching ends with the one after it (TRACKINGINFO, run next, still shows it)
	idx     []int

	// the shards written by the pipeline in flight, or the transaction
	// being queued, whose reports it waits for; the serving goroutine's
	wrote   []*backend.Pool
	own     []string            // the reports expected of its own writes, counted in tracker.own
	txWrote map[string]struct{} // keys the transaction being queued writes
	flushed bool                // it ran FLUSHALL or FLUSHDB (tracker.flushes)

	// under tracker.mu
	keys     map[string]struct{} // keys tracked for this client (default mode)
	reading  map[string]struct{} // keys read by the pipeline in flight
	inFlight bool                // a pipeline is being served: messages wait in deferred
	deferred []byte
	w        *asyncWriter // writes messages between pipelines
	gone     bool         // the session has ended: nothing more is sent to it

	// receiver: the session tracks, or another redirects to it; its
	// pipelines then mark themselves in flight
	receiver atomic.Bool
}

type ownKey struct {
	s   *session
	key string
}

// tracker is the server's tracking table and its sources.
type tracker struct {
	srv *Server

	mu       sync.Mutex
	keys     map[string]map[*session]struct{} // default mode: key -> clients tracking it
	items    int                              // sum of the clients tracking each key
	bcast    map[*session]struct{}
	clients  map[*session]struct{} // sessions with tracking on
	own      map[ownKey]int        // the shards' reports of a client's own writes still expected (NOLOOP; a transaction reading what it wrote)
	maxKeys  int
	flushes  int // the proxy's FLUSHALLs being run: the shards' messages wait for their end
	active   atomic.Bool
	sources  atomic.Pointer[map[*backend.Pool]*source] // copied on change, under sourceMu
	sourceMu sync.Mutex                                // held while sources are started or stopped
}

// defaultTrackingMaxKeys is Redis's tracking-table-max-keys default.
const defaultTrackingMaxKeys = 1_000_000

func newTracker(srv *Server) *tracker {
	return &tracker{srv: srv, keys: map[string]map[*session]struct{}{}, bcast: map[*session]struct{}{}, clients: map[*session]struct{}{},
		own: map[ownKey]int{}, maxKeys: defaultTrackingMaxKeys}
}

// clientTracking implements CLIENT TRACKING ON|OFF [REDIRECT id] [BCAST]
// [PREFIX p ...] [OPTIN] [OPTOUT] [NOLOOP], with Redis's checks and words.
func clientTracking(s *session, r *route, _ *command.Info, c wire.Request) {
	var redirect uint64
	var bcast, optin, optout, noloop bool
	var prefixes []string
	args := c.Args
	for j := 3; j < len(args); j++ {
		more := j < len(args)-1
		switch {
		case wire.EqualFold(args[j], "redirect") && more:
			j++
			if redirect != 0 {
				s.errorReply("ERR A client can only redirect to a single other client")
				return
			}
			id, err := strconv.ParseInt(string(args[j]), 10, 64)
			if err != nil {
				s.errorReply("ERR value is not an integer or out of range")
				return
			}
			if _, ok := s.srv.sessions.Load(uint64(id)); !ok || id <= 0 {
				s.errorReply("ERR The client ID you want redirect to does not exist")
				return
			}
			redirect = uint64(id)
		case wire.EqualFold(args[j], "bcast"):
			bcast = true
		case wire.EqualFold(args[j], "optin"):
			optin = true
		case wire.EqualFold(args[j], "optout"):
			optout = true
		case wire.EqualFold(args[j], "noloop"):
			noloop = true
		case wire.EqualFold(args[j], "prefix") && more:
			j++
			prefixes = append(prefixes, string(args[j]))
		default:
			s.errorReply("ERR syntax error")
			return
		}
	}
	t := s.srv.tracker
	switch {
	case wire.EqualFold(args[2], "off"):
		t.disable(s)
		s.local(wire.AppendStatus(nil, "OK"))
		return
	case !wire.EqualFold(args[2], "on"):
		s.errorReply("ERR syntax error")
		return
	}
	ts := &s.track
	switch {
	case !bcast && len(prefixes) > 0:
		s.errorReply("ERR PREFIX option requires BCAST mode to be enabled")
	case ts.on && ts.bcast != bcast:
		s.errorReply("ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.")
	case bcast && (optin || optout):
		s.errorReply("ERR OPTIN and OPTOUT are not compatible with BCAST")
	case optin && optout:
		s.errorReply("ERR You can't specify both OPTIN mode and OPTOUT mode")
	case ts.on && (optin && ts.optout || optout && ts.optin):
		s.errorReply("ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.")
	default:
		if bcast {
			if msg := prefixCollision(ts.prefixes, prefixes); msg != "" {
				s.errorReply(msg)
				return
			}
		}
		// the sources are up before the client's first read is tracked,
		// and none is stopped meanwhile for want of clients (idle)
		t.sourceMu.Lock()
		err := t.followLocked(r)
		if err == nil {
			t.enable(s, redirect, bcast, optin, optout, noloop, prefixes)
		}
		t.sourceMu.Unlock()
		if err != nil {
			s.errorReply("ERR tracking needs every shard: " + err.Error())
			return
		}
		s.local(wire.AppendStatus(nil, "OK"))
	}
}

// prefixCollision checks BCAST prefixes as Redis does: none may be a
// prefix of another, the client's current ones included.
func prefixCollision(have, add []string) string {
	overlap := func(a, b string) bool { return strings.HasPrefix(a, b) || strings.HasPrefix(b, a) }
	for i, p := range add {
		for _, h := range have {
			if overlap(p, h) {
				return "ERR Prefix '" + p + "' overlaps with an existing prefix '" + h + "'. Prefixes for a single client must not overlap."
			}
		}
		for _, q := range add[i+1:] {
			if overlap(p, q) {
				return "ERR Prefix '" + p + "' overlaps with another provided prefix '" + q + "'. Prefixes for a single client must not overlap."
			}
		}
	}
	return ""
}

// clientCaching implements CLIENT CACHING YES|NO.
func clientCaching(s *session, _ *route, _ *command.Info, c wire.Request) {
	ts := &s.track
	yes, no := wire.EqualFold(c.Args[2], "yes"), wire.EqualFold(c.Args[2], "no")
	switch {
	case !ts.on:
		s.errorReply("ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled")
	case yes && !ts.optin:
		s.errorReply("ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.")
	case no && !ts.optout:
		s.errorReply("ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.")
	case yes || no:
		ts.caching, ts.spent = true, false
		s.local(wire.AppendStatus(nil, "OK"))
	default:
		s.errorReply("ERR syntax error")
	}
}

func clientGetRedir(s *session, _ *route, _ *command.Info, _ wire.Request) {
	id := int64(-1)
	if s.track.on {
		id = int64(s.track.redirect)
	}
	s.local(wire.AppendInt(nil, id))
}

// clientTrackingInfo implements CLIENT TRACKINGINFO in Redis's form.
func clientTrackingInfo(s *session, _ *route, _ *command.Info, _ wire.Request) {
	ts := &s.track
	s.srv.tracker.mu.Lock()
	broken := ts.broken
	s.srv.tracker.mu.Unlock()
	flags := []string{"off"}
	if ts.on {
		flags[0] = "on"
	}
	add := func(ok bool, f string) {
		if ok {
			flags = append(flags, f)
		}
	}
	add(ts.bcast, "bcast")
	add(ts.optin, "optin")
	add(ts.optin && ts.caching, "caching-yes")
	add(ts.optout, "optout")
	add(ts.optout && ts.caching, "caching-no")
	add(ts.noloop, "noloop")
	add(broken, "broken_redirect")
	b := wire.AppendMapHeader(nil, 3, s.proto)
	b = resp.AppendBulkString(b, "flags")
	if s.proto == 3 {
		b = append(b, '~')
		b = strconv.AppendInt(b, int64(len(flags)), 10)
		b = append(b, '\r', '\n')
	} else {
		b = resp.AppendArrayHeader(b, len(flags))
	}
	for _, f := range flags {
		b = resp.AppendBulkString(b, f)
	}
	b = resp.AppendBulkString(b, "redirect")
	redirect := int64(-1)
	if ts.on {
		redirect = int64(ts.redirect)
	}
	b = wire.AppendInt(b, redirect)
	b = resp.AppendBulkString(b, "prefixes")
	b = resp.AppendArrayHeader(b, len(ts.prefixes))
	for _, p := range ts.prefixes {
		b = resp.AppendBulkString(b, p)
	}
	s.local(b)
}

// trackCommand applies tracking to a command about to run, while some
// client tracks: the keys a tracking client reads are tracked (unless
// OPTIN/OPTOUT say otherwise); the shards a command writes are noted, for
// the pipeline to wait for their reports (trackingEnd), and a NOLOOP
// client's keys as its own.
func (s *session) trackCommand(r *route, info *command.Info, args [][]byte) {
	ts := &s.track
	if ts.spent {
		ts.caching, ts.spent = false, false
	}
	caching := ts.caching
	if caching && info.Name() != "client|caching" && !s.tx.active {
		ts.spent = true // for this command only, or to EXEC, as in Redis
	}
	script := isScriptCall(info)
	read := ts.on && !ts.bcast && (info.IsReadonly() || script) &&
		!(ts.optin && !caching) && !(ts.optout && caching)
	write := info.IsWrite() || script || info.MayReplicate()
	if name := info.Name(); name == "flushall" || name == "flushdb" {
		s.srv.tracker.flushStart()
		ts.flushed = true
		ts.wrote = append(ts.wrote, r.pools...)
		return
	}
	if !read && !write {
		return
	}
	idx, err := info.Keys(args, ts.idx[:0])
	ts.idx = idx
	if err != nil || len(idx) == 0 {
		return
	}
	own := write && ts.noloop
	if write {
		ts.wrote = append(ts.wrote, r.pools[r.table.ShardOf(args[idx[0]])])
	}
	txWrite := write && ts.on && s.tx.active
	if !read && !own && !txWrite {
		return
	}
	t := s.srv.tracker
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, i := range idx {
		key := string(args[i])
		if read {
			t.remember(s, key)
			if _, ok := ts.txWrote[key]; ok && s.tx.active {
				// The transaction reads what it wrote before: the
				// shard's report of that write (one per key for the
				// whole EXEC) is no news to this client, as in Redis,
				// where the key is tracked after the write.
				own = true
			}
		}
		if own {
			t.own[ownKey{s, key}]++
			ts.own = append(ts.own, key)
		}
		if txWrite {
			if ts.txWrote == nil {
				ts.txWrote = map[string]struct{}{}
			}
			ts.txWrote[key] = struct{}{}
		}
	}
	t.limit()
}

// isScriptCall reports whether info runs a script or function that may
// write; its declared keys are tracked as read (the proxy cannot see which
// of them the script reads) and, under NOLOOP, as written.
func isScriptCall(info *command.Info) bool {
	switch info.Name() {
	case "eval", "evalsha", "fcall":
		return true
	}
	return false
}

// trackingBegin marks a receiver's pipeline in flight: messages for it
// wait until trackingEnd. The reads it tracks stay "in flight" for the
// invalidations that come meanwhile (tracker.invalidateKey).
func (s *session) trackingBegin() {
	t := s.srv.tracker
	t.mu.Lock()
	s.track.inFlight = true
	t.mu.Unlock()
}

// trackingEnd waits for the shards' reports of what the pipeline wrote,
// then writes the messages that waited for it, after its replies, and
// starts the session's writer if it receives messages. On the serving
// goroutine, after the replies were queued.
func (s *session) trackingEnd() {
	t := s.srv.tracker
	ts := &s.track
	if (len(ts.wrote) > 0 || ts.flushed) && !s.tx.active {
		// a transaction's commands were noted as they were queued: they
		// run at EXEC
		t.awaitReports(ts.wrote, s.srv.cfg.ShardTimeout)
		ts.wrote = ts.wrote[:0]
		if ts.flushed {
			ts.flushed = false
			t.flushEnd()
		}
		if len(ts.own) > 0 {
			t.settleOwn(s, ts.own)
			ts.own = ts.own[:0]
		}
	}
	if !s.tx.active {
		clear(ts.txWrote)
	}
	if !ts.receiver.Load() {
		return
	}
	t.mu.Lock()
	ts.inFlight = false
	out := ts.deferred
	ts.deferred = nil
	if !s.tx.active {
		// a transaction's reads stay in flight until EXEC or DISCARD
		clear(ts.reading)
	}
	needWriter := ts.w == nil && !ts.gone
	t.mu.Unlock()
	if len(out) > 0 {
		if s.sub.loop != nil {
			s.sub.held = append(s.sub.held, out...) // the loop writes it after the replies
		} else {
			s.conn.WriteRaw(out)
		}
	}
	if needWriter {
		s.conn.share()
		t.startWriter(s)
	}
}

// trackingRelease ends tracking as the session ends.
func (s *session) trackingRelease() {
	t := s.srv.tracker
	t.disable(s)
	t.mu.Lock()
	s.track.gone = true
	w := s.track.w
	s.track.w = nil
	t.mu.Unlock()
	if w != nil {
		w.stop()
	}
}

// enable turns tracking on for s, or changes its options, as Redis's
// CLIENT TRACKING ON does on a client already tracking.
func (t *tracker) enable(s *session, redirect uint64, bcast, optin, optout, noloop bool, prefixes []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ts := &s.track
	t.clients[s] = struct{}{}
	ts.on, ts.bcast, ts.optin, ts.optout, ts.noloop = true, bcast, optin, optout, noloop
	ts.redirect, ts.broken = redirect, false
	if bcast {
		if len(prefixes) == 0 && len(ts.prefixes) == 0 {
			prefixes = []string{""}
		}
		ts.prefixes = append(ts.prefixes, prefixes...)
		t.bcast[s] = struct{}{}
	}
	ts.receiver.Store(true)
	t.active.Store(true)
	if redirect != 0 {
		if v, ok := t.srv.sessions.Load(redirect); ok {
			o := v.(*session)
			o.track.receiver.Store(true)
			if o.track.w == nil && !o.track.gone && o.conn.isShared() {
				// a subscriber reads nothing the proxy would wake it
				// with: its writer starts now
				t.startWriterLocked(o)
			}
		}
	}
}

// disable turns tracking off for s and forgets its keys.
func (t *tracker) disable(s *session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ts := &s.track
	if !ts.on {
		return
	}
	delete(t.clients, s)
	for k := range ts.keys {
		t.forget(s, k)
	}
	for k := range t.own {
		if k.s == s {
			delete(t.own, k)
		}
	}
	delete(t.bcast, s)
	if len(t.clients) == 0 {
		go t.idle()
	}
	ts.on, ts.bcast, ts.optin, ts.optout, ts.noloop, ts.broken = false, false, false, false, false, false
	ts.redirect, ts.prefixes, ts.caching = 0, nil, false
}

// remember tracks key for s. Under t.mu.
func (t *tracker) remember(s *session, key string) {
	ts := &s.track
	if ts.keys == nil {
		ts.keys = map[string]struct{}{}
		ts.reading = map[string]struct{}{}
	}
	ts.reading[key] = struct{}{}
	if _, ok := ts.keys[key]; ok {
		return
	}
	ts.keys[key] = struct{}{}
	set := t.keys[key]
	if set == nil {
		set = map[*session]struct{}{}
		t.keys[key] = set
	}
	set[s] = struct{}{}
	t.items++
}

// forget stops tracking key for s. Under t.mu.
func (t *tracker) forget(s *session, key string) {
	delete(s.track.keys, key)
	if set := t.keys[key]; set != nil {
		if _, ok := set[s]; ok {
			delete(set, s)
			t.items--
		}
		if len(set) == 0 {
			delete(t.keys, key)
		}
	}
}

// limit keeps the table within tracking-table-max-keys: keys past it are
// invalidated for their clients and forgotten, as Redis does. Under t.mu.
func (t *tracker) limit() {
	for key := range t.keys {
		if len(t.keys) <= t.maxKeys {
			return
		}
		t.invalidateKey(key, false)
	}
}

// setMaxKeys applies CONFIG SET tracking-table-max-keys.
func (t *tracker) setMaxKeys(n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n <= 0 {
		n = int(^uint(0) >> 1) // 0: no limit, as in Redis
	}
	t.maxKeys = n
	t.limit()
}

// invalidateKey sends key's invalidation to every client tracking it and
// forgets it, except for a client reading it in the pipeline in flight.
// fromShard: the shard reported a write, which a NOLOOP client's own
// write may explain. Under t.mu.
func (t *tracker) invalidateKey(key string, fromShard bool) {
	set := t.keys[key]
	if set == nil {
		return
	}
	payload := appendKeys(nil, []string{key})
	for s := range set {
		if !(fromShard && t.ownWrite(s, key)) {
			t.send(s, payload)
		}
		if _, reading := s.track.reading[key]; !reading {
			delete(s.track.keys, key)
			delete(set, s)
			t.items--
		}
	}
	if len(set) == 0 {
		delete(t.keys, key)
	}
}

// ownWrite reports whether a shard's report of key is s's own write, which
// NOLOOP keeps from it (or a transaction's write of a key it then reads),
// and counts it off. Under t.mu.
func (t *tracker) ownWrite(s *session, key string) bool {
	k := ownKey{s, key}
	n := t.own[k]
	if n == 0 {
		return false
	}
	if n == 1 {
		delete(t.own, k)
	} else {
		t.own[k] = n - 1
	}
	return true
}

// invalidate handles a shard's report that keys changed.
func (t *tracker) invalidate(keys []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range keys {
		t.invalidateKey(k, true)
	}
	for s := range t.bcast {
		for _, p := range s.track.prefixes {
			var matched []string
			for _, k := range keys {
				if strings.HasPrefix(k, p) && !t.ownWrite(s, k) {
					matched = append(matched, k)
				}
			}
			if len(matched) > 0 {
				t.send(s, appendKeys(nil, matched))
			}
		}
	}
}

// invalidateAll tells every tracking client to drop everything it caches,
// with the message Redis sends for FLUSHALL, and forgets every tracked
// key. flush: a shard reported a FLUSHALL or FLUSHDB, which waits while
// the proxy runs one of its own (flushEnd sends one message for all).
func (t *tracker) invalidateAll(flush bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if flush && t.flushes > 0 {
		return
	}
	t.forgetAll()
	for s := range t.clients {
		t.send(s, nil)
	}
}

// forgetAll empties the table. Under t.mu.
func (t *tracker) forgetAll() {
	for key, set := range t.keys {
		for s := range set {
			delete(s.track.keys, key)
		}
	}
	clear(t.keys)
	t.items = 0
}

// flushStart is told of a FLUSHALL or FLUSHDB the proxy is about to send
// to its shards: the table empties at once, as in Redis, and the shards'
// messages (one each) give way to the one flushEnd sends.
func (t *tracker) flushStart() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.forgetAll()
	t.flushes++
}

// flushEnd is told the shards have reported the flush flushStart began.
func (t *tracker) flushEnd() {
	t.mu.Lock()
	t.flushes--
	t.mu.Unlock()
	t.invalidateAll(false)
}

// send queues an invalidation of payload (a RESP array of keys; nil: all)
// for s's receiver. Under t.mu.
func (t *tracker) send(s *session, payload []byte) {
	target := s
	if s.track.redirect != 0 {
		v, ok := t.srv.sessions.Load(s.track.redirect)
		if ok {
			target = v.(*session)
		}
		if !ok || target.track.gone {
			s.track.broken = true
			if s.protoNow() == 3 {
				msg := append([]byte(">2\r\n"), resp.AppendBulkString(nil, "tracking-redir-broken")...)
				t.push(s, wire.AppendInt(msg, int64(s.track.redirect)))
			}
			return
		}
	}
	var msg []byte
	proto := target.protoNow()
	switch {
	case proto == 3:
		msg = resp.AppendBulkString([]byte(">2\r\n"), "invalidate")
	case target != s && target.subscriptions() > 0:
		msg = resp.AppendBulkString(resp.AppendBulkString(resp.AppendArrayHeader(nil, 3), "message"), "__redis__:invalidate")
	default:
		return // RESP2 without a subscribed receiver: nowhere to send it, as in Redis
	}
	if payload == nil {
		msg = wire.AppendNullIn(msg, proto)
	} else {
		msg = append(msg, payload...)
	}
	t.push(target, msg)
}

// push hands msg to s: after its pipeline in flight, or now through its
// writer. Under t.mu.
func (t *tracker) push(s *session, msg []byte) {
	ts := &s.track
	if ts.gone {
		return
	}
	if ts.inFlight || ts.w == nil {
		ts.deferred = append(ts.deferred, msg...)
		return
	}
	// on the connection's queue now, so that a reply the session queues
	// after this (to a command that follows the write) goes after it
	ts.w.queueNow(msg)
}

// startWriter starts s's writer, its connection shared, and hands it what
// waited.
func (t *tracker) startWriter(s *session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s.track.w == nil && !s.track.gone {
		t.startWriterLocked(s)
	}
}

func (t *tracker) startWriterLocked(s *session) {
	w := newAsyncWriter(s, "tracking")
	s.track.w = w
	go w.run()
	if !s.track.inFlight && len(s.track.deferred) > 0 {
		w.queueNow(s.track.deferred)
		s.track.deferred = nil
	}
}

// settleOwn forgets a NOLOOP client's own writes whose reports did not
// come (a write that changed nothing), once the shards' reports are in.
func (t *tracker) settleOwn(s *session, own []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range own {
		key := ownKey{s, k}
		if n := t.own[key]; n > 1 {
			t.own[key] = n - 1
		} else {
			delete(t.own, key)
		}
	}
}

// awaitReports waits until the shards of pools have sent their reports of
// every write they answered so far, or for timeout (0: 5 s).
func (t *tracker) awaitReports(pools []*backend.Pool, timeout time.Duration) {
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	var distinct [8]*backend.Pool
	set := distinct[:0]
	for _, p := range pools {
		if !slices.Contains(set, p) {
			set = append(set, p)
		}
	}
	var left atomic.Int32
	left.Store(int32(len(set)))
	done := make(chan struct{})
	for _, p := range set {
		t.sourceOf(p).sync(func() {
			if left.Add(-1) == 0 {
				close(done)
			}
		})
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		t.srv.log.Warn("tracking: a shard's reports are late; invalidations may follow the write's reply",
			zap.Duration("waited", timeout))
	}
}

// appendKeys appends keys as a RESP array of bulk strings.
func appendKeys(b []byte, keys []string) []byte {
	b = resp.AppendArrayHeader(b, len(keys))
	for _, k := range keys {
		b = resp.AppendBulkString(b, k)
	}
	return b
}

// protoNow is the session's protocol, for another goroutine.
func (s *session) protoNow() int {
	s.shown.mu.Lock()
	defer s.shown.mu.Unlock()
	return s.proto
}

// trackingInfo is INFO's tracking figures.
func (t *tracker) trackingInfo() (clients, keys, items, prefixes int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	distinct := map[string]struct{}{}
	for s := range t.bcast {
		for _, p := range s.track.prefixes {
			distinct[p] = struct{}{}
		}
	}
	return len(t.clients), len(t.keys), t.items, len(distinct)
}
