package router

import (
	"slices"
	"sync/atomic"
)

// Table is an immutable slot -> shard assignment. Build one with NewTable;
// never modify it after it has been published.
type Table struct {
	epoch    uint64
	shards   []string   // shard (primary) addresses, index = shard id
	replicas [][]string // each shard's replicas; nil when none has any
	slots    [NumSlots]uint16
}

// Range is an inclusive slot range.
type Range struct{ From, To uint16 }

// Shard is one entry of a topology: an address (the shard's primary), its
// replicas, and the slot ranges it owns.
type Shard struct {
	Addr     string
	Replicas []string
	Ranges   []Range
}

// NewTable builds a table from shards whose ranges cover every slot exactly
// once; every shard must own at least one slot, since a shard without slots
// could not be written back as a topology spec. A coverage error names the
// lowest slot that is missing or owned twice. Errors wrap ErrBadTopology.
func NewTable(epoch uint64, shards []Shard) (*Table, error) {
	if len(shards) == 0 {
		return nil, badTopology("no shards")
	}
	if len(shards) > NumSlots {
		return nil, badTopology("too many shards (%d for %d slots)", len(shards), NumSlots)
	}
	t := &Table{epoch: epoch, shards: make([]string, len(shards))}
	// cover is a difference array of how many ranges claim each slot: the
	// check costs O(ranges + slots) however long or repetitive the ranges
	// are, and finds the lowest bad slot whatever order shards come in.
	var cover [NumSlots + 1]int32
	seen := make(map[string]bool, len(shards))
	for i, sh := range shards {
		if sh.Addr == "" {
			return nil, badTopology("shard %d has no address", i)
		}
		if seen[sh.Addr] {
			return nil, badTopology("shard %s is listed twice", sh.Addr)
		}
		seen[sh.Addr] = true
		t.shards[i] = sh.Addr
		for _, r := range sh.Replicas {
			if r == "" {
				return nil, badTopology("shard %s has a replica with no address", sh.Addr)
			}
			if seen[r] {
				return nil, badTopology("address %s is listed twice (replica of %s)", r, sh.Addr)
			}
			seen[r] = true
		}
		if len(sh.Replicas) > 0 {
			if t.replicas == nil {
				t.replicas = make([][]string, len(shards))
			}
			t.replicas[i] = slices.Clone(sh.Replicas)
		}
		if len(sh.Ranges) == 0 {
			return nil, badTopology("shard %s owns no slots", sh.Addr)
		}
		for _, r := range sh.Ranges {
			if r.From > r.To || r.To >= NumSlots {
				return nil, badTopology("shard %s: bad slot range %d-%d", sh.Addr, r.From, r.To)
			}
			cover[r.From]++
			cover[r.To+1]--
		}
	}
	var claims int32
	for s := 0; s < NumSlots; s++ {
		claims += cover[s]
		switch {
		case claims == 0:
			return nil, badTopology("slot %d is not owned by any shard", s)
		case claims > 1:
			return nil, doubledSlot(uint16(s), shards)
		}
	}
	for i, sh := range shards {
		for _, r := range sh.Ranges {
			for s := int(r.From); s <= int(r.To); s++ {
				t.slots[s] = uint16(i)
			}
		}
	}
	return t, nil
}

// doubledSlot names the first two claims on slot.
func doubledSlot(slot uint16, shards []Shard) error {
	first := -1
	for i, sh := range shards {
		for _, r := range sh.Ranges {
			if r.From > slot || slot > r.To {
				continue
			}
			switch {
			case first < 0:
				first = i
			case first == i:
				return badTopology("slot %d is listed twice for shard %s", slot, sh.Addr)
			default:
				return badTopology("slot %d is owned twice (by %s and %s)", slot, shards[first].Addr, sh.Addr)
			}
		}
	}
	return badTopology("slot %d is owned twice", slot) // unreachable: the caller counted two claims
}

// Epoch is the table's version; it grows by one on every change.
func (t *Table) Epoch() uint64 { return t.epoch }

// NumShards is the number of shards in the table.
func (t *Table) NumShards() int { return len(t.shards) }

// Addr returns the address of shard i.
func (t *Table) Addr(i int) string { return t.shards[i] }

// Addrs returns a copy of the shard addresses.
func (t *Table) Addrs() []string { return append([]string(nil), t.shards...) }

// Replicas returns the addresses of shard i's replicas (nil when it has
// none); the caller must not modify them.
func (t *Table) Replicas(i int) []string {
	if t.replicas == nil {
		return nil
	}
	return t.replicas[i]
}

// HasReplicas reports whether any shard has a replica.
func (t *Table) HasReplicas() bool { return t.replicas != nil }

// ShardOfSlot returns the shard index that owns slot.
func (t *Table) ShardOfSlot(slot uint16) int { return int(t.slots[slot]) }

// ShardOf returns the shard index that owns key.
func (t *Table) ShardOf(key []byte) int { return int(t.slots[Slot(key)]) }

// Shards returns the topology as shard entries with merged slot ranges.
func (t *Table) Shards() []Shard {
	out := make([]Shard, len(t.shards))
	for i, a := range t.shards {
		out[i].Addr = a
		out[i].Replicas = slices.Clone(t.Replicas(i))
	}
	start := 0
	for s := 1; s <= NumSlots; s++ {
		if s == NumSlots || t.slots[s] != t.slots[start] {
			o := t.slots[start]
			out[o].Ranges = append(out[o].Ranges, Range{uint16(start), uint16(s - 1)})
			start = s
		}
	}
	return out
}

// Holder publishes the current table to concurrent readers.
type Holder struct{ p atomic.Pointer[Table] }

// NewHolder returns a holder that publishes t.
func NewHolder(t *Table) *Holder {
	h := &Holder{}
	h.p.Store(t)
	return h
}

// Load returns the current table.
func (h *Holder) Load() *Table { return h.p.Load() }

// Store publishes t.
func (h *Holder) Store(t *Table) { h.p.Store(t) }
