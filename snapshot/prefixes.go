package snapshot

import (
	"bytes"
	"cmp"
	"container/heap"
	"slices"
	"strings"
)

// PrefixReport is one key prefix (the key up to and including its first
// ':', Redis's usual separator) and what its keys hold.
type PrefixReport struct {
	Prefix string `json:"prefix"`
	Keys   int64  `json:"keys"`
	Bytes  int64  `json:"bytes"`
	// Over is how much Keys and Bytes may overstate (see prefixTop): 0
	// when the prefix was counted from its first key on.
	OverKeys  int64 `json:"over_keys,omitempty"`
	OverBytes int64 `json:"over_bytes,omitempty"`
}

// prefixOf is a key's prefix, nil for a key without ':' (or one that
// starts with it).
func prefixOf(key []byte) []byte {
	i := bytes.IndexByte(key, ':')
	if i <= 0 {
		return nil
	}
	return key[:i+1]
}

// prefixTop finds the prefixes with the most bytes in bounded memory: the
// space-saving algorithm (Metwally, Agrawal and El Abbadi, 2005). It keeps
// at most max counters; a prefix not counted takes the place of the one
// with the fewest bytes and starts from its counts, which it may
// overstate by that much (Over). Any prefix holding more than 1/max of
// all bytes is certain to be kept. Memory is max prefixes, whatever the
// number of keys, where an exact count (or hdt3213/rdb's prefix report, a
// radix tree of every key) grows with them.
type prefixTop struct {
	max  int
	idx  map[string]int // prefix -> position in h
	h    []PrefixReport // min-heap by Bytes
	none int64          // bytes of keys without a prefix
}

const prefixCounters = 4096

func newPrefixTop() *prefixTop {
	return &prefixTop{max: prefixCounters, idx: map[string]int{}}
}

func (p *prefixTop) add(key []byte, size int64) {
	pre := prefixOf(key)
	if pre == nil {
		p.none += size
		return
	}
	if i, ok := p.idx[string(pre)]; ok {
		p.h[i].Keys++
		p.h[i].Bytes += size
		heap.Fix(p, i)
		return
	}
	if len(p.h) < p.max {
		heap.Push(p, PrefixReport{Prefix: string(pre), Keys: 1, Bytes: size})
		return
	}
	least := p.h[0]
	delete(p.idx, least.Prefix)
	p.h[0] = PrefixReport{Prefix: string(pre), Keys: least.Keys + 1, Bytes: least.Bytes + size,
		OverKeys: least.Keys, OverBytes: least.Bytes}
	p.idx[p.h[0].Prefix] = 0
	heap.Fix(p, 0)
}

// top returns the n prefixes with the most bytes, the most first.
func (p *prefixTop) top(n int) []PrefixReport {
	out := slices.Clone(p.h)
	slices.SortFunc(out, func(a, b PrefixReport) int {
		if c := cmp.Compare(b.Bytes, a.Bytes); c != 0 {
			return c
		}
		return strings.Compare(a.Prefix, b.Prefix)
	})
	return out[:min(n, len(out))]
}

func (p *prefixTop) Len() int           { return len(p.h) }
func (p *prefixTop) Less(i, j int) bool { return p.h[i].Bytes < p.h[j].Bytes }
func (p *prefixTop) Swap(i, j int) {
	p.h[i], p.h[j] = p.h[j], p.h[i]
	p.idx[p.h[i].Prefix], p.idx[p.h[j].Prefix] = i, j
}
func (p *prefixTop) Push(x any) {
	r := x.(PrefixReport)
	p.idx[r.Prefix] = len(p.h)
	p.h = append(p.h, r)
}
func (p *prefixTop) Pop() any {
	r := p.h[len(p.h)-1]
	p.h = p.h[:len(p.h)-1]
	delete(p.idx, r.Prefix)
	return r
}
