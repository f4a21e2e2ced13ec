package proxy

import (
	"bytes"
	"cmp"
	"math/rand/v2"
	"slices"

	"github.com/reshard/reshard/internal/resp"
)

// Merges of replies from several shards. Each takes the call's result slots
// and appends one reply to out. A shard's error reply wins: the client sees
// the first error, which names the shard when the shard was unreachable.

func (s *session) results(c *call) [][]byte { return s.b.results[c.first : c.first+c.n] }

func firstError(rs [][]byte) []byte {
	for _, r := range rs {
		if isError(r) {
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
		n, ok := intReply(r)
		if !ok {
			return appendError(out, "ERR unexpected reply from shard")
		}
		sum += n
	}
	return appendInt(out, sum)
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
		n, ok := intReply(r)
		if !ok {
			return appendError(out, "ERR unexpected reply from shard")
		}
		if least < 0 || n < least {
			least = n
		}
	}
	return appendInt(out, least)
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
		case !isError(r):
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
		if elems, ok := mapElems(r); ok && len(elems) >= 2 && !isNullReply(elems[1]) {
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
		if elems[i], ok = arrayElems(r, nil); !ok {
			return appendError(out, "ERR unexpected reply from shard")
		}
	}
	nkeys := len(c.args) - 1
	next := make([]int, len(rs))
	out = resp.AppendArrayHeader(out, nkeys)
	for k := 0; k < nkeys; k++ {
		sub := s.aux[int(c.auxOff)+k]
		if next[sub] >= len(elems[sub]) {
			return appendError(out[:0], "ERR unexpected reply from shard")
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
		if all, ok = arrayElems(r, all); !ok {
			return appendError(out, "ERR unexpected reply from shard")
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
		elems, ok := arrayElems(r, nil)
		if !ok || (i > 0 && len(elems) != len(acc)) {
			return appendError(out, "ERR unexpected reply from shard")
		}
		for j, e := range elems {
			n, _ := intReply(e)
			if i == 0 {
				acc = append(acc, n)
			} else if n == 0 {
				acc[j] = 0
			}
		}
	}
	out = resp.AppendArrayHeader(out, len(acc))
	for _, n := range acc {
		out = appendInt(out, n)
	}
	return out
}

// slowlogMerge merges SLOWLOG GET [count]: every shard's entries, newest
// first, at most count of them (10 by default, all for -1), as one slow log.
// An entry's id is the shard's id times the number of shards plus the
// shard's index in the table, so ids stay unique and name their shard. The
// client address and name in an entry are those of the proxy's connection
// to the shard.
func slowlogMerge(s *session, c *call, out []byte) []byte {
	rs := s.results(c)
	if e := firstError(rs); e != nil {
		return append(out, e...)
	}
	type entry struct {
		id, at int64
		elems  [][]byte
	}
	var all []entry
	for sh, r := range rs {
		entries, ok := arrayElems(r, nil)
		if !ok {
			return appendError(out, "ERR unexpected reply from shard")
		}
		for _, raw := range entries {
			elems, ok := arrayElems(raw, nil)
			if !ok || len(elems) < 2 {
				return appendError(out, "ERR unexpected reply from shard")
			}
			id, ok1 := intReply(elems[0])
			at, ok2 := intReply(elems[1])
			if !ok1 || !ok2 {
				return appendError(out, "ERR unexpected reply from shard")
			}
			all = append(all, entry{id: id*int64(len(rs)) + int64(sh), at: at, elems: elems})
		}
	}
	slices.SortFunc(all, func(a, b entry) int {
		return cmp.Or(cmp.Compare(b.at, a.at), cmp.Compare(b.id, a.id))
	})
	count := int64(10)
	if len(c.args) > 2 {
		count, _ = resp.ParseInt(c.args[2]) // the shards checked it
	}
	if count >= 0 && int64(len(all)) > count {
		all = all[:count]
	}
	out = resp.AppendArrayHeader(out, len(all))
	for _, e := range all {
		out = resp.AppendArrayHeader(out, len(e.elems))
		out = appendInt(out, e.id)
		for _, el := range e.elems[1:] {
			out = append(out, el...)
		}
	}
	return out
}

// roleReply answers ROLE: a master at offset 0 with no replicas.
var roleReply = []byte("*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n")
