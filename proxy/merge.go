package proxy

import (
	"bytes"
	"cmp"
	"maps"
	"math/rand/v2"
	"slices"

	"github.com/reshard/reshard/internal/resp"
	"github.com/reshard/reshard/proxy/command"
	"github.com/reshard/reshard/proxy/internal/wire"
)

// Merges of replies from several shards. Each takes the call's result slots
// and appends one reply to out. A shard's error reply wins: the client sees
// the first error, which names the shard when the shard was unreachable.

func (s *session) results(c *call) [][]byte { return s.b.Results[c.first : c.first+c.n] }

func firstError(rs [][]byte) []byte {
	for _, r := range rs {
		if wire.IsError(r) {
			return r
		}
	}
	return nil
}

func sumInts(s *session, c *call, out []byte) []byte {
	rs := s.results(c)
	if e := firstError(rs); e != nil {
		return append(out, e...)
	}
	var sum int64
	for _, r := range rs {
		n, ok := wire.IntReply(r)
		if !ok {
			return wire.AppendError(out, "ERR unexpected reply from shard")
		}
		sum += n
	}
	return wire.AppendInt(out, sum)
}

// leastInt answers the smallest count (WAIT: the replicas that acknowledged
// every shard's writes).
func leastInt(s *session, c *call, out []byte) []byte {
	rs := s.results(c)
	if e := firstError(rs); e != nil {
		return append(out, e...)
	}
	least := int64(-1)
	for _, r := range rs {
		n, ok := wire.IntReply(r)
		if !ok {
			return wire.AppendError(out, "ERR unexpected reply from shard")
		}
		if least < 0 || n < least {
			least = n
		}
	}
	return wire.AppendInt(out, least)
}

func allOK(s *session, c *call, out []byte) []byte {
	rs := s.results(c)
	if e := firstError(rs); e != nil {
		return append(out, e...)
	}
	return append(out, rs[0]...)
}

// anyKilled merges SCRIPT KILL and FUNCTION KILL: OK if the shard running
// a script killed it, else the error of one that could not (UNKILLABLE: it
// wrote), else NOTBUSY, as every shard answers with no script running.
func anyKilled(s *session, c *call, out []byte) []byte {
	rs := s.results(c)
	pick := rs[0]
	for _, r := range rs {
		switch {
		case !wire.IsError(r):
			return append(out, r...)
		case !bytes.HasPrefix(r, []byte("-NOTBUSY")):
			pick = r
		}
	}
	return append(out, pick...)
}

// runningFunction merges FUNCTION STATS: the reply of the shard running a
// function (its running_script is not null), else the first shard's. The
// engines' counts are alike on every shard, where FUNCTION LOAD put the
// libraries.
func runningFunction(s *session, c *call, out []byte) []byte {
	rs := s.results(c)
	if e := firstError(rs); e != nil {
		return append(out, e...)
	}
	for _, r := range rs {
		if elems, ok := wire.MapElems(r); ok && len(elems) >= 2 && !isNullReply(elems[1]) {
			return append(out, r...)
		}
	}
	return append(out, rs[0]...)
}

func mgetMerge(s *session, c *call, out []byte) []byte {
	rs := s.results(c)
	if e := firstError(rs); e != nil {
		return append(out, e...)
	}
	elems := make([][][]byte, len(rs))
	for i, r := range rs {
		var ok bool
		if elems[i], ok = wire.ArrayElems(r, nil); !ok {
			return wire.AppendError(out, "ERR unexpected reply from shard")
		}
	}
	nkeys := len(c.args) - 1
	next := make([]int, len(rs))
	out = resp.AppendArrayHeader(out, nkeys)
	for k := 0; k < nkeys; k++ {
		sub := s.aux[int(c.auxOff)+k]
		if next[sub] >= len(elems[sub]) {
			return wire.AppendError(out[:0], "ERR unexpected reply from shard")
		}
		out = append(out, elems[sub][next[sub]]...)
		next[sub]++
	}
	return out
}

func concatArrays(s *session, c *call, out []byte) []byte {
	rs := s.results(c)
	if e := firstError(rs); e != nil {
		return append(out, e...)
	}
	var all [][]byte
	for _, r := range rs {
		var ok bool
		if all, ok = wire.ArrayElems(r, all); !ok {
			return wire.AppendError(out, "ERR unexpected reply from shard")
		}
	}
	out = resp.AppendArrayHeader(out, len(all))
	for _, e := range all {
		out = append(out, e...)
	}
	return out
}

// anyNonNull picks a non-null reply from a random shard (RANDOMKEY).
func anyNonNull(s *session, c *call, out []byte) []byte {
	rs := s.results(c)
	if e := firstError(rs); e != nil {
		return append(out, e...)
	}
	start := rand.IntN(len(rs))
	for i := range rs {
		r := rs[(start+i)%len(rs)]
		if len(r) > 0 && r[0] == '$' && r[1] != '-' {
			return append(out, r...)
		}
	}
	return append(out, rs[0]...)
}

// andArrays combines arrays of 0/1 integers element by element (SCRIPT
// EXISTS: a script exists only if every shard has it).
func andArrays(s *session, c *call, out []byte) []byte {
	rs := s.results(c)
	if e := firstError(rs); e != nil {
		return append(out, e...)
	}
	var acc []int64
	for i, r := range rs {
		elems, ok := wire.ArrayElems(r, nil)
		if !ok || (i > 0 && len(elems) != len(acc)) {
			return wire.AppendError(out, "ERR unexpected reply from shard")
		}
		for j, e := range elems {
			n, _ := wire.IntReply(e)
			if i == 0 {
				acc = append(acc, n)
			} else if n == 0 {
				acc[j] = 0
			}
		}
	}
	out = resp.AppendArrayHeader(out, len(acc))
	for _, n := range acc {
		out = wire.AppendInt(out, n)
	}
	return out
}

// roleReply answers ROLE: a master at offset 0 with no replicas.
var roleReply = []byte("*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n")

// latencyLatest merges LATENCY LATEST: per event, the latest sample of any
// shard and the highest of their maximums, by event name.
func latencyLatest(s *session, c *call, out []byte) []byte {
	type event struct{ at, latest, max int64 }
	events := map[string]*event{}
	err := eachEntry(s.results(c), 4, func(_ int, e [][]byte) bool {
		name, ok := wire.BulkText(e[0])
		at, ok1 := wire.IntReply(e[1])
		latest, ok2 := wire.IntReply(e[2])
		most, ok3 := wire.IntReply(e[3])
		if !ok || !ok1 || !ok2 || !ok3 {
			return false
		}
		ev := events[string(name)]
		if ev == nil {
			ev = &event{}
			events[string(name)] = ev
		}
		if at >= ev.at {
			ev.at, ev.latest = at, latest
		}
		ev.max = max(ev.max, most)
		return true
	})
	if err != nil {
		return append(out, err...)
	}
	out = resp.AppendArrayHeader(out, len(events))
	for _, name := range slices.Sorted(maps.Keys(events)) {
		ev := events[name]
		out = resp.AppendArrayHeader(out, 4)
		out = resp.AppendBulkString(out, name)
		out = wire.AppendInt(out, ev.at)
		out = wire.AppendInt(out, ev.latest)
		out = wire.AppendInt(out, ev.max)
	}
	return out
}

// latencyHistory merges LATENCY HISTORY event: every shard's samples by
// time, the highest where two fall in the same second.
func latencyHistory(s *session, c *call, out []byte) []byte {
	samples := map[int64]int64{}
	err := eachEntry(s.results(c), 2, func(_ int, e [][]byte) bool {
		at, ok1 := wire.IntReply(e[0])
		ms, ok2 := wire.IntReply(e[1])
		if !ok1 || !ok2 {
			return false
		}
		samples[at] = max(samples[at], ms)
		return true
	})
	if err != nil {
		return append(out, err...)
	}
	out = resp.AppendArrayHeader(out, len(samples))
	for _, at := range slices.Sorted(maps.Keys(samples)) {
		out = resp.AppendArrayHeader(out, 2)
		out = wire.AppendInt(out, at)
		out = wire.AppendInt(out, samples[at])
	}
	return out
}

// eachEntry calls fn with the shard's index and the elements of each entry
// of every shard's array reply, entries of n elements; it returns the error
// reply to answer, or nil.
func eachEntry(rs [][]byte, n int, fn func(shard int, elems [][]byte) bool) []byte {
	if e := firstError(rs); e != nil {
		return e
	}
	for shard, r := range rs {
		entries, ok := wire.ArrayElems(r, nil)
		if !ok {
			return wire.AppendError(nil, "ERR unexpected reply from shard")
		}
		for _, raw := range entries {
			elems, ok := wire.ArrayElems(raw, nil)
			if !ok || len(elems) != n || !fn(shard, elems) {
				return wire.AppendError(nil, "ERR unexpected reply from shard")
			}
		}
	}
	return nil
}

// latencyHistogram merges LATENCY HISTOGRAM [command ...]: per command, the
// calls summed and the shards' cumulative histograms added up. A shard's
// count at a bucket is its count at its own largest bucket not above it,
// so buckets one shard reports and another does not still add up right.
// A command the proxy sends to every shard (CONFIG SET, DBSIZE, FLUSHALL,
// ...) is one call to its client, which every shard counted: its figures
// are those of the shard that counted the most calls, not a sum. The
// commands the proxy answers itself have the proxy's figures
// (latency_own.go), merged as one more shard's.
func latencyHistogram(s *session, c *call, out []byte) []byte {
	rs := append(slices.Clip(s.results(c)), s.srv.ownLatency.reply(c.args[2:]))
	if e := firstError(rs); e != nil {
		return append(out, e...)
	}
	type bucket struct{ usec, count int64 }
	type cmdHist struct {
		calls  int64
		counts []int64    // each shard's calls
		shards [][]bucket // one cumulative histogram per shard that ran it
	}
	cmds := map[string]*cmdHist{}
	bad := func() []byte { return wire.AppendError(out, "ERR unexpected reply from shard") }
	for _, r := range rs {
		kv, ok := wire.MapElems(r)
		if !ok || len(kv)%2 != 0 {
			return bad()
		}
		for i := 0; i < len(kv); i += 2 {
			name, ok1 := wire.BulkText(kv[i])
			fields, ok2 := wire.MapElems(kv[i+1])
			if !ok1 || !ok2 || len(fields) != 4 {
				return bad()
			}
			calls, ok1 := wire.IntReply(fields[1])
			hist, ok2 := wire.MapElems(fields[3])
			if !ok1 || !ok2 || len(hist)%2 != 0 {
				return bad()
			}
			var buckets []bucket
			for j := 0; j < len(hist); j += 2 {
				usec, ok1 := wire.IntReply(hist[j])
				count, ok2 := wire.IntReply(hist[j+1])
				if !ok1 || !ok2 {
					return bad()
				}
				buckets = append(buckets, bucket{usec, count})
			}
			cmd := cmds[string(name)]
			if cmd == nil {
				cmd = &cmdHist{}
				cmds[string(name)] = cmd
			}
			cmd.calls += calls
			cmd.counts = append(cmd.counts, calls)
			cmd.shards = append(cmd.shards, buckets)
		}
	}
	for name, cmd := range cmds {
		info := command.LookupName(name)
		if info == nil || !s.srv.stats.of(info).everyShard.Load() {
			continue
		}
		most := slices.Index(cmd.counts, slices.Max(cmd.counts))
		cmd.calls, cmd.counts, cmd.shards = cmd.counts[most], nil, cmd.shards[most:most+1]
	}
	out = wire.AppendMapHeader(out, len(cmds), s.proto)
	for _, name := range slices.Sorted(maps.Keys(cmds)) {
		cmd := cmds[name]
		var bounds []int64
		for _, h := range cmd.shards {
			for _, b := range h {
				bounds = append(bounds, b.usec)
			}
		}
		slices.Sort(bounds)
		bounds = slices.Compact(bounds)
		out = resp.AppendBulkString(out, name)
		out = wire.AppendMapHeader(out, 2, s.proto)
		out = resp.AppendBulkString(out, "calls")
		out = wire.AppendInt(out, cmd.calls)
		out = resp.AppendBulkString(out, "histogram_usec")
		out = wire.AppendMapHeader(out, len(bounds), s.proto)
		for _, usec := range bounds {
			var total int64
			for _, h := range cmd.shards {
				// the shard's count at its largest bucket not above usec
				if i, _ := slices.BinarySearchFunc(h, usec+1, func(b bucket, v int64) int { return cmp.Compare(b.usec, v) }); i > 0 {
					total += h[i-1].count
				}
			}
			out = wire.AppendInt(out, usec)
			out = wire.AppendInt(out, total)
		}
	}
	return out
}
