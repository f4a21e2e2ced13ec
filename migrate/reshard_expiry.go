package migrate

import (
	"bytes"
	"container/heap"
	"fmt"
	"strconv"
	"strings"
)

// Expiry during a live reshard.
//
// A Redis replica never expires a key by its own clock: it waits for the
// master's DEL, so its keys die exactly where they died on the master in
// the order of the stream. The targets of a reshard are masters, and they
// receive a source's commands late (by the whole copy, then by the lag of
// the catch-up). A key whose TTL the source renews shortly before it runs
// out would die on a target before the renewal arrives, and the renewal
// (a PEXPIREAT on a missing key) would then do nothing: the key is lost.
// Absolute expiry alone cannot prevent that; it only keeps the same instant
// on both sides.
//
// So, first, every expiry is absolute on the way to the targets: Redis 7
// already propagates EXPIRE, SETEX, GETEX EX and the like as PEXPIREAT and
// SET ... PXAT, and RESTORE with ABSTTL; normalizeExpiry turns any relative
// form left (older sources, a RESTORE without ABSTTL) into these, taking
// "now" as the moment the capture received the command. Conditions that
// already held on the source (PEXPIREAT ... GT) are dropped: the stream
// carries the command only because it took effect there.
//
// Second, an expiry T close enough to be at risk (before now + ExpiryGuard
// + the current lag) is written as T + guardShift, a *guard* far enough
// away that the target keeps the key, and the key goes into the source's
// guardSet. The guard is set right in stream order, by a conditional
// script (guardScript: only if the key's expiry is still exactly the
// guard, so a renewal, PERSIST or new value that came through the stream
// since is left alone):
//
//   - when the stream has been applied up to what the source received at
//     T + guardSlack: by then the source has expired the key unless it was
//     renewed, which the stream would have carried. Setting T, now past,
//     deletes the key on the target;
//   - at the cutover, inside the barrier, for every guard left: from then
//     on the target is the master and expires by its own clock.
//
// RENAME, RENAMENX and COPY carry a guarded key's expiry to another key,
// so that key is guarded too. Keys written with an expiry beyond the
// horizon are at risk only if the lag later grows past ExpiryGuard.
// Clocks: T comes from the source's clock, the guard's release from this
// process's, and the targets expire by theirs: they must agree to well
// within guardSlack, as they must for absolute expiry in Redis at all.

// guardShift is added to a guarded expiry. An odd number of milliseconds
// (one hour and a bit), so that a real expiry set through the stream is
// not mistaken for a guard, as an expiry one exact hour later could be.
const guardShift = 3_671_917

// guardSlack is how far past T the stream must have been received before
// a guard is released: the time between a command running on the source
// and the capture publishing it, and clock differences.
const guardSlack = 1000 // ms

// guardScript sets each key's expiry to ARGV[2i] if it is still the guard
// ARGV[2i-1]; a time in the past deletes the key.
const guardScript = `local n = 0
for i, k in ipairs(KEYS) do
  if redis.call('PEXPIRETIME', k) == tonumber(ARGV[2*i-1]) then
    redis.call('PEXPIREAT', k, ARGV[2*i])
    n = n + 1
  end
end
return n`

// guardBatch is how many keys one guardScript call sets right.
const guardBatch = 128

type guardEntry struct {
	at  int64 // the true expiry (unix ms)
	key string
}

type guardHeap []guardEntry

func (h guardHeap) Len() int           { return len(h) }
func (h guardHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h guardHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *guardHeap) Push(x any)        { *h = append(*h, x.(guardEntry)) }
func (h *guardHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// guardSet is one source's guarded keys, owned by its applier goroutine.
type guardSet struct {
	h     guardHeap
	byKey map[string]int64 // key -> true expiry of its latest guard
	total int64            // keys ever guarded
}

func newGuardSet() *guardSet { return &guardSet{byKey: map[string]int64{}} }

// add guards key with true expiry at and returns the guard to write.
func (g *guardSet) add(key []byte, at int64) int64 {
	k := string(key)
	heap.Push(&g.h, guardEntry{at: at, key: k})
	g.byKey[k] = at
	g.total++
	return at + guardShift
}

// carry guards dst like src, when src is guarded (RENAME, COPY).
func (g *guardSet) carry(src, dst []byte) {
	if at, ok := g.byKey[string(src)]; ok {
		g.add(dst, at)
	}
}

// due removes and returns the entries whose true expiry is at or before
// ms, in order; all entries when ms is maxInt64.
func (g *guardSet) due(ms int64, dst []guardEntry) []guardEntry {
	for len(g.h) > 0 && g.h[0].at <= ms {
		e := heap.Pop(&g.h).(guardEntry)
		if g.byKey[e.key] == e.at {
			delete(g.byKey, e.key)
		}
		dst = append(dst, e)
	}
	return dst
}

func (g *guardSet) len() int { return len(g.h) }

// normalized is where a command's absolute expiry sits after
// normalizeExpiry: args[tIdx] is the expiry in unix milliseconds.
type normalized struct {
	args [][]byte
	key  []byte
	at   int64
	tIdx int // -1: the command sets no expiry
}

// normalizeExpiry rewrites a command that sets an expiry so that the
// expiry is absolute, in milliseconds, at a known place: SET key value
// [NX|XX|GET] PXAT ms; PEXPIREAT key ms; RESTORE key ms payload ... ABSTTL.
// recvMs is the time the source ran the command, for relative forms. args
// is not modified; the result may share its elements.
func normalizeExpiry(args [][]byte, recvMs int64) (normalized, error) {
	n := normalized{args: args, tIdx: -1}
	if len(args) < 2 {
		return n, nil
	}
	num := func(b []byte) (int64, error) {
		v, err := strconv.ParseInt(string(b), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: bad number %q", strings.ToUpper(string(args[0])), clip(b, 30))
		}
		return v, nil
	}
	ms := func(v int64) []byte { return strconv.AppendInt(nil, v, 10) }
	pexpireat := func(at int64) (normalized, error) {
		return normalized{args: [][]byte{[]byte("PEXPIREAT"), args[1], ms(at)}, key: args[1], at: at, tIdx: 2}, nil
	}
	switch lowerName(args[0]) {
	case "set":
		if len(args) < 3 {
			return n, nil
		}
		out := [][]byte{args[0], args[1], args[2]}
		at, has := int64(0), false
		for i := 3; i < len(args); i++ {
			opt := strings.ToUpper(string(args[i]))
			switch opt {
			case "EX", "PX", "EXAT", "PXAT":
				if i+1 >= len(args) {
					return n, fmt.Errorf("SET: %s without a value", opt)
				}
				v, err := num(args[i+1])
				if err != nil {
					return n, err
				}
				switch opt {
				case "EX":
					at = recvMs + v*1000
				case "PX":
					at = recvMs + v
				case "EXAT":
					at = v * 1000
				case "PXAT":
					at = v
				}
				has = true
				i++
			default:
				out = append(out, args[i])
			}
		}
		if !has {
			return n, nil
		}
		out = append(out, []byte("PXAT"), ms(at))
		return normalized{args: out, key: args[1], at: at, tIdx: len(out) - 1}, nil
	case "setex", "psetex":
		if len(args) != 4 {
			return n, nil
		}
		v, err := num(args[2])
		if err != nil {
			return n, err
		}
		if lowerName(args[0]) == "setex" {
			v *= 1000
		}
		at := recvMs + v
		return normalized{args: [][]byte{[]byte("SET"), args[1], args[3], []byte("PXAT"), ms(at)}, key: args[1], at: at, tIdx: 4}, nil
	case "pexpireat", "expireat", "expire", "pexpire":
		if len(args) < 3 {
			return n, nil
		}
		v, err := num(args[2])
		if err != nil {
			return n, err
		}
		switch lowerName(args[0]) {
		case "expireat":
			v *= 1000
		case "expire":
			v = recvMs + v*1000
		case "pexpire":
			v = recvMs + v
		}
		return pexpireat(v)
	case "getex":
		for i := 2; i < len(args); i++ {
			opt := strings.ToUpper(string(args[i]))
			switch opt {
			case "PERSIST":
				return normalized{args: [][]byte{[]byte("PERSIST"), args[1]}, tIdx: -1}, nil
			case "EX", "PX", "EXAT", "PXAT":
				if i+1 >= len(args) {
					return n, fmt.Errorf("GETEX: %s without a value", opt)
				}
				v, err := num(args[i+1])
				if err != nil {
					return n, err
				}
				switch opt {
				case "EX":
					v = recvMs + v*1000
				case "PX":
					v = recvMs + v
				case "EXAT":
					v *= 1000
				}
				return pexpireat(v)
			}
		}
		return n, nil
	case "restore":
		if len(args) < 4 {
			return n, nil
		}
		v, err := num(args[2])
		if err != nil || v == 0 {
			return n, err
		}
		abs := false
		for _, a := range args[4:] {
			if bytes.EqualFold(a, []byte("ABSTTL")) {
				abs = true
			}
		}
		out := append([][]byte(nil), args...)
		if !abs {
			v += recvMs
			out = append(out, []byte("ABSTTL"))
		}
		out[2] = ms(v)
		return normalized{args: out, key: args[1], at: v, tIdx: 2}, nil
	}
	return n, nil
}
