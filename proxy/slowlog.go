package proxy

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/reshard/reshard/internal/resp"
	"github.com/reshard/reshard/proxy/command"
	"github.com/reshard/reshard/proxy/internal/backend"
	"github.com/reshard/reshard/proxy/internal/wire"
)

// SLOWLOG through the proxy is the shards' slow logs read as the one slow
// log of the server the proxy stands for:
//
//   - A command the proxy sends to every shard (CONFIG SET, SLOWLOG RESET,
//     FLUSHALL, ...) is one command to its client: the copies the shards
//     logged of it (the same arguments, logged within a second of each
//     other) are one entry, with the longest of their durations.
//   - Each shard's log is in the order that shard ran its commands; the
//     merged log keeps every shard's order, and a command that ran on
//     every shard orders the others around it, so that what a client sent
//     after a SLOWLOG RESET comes before it. Entries of different shards
//     between two such points are ordered by when the proxy sent them,
//     where it remembers (slowWitnesses), else by the second the shard
//     gives.
//   - An entry names the client that sent the command, where the proxy
//     remembers it (slowWitnesses), else the proxy's connection to the
//     shard.
//   - The commands the proxy answers itself (PING, ECHO, CLIENT SETNAME,
//     ...: ownSlowlogCommands) run on no shard: the proxy times them as it
//     runs them and keeps their entries in a log of its own (ownSlowlog),
//     merged as one more shard's.
//   - slowlog-max-len bounds the merged log, as it bounds one server's:
//     SLOWLOG GET gives at most that many entries, SLOWLOG LEN (the
//     shards' lengths summed, and the proxy's) says at most that many.
//     The proxy knows the value a client last set through it (CONFIG SET
//     goes to every shard), Redis's default 128 until then; likewise
//     slowlog-log-slower-than, for its own log and its witnesses.
//
// An entry's id is the shard's id times the number of shards plus one,
// plus the shard's index in the table (for a command of every shard, the
// first shard's; the proxy's own log comes last), so ids stay unique and
// name their shard.

// defaultSlowlogMaxLen is Redis's default slowlog-max-len.
const defaultSlowlogMaxLen = 128

// slowEntry is one entry of the merged slow log: the copies of one command
// that one or more shards logged.
type slowEntry struct {
	id, at, usec int64
	elems        [][]byte // the first copy's elements: id, time, duration, arguments, address, name
	copies       []slowCopy
	done         bool

	// when the command was sent, in unix µs, where the proxy knows it (a
	// remembered pipeline, or its own entries), else the start of the
	// second at: what orders entries of different shards
	when int64
	// the client that sent the command, where a remembered pipeline says
	addr, name string
	named      bool
}

// slowCopy is where a copy stands: its shard and its place in the shard's
// log, newest first.
type slowCopy struct{ shard, pos int }

// mergeSlowlogs reads every shard's SLOWLOG GET reply (their pools in
// pools, where the table has not changed since), and last the proxy's own
// log in that form (with the unix µs of each entry in ownWhen), and
// returns the merged log, newest first, or the error reply to answer.
func mergeSlowlogs(rs [][]byte, ownWhen []int64, pools []*backend.Pool, witnesses []slowWitness) ([]*slowEntry, []byte) {
	n := int64(len(rs))
	own := len(rs) - 1
	byShard := make([][]*slowEntry, len(rs)) // each shard's entries as merged, in its order
	// first copies of each command, by arguments, in the order the shards
	// listed them: the k-th copy on a shard pairs with the k-th of others
	seen := map[string][]*slowEntry{}
	ordinal := map[string]int{}
	err := eachEntry(rs, 6, func(shard int, e [][]byte) bool {
		id, ok1 := wire.IntReply(e[0])
		at, ok2 := wire.IntReply(e[1])
		usec, ok3 := wire.IntReply(e[2])
		if !ok1 || !ok2 || !ok3 {
			return false
		}
		if len(byShard[shard]) == 0 {
			clear(ordinal)
		}
		args := string(e[3])
		k := ordinal[args]
		ordinal[args] = k + 1
		at0 := slowCopy{shard: shard, pos: len(byShard[shard])}
		if k < len(seen[args]) && shard != own {
			if m := seen[args][k]; m.copies[len(m.copies)-1].shard != shard && abs(m.at-at) <= 1 {
				m.copies = append(m.copies, at0)
				m.at, m.usec = max(m.at, at), max(m.usec, usec)
				byShard[shard] = append(byShard[shard], m)
				return true
			}
		}
		m := &slowEntry{id: id*n + int64(shard), at: at, usec: usec, elems: e, copies: []slowCopy{at0}, when: at * 1e6}
		switch {
		case shard == own && at0.pos < len(ownWhen):
			m.when = ownWhen[at0.pos]
		case shard < len(pools) && len(pools) == own:
			m.addr, m.name, m.when, m.named = sender(witnesses, pools[shard], m)
		}
		if k == len(seen[args]) && shard != own {
			seen[args] = append(seen[args], m)
		}
		byShard[shard] = append(byShard[shard], m)
		return true
	})
	if err != nil {
		return nil, err
	}

	// Take, newest first, an entry that heads the rest of every shard
	// that logged it; of those, the newest by time.
	heads := make([]int, len(rs))
	var merged []*slowEntry
	for {
		var best *slowEntry
		any := false
		for sh, list := range byShard {
			for heads[sh] < len(list) && list[heads[sh]].done {
				heads[sh]++
			}
			if heads[sh] == len(list) {
				continue
			}
			any = true
			e := list[heads[sh]]
			ready := true
			for _, cp := range e.copies {
				if heads[cp.shard] != cp.pos && !isHead(byShard, heads, cp) {
					ready = false
				}
			}
			if ready && (best == nil || e.when > best.when) {
				best = e
			}
		}
		if !any {
			return merged, nil
		}
		if best == nil {
			// The shards' orders disagree (copies paired wrongly): take
			// the first shard's head as it is.
			for sh, list := range byShard {
				if heads[sh] < len(list) {
					best = list[heads[sh]]
					break
				}
			}
		}
		best.done = true
		merged = append(merged, best)
	}
}

// isHead reports whether the copy cp is, but for entries already taken,
// the head of its shard's rest.
func isHead(byShard [][]*slowEntry, heads []int, cp slowCopy) bool {
	for i := heads[cp.shard]; i < cp.pos; i++ {
		if !byShard[cp.shard][i].done {
			return false
		}
	}
	return true
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

// slowlogGet answers SLOWLOG GET [count]: the merged log, at most count
// entries (10 by default, all for -1) and at most slowlog-max-len.
func slowlogGet(s *session, c *call, out []byte) []byte {
	ownReply, ownWhen := s.srv.ownSlowlog.reply()
	all, errReply := mergeSlowlogs(append(slices.Clip(s.results(c)), ownReply), ownWhen,
		s.srv.route.Load().pools, s.srv.slowWitnesses.snapshot())
	if errReply != nil {
		return append(out, errReply...)
	}
	count := int64(10)
	if len(c.args) > 2 {
		count, _ = resp.ParseInt(c.args[2]) // the shards checked it
	}
	if count < 0 || count > s.srv.slowlogMaxLen.Load() {
		count = s.srv.slowlogMaxLen.Load()
	}
	all = all[:min(int64(len(all)), count)]
	out = resp.AppendArrayHeader(out, len(all))
	for _, e := range all {
		out = resp.AppendArrayHeader(out, len(e.elems))
		out = wire.AppendInt(out, e.id)
		out = wire.AppendInt(out, e.at)
		out = wire.AppendInt(out, e.usec)
		out = append(out, e.elems[3]...)
		if e.named {
			out = resp.AppendBulkString(out, e.addr)
			out = resp.AppendBulkString(out, e.name)
		} else {
			out = append(append(out, e.elems[4]...), e.elems[5]...)
		}
	}
	return out
}

// sender returns the client that sent pool's shard the command of e, and
// when, if a slow pipeline remembered says.
func sender(witnesses []slowWitness, pool *backend.Pool, e *slowEntry) (addr, name string, when int64, ok bool) {
	elems, ok := wire.ArrayElems(e.elems[3], nil)
	if !ok {
		return "", "", 0, false
	}
	args := make([][]byte, len(elems))
	for i, el := range elems {
		if args[i], ok = wire.BulkText(el); !ok {
			return "", "", 0, false
		}
	}
	return find(witnesses, pool, e.at, args)
}

// slowlogLen answers SLOWLOG LEN: the shards' lengths summed, at most
// slowlog-max-len. A command of every shard counts once per shard that
// logged it here (only SLOWLOG GET reads the entries that make it one).
func slowlogLen(s *session, c *call, out []byte) []byte {
	start := len(out)
	out = sumInts(s, c, out)
	if n, ok := wire.IntReply(out[start:]); ok {
		out = wire.AppendInt(out[:start], min(n+s.srv.ownSlowlog.len(), s.srv.slowlogMaxLen.Load()))
	}
	return out
}

// slowlogReset empties the proxy's own log and every shard's.
func slowlogReset(s *session, r *route, _ *command.Info, c wire.Request) {
	s.srv.ownSlowlog.reset()
	s.fanout(r, c.Args, c.Raw, allOK)
}

// configSetDone merges CONFIG SET's replies and, when every shard took the
// new values, keeps the ones the proxy itself applies.
func configSetDone(s *session, c *call, out []byte) []byte {
	start := len(out)
	out = allOK(s, c, out)
	if bytes.Equal(out[start:], okReply) {
		s.srv.configSet(c.args)
	}
	return out
}

var okReply = wire.AppendStatus(nil, "OK")

// configSet keeps the values of a CONFIG SET every shard took that the
// proxy itself applies (slowlog-max-len, slowlog-log-slower-than, and
// tracking-table-max-keys: the proxy keeps the tracking table, tracking.go;
// the shards hold the setting too, so CONFIG GET shows it).
func (srv *Server) configSet(args [][]byte) {
	for i := 2; i+1 < len(args); i += 2 {
		n, ok := resp.ParseInt(args[i+1])
		switch {
		case !ok:
		case strings.EqualFold(string(args[i]), "slowlog-max-len"):
			srv.slowlogMaxLen.Store(n)
		case strings.EqualFold(string(args[i]), "slowlog-log-slower-than"):
			srv.slowlogSlowerThan.Store(n)
		case strings.EqualFold(string(args[i]), "tracking-table-max-keys") && n >= 0:
			srv.tracker.setMaxKeys(int(n))
		}
	}
}

// Who sent a logged command. A shard's entry names the proxy's connection
// that sent it, which serves many clients. So a pipeline that took at
// least slowlog-log-slower-than, from submit to its last reply, is
// remembered for a while (slowWitnesses): its client's address and name
// and the commands each shard got. A shard's execution of a command is
// part of that round trip, so every command a shard logs as slow came in a
// remembered pipeline (unless it was forgotten since, or travelled over a
// dedicated connection: a transaction, a blocking command, a flush), and
// SLOWLOG GET names the client whose pipeline sent that shard those
// arguments at that second. Where none did, the entry keeps the proxy's
// connection. Two clients sending a shard the same arguments in the same
// second are told apart by nothing: the entry names the latest.
//
// The cost on the data path: reading the clock twice per pipeline while
// slowlog-log-slower-than is not negative, and a copy of the pipeline's
// requests when it was slow.

// defaultSlowlogSlowerThan is Redis's default slowlog-log-slower-than, µs.
const defaultSlowlogSlowerThan = 10000

const (
	maxWitnesses    = 4096     // the shards' parts of pipelines remembered
	maxWitnessBytes = 1 << 20  // the requests remembered, all pipelines together
	maxWitnessStage = 64 << 10 // a shard's part of a pipeline larger than this is not remembered
)

// slowWitness is one shard's part of a slow pipeline.
type slowWitness struct {
	pool       *backend.Pool // the shard's
	from, to   int64         // unix µs the pipeline took
	raw        []byte        // the commands the shard got
	addr, name string        // the client's
}

// slowWitnesses holds the latest slow pipelines' parts, oldest first, up
// to maxWitnesses of them and maxWitnessBytes of requests. Safe for
// concurrent use.
type slowWitnesses struct {
	mu    sync.Mutex
	list  []slowWitness // list[head:] are held
	head  int
	bytes int
}

func (ws *slowWitnesses) add(w slowWitness) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	ws.list = append(ws.list, w)
	ws.bytes += len(w.raw)
	for ws.bytes > maxWitnessBytes || len(ws.list)-ws.head > maxWitnesses {
		ws.bytes -= len(ws.list[ws.head].raw)
		ws.list[ws.head] = slowWitness{}
		ws.head++
	}
	if ws.head > len(ws.list)/2 {
		n := copy(ws.list, ws.list[ws.head:])
		clear(ws.list[n:])
		ws.list, ws.head = ws.list[:n], 0
	}
}

// snapshot returns the witnesses held now; a witness is not changed once
// added, so they can be searched without the lock.
func (ws *slowWitnesses) snapshot() []slowWitness {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return slices.Clone(ws.list[ws.head:])
}

// find returns the client of the latest of ws that sent pool's shard a
// command logged as args at unix second at, and when it sent it (unix µs).
func find(ws []slowWitness, pool *backend.Pool, at int64, args [][]byte) (addr, name string, when int64, ok bool) {
	// any argument not trimmed or redacted is in the request as it is
	var sample []byte
	for _, a := range args {
		if len(a) > len(sample) && len(a) <= slowlogMaxString && !bytes.Contains(a, []byte("... (")) && string(a) != "(redacted)" {
			sample = a
		}
	}
	for i := len(ws) - 1; i >= 0; i-- {
		w := &ws[i]
		// a second of slack each way: the shard's clock is not the proxy's
		if w.pool != pool || at < w.from/1e6-1 || at > w.to/1e6+1 || !bytes.Contains(w.raw, sample) {
			continue
		}
		for raw := w.raw; len(raw) > 0; {
			n, err := wire.ReplyLen(raw)
			if err != nil {
				break // an inline command: the rest cannot be read as requests
			}
			if cmd, ok := wire.ArrayElems(raw[:n], nil); ok && loggedAs(cmd, args) {
				return w.addr, w.name, w.from, true
			}
			raw = raw[n:]
		}
	}
	return "", "", 0, false
}

// Redis's bounds on a slow log entry's arguments: the last one kept says
// how many more there were, a longer argument how many more bytes.
const (
	slowlogMaxArgs   = 32
	slowlogMaxString = 128
)

// loggedAs reports whether the request cmd (its arguments as bulk
// strings) is what a shard logs as args: each argument as Redis keeps it
// in a slow log entry, or redacted.
func loggedAs(cmd [][]byte, args [][]byte) bool {
	if len(args) != min(len(cmd), slowlogMaxArgs) {
		return false
	}
	for j, a := range args {
		c, ok := wire.BulkText(cmd[j])
		switch {
		case !ok:
			return false
		case string(a) == "(redacted)":
		case j == slowlogMaxArgs-1 && len(cmd) > slowlogMaxArgs:
			if !bytes.HasPrefix(a, []byte("... (")) {
				return false
			}
		case len(c) > slowlogMaxString:
			if !bytes.HasPrefix(a, c[:slowlogMaxString]) || !bytes.HasPrefix(a[slowlogMaxString:], []byte("... (")) {
				return false
			}
		case !bytes.Equal(a, c):
			return false
		}
	}
	return true
}

// slowTimer times a pipeline for the slow log: zero when the slow log is
// off.
type slowTimer struct {
	start time.Time
	limit int64 // µs
}

func (s *session) startSlowTimer() slowTimer {
	limit := s.srv.slowlogSlowerThan.Load()
	if limit < 0 {
		return slowTimer{}
	}
	return slowTimer{start: time.Now(), limit: limit}
}

// witnessSlow remembers the pipeline just answered if it took at least
// slowlog-log-slower-than.
func (s *session) witnessSlow(r *route, t slowTimer) {
	if t.start.IsZero() {
		return
	}
	end := time.Now()
	if end.Sub(t.start).Microseconds() < t.limit {
		return
	}
	for i, p := range r.pools { // the primaries: their logs are the ones merged
		if st := &s.stages[i]; len(st.reqs) > 0 && len(st.raw) <= maxWitnessStage {
			s.srv.slowWitnesses.add(slowWitness{pool: p, from: t.start.UnixMicro(), to: end.UnixMicro(),
				raw: bytes.Clone(st.raw), addr: s.conn.RemoteAddr(), name: s.name})
		}
	}
}

// ownSlowlogCommands are the commands the proxy answers itself, always:
// they are logged in its own slow log (ownSlowlog).
var ownSlowlogCommands = []string{
	"ping", "echo", "select", "readonly", "readwrite", "role",
	"client|setname", "client|getname", "client|id", "client|list", "client|info",
	"client|reply", "client|no-evict", "client|help", "acl|whoami",
}

// loggedOwn wraps the handler of a command the proxy answers itself: it
// times the command for LATENCY HISTOGRAM (latency_own.go), and logs it if
// it took at least slowlog-log-slower-than.
func loggedOwn(h handler) handler {
	return func(s *session, r *route, info *command.Info, c wire.Request) {
		start := time.Now()
		h(s, r, info, c)
		d := time.Since(start)
		s.srv.ownLatency.record(info, d)
		if limit := s.srv.slowlogSlowerThan.Load(); limit >= 0 && d.Microseconds() >= limit {
			s.srv.ownSlowlog.add(ownEntry{when: start.UnixMicro(), usec: d.Microseconds(), args: loggedArgs(info, c.Args),
				addr: s.conn.RemoteAddr(), name: s.name}, s.srv.slowlogMaxLen.Load())
		}
	}
}

// loggedArgs returns args as Redis keeps them in a slow log entry: at most
// slowlogMaxArgs, the last one kept saying how many more there were, each
// at most slowlogMaxString bytes and then how many more, passwords
// redacted.
func loggedArgs(info *command.Info, args [][]byte) [][]byte {
	from, to := redactedArgs(info, args)
	n := min(len(args), slowlogMaxArgs)
	out := make([][]byte, n)
	for j := range n {
		a := args[j]
		switch {
		case n != len(args) && j == n-1:
			out[j] = fmt.Appendf(nil, "... (%d more arguments)", len(args)-n+1)
		case j >= from && j < to:
			out[j] = redacted
		case len(a) > slowlogMaxString:
			out[j] = fmt.Appendf(bytes.Clone(a[:slowlogMaxString]), "... (%d more bytes)", len(a)-slowlogMaxString)
		default:
			out[j] = bytes.Clone(a)
		}
	}
	return out
}

// ownEntry is an entry of the proxy's own slow log.
type ownEntry struct {
	id, when, usec int64 // when: unix µs
	args           [][]byte
	addr, name     string
}

// ownSlowlog is the proxy's slow log of the commands it answers itself,
// at most slowlog-max-len entries, oldest first. Safe for concurrent use.
type ownSlowlog struct {
	mu      sync.Mutex
	entries []ownEntry
	nextID  int64
}

func (l *ownSlowlog) add(e ownEntry, maxLen int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e.id = l.nextID
	l.nextID++
	l.entries = append(l.entries, e)
	if over := int64(len(l.entries)) - maxLen; over > 0 {
		l.entries = slices.Delete(l.entries, 0, int(over))
	}
}

func (l *ownSlowlog) len() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return int64(len(l.entries))
}

// reset empties the log; ids go on from where they were, as Redis's do.
func (l *ownSlowlog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = nil
}

// reply renders the log as a shard's SLOWLOG GET -1 reply, newest first,
// and returns when each entry's command ran, in unix µs.
func (l *ownSlowlog) reply() ([]byte, []int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := resp.AppendArrayHeader(nil, len(l.entries))
	when := make([]int64, 0, len(l.entries))
	for i := len(l.entries) - 1; i >= 0; i-- {
		e := &l.entries[i]
		when = append(when, e.when)
		out = resp.AppendArrayHeader(out, 6)
		out = wire.AppendInt(out, e.id)
		out = wire.AppendInt(out, e.when/1e6)
		out = wire.AppendInt(out, e.usec)
		out = resp.AppendArrayHeader(out, len(e.args))
		for _, a := range e.args {
			out = resp.AppendBulk(out, a)
		}
		out = resp.AppendBulkString(out, e.addr)
		out = resp.AppendBulkString(out, e.name)
	}
	return out, when
}
