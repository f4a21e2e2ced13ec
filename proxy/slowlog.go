package proxy

import (
	"bytes"
	"strings"

	"github.com/reshard/reshard/internal/resp"
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
//     between two such points are ordered by their time, which shards give
//     to the second.
//   - slowlog-max-len bounds the merged log, as it bounds one server's:
//     SLOWLOG GET gives at most that many entries, SLOWLOG LEN (the
//     shards' lengths summed) says at most that many. The proxy knows the value a client last set through
//     it (CONFIG SET goes to every shard), Redis's default 128 until then.
//
// An entry's id is the shard's id times the number of shards plus the
// shard's index in the table (for a command of every shard, the first
// shard's), so ids stay unique and name their shard. The client address
// and name in an entry are those of the proxy's connection to the shard:
// the shard cannot tell which of the proxy's clients sent a command over a
// connection it shares, and neither can the proxy after the fact. Commands
// the proxy answers itself (PING, ECHO, CLIENT SETNAME, ...) run on no
// shard and are in no slow log.

// defaultSlowlogMaxLen is Redis's default slowlog-max-len.
const defaultSlowlogMaxLen = 128

// slowEntry is one entry of the merged slow log: the copies of one command
// that one or more shards logged.
type slowEntry struct {
	id, at, usec int64
	elems        [][]byte // the first copy's elements: id, time, duration, arguments, address, name
	copies       []slowCopy
	done         bool
}

// slowCopy is where a copy stands: its shard and its place in the shard's
// log, newest first.
type slowCopy struct{ shard, pos int }

// mergeSlowlogs reads every shard's SLOWLOG GET reply and returns the
// merged log, newest first, or the error reply to answer.
func mergeSlowlogs(rs [][]byte) ([]*slowEntry, []byte) {
	n := int64(len(rs))
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
		if k < len(seen[args]) {
			if m := seen[args][k]; m.copies[len(m.copies)-1].shard != shard && abs(m.at-at) <= 1 {
				m.copies = append(m.copies, at0)
				m.at, m.usec = max(m.at, at), max(m.usec, usec)
				byShard[shard] = append(byShard[shard], m)
				return true
			}
		}
		m := &slowEntry{id: id*n + int64(shard), at: at, usec: usec, elems: e, copies: []slowCopy{at0}}
		if k == len(seen[args]) {
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
			if ready && (best == nil || e.at > best.at) {
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
	all, errReply := mergeSlowlogs(s.results(c))
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
		for _, el := range e.elems[3:] {
			out = append(out, el...)
		}
	}
	return out
}

// slowlogLen answers SLOWLOG LEN: the shards' lengths summed, at most
// slowlog-max-len. A command of every shard counts once per shard that
// logged it here (only SLOWLOG GET reads the entries that make it one).
func slowlogLen(s *session, c *call, out []byte) []byte {
	start := len(out)
	out = sumInts(s, c, out)
	if n, ok := wire.IntReply(out[start:]); ok && n > s.srv.slowlogMaxLen.Load() {
		out = wire.AppendInt(out[:start], s.srv.slowlogMaxLen.Load())
	}
	return out
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
// proxy itself applies (slowlog-max-len).
func (srv *Server) configSet(args [][]byte) {
	for i := 2; i+1 < len(args); i += 2 {
		if strings.EqualFold(string(args[i]), "slowlog-max-len") {
			if n, ok := resp.ParseInt(args[i+1]); ok && n >= 0 {
				srv.slowlogMaxLen.Store(n)
			}
		}
	}
}
